"""Durable state of one KME node of a network: link key per link and direction, relayed keys.

Hazmat: plain bytes, no policy. Used by :mod:`qkd.network.node`.

Theory of operation
-------------------
Link key. The two ends of a link share a stream of link key per direction (``"A>B"`` is the
key that frames from A to B use). The lower-named end of the link assigns each new block of
key a start offset, a multiple of 32, that is never assigned again; a block holds the same
bytes at both ends. A :class:`LinkKeyStream` holds one direction at one end:

- the sender (``A`` for ``"A>B"``) hands out bytes in order from ``next``; every byte below
  ``next`` is used. ``next`` is written to the store (``send_marks``) before any frame that
  uses the bytes leaves the node, so a crash can never hand out a byte twice;
- the receiver keeps the 32-byte slots that verified frames consumed in memory, and a
  *receive mark* in the store: before it acts on a frame above the mark, the mark moves
  past it (``recv_marks``, written ahead like the send mark). After a restart every slot
  below the stored mark counts as used, so a frame that may have been used before a crash
  is refused. The slots are also written to ``recv_slots`` (a primary key: a second use
  fails inside the transaction), in the transaction that stores a relayed key at the last
  hop and, at an intermediate hop, in a group commit that the hop does not wait for.

A frame never spans two blocks (:meth:`LinkKeyStream.take` skips to the next block), so a
gap left by a block that one end dropped costs key, never agreement.

Used link key is forgotten (:meth:`LinkKeyStream.trim`, :meth:`StoreTx.trim`): the sender's
blocks below ``next``, and the receiver's below a floor it raises to a window below the
highest byte used, so neither memory nor the store grows with the key relayed. A block whose
two directions are trimmed at different times may keep one row for a while.

Relayed keys. The destination node stores each relayed key under its key_ID with its master
and slave SAE IDs and its path; ``dec_keys`` hands it to the slave once (the row keeps the
key_ID with no key bytes afterwards, so that a second request is told "already delivered").

Every write goes through :class:`NodeCommitter`: one SQLite transaction per batch of
operations, fsynced (``synchronous = FULL``) before any caller proceeds.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from qkd._errors import QKDError
from qkd.network.relay import SLOT_BYTES, LinkKeyError, LinkKeyLedger, RelayError

__all__ = [
    "LinkKeyStream",
    "NodeCommitter",
    "NodeStore",
    "NodeStoreBackend",
    "NodeStoreError",
    "RelayedKey",
    "StagedLedger",
    "StoreTx",
]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS link_blocks (
    link  TEXT NOT NULL,
    dir   TEXT NOT NULL,
    start INTEGER NOT NULL,
    data  BLOB NOT NULL,
    ready INTEGER NOT NULL,
    meta  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (link, dir, start)
);
CREATE TABLE IF NOT EXISTS send_marks (
    link TEXT NOT NULL,
    dir  TEXT NOT NULL,
    next INTEGER NOT NULL,
    PRIMARY KEY (link, dir)
);
CREATE TABLE IF NOT EXISTS recv_marks (
    link TEXT NOT NULL,
    dir  TEXT NOT NULL,
    next INTEGER NOT NULL,
    PRIMARY KEY (link, dir)
);
CREATE TABLE IF NOT EXISTS recv_slots (
    link TEXT NOT NULL,
    dir  TEXT NOT NULL,
    slot INTEGER NOT NULL,
    PRIMARY KEY (link, dir, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed_marks (
    link TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS relayed (
    key_id  TEXT PRIMARY KEY,
    master  TEXT NOT NULL,
    slave   TEXT NOT NULL,
    path    TEXT NOT NULL,
    key     BLOB,
    created REAL NOT NULL,
    state   INTEGER NOT NULL
);
"""

READY = 1
DELIVERED = 2


class NodeStoreError(QKDError):
    """The node's store failed (cannot open, disk full, corrupt ...)."""


