"""A local pair of KMEs, A and B, serving ETSI GS QKD 014 over mutual TLS.

Theory of operation
-------------------
Both KMEs run in one process; each has its own durable :class:`qkd.delivery.store.KeyStore`. For
each configured link, a feeder task pulls matched key material from the link's supplier (the OS
CSPRNG for an ideal link, or the QKD simulator) and writes it to both stores in blocks (the
pending/ready protocol of :mod:`qkd.delivery.store`), keeping up to ``max_key_count`` ready keys
per direction and, when ``rate_bps`` is set, no more key bits per second than that.

- ``status`` and ``enc_keys`` go to the master's KME with the slave's SAE ID in the path. The
  master's KME hands out keys of its own direction and records master and slave.
- ``dec_keys`` goes to the slave's KME with the master's SAE ID in the path. It releases its
  copy only if the master's KME recorded that very master handing the key to this slave:
  the in-process stand-in for the key-synchronisation channel between real KMEs.

With a PostgreSQL store (``store = "postgresql://..."`` for both KMEs), several processes may
run the same configuration as *replicas*: each serves both KMEs' ETSI 014 interfaces over
the shared pools, whose row locks keep every key delivered once
(:mod:`qkd.delivery.store_postgres`).
The feeders, the recovery of half-written blocks and the expiry sweep then run in one
replica at a time, the *leader*: the one holding a PostgreSQL advisory lock named after the
pair. The lock belongs to the leader's database session, so when the leader dies its lock
is freed, and the next replica to poll for it (every ``LEADER_POLL_S`` seconds) finishes or
drops the blocks the old leader left half-written, then feeds.

The caller's SAE ID is the commonName of its verified TLS client certificate; an SAE talks
only to the KME it is attached to and gets only keys of links it is registered on.
Each key object in a Key container carries the link's relay path (master's KME, slave's
KME) in ``key_extension.relay_path``. Requests are checked as ETSI GS QKD 014 v1.1.1 says:
400 for malformed requests and key IDs that are unknown, already delivered or someone
else's; 401 for an unknown SAE; 503 when the pool cannot serve.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import secrets
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from qkd.delivery.etsi014.models import (
    API_PREFIX,
    KeyRequest,
    RequestRejected,
    encode_key_container,
    error_body,
    parse_key_ids,
    parse_key_request,
)
from qkd.delivery.etsi014.server import HttpsServer, Request, server_ssl_context, start_server
from qkd.delivery.keysource import KeyMaterialSupplier, KeyStatus
from qkd.delivery.kme.config import KmeSettings, LinkSettings, PairConfig
from qkd.delivery.kme.link import make_supplier
from qkd.delivery.store import (
    Delivery,
    GroupCommitter,
    KeyPool,
    PoolExhausted,
    Transaction,
    UnitUnavailable,
    open_store,
)

__all__ = [
    "Kme",
    "KmePair",
    "check_key_request",
    "recover_blocks",
    "serve_pair",
    "serve_until_stopped",
]

_log = logging.getLogger(__name__)

# Tombstones (delivered units, delivery records) outlive the keys they describe by this
# factor of key_max_age_s, so that a late second request is still told "already delivered".
_TOMBSTONE_FACTOR = 2.0

# Replicas: how often a follower tries for the feeder lock, and the leader checks it has it.
LEADER_POLL_S = 0.5
LEADER_CHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class _Route:
    link: LinkSettings
    peer_sae: str


def check_key_request(link: LinkSettings, request: KeyRequest) -> int:
    """Check an enc_keys request against the link's limits; returns the key size in bits.

    Raises :class:`RequestRejected` (400) as ETSI GS QKD 014 says. Shared by the pair and
    the KMEs of a network (:mod:`qkd.network.node`).
    """
    if request.extension_mandatory:
        names = sorted({name for ext in request.extension_mandatory for name in ext})
        raise RequestRejected(
            400,
            "unsupported extension_mandatory parameter",
            [{"extension_mandatory_unsupported": names}],
        )
    if request.additional_slave_sae_ids:
        raise RequestRejected(
            400,
            "additional_slave_SAE_IDs is not supported (max_SAE_ID_count is 0)",
            [{"additional_slave_SAE_IDs": list(request.additional_slave_sae_ids)}],
        )
    if not 1 <= request.number <= link.max_key_per_request:
        raise RequestRejected(
            400,
            f"number must be between 1 and max_key_per_request={link.max_key_per_request}",
            [{"number": request.number}],
        )
    size = link.key_size if request.size is None else request.size
    if size % 8 or not link.min_key_size <= size <= link.max_key_size:
        raise RequestRejected(
            400,
            f"size must be a multiple of 8 between min_key_size={link.min_key_size}"
            f" and max_key_size={link.max_key_size}",
            [{"size": size}],
        )
    return size


class Kme:
    """One KME: the ETSI 014 request handler over its key store."""

    def __init__(
        self, settings: KmeSettings, end: str, config: PairConfig, committer: GroupCommitter
    ) -> None:
        self.settings = settings
        self.kme_id = settings.kme_id
        self.end = end
        self.committer = committer
        self.store = committer.store
        self.peer: Kme | None = None
        self._routes: dict[tuple[str, str], LinkSettings] = {}
        for link in config.links:
            local, remote = (link.saes_a, link.saes_b) if end == "a" else (link.saes_b, link.saes_a)
            for sae in local:
                for other in remote:
                    self._routes[(sae, other)] = link
        self._local_saes = {local for local, _ in self._routes}

    # ------------------------------------------------------------------ request handling

    async def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        """Answer one HTTP request: (status, JSON object)."""
        try:
            return await self._dispatch(request)
        except RequestRejected as exc:
            return exc.status, exc.body()

    async def _dispatch(self, request: Request) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(request.target)
        path = parts.path
        if not path.startswith(API_PREFIX):
            return 404, error_body("not found: the ETSI 014 API is under /api/v1/keys/")
        sae_in_path, _, endpoint = path[len(API_PREFIX) :].partition("/")
        sae_in_path = unquote(sae_in_path)
        if endpoint not in ("status", "enc_keys", "dec_keys") or not sae_in_path:
            return 404, error_body(
                "not found: use /api/v1/keys/{SAE_ID}/status, enc_keys or dec_keys"
            )
        allowed = ("GET",) if endpoint == "status" else ("GET", "POST")
        if request.method not in allowed:
            return 405, error_body(f"{endpoint} accepts {' and '.join(allowed)}")
        caller = request.sae_id
        if caller is None or caller not in self._local_saes:
            raise RequestRejected(
                401,
                "the client certificate names no SAE registered with this KME",
                [{"KME_ID": self.kme_id}],
            )
        route = self._routes.get((caller, sae_in_path))
        if route is None:
            role = "master" if endpoint == "dec_keys" else "slave"
            raise RequestRejected(
                401,
                f"{role} SAE is not registered on a link with the calling SAE",
                [{f"{role}_SAE_ID": sae_in_path}],
            )
        query = parse_qs(parts.query, keep_blank_values=True)
        if endpoint == "status":
            return 200, self._status(caller, sae_in_path, route).to_json()
        if endpoint == "enc_keys":
            if request.method == "GET":
                document: Any = {k: v[-1] for k, v in query.items()}
                key_request = parse_key_request(document, from_query=True)
            else:
                key_request = parse_key_request(_json_body(request.body))
            return 200, await self._enc_keys(caller, sae_in_path, route, key_request)
        if request.method == "GET":
            unknown = sorted(set(query) - {"key_ID"})
            if unknown or "key_ID" not in query:
                raise RequestRejected(
                    400, "dec_keys by GET takes key_ID query parameters", [{"fields": unknown}]
                )
            key_ids = parse_key_ids(query["key_ID"], from_query=True)
        else:
            key_ids = parse_key_ids(_json_body(request.body))
        return 200, await self._dec_keys(caller, sae_in_path, route, key_ids)

    def _target_kme_id(self, link: LinkSettings) -> str:
        """The KME at the far end of ``link`` (the pair's peer)."""
        assert self.peer is not None
        return self.peer.kme_id

    def _keys_available(self, link: LinkSettings) -> int:
        """How many keys of ``link.key_size`` this KME could hand a master now."""
        return self.store.ready_count(link.name, self.kme_id)

    def _status(self, master: str, slave: str, link: LinkSettings) -> KeyStatus:
        return KeyStatus(
            source_kme_id=self.kme_id,
            target_kme_id=self._target_kme_id(link),
            master_sae_id=master,
            slave_sae_id=slave,
            key_size=link.key_size,
            stored_key_count=min(self._keys_available(link), link.max_key_count),
            max_key_count=link.max_key_count,
            max_key_per_request=link.max_key_per_request,
            max_key_size=link.max_key_size,
            min_key_size=link.min_key_size,
            max_sae_id_count=0,
        )

    async def _enc_keys(
        self, master: str, slave: str, link: LinkSettings, request: KeyRequest
    ) -> dict[str, Any]:
        size = check_key_request(link, request)
        not_before = time.time() - link.key_max_age_s

        def take(tx: Transaction) -> list[tuple[str, bytes]]:
            return tx.take_for_master(
                link=link.name,
                owner=self.kme_id,
                master=master,
                slave=slave,
                number=request.number,
                size=size,
                unit_bits=link.key_size,
                not_before=not_before,
            )

        try:
            keys = await self.committer.run(take)
        except PoolExhausted as exc:
            raise RequestRejected(
                503,
                "not enough key material for this request; retry later",
                [{"stored_key_count": self.store.ready_count(link.name, self.kme_id)}],
            ) from exc
        assert self.peer is not None
        # The pair's link is direct: the path is this KME (the master's), then its peer.
        return encode_key_container(keys, relay_path=(self.kme_id, self.peer.kme_id))

    async def _dec_keys(
        self, slave: str, master: str, link: LinkSettings, key_ids: Sequence[str]
    ) -> dict[str, Any]:
        peer = self.peer
        assert peer is not None
        if len(key_ids) > link.max_key_per_request:
            raise RequestRejected(
                400,
                f"at most max_key_per_request={link.max_key_per_request} key_IDs per request",
                [{"count": len(key_ids)}],
            )
        not_before = time.time() - link.key_max_age_s

        def take(tx: Transaction) -> list[tuple[str, bytes]]:
            deliveries: list[Delivery] = []
            for key_id in key_ids:
                record = peer.store.lookup_delivery(key_id)
                if (
                    record is None
                    or record.link != link.name
                    or not hmac.compare_digest(record.master, master)
                    or not hmac.compare_digest(record.slave, slave)
                ):
                    raise UnitUnavailable("key_ID not found for this master and slave", key_id)
                deliveries.append(record)
            return tx.take_for_slave(
                link=link.name, owner=peer.kme_id, deliveries=deliveries, not_before=not_before
            )

        try:
            keys = await self.committer.run(take)
        except UnitUnavailable as exc:
            raise RequestRejected(400, str(exc), [{"key_ID": exc.key_id}]) from exc
        return encode_key_container(keys, relay_path=(peer.kme_id, self.kme_id))


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestRejected(400, "the request body is not valid JSON") from exc


# ---------------------------------------------------------------------- the pair


def recover_blocks(a: KeyPool, b: KeyPool) -> int:
    """Finish or drop the blocks a crash left half-written; returns how many were touched.

    A block written at both ends is made ready at both; a block at one end only is deleted.
    Run it before serving, with no feeder running.
    """
    touched = 0
    for here, there in ((a, b), (b, a)):
        for block in here.pending_blocks():
            touched += 1
            if there.has_block(block):
                for store in (here, there):
                    store.run(functools.partial(_mark_ready, block=block))
            else:
                here.run(functools.partial(_delete_block, block=block))
    return touched


def _mark_ready(tx: Transaction, *, block: int) -> int:
    return tx.mark_ready(block)


def _delete_block(tx: Transaction, *, block: int) -> None:
    tx.delete_block(block)


def _expire(tx: Transaction, *, not_before: float, tombstones_before: float) -> int:
    return tx.expire(not_before=not_before, tombstones_before=tombstones_before)


async def _recover_shared(a: Kme, b: Kme, fence: Callable[[Transaction], None]) -> int:
    """:func:`recover_blocks` for stores that other replicas serve meanwhile: through the
    committers, with the reads off the event loop, each write fenced by the feeder lock.
    Only the lock's holder runs it."""

    def fenced(tx: Transaction, *, write: Callable[[Transaction], object]) -> None:
        fence(tx)
        write(tx)

    touched = 0
    for here, there in ((a, b), (b, a)):
        for block in await asyncio.to_thread(here.store.pending_blocks):
            touched += 1
            if await asyncio.to_thread(there.store.has_block, block):
                ready = functools.partial(_mark_ready, block=block)
                for kme in (here, there):
                    await kme.committer.run(functools.partial(fenced, write=ready))
            else:
                drop = functools.partial(_delete_block, block=block)
                await here.committer.run(functools.partial(fenced, write=drop))
    return touched


class _Feeder:
    """Keeps one link's pools filled from its supplier, metered at ``rate_bps``."""

    POLL_S = 0.02
    RETRY_S = 1.0

    def __init__(
        self,
        link: LinkSettings,
        a: Kme,
        b: Kme,
        supplier: KeyMaterialSupplier,
        fence: Callable[[Transaction], None] | None = None,
    ) -> None:
        self.link = link
        self.a = a
        self.b = b
        self.supplier = supplier
        # Replicas: run first in every write, so that a leader that lost its lock writes
        # nothing more (the write fails and the feeder retries until it is cancelled).
        self.fence = fence
        self.unit_bytes = link.key_size // 8
        self._budget_bits = 0.0
        self._last = time.monotonic()

    def _rate_bps(self) -> float:
        # A configured rate wins; a simulated link may report the rate it simulates.
        if self.link.rate_bps:
            return self.link.rate_bps
        rate = getattr(self.supplier, "rate_bps", None)
        return float(rate) if isinstance(rate, int | float) and rate > 0 else 0.0

    def _budget_units(self) -> int:
        rate = self._rate_bps()
        if not rate:
            return 1 << 30
        now = time.monotonic()
        cap = float(self.link.block_units * self.link.key_size)
        self._budget_bits = min(cap, self._budget_bits + rate * (now - self._last))
        self._last = now
        return int(self._budget_bits // self.link.key_size)

    async def run(self) -> None:
        link = self.link
        # Refill a direction once it is below 3/4 of max_key_count (or empty), so that blocks
        # stay large and the stores see few transactions.
        low_water = max(1, (link.max_key_count * 3) // 4)
        while True:
            wrote = False
            for owner in (self.a, self.b):
                deficit = link.max_key_count - owner.store.ready_count(link.name, owner.kme_id)
                metered = bool(self._rate_bps())
                if deficit <= 0 or (not metered and link.max_key_count - deficit >= low_water):
                    continue
                count = min(deficit, link.block_units, self._budget_units())
                if count <= 0:
                    continue
                try:
                    await self._write_block(owner, count)
                except Exception:
                    # A failing supplier (a simulated link that aborts, say) or store must
                    # not end the feeder: the pool drains, requests get 503, and it retries.
                    _log.exception("link %s: could not add key material; retrying", link.name)
                    await asyncio.sleep(self.RETRY_S)
                    continue
                if metered:
                    self._budget_bits -= count * link.key_size
                wrote = True
            if not wrote:
                await asyncio.sleep(self.POLL_S)

    async def _write_block(self, owner: Kme, count: int) -> None:
        link = self.link
        alice, bob = await asyncio.to_thread(self.supplier, count * self.unit_bytes)
        if len(alice) != len(bob) or not hmac.compare_digest(alice, bob):
            _log.warning("link %s: the supplier's keys differ at the two ends; dropped", link.name)
            return
        block = secrets.randbits(62)
        created = time.time()
        ids = [str(uuid.uuid4()) for _ in range(count)]
        step = self.unit_bytes

        def writer(material: bytes) -> Callable[[Transaction], None]:
            units = [(ids[i], material[i * step : (i + 1) * step]) for i in range(count)]

            def insert(tx: Transaction) -> None:
                if self.fence is not None:
                    self.fence(tx)
                tx.insert_block(
                    block=block, link=link.name, owner=owner.kme_id, created=created, units=units
                )

            return insert

        def ready(tx: Transaction) -> int:
            if self.fence is not None:
                self.fence(tx)
            return tx.mark_ready(block)

        await self.a.committer.run(writer(alice))
        await self.b.committer.run(writer(bob))
        await self.a.committer.run(ready)
        await self.b.committer.run(ready)


class KmePair:
    """KME A and KME B with their stores, feeders and HTTPS listeners, in one event loop."""

    def __init__(self, config: PairConfig) -> None:
        self.config = config
        self._servers: list[HttpsServer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.addresses: dict[str, tuple[str, int]] = {}
        store_a = open_store(config.a.store_spec, schema=config.a.kme_id)
        try:
            store_b = open_store(config.b.store_spec, schema=config.b.kme_id)
        except BaseException:
            store_a.close()
            raise
        # Both PostgreSQL (config.py allows no mix): other replicas may share the pools.
        self.replicated = config.a.store_url is not None
        if not self.replicated:
            recover_blocks(store_a, store_b)
        self.a = Kme(config.a, "a", config, GroupCommitter(store_a))
        self.b = Kme(config.b, "b", config, GroupCommitter(store_b))
        self.a.peer, self.b.peer = self.b, self.a
        self._suppliers = {link.name: make_supplier(link) for link in config.links}

    async def start(self) -> None:
        """Start feeders and listeners; ``addresses`` then holds the bound host/port."""
        for kme in (self.a, self.b):
            context = server_ssl_context(kme.settings.cert, kme.settings.key, self.config.ca)
            server = await start_server(
                kme.handle, host=kme.settings.host, port=kme.settings.port, ssl_context=context
            )
            self._servers.append(server)
            self.addresses[kme.end] = server.address
        if self.replicated:
            self._tasks.append(asyncio.create_task(self._lead(), name="feeder-leader"))
        else:
            self._tasks.extend(self._start_feeders())

    def _start_feeders(
        self, fence: Callable[[Transaction], None] | None = None
    ) -> list[asyncio.Task[None]]:
        tasks = []
        for link in self.config.links:
            feeder = _Feeder(link, self.a, self.b, self._suppliers[link.name], fence)
            tasks.append(asyncio.create_task(feeder.run(), name=f"feeder:{link.name}"))
            tasks.append(asyncio.create_task(self._expire(link), name=f"expiry:{link.name}"))
        return tasks

    async def _lead(self) -> None:
        """Replicas: feed (and recover, and expire) while holding the pair's feeder lock."""
        from qkd.delivery.store_postgres import AdvisoryLock, PostgresTransaction

        assert self.config.a.store_url is not None
        lock = AdvisoryLock(
            self.config.a.store_url, f"qkd-kme-feeder:{self.a.kme_id}:{self.b.kme_id}"
        )
        try:
            while True:
                if not await asyncio.to_thread(lock.try_acquire):
                    await asyncio.sleep(LEADER_POLL_S)
                    continue
                _log.info("this replica holds the feeder lock: it runs the link feeders")
                tasks: list[asyncio.Task[None]] = []
                token = lock.fence()

                def fence(tx: Transaction, token: tuple[int, int] = token) -> None:
                    assert isinstance(tx, PostgresTransaction)
                    tx.require_lock(token)

                try:
                    await _recover_shared(self.a, self.b, fence)
                    tasks = self._start_feeders(fence)
                    while await asyncio.to_thread(lock.held):
                        await asyncio.sleep(LEADER_CHECK_S)
                    _log.warning("lost the feeder lock (database session ended); following")
                except Exception:
                    # The database failed under the recovery (or the lock went with it): give
                    # the lock up, so that a replica that can reach the database leads.
                    _log.exception("could not lead the feeders; giving up the feeder lock")
                    await asyncio.to_thread(lock.release)
                    await asyncio.sleep(LEADER_POLL_S)
                finally:
                    for task in tasks:
                        task.cancel()
                    for task in tasks:
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
        finally:
            lock.release()

    async def _expire(self, link: LinkSettings) -> None:
        period = min(60.0, max(0.05, link.key_max_age_s / 4))
        while True:
            await asyncio.sleep(period)
            now = time.time()
            sweep = functools.partial(
                _expire,
                not_before=now - link.key_max_age_s,
                tombstones_before=now - _TOMBSTONE_FACTOR * link.key_max_age_s,
            )
            for kme in (self.a, self.b):
                await kme.committer.run(sweep)

    async def stop(self) -> None:
        """Stop listening, end connections, stop the feeders, then close the stores."""
        for server in self._servers:
            await server.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for kme in (self.a, self.b):
            await kme.committer.aclose()


class Service(Protocol):
    """What :func:`serve_until_stopped` runs: a KME pair, or a node of a network."""

    addresses: dict[str, tuple[str, int]]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_stopped(
    service: Service,
    *,
    on_ready: Callable[[dict[str, tuple[str, int]]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Start ``service``, tell ``on_ready`` its addresses, and run it until SIGINT/SIGTERM
    (or ``stop`` is set); then stop it."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    await service.start()
    try:
        if on_ready is not None:
            on_ready(dict(service.addresses))
        await stop.wait()
    finally:
        await service.stop()


async def serve_pair(
    config: PairConfig,
    *,
    on_ready: Callable[[dict[str, tuple[str, int]]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the pair until SIGINT/SIGTERM (or ``stop`` is set)."""
    await serve_until_stopped(KmePair(config), on_ready=on_ready, stop=stop)
