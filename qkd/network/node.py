"""One KME node of a QKD network: ETSI GS QKD 014 to its SAEs, key relay to the other KMEs.

Hazmat-level service code: run it through ``agile kme serve --network FILE --node NAME
--state DIR`` (or ``agile net up``). docs/kme.md, "A network of KMEs", documents every
message and the guarantees.

Theory of operation
-------------------
Two HTTPS listeners, both with mutual TLS under the network's one CA:

- ETSI GS QKD 014 for the node's own SAEs, handled by the pair's request code
  (:class:`qkd.delivery.kme.service.Kme`, subclassed here): the SAE is the commonName of its
  client certificate; the slave SAE may sit at any node of the network;
- the inter-KME API (``/kmapi/v1/...``), open only to certificates whose subject OU is
  ``KME`` and whose commonName is a node of this network (and, for status and admin calls,
  the operator's certificate, OU ``operator``).

Link key. Adjacent nodes share link key per link and direction (:mod:`qkd.network.nodestore`).
Its source is either a *simulation of the quantum link* -- the lower-named end runs the
simulated QKD device, draws the key from the OS CSPRNG at the link's secret key rate (the
network file's physics, :func:`qkd.network.planner.link_rates`) and hands the other end the
identical key over the mutual-TLS channel; a real device gives both ends the key itself, so
this hand-over exists only in the simulation -- or a vendor device's ETSI 014 interface: the
node is an SAE of the vendor's KME pair; the lower end calls ``enc_keys``, sends the key_IDs
to the other end, which calls ``dec_keys`` (:class:`~qkd.delivery.etsi014.AsyncEtsi014Client`).
The lower end writes each block as pending, the other end stores it, then the lower end
marks it ready; a pending block is re-sent after a restart and dropped only if the other end
says it does not hold it.

Relay. ``enc_keys`` at node A for a slave SAE at node D: A routes over its live view of the
network (every ``routing_period_s`` it asks every node for its links: up, in alarm, pool
levels), draws fresh keys from the OS CSPRNG and relays each hop by hop
(:func:`~qkd.network.relay.seal_hop` / :func:`~qkd.network.relay.open_hop`). Each node makes
its use of link key durable before it sends or acts on a frame; D stores the keys durably
under their key_IDs and acknowledges; the acknowledgement returns along the path, and only
then does A hand the keys to the master SAE. Any failure on the way makes A answer 503.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import itertools
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from qkd.delivery.etsi014.client import AsyncEtsi014Client, client_ssl_context
from qkd.delivery.etsi014.models import (
    KeyRequest,
    RequestRejected,
    encode_key_container,
)
from qkd.delivery.etsi014.server import (
    HttpsServer,
    Request,
    TextBody,
    server_ssl_context,
    start_server,
)
from qkd.delivery.kme.config import LinkSettings
from qkd.delivery.kme.service import Kme, check_key_request, serve_until_stopped
from qkd.network import audit
from qkd.network.kmapi import KmapiClient, KmapiError
from qkd.network.metrics import NodeMetrics, metrics_available
from qkd.network.model import FibreLink, Link
from qkd.network.nodeconfig import NodeSettings, VendorEnd
from qkd.network.nodestore import (
    KeyUnavailable,
    LinkKeyStream,
    NodeCommitter,
    NodeStore,
    NodeStoreBackend,
    RelayedKey,
    StagedLedger,
    StoreTx,
)
from qkd.network.planner import bottleneck_path, link_rates
from qkd.network.relay import (
    SLOT_BYTES,
    LinkKeyError,
    RelayAuthenticationError,
    RelayDecodeError,
    RelayError,
    link_key_bytes,
    open_hop,
    seal_hop,
)

if TYPE_CHECKING:
    from qkd.network.replicas import NodeReplicas
    from qkd.physics.rates import DecoyStatistics

__all__ = ["KMAPI_PREFIX", "NetworkKme", "serve_node"]

_log = logging.getLogger(__name__)

KMAPI_PREFIX = "/kmapi/v1/"
# Link key moves in blocks of 2 KiB to 16 KiB per direction; a frame (at most 1,056 bytes of
# link key) never spans two blocks.
MIN_BLOCK = 2048
MAX_BLOCK = 16384
VENDOR_KEY_BITS = 256
FEED_PERIOD_S = 0.02
HEARTBEAT_S = 0.5
LINK_TIMEOUT_S = 3.0
RELAY_TIMEOUT_S = 10.0
# A relay message's frames are sent in parts that keep each body well below the server's
# 64 KiB limit.
MAX_RELAY_BODY = 40_000
MAX_RELAY_ENTRIES = 256
RESERVE_BYTES = 32 * 1024
# Used link key is forgotten every TRIM_PERIOD_S; a receiver refuses a frame that arrives
# more than TRIM_WINDOW bytes behind the highest byte already used on its link.
TRIM_PERIOD_S = 2.0
TRIM_WINDOW = 4 * MAX_BLOCK + RESERVE_BYTES
# Intercept-resend on every pulse adds 25% QBER (BB84).
EVE_QBER = 0.25
NOMINAL_QBER = 0.02
# Simulated attacks: intercept-resend raises the QBER; photon-number splitting leaves it and
# the signal gain unchanged and shows only in the decoy bounds (fibre links).
ATTACKS = ("intercept-resend", "pns")


class RelayFailed(Exception):
    """A relay hop failed; the message says where and why (never key bytes)."""


def nominal_qber(link: Link) -> float:
    """The QBER the link's physics gives (fibre decoy BB84: E_mu at the optimal mu)."""
    if isinstance(link, FibreLink):
        from qkd.physics import rates
        from qkd.physics.link import PRESETS

        preset = PRESETS[link.preset]
        mu, _ = rates.optimal_mu(link.preset, link.length_km, method=link.method, nu=link.nu)
        eta = rates.transmittance(link.preset, link.length_km)
        return rates.error_rate(mu, eta, preset.dark_count_probability, preset.misalignment)
    return NOMINAL_QBER


def decoy_model(link: Link) -> dict[str | None, DecoyStatistics] | None:
    """The expected decoy statistics of a fibre link, honest (key ``None``) and under each
    simulated attack; ``None`` for a link without decoy-state physics (fixed and the other
    planning kinds), which carries no decoy figures and cannot be decoy-checked."""
    if not isinstance(link, FibreLink):
        return None
    from qkd.physics import rates
    from qkd.physics.link import PRESETS

    preset = PRESETS[link.preset]
    mu, _ = rates.optimal_mu(link.preset, link.length_km, method=link.method, nu=link.nu)
    common = functools.partial(
        rates.decoy_statistics,
        eta=rates.transmittance(link.preset, link.length_km),
        y0=preset.dark_count_probability,
        e_d=preset.misalignment,
        mu=mu,
        nu=link.nu,
        f=preset.ec_efficiency,
        detector_efficiency=preset.efficiency,
    )
    return {
        None: common(),
        "intercept-resend": common(attack="intercept-resend"),
        "pns": common(attack="pns"),
    }


# ------------------------------------------------------------------------ link key sources


