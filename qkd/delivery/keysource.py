"""QKD key sources: one interface, several backends (hazmat layer).

A key source hands QKD keys to a Secure Application Entity (SAE) the way ETSI GS QKD 014 does:
the *master* SAE asks for new keys (``get_keys``, ETSI "enc_keys") and tells its peer the key
IDs; the *slave* SAE then fetches the same keys by ID (``get_keys_by_id``, ETSI "dec_keys").
Each key is delivered once to the master and once to the slave named by the master, and never
again. A source is bound to one local SAE and one peer SAE.

Backends:

- :class:`SimulatedLinkSource` - both ends of a simulated link in this process, fed by a
  :data:`KeyMaterialSupplier` (the OS CSPRNG for an ideal link, optionally metered at a key
  rate in bit/s, or the QKD link simulator).
- :class:`qkd.delivery.etsi014.Etsi014Client` - a KME (vendor hardware or ``agile kme serve``) over
  ETSI GS QKD 014 REST with mutual TLS.

This module is easy to misuse: keys are plain ``bytes``. Applications should go through
``agile``, which wraps secrets and applies policy.

Example::

    link = SimulatedLink(key_size=256)
    alice = link.source("sae-a", peer="sae-b")
    bob = link.source("sae-b", peer="sae-a")
    keys = alice.get_keys(2)
    assert bob.get_keys_by_id([k.key_id for k in keys]) == keys
"""

from __future__ import annotations

import asyncio
import hmac
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from qkd._errors import QKDError

__all__ = [
    "AsyncKeySource",
    "AsyncSimulatedLinkSource",
    "InvalidRequest",
    "InvalidResponse",
    "KMEError",
    "KMEUnavailable",
    "KeyExhausted",
    "KeyMaterialSupplier",
    "KeyNotFound",
    "KeySource",
    "KeySourceError",
    "KeyStatus",
    "QkdKey",
    "SimulatedLink",
    "SimulatedLinkSource",
    "csprng_supplier",
    "relay_path_problem",
]


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class KeySourceError(QKDError):
    """A key source could not deliver keys (root of the key-delivery errors)."""


class KMEError(KeySourceError):
    """A KME answered with an ETSI GS QKD 014 error (HTTP 400, 401, 503 ...).

    ``status`` is the HTTP status code, ``message`` and ``details`` are the KME's own
    ``message`` and ``details`` fields (``details`` is a list of JSON objects, possibly empty).
    """

    def __init__(
        self,
        status: int,
        message: str,
        details: Sequence[dict[str, Any]] = (),
        *,
        hint: str = "",
    ) -> None:
        self.status = status
        self.message = message
        self.details: list[dict[str, Any]] = list(details)
        text = f"KME answered {status}: {message}"
        if self.details:
            text += f" (details: {self.details})"
        if hint:
            text += f"; {hint}"
        super().__init__(text)


class KMEUnavailable(KMEError):
    """The KME could not be reached, timed out, or answered 503 after every retry."""


class KeyExhausted(KMEUnavailable):
    """The key pool cannot serve the request now (ETSI 503, or an empty simulated pool)."""


class KeyNotFound(KMEError):
    """A key_ID is unknown, expired, already delivered, or belongs to another SAE pair."""


class InvalidRequest(KeySourceError, ValueError):
    """The caller asked for something no KME can answer (bad count, size, key_ID or setup).

    It is a ``ValueError`` too, so code that validates arguments the usual Python way
    catches it.
    """


class InvalidResponse(KeySourceError):
    """A KME's answer broke ETSI GS QKD 014 (bad JSON, base64, key length, key_ID, count)."""


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


MAX_NODE_NAME = 200
"""The longest KME node name a relay path may carry (the network file's limit)."""


def relay_path_problem(path: object, name: str = "relay_path") -> str | None:
    """Why ``path`` is not a relay path, or ``None``: a path is a list (or tuple) of at least
    two distinct node names, each a string of 1 to :data:`MAX_NODE_NAME` characters without
    surrounding whitespace. The message starts with ``name`` and the offending element's
    index (``relay_path[2] repeats node 'A' ...``)."""
    problem = _path_problem(path)
    if problem is None:
        return None
    return f"{name}{problem}" if problem.startswith("[") else f"{name} {problem}"


