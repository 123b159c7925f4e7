"""Durable QKD key store of one KME: SQLite in WAL mode with synchronous commits (hazmat).

Theory of operation
-------------------
A link between two KMEs yields key material in *blocks* of fixed-size *units*; both KMEs
store every unit under the same key_ID with identical bytes. Each block has an *owner*: the
KME whose SAEs act as masters for it (the link gives each direction its own keys, so the two
ends never hand the same key to two masters).

Rows of ``units`` move through three states, each change one transaction:

``pending`` (0)
    Written by the link, not yet usable. A block is written pending at both ends, then marked
    ready at both ends; after a crash, :meth:`KeyStore.pending_blocks` and the peer's
    :meth:`KeyStore.has_block` let the KME pair finish (block at both ends) or drop (block at
    one end only) every half-written block before serving.
``ready`` (1)
    May be handed out: by the owner KME to a master SAE (enc_keys), or by the other KME to
    the slave SAE that the master named, once the owner has recorded that delivery.
``delivered`` (2)
    The bytes are erased (set to NULL) in the same transaction that reads them for the
    answer; the row stays as a tombstone so a second request is told "already delivered".

The owner records each delivery to a master in ``deliveries`` (key_ID, master, slave, size,
units used) in the same transaction; the slave's KME reads that record before it releases its
copy. A key larger than one unit uses several consecutive units; its key_ID is the first
unit's.

Crash semantics: a key counts as delivered once its transaction commits. If the process dies
between that commit and the HTTP answer, the requester never sees the key and the key is
gone: delivery is *at most once*. The other choice (at least once) would let a key reach two
requesters. Undelivered keys survive any crash because nothing else removes them, except
expiry: ready units older than ``max_age_s`` are deleted by :meth:`KeyStore.expire`.

Throughput: every fsync costs about half a millisecond here, so :class:`GroupCommitter` runs
the operations that arrive together in one transaction (group commit). Each operation gets a
SAVEPOINT, so one that fails rolls back alone; nothing is answered before the COMMIT that
makes it durable returns.

Backends: :class:`KeyStore` (this module, SQLite) is the embedded default for a KME that runs
as one process. :mod:`qkd.delivery.store_postgres` keeps the same pool in PostgreSQL, where
several replicas of one KME can serve it at once. :func:`open_store` opens either from a
spec (``"sqlite:PATH"`` or ``"postgresql://..."``); both satisfy :class:`KeyPool`, which is
what :class:`GroupCommitter` and the KME service use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from qkd._errors import QKDError

if TYPE_CHECKING:
    from qkd.delivery.store_postgres import PostgresKeyStore

__all__ = [
    "Delivery",
    "GroupCommitter",
    "KeyPool",
    "KeyStore",
    "KeyStoreError",
    "PoolExhausted",
    "Transaction",
    "UnitUnavailable",
    "open_store",
]

T = TypeVar("T")

PENDING, READY, DELIVERED = 0, 1, 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    seq      INTEGER PRIMARY KEY,
    key_id   TEXT NOT NULL UNIQUE,
    link     TEXT NOT NULL,
    owner    TEXT NOT NULL,
    block    INTEGER NOT NULL,
    created  REAL NOT NULL,
    state    INTEGER NOT NULL,
    key      BLOB
);
CREATE INDEX IF NOT EXISTS units_pool ON units (link, owner, state);
CREATE INDEX IF NOT EXISTS units_block ON units (block);
CREATE TABLE IF NOT EXISTS deliveries (
    key_id    TEXT PRIMARY KEY,
    link      TEXT NOT NULL,
    master    TEXT NOT NULL,
    slave     TEXT NOT NULL,
    size      INTEGER NOT NULL,
    parts     TEXT NOT NULL,
    delivered REAL NOT NULL
);
"""


class KeyStoreError(QKDError):
    """The key store failed (file cannot be opened, disk full, corrupt database ...)."""


class PoolExhausted(KeyStoreError):
    """Not enough ready key material for the request (the KME answers 503)."""