class SimulatedDevice:
    """A simulation of the quantum link: the lower end draws the key (OS CSPRNG) and hands the
    identical bytes to the other end over mutual TLS. A real QKD device gives both ends the
    key itself; the hand-over exists only because this device is simulated."""

    kind = "simulated"

    async def produce(self, nbytes: int) -> tuple[bytes, dict[str, Any]]:
        data = secrets.token_bytes(nbytes)
        return data, {"data": base64.b64encode(data).decode("ascii")}

    async def obtain(self, descriptor: dict[str, Any], nbytes: int) -> bytes:
        text = descriptor.get("data")
        if not isinstance(text, str):
            raise RequestRejected(400, "a simulated link-key block needs data (base64)")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RequestRejected(400, "link-key block data is not base64") from exc
        if len(data) != nbytes:
            raise RequestRejected(400, f"link-key block must be {nbytes} bytes")
        return data

    async def aclose(self) -> None:
        return None


class VendorDevice:
    """A vendor's QKD device through its KME pair's ETSI 014 API; this node is an SAE of it."""

    kind = "etsi014"

    def __init__(self, end: VendorEnd) -> None:
        self.client = AsyncEtsi014Client(
            end.url,
            peer_sae_id=end.peer_sae_id,
            cert=end.cert,
            key=end.key,
            ca=end.ca,
            timeout=5.0,
        )

    async def produce(self, nbytes: int) -> tuple[bytes, dict[str, Any]]:
        keys = await self.client.get_keys(nbytes * 8 // VENDOR_KEY_BITS, VENDOR_KEY_BITS)
        data = b"".join(k.key for k in keys)
        return data, {"key_IDs": [k.key_id for k in keys]}

    async def obtain(self, descriptor: dict[str, Any], nbytes: int) -> bytes:
        ids = descriptor.get("key_IDs")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise RequestRejected(400, "a vendor link-key block needs key_IDs")
        try:
            keys = await self.client.get_keys_by_id(ids)
        except Exception as exc:  # the vendor KME refused or is gone: we do not hold it
            raise RequestRejected(409, f"the vendor KME cannot give these keys: {exc}") from exc
        data = b"".join(k.key for k in keys)
        if len(data) != nbytes:
            raise RequestRejected(409, "the vendor KME's keys do not fill the block")
        return data

    async def aclose(self) -> None:
        await self.client.aclose()


Device = SimulatedDevice | VendorDevice


@dataclass
class _Pending:
    start: int
    size: int  # bytes per direction
    data: bytes  # lower end's direction first, then the other's
    descriptor: dict[str, Any]


class _MarkAhead:
    """A mark (send or receive) that the store is told ahead of use: ``value``, the highest
    mark written or being written, and ``task``, its latest write."""

    def __init__(self, link_id: str, kind: str) -> None:
        self.link_id = link_id
        self.kind = kind
        self.value = 0
        self.task: asyncio.Future[Any] | None = None

    async def durable(self) -> None:
        """Wait until the latest mark is stored (503 if that write failed)."""
        task = self.task
        if task is None:
            return
        try:
            await task
        except Exception as exc:
            if self.task is task:
                self.task = None
                self.value = 0  # the next frame writes a fresh mark
            raise RequestRejected(
                503, f"link {self.link_id}: the {self.kind} mark was not stored"
            ) from exc


class LinkEnd:
    """This node's end of one link: both directions of its key, and its live state."""

    def __init__(
        self,
        link: Link,
        me: str,
        rate_bps: float,
        device: Device,
        threshold: float,
        *,
        decoy_fraction: float = 0.5,
    ) -> None:
        self.link = link
        self.id = link.id
        self.peer = link.b if link.a == me else link.a
        self.me = me
        self.lower = me < self.peer
        self.rate_bps = rate_bps
        self.device = device
        self.threshold = threshold
        self.out = LinkKeyStream(link.id, f"{me}>{self.peer}", sending=True)
        self.inbound = LinkKeyStream(link.id, f"{self.peer}>{me}", sending=False)
        self.nominal_qber = nominal_qber(link)
        self.decoy = decoy_model(link)
        self.decoy_fraction = decoy_fraction
        self.attack: str | None = None
        self.cut = False
        self.last_heard = 0.0
        self.feed_next = 0
        self.pending: list[_Pending] = []
        self.reported_usable: bool | None = None
        self.reported_alarm = False
        # The sender's mark: every byte below it may have been used. The store is told ahead
        # (RESERVE_BYTES at a time), so most relays need no write of their own for it; a
        # frame leaves only once the latest mark's write is durable.
        self.send_mark = _MarkAhead(link.id, "send")
        # The receive mark, likewise: frames below it may be acted on at once.
        self.recv_mark = _MarkAhead(link.id, "receive")

    @property
    def eve(self) -> bool:
        return self.attack is not None

    @eve.setter
    def eve(self, value: bool) -> None:
        self.attack = "intercept-resend" if value else None

    @property
    def qber(self) -> float:
        return self.nominal_qber + (EVE_QBER if self.attack == "intercept-resend" else 0.0)

    @property
    def decoy_now(self) -> DecoyStatistics | None:
        """The decoy statistics the link shows now (``None`` without decoy physics)."""
        return None if self.decoy is None else self.decoy[self.attack]

    @property
    def decoy_alarm(self) -> bool:
        """The decoy bounds certify less than ``decoy_fraction`` of the honest link's secret
        key rate (a link whose honest bound is already 0 is never in decoy alarm)."""
        now = self.decoy_now
        if now is None or self.decoy is None:
            return False
        return now.key_rate_bound < self.decoy_fraction * self.decoy[None].key_rate_bound

    @property
    def alarm_reason(self) -> str | None:
        if self.qber > self.threshold:
            return "qber"
        return "decoy" if self.decoy_alarm else None

    @property
    def alarm(self) -> bool:
        return self.alarm_reason is not None

    def alarm_text(self) -> str:
        """What tripped the alarm, for the audit trail and 503 messages."""
        now = self.decoy_now
        if self.alarm_reason == "decoy" and now is not None and self.decoy is not None:
            return (
                f"decoy bounds: Y1_L {now.y1_lower:.3g}, secret key rate bound "
                f"{now.key_rate_bound:.3g} bit/pulse below {self.decoy_fraction:g} of the "
                f"expected {self.decoy[None].key_rate_bound:.3g} (QBER {self.qber:.3f})"
            )
        return f"QBER {self.qber:.3f} above {self.threshold}"

    @property
    def up(self) -> bool:
        return not self.cut and time.monotonic() - self.last_heard < LINK_TIMEOUT_S

    @property
    def usable(self) -> bool:
        return self.up and not self.alarm

    def status(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "up": self.up,
            "cut": self.cut,
            "alarm": self.alarm,
            "alarm_reason": self.alarm_reason,
            "attack": self.attack,
            "qber": round(self.qber, 5),
            # Decoy-state figures of fibre links (null where the link has no decoy physics).
            "y1_lower": None if (d := self.decoy_now) is None else d.y1_lower,
            "decoy_key_rate_bound": None if d is None else d.key_rate_bound,
            "usable": self.usable,
            "source": self.device.kind,
            "rate_bps": self.rate_bps,
            "send_available_bytes": self.out.available_bytes,
            "receive_available_bytes": self.inbound.available_bytes,
            # Bytes below this were maybe used before a restart: the sender skips them.
            "receive_floor": self.inbound.floor_bytes,
        }

    def split(self, data: bytes, size: int) -> tuple[bytes, bytes]:
        """(lower end's sending half, higher end's sending half) of a block."""
        return data[:size], data[size : 2 * size]

    def add(self, start: int, size: int, data: bytes, *, ready: bool = True) -> None:
        low, high = self.split(data, size)
        mine, theirs = (low, high) if self.lower else (high, low)
        if ready:
            self.out.add_block(start, mine)
        self.inbound.add_block(start, theirs)


def _store_block(end: LinkEnd, start: int, size: int, data: bytes, tx: StoreTx) -> None:
    """Write both directions of a block the other end sent (ready at once)."""
    low, high = end.split(data, size)
    a, b = sorted((end.me, end.peer))
    tx.add_block(link=end.id, direction=f"{a}>{b}", start=start, data=low, ready=True)
    tx.add_block(link=end.id, direction=f"{b}>{a}", start=start, data=high, ready=True)


def _reserve(end: LinkEnd) -> int | None:
    """The send mark to store before the frames just sealed on ``end`` may leave, or None
    if the stored mark already covers them. A crash skips the reserved, unused bytes: they
    are never handed out again."""
    if end.out.next <= end.send_mark.value:
        return None
    end.send_mark.value = end.out.next + RESERVE_BYTES
    return end.send_mark.value


def _skip_to_floor(end: LinkEnd | None, details: Any) -> None:
    """The next node refused link key below its receive floor (it restarted): skip there."""
    if end is None or not isinstance(details, list):
        return
    for detail in details:
        floor = detail.get("receive_floor") if isinstance(detail, dict) else None
        if isinstance(floor, int) and not isinstance(floor, bool) and floor > end.out.next:
            end.out.next = floor


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background write's failure as seen (the marks' waiters report it)."""
    if not task.cancelled() and task.exception() is not None:
        _log.warning("a background store write failed: %r", task.exception())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestRejected(400, "the request body is not valid JSON") from exc


class _Outbox:
    """Relay entries for one next node: while a message to it is in flight, new entries
    wait, and the next message carries them all (as group commit does for the store).
    Waiting entries of one route (SAE IDs, path, hop and link) travel as one entry: the
    next node verifies, stores and forwards their frames together, and all of them succeed
    or fail together."""

    def __init__(self, node: NetworkKme, peer: str) -> None:
        self.node = node
        self.peer = peer
        self.pending: list[tuple[dict[str, Any], int, asyncio.Future[dict[str, Any]]]] = []
        self.task: asyncio.Task[None] | None = None

    async def send(self, entry: dict[str, Any], *, size: int) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.pending.append((entry, size, future))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self.pending:
            batch: list[tuple[dict[str, Any], int, asyncio.Future[dict[str, Any]]]] = []
            total = 0
            while (
                self.pending
                and len(batch) < MAX_RELAY_ENTRIES
                and (not batch or total + self.pending[0][1] <= MAX_RELAY_BODY)
            ):
                item = self.pending.pop(0)
                batch.append(item)
                total += item[1]
            entries, owners = _merge_routes([entry for entry, _, _ in batch])
            try:
                status, answer = await self.node._call(
                    self.peer,
                    "POST",
                    KMAPI_PREFIX + "ext_keys",
                    {"relays": entries},
                    timeout=RELAY_TIMEOUT_S,
                )
                results = answer.get("results")
                if status != 200 or not isinstance(results, list) or len(results) != len(entries):
                    raise RelayFailed(f"{self.peer} answered {status}: {answer.get('message')}")
                for (_, _, future), at in zip(batch, owners, strict=True):
                    if not future.done():
                        result = results[at]
                        future.set_result(result if isinstance(result, dict) else {})
            except Exception as exc:
                error = (
                    exc
                    if isinstance(exc, RelayFailed)
                    else RelayFailed(f"{self.peer} unreachable ({type(exc).__name__})")
                )
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)


def _merge_routes(entries: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """Entries of one route joined into one (frames in order); and, for each entry given,
    the index of the entry that carries its frames."""
    merged: list[dict[str, Any]] = []
    at: dict[tuple[Any, ...], int] = {}
    owners: list[int] = []
    for entry in entries:
        route = (
            entry["initiator_sae_id"],
            tuple(entry["target_sae_ids"]),
            tuple(entry["relay_path"]),
            entry["hop"],
            entry["link"],
        )
        index = at.get(route)
        if index is None:
            index = at[route] = len(merged)
            merged.append({**entry, "frames": list(entry["frames"])})
        else:
            merged[index]["frames"].extend(entry["frames"])
        owners.append(index)
    return merged, owners


# ------------------------------------------------------------------------ the ETSI 014 side


class _Etsi014Front(Kme):
    """The pair's ETSI 014 request handling (:class:`Kme`) over a network node's keys.

    The pair's constructor wires two KMEs of one process to each other, so it is not called:
    the attributes the request dispatch reads (``kme_id``, the routes from (calling SAE,
    named SAE) to a route, the local SAEs) are set here. A route's ``name`` is the node of
    the other SAE.
    """

    def __init__(self, node: NetworkKme) -> None:
        self.node = node
        self.kme_id = node.name
        settings = node.settings
        self._routes = {}
        local = [s for n in settings.network.nodes if n.name == node.name for s in n.saes]
        for other_node in settings.network.nodes:
            for other in other_node.saes:
                for sae in local:
                    if other == sae:
                        continue
                    self._routes[(sae, other)] = LinkSettings(
                        name=other_node.name,
                        saes_a=(sae,),
                        saes_b=(other,),
                        key_size=settings.key_size,
                        max_key_count=100_000,
                        max_key_per_request=settings.max_key_per_request,
                        key_max_age_s=settings.key_max_age_s,
                        max_key_size=8 * 1024,
                    )
        self._local_saes = set(local)

    def _target_kme_id(self, link: LinkSettings) -> str:
        return link.name  # the far node (a route's "link" is named after it)

    def _keys_available(self, link: LinkSettings) -> int:
        return self.node.keys_available(link.name, link.key_size)

    async def _enc_keys(
        self, master: str, slave: str, link: LinkSettings, request: KeyRequest
    ) -> dict[str, Any]:
        size = check_key_request(link, request)
        keys, path = await self.node.relay(master, slave, link.name, request.number, size)
        return _container([(k, v, path) for k, v in keys])

    async def _dec_keys(
        self, slave: str, master: str, link: LinkSettings, key_ids: Sequence[str]
    ) -> dict[str, Any]:
        if len(key_ids) > link.max_key_per_request:
            raise RequestRejected(
                400,
                f"at most max_key_per_request={link.max_key_per_request} key_IDs per request",
                [{"count": len(key_ids)}],
            )
        return _container(await self.node.take_relayed(slave, master, key_ids))


def _container(keys: Sequence[tuple[str, bytes, Sequence[str]]]) -> dict[str, Any]:
    """An ETSI 014 key container; each key's ``key_extension.relay_path`` names its path."""
    document = encode_key_container([(k, v) for k, v, _ in keys])
    for entry, (_, _, path) in zip(document["keys"], keys, strict=True):
        entry["key_extension"] = {"relay_path": list(path)}
    return document