class KeyUnavailable(NodeStoreError):
    """A key_ID is unknown, already delivered, expired, or not for this master and slave."""

    def __init__(self, message: str, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class RelayedKey:
    key_id: str
    master: str
    slave: str
    path: tuple[str, ...]
    key: bytes


class LinkKeyStream(LinkKeyLedger):
    """One direction of one link's key at one end (see the module docstring).

    A :class:`~qkd.network.relay.LinkKeyLedger` for :func:`~qkd.network.relay.seal_hop` (the
    sender's :meth:`take`) and :func:`~qkd.network.relay.open_hop` (the receiver's
    :meth:`peek` and :meth:`consume`); the caller makes each use durable before acting.
    """

    def __init__(self, link_id: str, direction: str, *, sending: bool) -> None:
        super().__init__(link_id, b"")
        self.direction = direction
        self.sending = sending
        self._next = 0
        self._sender_available = 0
        self._block_starts: list[int] = []
        self._blocks: dict[int, bytes] = {}
        self._used_slots: set[int] = set()  # receiver, at or above the floor
        self._floor = 0  # receiver: every slot below is used
        self._held_from_floor = 0  # receiver: bytes of held blocks at or above the floor
        self.held_bytes = 0

    def __repr__(self) -> str:
        return (
            f"<LinkKeyStream {self.link_id!r} {self.direction} {self.held_bytes} bytes,"
            f" {self.available_bytes} available>"
        )

    @property
    def size(self) -> int:
        return self.held_bytes

    @property
    def used_bytes(self) -> int:
        return self.held_bytes - self.available_bytes

    @property
    def available_bytes(self) -> int:
        """Unused bytes of link key this end holds in this direction."""
        if self.sending:
            return self._sender_available
        return max(0, self._held_from_floor - SLOT_BYTES * len(self._used_slots))

    def _held_between(self, low: int, high: int) -> int:
        """Bytes of held blocks inside [low, high)."""
        total = 0
        i = max(0, bisect.bisect_right(self._block_starts, low) - 1)
        while i < len(self._block_starts) and self._block_starts[i] < high:
            start = self._block_starts[i]
            end = start + len(self._blocks[start])
            total += max(0, min(end, high) - max(start, low))
            i += 1
        return total

    @property
    def next(self) -> int:
        """Sender: every byte below is used (or skipped)."""
        return self._next

    @next.setter
    def next(self, value: int) -> None:
        if value > self._next:
            self._sender_available -= self._held_between(self._next, value)
        elif value < self._next:
            self._sender_available += self._held_between(value, self._next)
        self._next = value

    def add_block(self, start: int, data: bytes) -> None:
        if start in self._blocks:
            return
        bisect.insort(self._block_starts, start)
        self._blocks[start] = data
        self.held_bytes += len(data)
        self._sender_available += max(0, start + len(data) - max(start, self._next))
        self._held_from_floor += max(0, start + len(data) - max(start, self.floor_bytes))

    def has_block(self, start: int) -> bytes | None:
        return self._blocks.get(start)

    def mark_slots(self, slots: Iterable[int]) -> None:
        self._used_slots.update(s for s in slots if s >= self._floor)

    def any_used(self, slots: Iterable[int]) -> bool:
        """Whether any of these 32-byte slots was already used (receiver)."""
        return any(slot < self._floor or slot in self._used_slots for slot in slots)

    @property
    def floor_bytes(self) -> int:
        """Receiver: every byte below counts as used."""
        return self._floor * SLOT_BYTES

    def set_floor(self, offset: int) -> None:
        """Receiver, at start-up: every byte below ``offset`` counts as used (the stored
        receive mark: bytes that may have been used before a crash)."""
        self._floor = -(-offset // SLOT_BYTES)
        self._used_slots = {s for s in self._used_slots if s >= self._floor}
        self._held_from_floor = self._held_between(self.floor_bytes, 1 << 62)

    def trim(self, window: int) -> int:
        """Forget link key that can never be used again; return the offset below which this
        stream now holds nothing.

        The sender drops every block that ends at or below :attr:`next` (all of it handed
        out). The receiver first raises its floor to ``window`` bytes below the highest byte
        a frame has used, so a frame delayed by more than ``window`` behind a later one is
        refused (the sender then skips to the floor, as after a restart), then drops every
        block that ends at or below the floor, and forgets its used slots there.
        """
        if self.sending:
            cutoff = self._next
        else:
            if self._used_slots:
                high = (max(self._used_slots) + 1) * SLOT_BYTES
                if high - window > self.floor_bytes:
                    self.set_floor(high - window)
            cutoff = self.floor_bytes
        dropped = 0
        for start in self._block_starts:
            if start + len(self._blocks[start]) > cutoff:
                break
            self.held_bytes -= len(self._blocks.pop(start))
            dropped += 1
        del self._block_starts[:dropped]
        return cutoff

    def _block_at(self, offset: int) -> tuple[int, bytes] | None:
        i = bisect.bisect_right(self._block_starts, offset) - 1
        if i < 0:
            return None
        start = self._block_starts[i]
        data = self._blocks[start]
        return (start, data) if offset < start + len(data) else None

    def take(self, nbytes: int, *, align: int = 1) -> tuple[int, bytes]:
        if not self.sending:
            raise LinkKeyError(f"link {self.link_id!r} {self.direction}: this end only receives")
        if nbytes <= 0 or align <= 0:
            raise LinkKeyError("a link-key request must be at least 1 byte, align at least 1")
        offset = -(-self.next // align) * align
        i = bisect.bisect_right(self._block_starts, offset) - 1
        i = max(i, 0)
        while i < len(self._block_starts):
            start = self._block_starts[i]
            end = start + len(self._blocks[start])
            at = max(offset, start)
            at = -(-at // align) * align
            if at + nbytes <= end:
                self.next = at + nbytes
                return at, self._blocks[start][at - start : at - start + nbytes]
            i += 1
        raise LinkKeyError(
            f"link {self.link_id!r} {self.direction} is exhausted: {nbytes} bytes asked,"
            f" {self.available_bytes} left"
        )

    def _slots(self, offset: int, nbytes: int) -> range:
        return range(offset // SLOT_BYTES, -(-(offset + nbytes) // SLOT_BYTES))

    def peek(self, offset: int, nbytes: int) -> bytes:
        if self.sending:
            raise LinkKeyError(f"link {self.link_id!r} {self.direction}: this end only sends")
        if nbytes <= 0 or offset < 0 or offset % SLOT_BYTES:
            raise LinkKeyError("link key is used in whole 32-byte slots")
        found = self._block_at(offset)
        if found is None or offset + nbytes > found[0] + len(found[1]):
            raise LinkKeyError(
                f"link {self.link_id!r} {self.direction}: bytes {offset}..{offset + nbytes}"
                " are not held here"
            )
        if self.any_used(self._slots(offset, nbytes)):
            raise LinkKeyError(
                f"link {self.link_id!r} {self.direction}: bytes {offset}..{offset + nbytes}"
                " were already used"
            )
        start, data = found
        return data[offset - start : offset - start + nbytes]

    def consume(self, offset: int, nbytes: int) -> bytes:
        material = self.peek(offset, nbytes)
        self._used_slots.update(self._slots(offset, nbytes))
        return material

    def slots_of(self, offset: int, nbytes: int) -> list[int]:
        return list(self._slots(offset, nbytes))


class StagedLedger(LinkKeyLedger):
    """Verifies frames against a receiving :class:`LinkKeyStream` without using its key.

    :func:`~qkd.network.relay.open_hop` consumes through it; the slots are only recorded
    here, so that a batch with one bad frame uses nothing. :meth:`apply` then marks them all
    in the stream at once (in the same event-loop step, so no other request interleaves).
    """

    def __init__(self, stream: LinkKeyStream) -> None:
        super().__init__(stream.link_id, b"")
        self.stream = stream
        self.slots: list[int] = []
        self._staged: set[int] = set()

    def peek(self, offset: int, nbytes: int) -> bytes:
        material = self.stream.peek(offset, nbytes)
        if any(s in self._staged for s in self.stream.slots_of(offset, nbytes)):
            raise LinkKeyError(f"link {self.link_id!r}: one message uses the same key twice")
        return material

    def consume(self, offset: int, nbytes: int) -> bytes:
        material = self.peek(offset, nbytes)
        new = self.stream.slots_of(offset, nbytes)
        self._staged.update(new)
        self.slots.extend(new)
        return material

    def take(self, nbytes: int, *, align: int = 1) -> tuple[int, bytes]:
        raise LinkKeyError("a staged ledger only receives")

    def apply(self) -> None:
        self.stream.mark_slots(self.slots)


class StoreTx:
    """Operations inside one transaction of a :class:`NodeStore`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def add_block(
        self, *, link: str, direction: str, start: int, data: bytes, ready: bool, meta: str = ""
    ) -> None:
        self._db.execute(
            "INSERT INTO link_blocks (link, dir, start, data, ready, meta) VALUES (?,?,?,?,?,?)",
            (link, direction, start, data, int(ready), meta),
        )

    def mark_ready(self, *, link: str, start: int) -> None:
        self._db.execute(
            "UPDATE link_blocks SET ready = 1 WHERE link = ? AND start = ?", (link, start)
        )

    def drop_pending(self, *, link: str, start: int) -> None:
        self._db.execute(
            "DELETE FROM link_blocks WHERE link = ? AND start = ? AND ready = 0", (link, start)
        )

    def set_feed_mark(self, *, link: str, next_start: int) -> None:
        self._db.execute(
            "INSERT INTO feed_marks (link, next) VALUES (?, ?)"
            " ON CONFLICT (link) DO UPDATE SET next = max(next, excluded.next)",
            (link, next_start),
        )

    def set_recv_mark(self, *, link: str, direction: str, next_byte: int) -> None:
        self._db.execute(
            "INSERT INTO recv_marks (link, dir, next) VALUES (?, ?, ?)"
            " ON CONFLICT (link, dir) DO UPDATE SET next = max(next, excluded.next)",
            (link, direction, next_byte),
        )

    def set_send_mark(self, *, link: str, direction: str, next_byte: int) -> None:
        self._db.execute(
            "INSERT INTO send_marks (link, dir, next) VALUES (?, ?, ?)"
            " ON CONFLICT (link, dir) DO UPDATE SET next = max(next, excluded.next)",
            (link, direction, next_byte),
        )

    def use_slots(self, *, link: str, direction: str, slots: Sequence[int]) -> None:
        try:
            self._db.executemany(
                "INSERT INTO recv_slots (link, dir, slot) VALUES (?, ?, ?)",
                [(link, direction, s) for s in slots],
            )
        except sqlite3.IntegrityError as exc:
            raise LinkKeyError(f"link {link!r} {direction}: link key already used") from exc

    def trim(self, *, link: str, direction: str, below: int) -> None:
        """Delete this direction's ready blocks that end at or below ``below`` and, where
        this end receives, the used slots below it (:meth:`LinkKeyStream.trim`)."""
        self._db.execute(
            "DELETE FROM link_blocks WHERE link = ? AND dir = ? AND ready = 1"
            " AND start + length(data) <= ?",
            (link, direction, below),
        )
        self._db.execute(
            "DELETE FROM recv_slots WHERE link = ? AND dir = ? AND slot < ?",
            (link, direction, below // SLOT_BYTES),
        )

    def store_keys(self, keys: Sequence[RelayedKey]) -> None:
        now = time.time()
        try:
            self._db.executemany(
                "INSERT INTO relayed (key_id, master, slave, path, key, created, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(k.key_id, k.master, k.slave, " ".join(k.path), k.key, now, READY) for k in keys],
            )
        except sqlite3.IntegrityError as exc:
            raise RelayError("a relayed key_ID is already stored here; refused") from exc

    def take_keys(
        self, *, key_ids: Sequence[str], master: str, slave: str, not_before: float
    ) -> list[tuple[str, bytes, tuple[str, ...]]]:
        out: list[tuple[str, bytes, tuple[str, ...]]] = []
        for key_id in key_ids:
            row = self._db.execute(
                "SELECT master, slave, key, created, state, path FROM relayed WHERE key_id = ?",
                (key_id,),
            ).fetchone()
            if row is None or row[0] != master or row[1] != slave:
                raise KeyUnavailable("key_ID not found for this master and slave", key_id)
            if row[4] == DELIVERED:
                raise KeyUnavailable("key_ID already delivered", key_id)
            if row[3] < not_before:
                raise KeyUnavailable("key_ID expired", key_id)
            out.append((key_id, row[2], tuple(row[5].split(" "))))
        self._db.executemany(
            "UPDATE relayed SET state = ?, key = NULL WHERE key_id = ?",
            [(DELIVERED, k) for k in key_ids],
        )
        return out

    def expire(self, *, not_before: float, tombstones_before: float) -> int:
        cursor = self._db.execute(
            "DELETE FROM relayed WHERE (state = ? AND created < ?) OR created < ?",
            (READY, not_before, tombstones_before),
        )
        return cursor.rowcount


class NodeStoreBackend(Protocol):
    """What the node needs of a store: :class:`NodeStore` (SQLite) or
    :class:`qkd.network.nodestore_postgres.PgNodeStore` (PostgreSQL, for replicas)."""

    label: str

    def blocks(self) -> list[tuple[str, str, int, bytes, bool, str]]: ...
    def send_marks(self) -> dict[tuple[str, str], int]: ...
    def recv_marks(self) -> dict[tuple[str, str], int]: ...
    def feed_marks(self) -> dict[str, int]: ...
    def used_slots(self) -> dict[tuple[str, str], list[int]]: ...
    def relayed_count(self) -> dict[str, int]: ...
    def run_batch(self, operations: Sequence[Callable[[StoreTx], Any]]) -> list[Any]: ...
    def close(self) -> None: ...


class NodeStore:
    """The SQLite store of one node. Use it from one thread at a time (the committer's)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.label = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise NodeStoreError(
                f"cannot open the node store {self.path}: {exc}; check the path and permissions"
            ) from exc

    def close(self) -> None:
        self._db.close()

    def blocks(self) -> list[tuple[str, str, int, bytes, bool, str]]:
        return [
            (r[0], r[1], r[2], r[3], bool(r[4]), r[5])
            for r in self._db.execute(
                "SELECT link, dir, start, data, ready, meta FROM link_blocks ORDER BY start"
            )
        ]

    def send_marks(self) -> dict[tuple[str, str], int]:
        return {(r[0], r[1]): r[2] for r in self._db.execute("SELECT * FROM send_marks")}

    def recv_marks(self) -> dict[tuple[str, str], int]:
        return {(r[0], r[1]): r[2] for r in self._db.execute("SELECT * FROM recv_marks")}

    def feed_marks(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._db.execute("SELECT * FROM feed_marks")}

    def used_slots(self) -> dict[tuple[str, str], list[int]]:
        out: dict[tuple[str, str], list[int]] = {}
        for link, direction, slot in self._db.execute("SELECT link, dir, slot FROM recv_slots"):
            out.setdefault((link, direction), []).append(slot)
        return out

    def relayed_count(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM relayed GROUP BY state").fetchall()
        names = {READY: "ready", DELIVERED: "delivered"}
        return {names.get(s, str(s)): n for s, n in rows}

    def run_batch(self, operations: Sequence[Callable[[StoreTx], Any]]) -> list[Any]:
        """Run ``operations`` in one transaction, each under its own SAVEPOINT.

        Returns each result or the exception that rolled that operation back; a failed
        COMMIT fails them all.
        """
        db = self._db
        results: list[Any] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for operation in operations:
                db.execute("SAVEPOINT op")
                try:
                    value = operation(StoreTx(db))
                except Exception as exc:
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    results.append(exc)
                    continue
                db.execute("RELEASE op")
                results.append(value)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            error = NodeStoreError(f"node store {self.path}: transaction failed: {exc}")
            error.__cause__ = exc
            return [error] * len(operations)
        return results


class NodeCommitter:
    """Group commit for a :class:`NodeStore` from an asyncio loop (one fsync per batch)."""

    def __init__(self, store: NodeStoreBackend, *, max_batch: int = 512) -> None:
        self.store = store
        self._max_batch = max_batch
        self._pending: list[tuple[Callable[[StoreTx], Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"nodestore:{store.label[-40:]}"
        )

    async def run(self, operation: Callable[[StoreTx], T]) -> T:
        """Run ``operation`` in the next group transaction; returns once it is durable."""
        if self._closed:
            raise NodeStoreError(f"node store {self.store.label} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((operation, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                results = await loop.run_in_executor(
                    self._executor, self.store.run_batch, [op for op, _ in batch]
                )
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(NodeStoreError(f"node store failed: {exc!r}"))
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task])
        await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        self._executor.shutdown(wait=True)