class UnitUnavailable(KeyStoreError):
    """A key_ID is unknown, not ready, already delivered or not for this requester (400)."""

    def __init__(self, message: str, key_id: str) -> None:
        super().__init__(message)
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the owner KME recorded when it handed a key to a master."""

    key_id: str
    link: str
    master: str
    slave: str
    size: int
    parts: tuple[str, ...]


class Transaction:
    """Operations inside one transaction of a :class:`KeyStore` (see the module docstring)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        # (link, owner) -> change of the ready count, applied once the transaction commits.
        self.deltas: dict[tuple[str, str], int] = {}

    def _count(self, link: str, owner: str, change: int) -> None:
        self.deltas[(link, owner)] = self.deltas.get((link, owner), 0) + change

    def insert_block(
        self,
        *,
        block: int,
        link: str,
        owner: str,
        created: float,
        units: Sequence[tuple[str, bytes]],
    ) -> None:
        """Write a block's units as pending."""
        self._db.executemany(
            "INSERT INTO units (key_id, link, owner, block, created, state, key)"
            " VALUES (?, ?, ?, ?, ?, 0, ?)",
            [(key_id, link, owner, block, created, key) for key_id, key in units],
        )

    def mark_ready(self, block: int) -> int:
        """Make a pending block's units usable; returns how many changed."""
        rows = self._db.execute(
            "SELECT link, owner, COUNT(*) FROM units WHERE block = ? AND state = 0"
            " GROUP BY link, owner",
            (block,),
        ).fetchall()
        self._db.execute("UPDATE units SET state = 1 WHERE block = ? AND state = 0", (block,))
        for link, owner, count in rows:
            self._count(link, owner, count)
        return sum(r[2] for r in rows)

    def delete_block(self, block: int) -> None:
        """Drop a half-written block (it exists at this end only)."""
        self._db.execute("DELETE FROM units WHERE block = ? AND state = 0", (block,))

    def take_for_master(
        self,
        *,
        link: str,
        owner: str,
        master: str,
        slave: str,
        number: int,
        size: int,
        unit_bits: int,
        not_before: float,
    ) -> list[tuple[str, bytes]]:
        """Hand ``number`` keys of ``size`` bits to ``master`` for ``slave`` (enc_keys)."""
        per_key = -(-size // unit_bits)
        wanted = number * per_key
        rows = self._db.execute(
            "SELECT seq, key_id, key FROM units WHERE link = ? AND owner = ? AND state = 1"
            " AND created >= ? ORDER BY seq LIMIT ?",
            (link, owner, not_before, wanted),
        ).fetchall()
        if len(rows) < wanted:
            raise PoolExhausted(
                f"link {link}: {len(rows)} ready units, {wanted} needed for {number} key(s)"
                f" of {size} bits"
            )
        now = time.time()
        keys: list[tuple[str, bytes]] = []
        records = []
        for i in range(number):
            chunk = rows[i * per_key : (i + 1) * per_key]
            key_id = chunk[0][1]
            material = b"".join(r[2] for r in chunk)[: size // 8]
            keys.append((key_id, material))
            parts = " ".join(r[1] for r in chunk)
            records.append((key_id, link, master, slave, size, parts, now))
        self._db.executemany(
            "UPDATE units SET state = 2, key = NULL WHERE seq = ?", [(r[0],) for r in rows]
        )
        self._db.executemany("INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?)", records)
        self._count(link, owner, -wanted)
        return keys

    def take_for_slave(
        self,
        *,
        link: str,
        owner: str,
        deliveries: Sequence[Delivery],
        not_before: float,
    ) -> list[tuple[str, bytes]]:
        """Hand the slave its copies of keys the owner gave to the master (dec_keys)."""
        keys: list[tuple[str, bytes]] = []
        seqs: list[tuple[int]] = []
        for delivery in deliveries:
            chunk = []
            for part in delivery.parts:
                row = self._db.execute(
                    "SELECT seq, state, key, created, link, owner FROM units WHERE key_id = ?",
                    (part,),
                ).fetchone()
                if row is None or row[4] != link or row[5] != owner:
                    raise UnitUnavailable("key_ID unknown at this KME", delivery.key_id)
                if row[1] == DELIVERED:
                    raise UnitUnavailable("key_ID already delivered", delivery.key_id)
                if row[1] != READY or row[3] < not_before:
                    raise UnitUnavailable("key_ID expired or not ready", delivery.key_id)
                chunk.append(row)
            material = b"".join(r[2] for r in chunk)[: delivery.size // 8]
            keys.append((delivery.key_id, material))
            seqs.extend((r[0],) for r in chunk)
        self._db.executemany("UPDATE units SET state = 2, key = NULL WHERE seq = ?", seqs)
        self._count(link, owner, -len(seqs))
        return keys

    def expire(self, *, not_before: float, tombstones_before: float) -> int:
        """Delete ready units created before ``not_before``, and tombstones (delivered units,
        delivery records) older than ``tombstones_before``; returns the expired count."""
        db = self._db
        expired = db.execute(
            "SELECT link, owner, COUNT(*) FROM units WHERE state = 1 AND created < ?"
            " GROUP BY link, owner",
            (not_before,),
        ).fetchall()
        db.execute("DELETE FROM units WHERE state = 1 AND created < ?", (not_before,))
        db.execute("DELETE FROM units WHERE state = 2 AND created < ?", (tombstones_before,))
        db.execute("DELETE FROM deliveries WHERE delivered < ?", (tombstones_before,))
        for link, owner, count in expired:
            self._count(link, owner, -count)
        return sum(r[2] for r in expired)


class KeyPool(Protocol):
    """What a key store backend offers (:class:`KeyStore`, ``PostgresKeyStore``)."""

    @property
    def label(self) -> str:
        """Where the pool lives, for messages (never a password)."""
        ...

    def ready_count(self, link: str, owner: str) -> int: ...

    def run(self, operation: Callable[[Transaction], T]) -> T: ...

    def run_batch(
        self, operations: Sequence[Callable[[Transaction], Any]]
    ) -> list[Any | BaseException]: ...

    def lookup_delivery(self, key_id: str) -> Delivery | None: ...

    def has_block(self, block: int) -> bool: ...

    def pending_blocks(self) -> list[int]: ...

    def expire(self, *, not_before: float, tombstones_before: float) -> int: ...

    def snapshot(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


SQLITE_PREFIX = "sqlite:"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def open_store(spec: str | Path, *, schema: str = "qkd_keys") -> KeyStore | PostgresKeyStore:
    """Open the key pool that ``spec`` names.

    ``"sqlite:PATH"`` (or a :class:`~pathlib.Path`) opens the embedded SQLite store;
    ``"postgresql://..."`` a PostgreSQL store (needs the ``postgres`` extra), whose tables
    live in ``schema``. Example::

        store = open_store("sqlite:state/kme-a.sqlite")
    """
    if isinstance(spec, Path):
        return KeyStore(spec)
    if spec.startswith(SQLITE_PREFIX) and len(spec) > len(SQLITE_PREFIX):
        return KeyStore(spec[len(SQLITE_PREFIX) :])
    if spec.startswith(POSTGRES_PREFIXES):
        try:
            from qkd.delivery.store_postgres import PostgresKeyStore
        except ImportError as exc:
            raise KeyStoreError(str(exc)) from exc
        return PostgresKeyStore(spec, schema=schema)
    raise KeyStoreError(f"key store {spec!r}: give sqlite:PATH or a postgresql:// URL")


class KeyStore:
    """The SQLite key pool of one KME. Not thread-safe: use it from one thread at a time
    (a :class:`GroupCommitter` does), except :meth:`lookup_delivery` and :meth:`has_block`,
    which use their own connection and may be called from another thread.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            self._db.executescript(_SCHEMA)
            self._reader = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise KeyStoreError(
                f"cannot open the key store {self.path}: {exc}; check the path and permissions"
            ) from exc
        self._reader_lock = threading.Lock()
        self._ready: dict[tuple[str, str], int] = {}
        for link, owner, count in self._db.execute(
            "SELECT link, owner, COUNT(*) FROM units WHERE state = 1 GROUP BY link, owner"
        ):
            self._ready[(link, owner)] = count

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        db.execute("PRAGMA journal_mode = WAL")
        # FULL: the WAL is fsynced at every commit, so a committed delivery survives power loss
        # as well as a killed process.
        db.execute("PRAGMA synchronous = FULL")
        return db

    @property
    def label(self) -> str:
        """The database file, for messages."""
        return str(self.path)

    def close(self) -> None:
        self._db.close()
        self._reader.close()

    def ready_count(self, link: str, owner: str) -> int:
        """Ready units of ``link`` owned by ``owner`` (expired ones included until swept)."""
        return self._ready.get((link, owner), 0)

    def run(self, operation: Callable[[Transaction], T]) -> T:
        """Run ``operation`` in one transaction of its own."""
        result = self.run_batch([operation])[0]
        if isinstance(result, BaseException):
            raise result
        value: T = result
        return value

    def run_batch(
        self, operations: Sequence[Callable[[Transaction], Any]]
    ) -> list[Any | BaseException]:
        """Run ``operations`` in one transaction, each under its own SAVEPOINT.

        Returns each operation's result, or the exception that rolled it back. A failed
        COMMIT fails every operation.
        """
        results: list[Any | BaseException] = []
        deltas: dict[tuple[str, str], int] = {}
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for operation in operations:
                tx = Transaction(db)
                db.execute("SAVEPOINT op")
                try:
                    value = operation(tx)
                except Exception as exc:
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    results.append(exc)
                    continue
                db.execute("RELEASE op")
                results.append(value)
                for key, change in tx.deltas.items():
                    deltas[key] = deltas.get(key, 0) + change
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            error = KeyStoreError(f"key store {self.path}: transaction failed: {exc}")
            error.__cause__ = exc
            return [error] * len(operations)
        for key, change in deltas.items():
            self._ready[key] = self._ready.get(key, 0) + change
        return results

    # Read-side helpers: own connection, safe from another thread.

    def lookup_delivery(self, key_id: str) -> Delivery | None:
        """The delivery record of ``key_id`` at this (owner) KME, if it handed it out."""
        with self._reader_lock:
            row = self._reader.execute(
                "SELECT key_id, link, master, slave, size, parts FROM deliveries WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        if row is None:
            return None
        return Delivery(row[0], row[1], row[2], row[3], row[4], tuple(row[5].split()))

    def has_block(self, block: int) -> bool:
        with self._reader_lock:
            row = self._reader.execute(
                "SELECT 1 FROM units WHERE block = ? LIMIT 1", (block,)
            ).fetchone()
        return row is not None

    def pending_blocks(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT block FROM units WHERE state = 0")]

    def expire(self, *, not_before: float, tombstones_before: float) -> int:
        """Delete expired ready units and old tombstones in a transaction of their own."""
        return self.run(
            lambda tx: tx.expire(not_before=not_before, tombstones_before=tombstones_before)
        )

    def snapshot(self) -> dict[str, Any]:
        """Counts by state (for status extensions and tests); never key bytes."""
        rows = self._db.execute("SELECT state, COUNT(*) FROM units GROUP BY state").fetchall()
        names = {PENDING: "pending", READY: "ready", DELIVERED: "delivered"}
        return {names.get(s, str(s)): n for s, n in rows}


class GroupCommitter:
    """Group commit for a :class:`KeyStore` used from an asyncio event loop.

    Operations submitted while a commit is running wait, and the next commit takes them all
    at once; each commit runs on the store's own thread, so the event loop never blocks on
    an fsync and each batch costs one thread hand-off and one fsync.
    """

    def __init__(self, store: KeyPool, *, max_batch: int = 512) -> None:
        self.store = store
        self._max_batch = max_batch
        self._pending: list[tuple[Callable[[Transaction], Any], asyncio.Future[Any]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"keystore:{Path(store.label).name}"
        )

    async def run(self, operation: Callable[[Transaction], T]) -> T:
        """Run ``operation`` in the next group transaction; returns once it is durable."""
        if self._closed:
            raise KeyStoreError(f"key store {self.store.label} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((operation, future))
        if not self._draining:
            self._draining = True
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                operations = [op for op, _ in batch]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.store.run_batch, operations
                    )
                except BaseException as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(KeyStoreError(f"key store failed: {exc!r}"))
                    raise
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._draining = False

    async def aclose(self) -> None:
        """Finish the operations already submitted, then close the store."""
        self._closed = True
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task])
        await asyncio.get_running_loop().run_in_executor(self._executor, self.store.close)
        self._executor.shutdown(wait=True)