def _path_problem(path: object) -> str | None:
    if not isinstance(path, list | tuple):
        return f"is not an array of node names (got {type(path).__name__})"
    if len(path) < 2:
        return f"has {len(path)} node(s); a path names at least its two end KMEs"
    seen: dict[str, int] = {}
    for index, name in enumerate(path):
        if not isinstance(name, str):
            return f"[{index}] is not a string (got {type(name).__name__})"
        if not name or len(name) > MAX_NODE_NAME or name != name.strip():
            return (
                f"[{index}] is not a node name (1 to {MAX_NODE_NAME} characters, "
                "no surrounding whitespace)"
            )
        if name in seen:
            return f"[{index}] repeats node {name!r} (first at [{seen[name]}]); a path has no loops"
        seen[name] = index
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class QkdKey:
    """One QKD key: a UUID key ID, the key bytes and, when the KME reports it, the relay path.

    ``relay_path`` names the KME nodes the key passed through, from the master SAE's KME
    (first) to the slave SAE's KME (last); every node between them is a trusted node that saw
    the key in the clear. A key of a direct link has a two-node path; ``None`` means the KME
    did not say. Equality compares the key ID and (in constant time) the key; the path is
    what a KME reports about the key, not part of it. The repr never shows the key.
    """

    key_id: str
    key: bytes = field(repr=False)
    relay_path: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(self.key_id))
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidResponse(f"key_ID {self.key_id!r} is not a UUID") from exc
        object.__setattr__(self, "key_id", canonical)
        if not isinstance(self.key, bytes):
            raise TypeError("QkdKey.key must be bytes")
        if self.relay_path is not None:
            problem = relay_path_problem(self.relay_path)
            if problem is not None:
                raise InvalidResponse(problem)
            object.__setattr__(self, "relay_path", tuple(self.relay_path))

    @property
    def size_bits(self) -> int:
        return 8 * len(self.key)

    @property
    def trusted_nodes(self) -> int | None:
        """How many trusted nodes saw the key (``len(relay_path) - 2``), or ``None``."""
        return None if self.relay_path is None else len(self.relay_path) - 2

    def __repr__(self) -> str:
        path = "" if self.relay_path is None else f", relay_path={list(self.relay_path)}"
        return f"QkdKey(key_id={self.key_id!r}, <{len(self.key)} bytes>{path})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QkdKey):
            return NotImplemented
        return self.key_id == other.key_id and hmac.compare_digest(self.key, other.key)

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __reduce__(self) -> Any:
        raise TypeError("QkdKey holds key material and cannot be pickled")


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyStatus:
    """The ETSI GS QKD 014 Status of the link between a master and a slave SAE."""

    source_kme_id: str
    target_kme_id: str
    master_sae_id: str
    slave_sae_id: str
    key_size: int
    stored_key_count: int
    max_key_count: int
    max_key_per_request: int
    max_key_size: int
    min_key_size: int
    max_sae_id_count: int
    status_extension: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The ETSI 014 JSON object (standard field names)."""
        document: dict[str, Any] = {
            "source_KME_ID": self.source_kme_id,
            "target_KME_ID": self.target_kme_id,
            "master_SAE_ID": self.master_sae_id,
            "slave_SAE_ID": self.slave_sae_id,
            "key_size": self.key_size,
            "stored_key_count": self.stored_key_count,
            "max_key_count": self.max_key_count,
            "max_key_per_request": self.max_key_per_request,
            "max_key_size": self.max_key_size,
            "min_key_size": self.min_key_size,
            "max_SAE_ID_count": self.max_sae_id_count,
        }
        if self.status_extension is not None:
            document["status_extension"] = self.status_extension
        return document


# --------------------------------------------------------------------------------------------
# Interfaces
# --------------------------------------------------------------------------------------------


@runtime_checkable
class KeySource(Protocol):
    """Where QKD keys come from, bound to one local SAE and one peer SAE."""

    def status(self) -> KeyStatus:
        """The link status towards the peer (ETSI "Get status")."""
        ...

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        """Master side: ``number`` new keys of ``size_bits`` (ETSI "Get key", enc_keys)."""
        ...

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        """Slave side: the keys the peer (master) obtained (ETSI "Get key with key IDs")."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncKeySource(Protocol):
    """The asyncio twin of :class:`KeySource`."""

    async def status(self) -> KeyStatus: ...

    async def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]: ...

    async def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]: ...

    async def aclose(self) -> None: ...


# A supplier returns ``nbytes`` of final key as seen by Alice and by Bob. The ideal link and a
# post-processed simulated link both return identical strings; a supplier that cannot deliver
# matching keys (the simulator aborted, e.g. QBER above threshold) raises KeyExhausted.
KeyMaterialSupplier = Callable[[int], tuple[bytes, bytes]]