# ------------------------------------------------------------------------ the node


class NetworkKme:
    """One node: its store, link ends, routing view and both HTTPS listeners."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.name = settings.node
        self.network = settings.network
        self.kinds = {n.name: n.kind for n in self.network.nodes}
        self.sae_node: dict[str, str] = {}
        for n in self.network.nodes:
            for sae in n.saes:
                self.sae_node.setdefault(sae, n.name)
        # Replicas (a postgresql:// store) keep their PostgreSQL logic in qkd.network.replicas,
        # imported only then: psycopg is an extra.
        self.replicas: NodeReplicas | None = None
        store: NodeStoreBackend
        if settings.store_url is None:
            store = NodeStore(settings.store)
        else:
            from qkd.network.replicas import NodeReplicas

            self.replicas = NodeReplicas.open(settings)
            store = self.replicas.store
        self.committer = NodeCommitter(store)
        rates = {r.id: r.key_rate_bps for r in link_rates(self.network)}
        self.links: dict[str, LinkEnd] = {}
        for link in self.network.links:
            if self.name not in (link.a, link.b):
                continue
            vendor = settings.vendor.get(link.id)
            device: Device = VendorDevice(vendor) if vendor else SimulatedDevice()
            self.links[link.id] = LinkEnd(
                link,
                self.name,
                rates[link.id],
                device,
                settings.qber_threshold,
                decoy_fraction=settings.decoy_rate_fraction,
            )
        if self.replicas is not None:
            self.replicas.adopt(self.links.values())
        self._load()
        if self.replicas is not None:
            self.replicas.after_load(self.links.values())
        self.front = _Etsi014Front(self)
        self.view: dict[str, dict[str, Any] | None] = {}
        self.refreshed = 0.0
        self.routes: dict[str, list[str]] = {}
        self.starving: set[str] = set()
        self.addresses: dict[str, tuple[str, int]] = {}
        self._servers: list[HttpsServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.http: KmapiClient | None = None
        self._outboxes: dict[str, _Outbox] = {}
        self.relayed_keys = 0
        self.metrics = NodeMetrics(self) if metrics_available() else None

    def _load(self) -> None:
        store = self.committer.store
        marks = store.send_marks()
        feeds = store.feed_marks()
        received = store.recv_marks()
        # Both directions of a block are two rows; the lower end's direction (first) carries
        # the descriptor used to re-send a pending block.
        grouped: dict[tuple[str, int], dict[str, tuple[bytes, bool, str]]] = {}
        for link, direction, start, data, ready, meta in store.blocks():
            grouped.setdefault((link, start), {})[direction] = (data, ready, meta)
        for (link, start), rows in grouped.items():
            end = self.links.get(link)
            if end is None:
                continue
            a, b = sorted((end.me, end.peer))
            if f"{a}>{b}" not in rows or f"{b}>{a}" not in rows:
                # One direction was trimmed (used up): the other is still live, and ready.
                for direction, (data, ready, _) in rows.items():
                    if ready and direction == end.out.direction:
                        end.out.add_block(start, data)
                    elif ready and direction == end.inbound.direction:
                        end.inbound.add_block(start, data)
                continue
            low, ready, meta = rows[f"{a}>{b}"]
            high = rows[f"{b}>{a}"][0]
            end.add(start, len(low), low + high, ready=ready)
            if not ready:
                descriptor = json.loads(meta or "{}")
                end.pending.append(_Pending(start, len(low), low + high, descriptor))
        for end in self.links.values():
            end.out.next = end.send_mark.value = marks.get((end.id, end.out.direction), 0)
            end.recv_mark.value = received.get((end.id, end.inbound.direction), 0)
            end.inbound.set_floor(end.recv_mark.value)
            end.feed_next = feeds.get(end.id, 0)

    # -------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        s = self.settings
        context = server_ssl_context(s.cert, s.key, s.ca)
        etsi = await start_server(
            self.front.handle, host=s.etsi014[0], port=s.etsi014[1], ssl_context=context
        )
        kmapi_host, kmapi_port = s.kmapi[self.name]
        inter = await start_server(
            self.handle_kmapi, host=kmapi_host, port=kmapi_port, ssl_context=context
        )
        self._servers = [etsi, inter]
        self.addresses = {"etsi014": etsi.address, "kmapi": inter.address}
        self.http = KmapiClient(
            client_ssl_context(s.cert, s.key, s.ca), s.kmapi_replicas or s.kmapi
        )
        if self.replicas is None:
            for end in self.links.values():
                if end.lower:
                    self._spawn(self._feed(end), f"feed:{end.id}")
            self._spawn(self._expire(), "expiry")
        else:
            # The feeders and the expiry sweep run at the replicas' leader only.
            self._spawn(self.replicas.run(self._leader_work), "replicas")
        self._spawn(self._watch(), "routing")
        self._spawn(self._trim(), "trim")
        audit.emit("node_started", node=self.name)

    async def _leader_work(self) -> list[Coroutine[Any, Any, None]]:
        """What the replicas' leader runs, once it has taken over the feed state."""
        assert self.replicas is not None
        await self.replicas.take_over(self.links.values(), _Pending)
        feeds = [self._feed(end) for end in self.links.values() if end.lower]
        return [*feeds, self._expire()]

    def _spawn(self, coroutine: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coroutine, name=name))

    async def stop(self) -> None:
        for server in self._servers:
            await server.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.http is not None:
            await self.http.aclose()
        for end in self.links.values():
            await end.device.aclose()
        await self.committer.aclose()

    # -------------------------------------------------------------- inter-KME client

    async def _call(
        self, node: str, method: str, path: str, document: Any = None, timeout: float = 5.0
    ) -> tuple[int, dict[str, Any]]:
        """One inter-KME request to ``node``; the answer counts only if the server's
        certificate names that node as a KME of this network."""
        assert self.http is not None
        try:
            return await self.http.request(node, method, path, document, timeout=timeout)
        except KmapiError as exc:
            raise RelayFailed(str(exc)) from exc

    # -------------------------------------------------------------- link key feeding

    async def _feed(self, end: LinkEnd) -> None:
        """The lower end's loop: keep both directions filled at the link's rate."""
        budget = 0.0
        last = time.monotonic()
        last_beat = 0.0
        block_cap = 2 * MAX_BLOCK
        while True:
            await asyncio.sleep(FEED_PERIOD_S)
            now = time.monotonic()
            budget = min(float(block_cap), budget + end.rate_bps / 8 * (now - last))
            last = now
            if end.cut:
                continue
            try:
                if end.pending:
                    await self._send_block(end, end.pending[0])
                    continue
                want = self.settings.pool_bytes - min(
                    end.out.available_bytes, end.inbound.available_bytes
                )
                size = min(MAX_BLOCK, int(budget // 2) // 32 * 32, -(-want // 32) * 32)
                if isinstance(end.device, VendorDevice):
                    size = min(size, 2048)
                    enough = size >= 2048
                else:
                    enough = size >= MIN_BLOCK
                if not end.alarm and want > 0 and enough:
                    budget -= 2 * size
                    await self._new_block(end, size)
                elif now - last_beat >= HEARTBEAT_S:
                    last_beat = now
                    await self._link_message(end, [])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.debug("link %s: feeding failed: %s", end.id, exc)
                await asyncio.sleep(0.2)

    async def _new_block(self, end: LinkEnd, size: int) -> None:
        data, descriptor = await end.device.produce(2 * size)
        start = end.feed_next
        end.feed_next = start + size
        pending = _Pending(start, size, data, descriptor)
        low, high = end.split(data, size)
        a, b = min(end.me, end.peer), max(end.me, end.peer)
        meta = json.dumps({k: v for k, v in descriptor.items() if k != "data"})

        def write(tx: StoreTx) -> None:
            tx.add_block(
                link=end.id, direction=f"{a}>{b}", start=start, data=low, ready=False, meta=meta
            )
            tx.add_block(link=end.id, direction=f"{b}>{a}", start=start, data=high, ready=False)
            tx.set_feed_mark(link=end.id, next_start=start + size)

        await self.committer.run(write)
        end.inbound.add_block(start, high)
        end.pending.append(pending)
        await self._send_block(end, pending)

    async def _send_block(self, end: LinkEnd, block: _Pending) -> None:
        descriptor = dict(block.descriptor)
        if isinstance(end.device, SimulatedDevice):
            descriptor["data"] = _b64(block.data)
        status, answer = await self._link_message(
            end, [{"start": block.start, "size": block.size, **descriptor}]
        )
        if status == 200:
            await self.committer.run(lambda tx: tx.mark_ready(link=end.id, start=block.start))
            end.add(block.start, block.size, block.data)
            end.pending.remove(block)
        elif status == 409:
            # The other end says it does not hold the block (a vendor key it could no
            # longer fetch): drop it; its offsets are never assigned again.
            await self.committer.run(lambda tx: tx.drop_pending(link=end.id, start=block.start))
            end.pending.remove(block)
        else:
            raise RelayFailed(f"link {end.id}: {status} {answer.get('message')}")

    async def _link_message(
        self, end: LinkEnd, blocks: list[dict[str, Any]]
    ) -> tuple[int, dict[str, Any]]:
        status, answer = await self._call(
            end.peer,
            "POST",
            KMAPI_PREFIX + "link_key",
            {"link": end.id, "qber": end.qber, "attack": end.attack, "blocks": blocks},
        )
        if status in (200, 409):
            end.last_heard = time.monotonic()
        return status, answer

    async def _receive_link_key(self, sender: str, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict) or not isinstance(doc.get("link"), str):
            raise RequestRejected(400, "link_key needs link and blocks")
        end = self.links.get(doc["link"])
        if end is None or end.peer != sender or end.lower:
            raise RequestRejected(403, "only the lower-named end of a link sends its key")
        if end.cut:
            raise RequestRejected(503, f"link {end.id} is cut here")
        qber = doc.get("qber")
        # The simulated device runs at the lower end: its attack (or QBER) is the link's.
        if "attack" in doc:
            attack = doc["attack"]
            if attack is not None and attack not in ATTACKS:
                raise RequestRejected(400, f"attack must be null or one of {list(ATTACKS)}")
            if attack != "pns" or end.decoy is not None:
                end.attack = attack
        elif isinstance(qber, int | float) and not isinstance(qber, bool):
            end.eve = qber - end.nominal_qber >= EVE_QBER / 2
        blocks = doc.get("blocks")
        if not isinstance(blocks, list):
            raise RequestRejected(400, "blocks must be a list")
        for block in blocks:
            if not isinstance(block, dict):
                raise RequestRejected(400, "each block must be an object")
            start, size = block.get("start"), block.get("size")
            if (
                not isinstance(start, int)
                or not isinstance(size, int)
                or isinstance(start, bool)
                or start < 0
                or start % 32
                or not 32 <= size <= MAX_BLOCK
                or size % 32
            ):
                raise RequestRejected(400, "block start and size must be multiples of 32")
            if end.inbound.has_block(start) is not None:
                continue  # a re-sent block this end already stored
            data = await end.device.obtain(block, 2 * size)
            await self.committer.run(functools.partial(_store_block, end, start, size, data))
            end.add(start, size, data)
        end.last_heard = time.monotonic()
        return {"link": end.id, "stored": len(blocks)}

    # -------------------------------------------------------------- routing

    def local_status(self) -> dict[str, Any]:
        status = {
            "node": self.name,
            "links": {end.id: end.status() for end in self.links.values()},
            "relayed_keys": self.relayed_keys,
        }
        if self.replicas is not None:
            status["replica"] = self.replicas.status()
        return status

    async def _watch(self) -> None:
        period = self.settings.routing_period_s
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("node %s: refreshing the network view failed", self.name)
            await asyncio.sleep(period)

    async def refresh(self) -> None:
        """Ask every node for its state, then audit link changes and reroutes."""
        others = [n for n in self.kinds if n != self.name]
        timeout = max(0.2, self.settings.routing_period_s * 0.8)

        async def ask(node: str) -> dict[str, Any] | None:
            try:
                status, doc = await self._call(
                    node, "GET", KMAPI_PREFIX + "status", timeout=timeout
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: no fresh state from that node
                _log.debug("node %s: no status from %s: %r", self.name, node, exc)
                return None
            return doc if status == 200 else None

        answers = await asyncio.gather(*(ask(n) for n in others))
        view: dict[str, dict[str, Any] | None] = dict(zip(others, answers, strict=True))
        view[self.name] = self.local_status()
        self.view = view
        for end in self.links.values():
            peer = view.get(end.peer)
            state = peer.get("links", {}).get(end.id) if isinstance(peer, dict) else None
            if isinstance(state, dict):
                _skip_to_floor(end, [{"receive_floor": state.get("receive_floor")}])
        self.refreshed = time.monotonic()
        for end in self.links.values():
            usable, alarm = end.usable, end.alarm
            if alarm != end.reported_alarm:
                if alarm:
                    if self.metrics is not None:
                        self.metrics.alarm_raised(end.id)
                    decoy = end.decoy_now
                    audit.emit(
                        "link_alarm",
                        node=self.name,
                        link=end.id,
                        qber=end.qber,
                        cause=end.alarm_reason,
                        y1_lower=None if decoy is None else decoy.y1_lower,
                        reason=end.alarm_text(),
                    )
                elif end.reported_usable is not None:
                    audit.emit("link_alarm_cleared", node=self.name, link=end.id, qber=end.qber)
            elif end.reported_usable is not None and usable != end.reported_usable and not alarm:
                if usable:
                    audit.emit("link_up", node=self.name, link=end.id)
                else:
                    audit.emit(
                        "link_down",
                        node=self.name,
                        link=end.id,
                        reason="cut" if end.cut else "peer unreachable",
                    )
            end.reported_alarm = alarm
            end.reported_usable = usable
        for dst in list(self.routes):
            self._route(dst, 0)

    def _caps(self) -> tuple[dict[tuple[str, str], float], list[str]]:
        """Link capacities for routing (bytes of link key both ends can send), over the
        other nodes' last reported state and this node's state now; and what is unusable."""
        view = dict(self.view)
        view[self.name] = self.local_status()
        caps: dict[tuple[str, str], float] = {}
        problems: list[str] = []
        for link in self.network.links:
            ends = [view.get(link.a), view.get(link.b)]
            states = [doc["links"].get(link.id) if isinstance(doc, dict) else None for doc in ends]
            if states[0] is None or states[1] is None:
                problems.append(f"{link.id} unreachable")
                continue
            if states[0]["alarm"] or states[1]["alarm"]:
                qber = max(states[0]["qber"], states[1]["qber"])
                if "decoy" in (states[0].get("alarm_reason"), states[1].get("alarm_reason")):
                    problems.append(f"{link.id} in alarm (decoy bounds; QBER {qber:.3f})")
                else:
                    problems.append(f"{link.id} in alarm (QBER {qber:.3f})")
                continue
            if not (states[0]["up"] and states[1]["up"]):
                problems.append(f"{link.id} down")
                continue
            cap = min(states[0]["send_available_bytes"], states[1]["send_available_bytes"])
            if cap <= 0:
                problems.append(f"{link.id} has no key")
                continue
            edge = (link.a, link.b) if link.a <= link.b else (link.b, link.a)
            caps[edge] = max(caps.get(edge, 0.0), float(cap))
        return caps, problems

    def _widest(self, dst: str) -> tuple[list[str], float, list[str]]:
        """The planner's widest (then shortest) path to ``dst`` over usable links, its width
        in bytes of link key ([] and 0 if none), and what is unusable."""
        caps, problems = self._caps()
        allowed = {n for n, kind in self.kinds.items() if kind != "endpoint"} | {self.name, dst}
        path = bottleneck_path(caps, allowed, self.name, dst)
        width = min(
            (caps[(u, v) if u <= v else (v, u)] for u, v in itertools.pairwise(path)),
            default=0.0,
        )
        return path, width, problems

    def _route(self, dst: str, need: int) -> list[str]:
        """The path to ``dst`` over usable links; raises RequestRejected 503 naming the cause."""
        if dst == self.name:
            return [self.name]
        path, width, problems = self._widest(dst)
        previous = self.routes.get(dst)
        if not path or width < need:
            cause = "; ".join(problems) or "no link key"
            if not path:
                message = f"no path from {self.name} to {dst}: {cause}"
            else:
                message = (
                    f"not enough link key from {self.name} to {dst} over "
                    f"{'-'.join(path)} ({int(width)} bytes, {need} needed); {cause}"
                )
            if dst not in self.starving:
                self.starving.add(dst)
                audit.emit(
                    "starvation",
                    node=self.name,
                    src=self.name,
                    dst=dst,
                    previous=previous,
                    reason=message,
                )
            raise RequestRejected(503, message)
        self.starving.discard(dst)
        if previous is not None and previous != path:
            audit.emit(
                "reroute",
                node=self.name,
                src=self.name,
                dst=dst,
                path=path,
                previous=previous,
                reason="; ".join(problems) or "pool levels",
            )
        self.routes[dst] = path
        return path

    def keys_available(self, dst: str, key_bits: int) -> int:
        if dst == self.name:
            return 100_000
        _, width, _ = self._widest(dst)
        return int(width // link_key_bytes(key_bits // 8))

    def _link_to(self, peer: str) -> LinkEnd:
        ends = [e for e in self.links.values() if e.peer == peer and e.usable]
        if not ends:
            raise RelayFailed(f"no usable link from {self.name} to {peer}")
        return max(ends, key=lambda e: e.out.available_bytes)

    # -------------------------------------------------------------- relay

    async def relay(
        self, master: str, slave: str, dst: str, number: int, size: int
    ) -> tuple[list[tuple[str, bytes]], list[str]]:
        """Make ``number`` keys of ``size`` bits for ``slave`` at ``dst`` and relay them there.

        Returns the keys and the path once ``dst`` holds them durably; raises 503 otherwise.
        """
        started = time.perf_counter()
        need = number * link_key_bytes(size // 8)
        try:
            path = self._route(dst, need)
        except RequestRejected:
            # The view may be up to a routing period old: look again before refusing.
            if time.monotonic() - self.refreshed < self.settings.routing_period_s / 4:
                raise
            await self.refresh()
            path = self._route(dst, need)
        keys = [(str(uuid.uuid4()), secrets.token_bytes(size // 8)) for _ in range(number)]
        if len(path) == 1:
            records = [RelayedKey(k, master, slave, tuple(path), v) for k, v in keys]
            await self.committer.run(lambda tx: tx.store_keys(records))
            return keys, path
        try:
            end = self._link_to(path[1])
            frames = [
                seal_hop(
                    uuid.UUID(k),
                    v,
                    tuple(path),
                    0,
                    end.out,
                    master_sae_id=master,
                    slave_sae_id=slave,
                )
                for k, v in keys
            ]
        except (LinkKeyError, RelayFailed) as exc:
            raise RequestRejected(
                503, f"cannot relay to {dst} over {'-'.join(path)}: {exc}"
            ) from exc
        except RelayError as exc:  # e.g. an SAE ID longer than a relay message carries
            raise RequestRejected(400, f"cannot relay to {dst}: {exc}") from exc
        mark = _reserve(end)
        if mark is not None:
            end.send_mark.task = asyncio.ensure_future(
                self.committer.run(
                    functools.partial(
                        StoreTx.set_send_mark,
                        link=end.id,
                        direction=end.out.direction,
                        next_byte=mark,
                    )
                )
            )
        await end.send_mark.durable()
        try:
            await self._forward(path, 0, link_id=end.id, master=master, slave=slave, frames=frames)
        except RelayFailed as exc:
            if self.metrics is not None:
                self.metrics.relay_failed()
            audit.emit(
                "relay_failed", node=self.name, src=self.name, dst=dst, path=path, reason=str(exc)
            )
            raise RequestRejected(
                503, f"the relay to {dst} over {'-'.join(path)} failed: {exc}; retry"
            ) from exc
        self.relayed_keys += number
        if self.metrics is not None:
            self.metrics.observe_relay(number, time.perf_counter() - started)
        return keys, path

    async def _forward(
        self,
        path: Sequence[str],
        hop: int,
        *,
        link_id: str,
        master: str,
        slave: str,
        frames: Sequence[bytes],
    ) -> None:
        """Send the frames of hop ``hop`` to ``path[hop + 1]``; return when it acknowledges.

        The frames go as one or more relay entries (each below MAX_RELAY_BODY) through the
        outbox to that node, which puts concurrent entries into one message.
        """
        parts: list[list[str]] = [[]]
        size = 0
        for frame in frames:
            text = _b64(frame)
            if size + len(text) > MAX_RELAY_BODY // 2 and parts[-1]:
                parts.append([])
                size = 0
            parts[-1].append(text)
            size += len(text) + 3
        peer = path[hop + 1]
        outbox = self._outboxes.get(peer)
        if outbox is None:
            outbox = self._outboxes[peer] = _Outbox(self, peer)
        for part in parts:
            entry = {
                "initiator_sae_id": master,
                "target_sae_ids": [slave],
                "relay_path": list(path),
                "hop": hop,
                "link": link_id,
                "frames": part,
            }
            result = await outbox.send(entry, size=sum(len(t) + 3 for t in part) + 200)
            if result.get("status") != "relayed":
                _skip_to_floor(self.links.get(link_id), result.get("details"))
                raise RelayFailed(
                    f"{peer} answered {result.get('code')}: {result.get('message', '')}"
                )

    async def _ext_keys(self, sender: str, doc: Any) -> dict[str, Any]:
        """A relay message from ``sender``: one or more relay entries, each answered."""
        relays = doc.get("relays") if isinstance(doc, dict) else None
        if not isinstance(relays, list) or not 1 <= len(relays) <= MAX_RELAY_ENTRIES:
            raise RequestRejected(
                400, f"ext_keys needs relays: a list of 1 to {MAX_RELAY_ENTRIES} relay entries"
            )

        async def answer(entry: Any) -> dict[str, Any]:
            try:
                return await self._relay_entry(sender, entry)
            except RequestRejected as exc:
                failed = {"status": "failed", "code": exc.status, "message": str(exc)}
                if exc.details:
                    failed["details"] = exc.details
                return failed
            except Exception as exc:  # the store failed: this entry fails, not the others
                _log.warning("node %s: relay entry failed: %r", self.name, exc)
                return {"status": "failed", "code": 503, "message": "internal KME error"}

        return {"results": list(await asyncio.gather(*(answer(e) for e in relays)))}

    async def _relay_entry(self, sender: str, doc: Any) -> dict[str, Any]:
        """One relay hop arriving from ``sender`` (ETSI GS QKD 020 ext_keys, Y.3803 key
        relay): verify, use the link key durably, then store the keys or send them on."""
        if not isinstance(doc, dict):
            raise RequestRejected(400, "a relay entry must be a JSON object")
        master, slaves = doc.get("initiator_sae_id"), doc.get("target_sae_ids")
        path, hop, link_id, frames = (
            doc.get("relay_path"),
            doc.get("hop"),
            doc.get("link"),
            doc.get("frames"),
        )
        if (
            not isinstance(master, str)
            or not isinstance(slaves, list)
            or len(slaves) != 1
            or not isinstance(slaves[0], str)
            or not isinstance(path, list)
            or not all(isinstance(n, str) for n in path)
            or not isinstance(hop, int)
            or isinstance(hop, bool)
            or not isinstance(link_id, str)
            or not isinstance(frames, list)
            or not frames
            or not all(isinstance(f, str) for f in frames)
        ):
            raise RequestRejected(
                400,
                "ext_keys needs initiator_sae_id, target_sae_ids (one), relay_path, hop, link"
                " and frames",
            )
        slave = slaves[0]
        if not 0 <= hop < len(path) - 1 or path[hop] != sender or path[hop + 1] != self.name:
            raise RequestRejected(403, f"hop {hop} of this path is not from {sender} to here")
        end = self.links.get(link_id)
        if end is None or end.peer != sender:
            raise RequestRejected(403, f"link {link_id!r} does not join {sender} to {self.name}")
        if not end.usable:
            raise RequestRejected(503, f"link {link_id} is not usable here (down or in alarm)")
        last = hop + 1 == len(path) - 1
        if last and (self.sae_node.get(slave) != self.name or self.sae_node.get(master) != path[0]):
            raise RequestRejected(
                400, "the slave SAE is not at this node, or the master not at the first"
            )
        staged = StagedLedger(end.inbound)
        opened: list[tuple[uuid.UUID, bytes]] = []
        try:
            for text in frames:
                try:
                    frame = base64.b64decode(text, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise RelayDecodeError("a frame is not base64") from exc
                hop_frame = open_hop(frame, staged)
                if list(hop_frame.path) != path or hop_frame.hop != hop:
                    raise RelayAuthenticationError("a frame's path or hop differs from the message")
                # The SAE IDs the far node stores come from the tagged frame, never from the
                # entry around it (which only TLS protects): the two must agree.
                if hop_frame.master_sae_id != master or hop_frame.slave_sae_id != slave:
                    raise RelayAuthenticationError(
                        "a frame's master or slave SAE ID differs from the message"
                    )
                opened.append((hop_frame.key_id, hop_frame.key))
        except RelayDecodeError as exc:
            raise RequestRejected(400, f"malformed relay frame: {exc}") from exc
        except RelayAuthenticationError as exc:
            raise RequestRejected(401, f"relay frame refused: {exc}") from exc
        except LinkKeyError as exc:
            raise RequestRejected(
                409, f"relay frame refused: {exc}", [{"receive_floor": end.inbound.floor_bytes}]
            ) from exc
        # Verified: use the link key now (in this event-loop step), durably below.
        if end.inbound.any_used(staged.slots):  # a replay racing this one
            raise RequestRejected(409, "relay frame refused: link key already used")
        staged.apply()
        slots = list(staged.slots)
        top = (max(slots) + 1) * SLOT_BYTES
        recv_mark = None
        if top > end.recv_mark.value:
            recv_mark = end.recv_mark.value = top + RESERVE_BYTES
        direction = end.inbound.direction
        if last:
            records = [RelayedKey(str(k), master, slave, tuple(path), v) for k, v in opened]
            if self.replicas is not None:
                # Replicas share no ledger in memory: the slots and the keys commit as one.
                await self.replicas.store_relayed(
                    self.committer, link=end.id, direction=direction, slots=slots, records=records
                )
                return {"status": "relayed", "key_IDs": [str(k) for k, _ in opened]}

            def used(tx: StoreTx) -> None:
                if recv_mark is not None:
                    tx.set_recv_mark(link=end.id, direction=direction, next_byte=recv_mark)
                tx.use_slots(link=end.id, direction=direction, slots=slots)

            # Two operations of one group commit: the link key stays used even if the keys
            # are refused (a key_ID stored already).
            marked = asyncio.ensure_future(self.committer.run(used))
            marked.add_done_callback(_retrieve)
            if recv_mark is not None:
                end.recv_mark.task = marked
            stored = asyncio.ensure_future(
                self.committer.run(functools.partial(StoreTx.store_keys, keys=records))
            )
            await end.recv_mark.durable()
            try:
                await stored
            except RelayError as exc:
                raise RequestRejected(409, str(exc)) from exc
            return {"status": "relayed", "key_IDs": [str(k) for k, _ in opened]}
        try:
            onward = self._link_to(path[hop + 2])
            new_frames = [
                seal_hop(
                    k,
                    v,
                    tuple(path),
                    hop + 1,
                    onward.out,
                    master_sae_id=master,
                    slave_sae_id=slave,
                )
                for k, v in opened
            ]
        except (LinkKeyError, RelayFailed) as exc:
            raise RequestRejected(503, f"cannot relay on from {self.name}: {exc}") from exc
        mark = _reserve(onward)

        def forward(tx: StoreTx) -> None:
            if recv_mark is not None:
                tx.set_recv_mark(link=end.id, direction=direction, next_byte=recv_mark)
            if mark is not None:
                tx.set_send_mark(link=onward.id, direction=onward.out.direction, next_byte=mark)
            tx.use_slots(link=end.id, direction=direction, slots=slots)

        # The marks must be stored before the frames move on; the slots themselves are
        # covered by the receive mark, so their own record need not be waited for.
        task = asyncio.ensure_future(self.committer.run(forward))
        task.add_done_callback(_retrieve)
        if mark is not None:
            onward.send_mark.task = task
        if recv_mark is not None:
            end.recv_mark.task = task
        await onward.send_mark.durable()
        await end.recv_mark.durable()
        if self.replicas is not None:
            await self.replicas.slots_recorded(task)  # the replicas' shared ledger of slots
        try:
            await self._forward(
                path,
                hop + 1,
                link_id=onward.id,
                master=master,
                slave=slave,
                frames=new_frames,
            )
        except RelayFailed as exc:
            raise RequestRejected(503, f"{self.name}: {exc}") from exc
        return {"status": "relayed", "key_IDs": [str(k) for k, _ in opened]}

    async def take_relayed(
        self, slave: str, master: str, key_ids: Sequence[str]
    ) -> list[tuple[str, bytes, tuple[str, ...]]]:
        not_before = time.time() - self.settings.key_max_age_s
        try:
            return await self.committer.run(
                lambda tx: tx.take_keys(
                    key_ids=key_ids, master=master, slave=slave, not_before=not_before
                )
            )
        except KeyUnavailable as exc:
            raise RequestRejected(400, str(exc), [{"key_ID": exc.key_id}]) from exc

    async def _trim(self) -> None:
        """Every TRIM_PERIOD_S, forget the link key that can no longer be used, in memory
        and in the store (:meth:`LinkKeyStream.trim`)."""
        trimmed: dict[tuple[str, str], int] = {}
        while True:
            await asyncio.sleep(TRIM_PERIOD_S)
            for end in list(self.links.values()):
                for stream in (end.out, end.inbound):
                    below = stream.trim(TRIM_WINDOW)
                    if below > trimmed.get((end.id, stream.direction), 0):
                        trimmed[(end.id, stream.direction)] = below
                        operation = functools.partial(
                            StoreTx.trim, link=end.id, direction=stream.direction, below=below
                        )
                        try:
                            await self.committer.run(operation)
                        except Exception as exc:  # the rows stay; the next round retries
                            _log.warning("node %s: trimming %s failed: %r", self.name, end.id, exc)
                            trimmed.pop((end.id, stream.direction), None)

    async def _expire(self) -> None:
        age = self.settings.key_max_age_s
        while True:
            await asyncio.sleep(min(60.0, max(0.05, age / 4)))
            now = time.time()
            await self.committer.run(
                functools.partial(
                    StoreTx.expire, not_before=now - age, tombstones_before=now - 2 * age
                )
            )

    # -------------------------------------------------------------- the inter-KME API

    async def handle_kmapi(self, request: Request) -> tuple[int, dict[str, Any] | TextBody]:
        if urlsplit(request.target).path == KMAPI_PREFIX + "metrics":
            return self._metrics(request)
        try:
            return 200, await self._kmapi(request)
        except RequestRejected as exc:
            return exc.status, exc.body()

    def _metrics(self, request: Request) -> tuple[int, dict[str, Any] | TextBody]:
        """Prometheus exposition, for the operator's and the network's KME certificates."""
        if not (
            request.peer_unit == "operator"
            or (request.peer_unit == "KME" and request.sae_id in self.kinds)
        ):
            return 403, {"message": "metrics are open to the operator and the network's KMEs"}
        if request.method != "GET":
            return 405, {"message": "metrics accepts GET"}
        if self.metrics is None:
            return 503, {
                "message": "metrics need prometheus-client: pip install 'qkd-agile[metrics]'"
            }
        content_type, body = self.metrics.render()
        return 200, TextBody(content_type, body)

    async def _set_later(self, end: LinkEnd, flag: str, value: Any, delay: float) -> None:
        await asyncio.sleep(delay)
        setattr(end, flag, value)
        await self.refresh()

    async def _kmapi(self, request: Request) -> dict[str, Any]:
        who, unit = request.sae_id, request.peer_unit
        is_kme = unit == "KME" and who in self.kinds
        is_operator = unit == "operator"
        if not (is_kme or is_operator):
            raise RequestRejected(403, "the inter-KME API is open only to the KMEs of this network")
        path = urlsplit(request.target).path
        if not path.startswith(KMAPI_PREFIX):
            raise RequestRejected(404, "not found: the inter-KME API is under /kmapi/v1/")
        endpoint = path[len(KMAPI_PREFIX) :]
        if endpoint == "status" and request.method == "GET":
            return self.local_status()
        if request.method != "POST":
            raise RequestRejected(405, f"{endpoint} does not accept {request.method}")
        doc = _json(request.body)
        assert who is not None
        if endpoint == "ext_keys" and is_kme:
            return await self._ext_keys(who, doc)
        if endpoint == "link_key" and is_kme:
            return await self._receive_link_key(who, doc)
        parts = endpoint.split("/")
        if len(parts) == 3 and parts[0] == "links" and is_operator:
            end = self.links.get(unquote(parts[1]))
            if end is None:
                raise RequestRejected(404, f"no link {parts[1]!r} at {self.name}")
            if parts[2] in ("eve", "cut") and isinstance(doc, dict):
                value = doc.get(parts[2])
                if not isinstance(value, bool):
                    raise RequestRejected(400, f'{parts[2]} takes {{"{parts[2]}": true|false}}')
                delay = doc.get("in_s", 0)
                if (
                    isinstance(delay, bool)
                    or not isinstance(delay, int | float)
                    or not (0 <= delay <= 86_400)
                ):
                    raise RequestRejected(400, "in_s must be a number of seconds, 0 to 86400")
                flag = parts[2]
                setting_any: Any = value
                if flag == "eve":
                    attack = doc.get("attack", "intercept-resend")
                    if attack not in ATTACKS:
                        raise RequestRejected(400, f"attack must be one of {list(ATTACKS)}")
                    if value and attack == "pns" and end.decoy is None:
                        raise RequestRejected(
                            400,
                            f"link {end.id} is of kind {end.link.kind}: it has no decoy-state "
                            "physics, so a PNS attack can be neither simulated nor detected "
                            "on it; use intercept-resend",
                        )
                    flag, setting_any = "attack", attack if value else None
                if delay:
                    # Eve (or a cut) at a set time: the change happens then, as on command.
                    self._spawn(self._set_later(end, flag, setting_any, delay), "scheduled")
                    return {"link": end.id, "scheduled_in_s": delay, **end.status()}
                setattr(end, flag, setting_any)
                await self.refresh()
                return {"link": end.id, **end.status()}
        raise RequestRejected(404, f"not found: {endpoint} (or not for this caller)")


async def serve_node(
    settings: NodeSettings,
    *,
    on_ready: Callable[[dict[str, tuple[str, int]]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run one node until SIGINT/SIGTERM (or ``stop`` is set)."""
    await serve_until_stopped(NetworkKme(settings), on_ready=on_ready, stop=stop)