def csprng_supplier(nbytes: int) -> tuple[bytes, bytes]:
    """Ideal link: matched key material straight from the OS CSPRNG."""
    material = os.urandom(nbytes)
    return material, material


# --------------------------------------------------------------------------------------------
# Simulated link, in process
# --------------------------------------------------------------------------------------------


class _Meter:
    """Key-bit budget of a link: ``rate_bps`` bits accrue per second, up to ``capacity``."""

    def __init__(self, rate_bps: float | None, capacity_bits: int) -> None:
        self._rate = rate_bps
        self._capacity = capacity_bits
        self._available = float(capacity_bits) if rate_bps is None else 0.0
        self._last = time.monotonic()

    def available(self) -> float:
        if self._rate is None:
            return float(self._capacity)
        now = time.monotonic()
        self._available = min(self._capacity, self._available + self._rate * (now - self._last))
        self._last = now
        return self._available

    def take(self, bits: int) -> None:
        if self._rate is not None:
            self._available -= bits

    def wait_for(self, bits: int) -> float:
        """Seconds until ``bits`` will be available (0 when they already are)."""
        missing = bits - self.available()
        if missing <= 0 or self._rate is None:
            return 0.0
        return missing / self._rate


class SimulatedLink:
    """Both ends of a simulated QKD link in this process.

    Key material comes from ``supplier`` (default: the OS CSPRNG, i.e. an ideal link); when
    ``rate_bps`` is set the link yields at most that many key bits per second (the bucket holds
    up to ``max_key_count`` keys of ``key_size`` bits). Keys taken by a master wait for the
    slave it named, who gets them once; nobody else gets them. The link is direct, so each
    key's ``relay_path`` is its two ends' ``kme_ids``, the master's first.
    """

    def __init__(
        self,
        *,
        key_size: int = 256,
        rate_bps: float | None = None,
        supplier: KeyMaterialSupplier = csprng_supplier,
        max_key_count: int = 100_000,
        max_key_per_request: int = 128,
        min_key_size: int = 64,
        max_key_size: int = 8192,
        wait_s: float = 0.0,
        kme_ids: tuple[str, str] = ("SIM-KME-A", "SIM-KME-B"),
    ) -> None:
        _check_size("key_size", key_size, min_key_size, max_key_size)
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError("rate_bps must be positive, or None for an unmetered ideal link")
        self.key_size = key_size
        self.max_key_count = max_key_count
        self.max_key_per_request = max_key_per_request
        self.min_key_size = min_key_size
        self.max_key_size = max_key_size
        self.kme_ids = kme_ids
        self._supplier = supplier
        self._wait_s = wait_s
        self._meter = _Meter(rate_bps, max_key_count * key_size)
        self._lock = threading.Lock()
        # key_id -> (master, slave, bob's copy); removed when the slave takes it.
        self._awaiting: OrderedDict[str, tuple[str, str, bytes]] = OrderedDict()
        self._ends: dict[str, int] = {}

    def source(self, sae_id: str, *, peer: str) -> SimulatedLinkSource:
        """The key source of SAE ``sae_id`` talking to ``peer`` over this link."""
        return SimulatedLinkSource(self, sae_id, peer)

    def async_source(self, sae_id: str, *, peer: str) -> AsyncSimulatedLinkSource:
        """The asyncio twin of :meth:`source`."""
        return AsyncSimulatedLinkSource(self.source(sae_id, peer=peer))

    def _end_of(self, sae_id: str) -> int:
        # The first SAE seen sits at end A, the second at end B; a third has no place.
        with self._lock:
            if sae_id not in self._ends:
                if len(self._ends) == 2:
                    raise KMEError(401, f"SAE {sae_id!r} is not attached to this link")
                self._ends[sae_id] = len(self._ends)
            return self._ends[sae_id]

    def _status(self, master: str, slave: str) -> KeyStatus:
        end = self._end_of(master)
        self._end_of(slave)
        with self._lock:
            stored = int(self._meter.available()) // self.key_size
        return KeyStatus(
            source_kme_id=self.kme_ids[end],
            target_kme_id=self.kme_ids[1 - end],
            master_sae_id=master,
            slave_sae_id=slave,
            key_size=self.key_size,
            stored_key_count=min(stored, self.max_key_count),
            max_key_count=self.max_key_count,
            max_key_per_request=self.max_key_per_request,
            max_key_size=self.max_key_size,
            min_key_size=self.min_key_size,
            max_sae_id_count=0,
        )

    def _path(self, master: str, slave: str) -> tuple[str, str]:
        """The relay path of a direct link: the master's KME, then the slave's."""
        return (self.kme_ids[self._end_of(master)], self.kme_ids[self._end_of(slave)])

    def _take(self, master: str, slave: str, number: int, size_bits: int | None) -> list[QkdKey]:
        path = self._path(master, slave)
        if master == slave:
            raise KMEError(400, "master and slave SAE are the same", [{"slave_SAE_ID": slave}])
        size = self.key_size if size_bits is None else size_bits
        _check_size("size", size, self.min_key_size, self.max_key_size)
        if not 1 <= number <= self.max_key_per_request:
            raise KMEError(
                400,
                f"number must be between 1 and max_key_per_request={self.max_key_per_request}",
                [{"number": number}],
            )
        bits = number * size
        deadline = time.monotonic() + self._wait_s
        while True:
            with self._lock:
                wait = self._meter.wait_for(bits)
                if wait == 0.0:
                    self._meter.take(bits)
                    break
            if time.monotonic() + wait > deadline:
                raise KeyExhausted(
                    503,
                    "not enough key material on the link",
                    [{"requested_bits": bits, "seconds_until_available": round(wait, 3)}],
                )
            time.sleep(wait)
        alice, bob = self._supplier(bits // 8)
        if len(alice) != bits // 8 or len(bob) != bits // 8:
            raise KeySourceError("key material supplier returned the wrong number of bytes")
        keys: list[QkdKey] = []
        with self._lock:
            for i in range(number):
                key_id = str(uuid.uuid4())
                part = slice(i * size // 8, (i + 1) * size // 8)
                self._awaiting[key_id] = (master, slave, bob[part])
                keys.append(QkdKey(key_id=key_id, key=alice[part], relay_path=path))
        return keys

    def _take_by_id(self, slave: str, master: str, key_ids: Sequence[str]) -> list[QkdKey]:
        self._end_of(slave)  # the first SAE seen takes end A, whichever call it makes
        path = self._path(master, slave)
        canonical = [_canonical_key_id(k) for k in key_ids]
        if not canonical:
            raise KeyNotFound(400, "key_IDs is empty", [{"key_IDs": []}])
        if len(set(canonical)) != len(canonical):
            raise KeyNotFound(400, "a key_ID is listed twice", [{"key_IDs": canonical}])
        with self._lock:
            for key_id in canonical:
                entry = self._awaiting.get(key_id)
                if entry is None or entry[0] != master or entry[1] != slave:
                    raise KeyNotFound(
                        400,
                        "key_ID not found for this master/slave pair (unknown, or delivered)",
                        [{"key_ID": key_id}],
                    )
            return [
                QkdKey(key_id=k, key=self._awaiting.pop(k)[2], relay_path=path) for k in canonical
            ]


class SimulatedLinkSource:
    """:class:`KeySource` of one SAE on a :class:`SimulatedLink`."""

    def __init__(self, link: SimulatedLink, sae_id: str, peer: str) -> None:
        self._link = link
        self.sae_id = sae_id
        self.peer = peer

    def status(self) -> KeyStatus:
        return self._link._status(self.sae_id, self.peer)

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        return self._link._take(self.sae_id, self.peer, number, size_bits)

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        return self._link._take_by_id(self.sae_id, self.peer, key_ids)

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<SimulatedLinkSource {self.sae_id} -> {self.peer}>"


class AsyncSimulatedLinkSource:
    """:class:`AsyncKeySource` over a :class:`SimulatedLinkSource` (metering waits off-loop)."""

    def __init__(self, source: SimulatedLinkSource) -> None:
        self._source = source

    async def status(self) -> KeyStatus:
        return self._source.status()

    async def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        return await asyncio.to_thread(self._source.get_keys, number, size_bits)

    async def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        return self._source.get_keys_by_id(key_ids)

    async def aclose(self) -> None:
        return None


def _check_size(name: str, size: int, low: int, high: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int):
        raise KMEError(400, f"{name} must be an integer number of bits", [{name: repr(size)}])
    if size % 8 or not low <= size <= high:
        raise KMEError(
            400,
            f"{name} must be a multiple of 8 between min_key_size={low} and max_key_size={high}",
            [{name: size}],
        )


def _canonical_key_id(key_id: object) -> str:
    try:
        return str(uuid.UUID(str(key_id)))
    except ValueError as exc:
        raise KeyNotFound(400, "key_ID is not a UUID", [{"key_ID": str(key_id)}]) from exc
