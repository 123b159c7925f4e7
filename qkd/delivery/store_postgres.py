"""Shared QKD key store of one KME on PostgreSQL, for KME replicas (hazmat).

Theory of operation
-------------------
The same pool as :mod:`qkd.delivery.store` (read its docstring first): rows of ``units`` go
``pending`` (0) -> ``ready`` (1) -> ``delivered`` (2), a delivered unit keeps its row with the
bytes set to NULL (a tombstone), the owner records each delivery to a master in
``deliveries`` in the same transaction, and ready units older than ``max_age_s`` expire. Each
operation means what the SQLite store's does and fails with the same errors; what differs is
that several processes (the *replicas* of one KME) now open the same pool at once, so a row
can be wanted by two transactions at the same moment, and that each take is one statement
(one round trip to the server).

Exactly once across replicas rests on row locks taken inside the transaction that changes
the row, and on PostgreSQL's READ COMMITTED rechecking a locked row's condition against the
row's newest committed version:

- a master's keys (``take_for_master``) come from
  ``SELECT ... WHERE state = 1 ... ORDER BY seq LIMIT n FOR UPDATE SKIP LOCKED``, and the
  same statement marks them delivered and records the delivery only if it found all ``n``.
  Units that another replica's open transaction has locked are skipped rather than waited
  for, and a unit that another transaction delivered after this statement's snapshot fails
  the recheck of ``state = 1``. Two replicas therefore never take the same unit, and neither
  waits for the other. A recheck can leave fewer rows than asked for while others remain, so
  a short statement is run again (the units it locked stay this transaction's and come back)
  until it stops finding more;
- a slave's copies (``take_for_slave``) are locked with plain ``FOR UPDATE`` in ``seq`` order,
  and erased by the same statement only if every one is ready, fresh and of this link: a
  second request for the same key_ID waits for the first to commit, then sees the tombstone
  and is told "already delivered";
- the feeder's writes touch only pending rows, which no take reads; with replicas, each one
  first checks (``require_lock``) that the feeder lock is still held by the session that
  took it, so a leader that lost its lock writes nothing more.

A transaction that PostgreSQL aborts as a deadlock or serialization victim (a slave take
against the expiry sweep, say) is retried, up to three times; a failure of the connection
fails every operation of the batch, and the next batch reconnects.

Group commit works as in the SQLite store: :meth:`PostgresKeyStore.run_batch` runs many
operations in one transaction, each under its own SAVEPOINT, and nothing is answered before
its COMMIT returns (``synchronous_commit`` as the server has it, ``on`` by default: the
commit is flushed to the server's WAL).

Each KME keeps its tables in a schema of its own (by default ``qkd_keys``; the KME pair uses
its KME ID), so both KMEs of a pair can share one database. :meth:`PostgresKeyStore.ready_count`
answers from memory without blocking: the count is updated by this process's commits, and a
background thread re-reads the true counts every ``refresh_s`` seconds to see what the other
replicas took (adding this process's commits that finish meanwhile).

Crash semantics are those of the SQLite store: a key counts as delivered once its
transaction commits, so delivery is at most once; a replica killed mid-transaction holds
nothing, because the server rolls back the transaction of a dead connection and releases its
locks. :class:`AdvisoryLock` lets one replica at a time run the link feeder (see
``docs/kme.md``, "Scale-out store").

:class:`AsyncPostgresKeyStore` is the same store on psycopg's ``AsyncConnection``, for code
that lives in an event loop; its operations are coroutines taking an
:class:`AsyncPostgresTransaction`. Both run the same query plans (generators that yield SQL
and receive rows), so their semantics cannot drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, LiteralString, TypeVar

try:
    import psycopg
    import psycopg.errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the PostgreSQL key store needs psycopg 3: pip install 'qkd-agile[postgres]'"
    ) from exc

from qkd.delivery.store import (
    DELIVERED,
    READY,
    Delivery,
    KeyStoreError,
    PoolExhausted,
    Transaction,
    UnitUnavailable,
)

__all__ = [
    "AdvisoryLock",
    "AsyncPostgresKeyStore",
    "AsyncPostgresTransaction",
    "LockLost",
    "PostgresKeyStore",
    "PostgresTransaction",
    "describe_conninfo",
]

T = TypeVar("T")

# A query plan yields (SQL, parameters) and receives the rows (or the row count when the
# statement returns none); it returns the operation's result.
_Query = tuple[LiteralString, tuple[Any, ...] | dict[str, Any]]
_Plan = Generator[_Query, Any, T]
_Counter = Callable[[str, str, int], None]

_RETRIES = 3
_SCHEMA_LOCK = 0x71_6B_64_5F_73_63_68  # "qkd_sch": serialises CREATE SCHEMA across replicas

_SCHEMA: tuple[LiteralString, ...] = (
    """CREATE TABLE IF NOT EXISTS units (
        seq      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key_id   TEXT NOT NULL UNIQUE,
        link     TEXT NOT NULL,
        owner    TEXT NOT NULL,
        block    BIGINT NOT NULL,
        created  DOUBLE PRECISION NOT NULL,
        state    SMALLINT NOT NULL,
        key      BYTEA
    )""",
    # The ready units of a pool in seq order: a take reads the first few entries, however
    # many tombstones the table holds.
    "CREATE INDEX IF NOT EXISTS units_ready ON units (link, owner, seq) WHERE state = 1",
    "CREATE INDEX IF NOT EXISTS units_block ON units (block)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        key_id    TEXT PRIMARY KEY,
        link      TEXT NOT NULL,
        master    TEXT NOT NULL,
        slave     TEXT NOT NULL,
        size      INTEGER NOT NULL,
        parts     TEXT NOT NULL,
        delivered DOUBLE PRECISION NOT NULL
    )""",
)


class LockLost(KeyStoreError):
    """A write fenced by an :class:`AdvisoryLock` found the lock no longer held."""


def describe_conninfo(conninfo: str) -> str:
    """``conninfo`` without its password, for messages: ``postgresql user@host:port/db``."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "postgresql (unparsable connection string)"
    host = str(parts.get("host") or "localhost")
    port = str(parts.get("port") or "5432")
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"postgresql {user}{host}:{port}/{parts.get('dbname') or ''}"


# ---------------------------------------------------------------------- query plans


def _plan_schema(schema: str) -> Generator[sql.Composed | LiteralString, Any, None]:
    yield sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(_SCHEMA_LOCK))
    yield sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
    yield sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema))
    yield from _SCHEMA


def _plan_insert_block(
    *, block: int, link: str, owner: str, created: float, units: Sequence[tuple[str, bytes]]
) -> _Plan[None]:
    yield (
        "INSERT INTO units (key_id, link, owner, block, created, state, key)"
        " SELECT k, %s, %s, %s, %s, 0, v FROM unnest(%s::text[], %s::bytea[]) AS u(k, v)",
        (link, owner, block, created, [u[0] for u in units], [u[1] for u in units]),
    )


def _plan_mark_ready(count: _Counter, block: int) -> _Plan[int]:
    rows = yield (
        "WITH changed AS (UPDATE units SET state = 1 WHERE block = %s AND state = 0"
        " RETURNING link, owner) SELECT link, owner, COUNT(*) FROM changed GROUP BY link, owner",
        (block,),
    )
    for link, owner, changed in rows:
        count(link, owner, changed)
    return sum(int(r[2]) for r in rows)


def _plan_delete_block(block: int) -> _Plan[None]:
    yield ("DELETE FROM units WHERE block = %s AND state = 0", (block,))


# One statement hands out a master's keys: lock ``wanted`` ready units (skipping those other
# transactions hold), and only if there are that many, mark them delivered and record one
# delivery per key (consecutive units by seq, the first unit's key_ID). It returns the locked
# units, with their bytes as they were, whether or not there were enough.
_TAKE_FOR_MASTER: LiteralString = """
WITH picked AS (
    SELECT seq, key_id, key FROM units
    WHERE link = %(link)s AND owner = %(owner)s AND state = 1 AND created >= %(not_before)s
    ORDER BY seq LIMIT %(wanted)s FOR UPDATE SKIP LOCKED
), enough AS (
    SELECT COUNT(*) = %(wanted)s AS ok FROM picked
), numbered AS (
    SELECT seq, key_id, key, (ROW_NUMBER() OVER (ORDER BY seq) - 1) / %(per_key)s AS k
    FROM picked
), taken AS (
    UPDATE units SET state = 2, key = NULL FROM numbered
    WHERE units.seq = numbered.seq AND (SELECT ok FROM enough)
), recorded AS (
    INSERT INTO deliveries (key_id, link, master, slave, size, parts, delivered)
    SELECT (ARRAY_AGG(key_id ORDER BY seq))[1], %(link)s, %(master)s, %(slave)s, %(size)s,
           STRING_AGG(key_id, ' ' ORDER BY seq), %(now)s
    FROM numbered WHERE (SELECT ok FROM enough) GROUP BY k
)
SELECT seq, key_id, key FROM numbered ORDER BY seq
"""

# One statement releases a slave's copies: lock the named units in seq order (waiting for
# any other transaction on them), and only if every one is ready, fresh, and of this link
# and owner, erase them. It returns the rows as locked (the newest committed version), which
# the caller checks again to say which key_ID is at fault.
_TAKE_FOR_SLAVE: LiteralString = """
WITH locked AS (
    SELECT key_id, seq, state, key, created, link, owner FROM units
    WHERE key_id = ANY(%(parts)s) ORDER BY seq FOR UPDATE
), fine AS (
    SELECT COUNT(*) = %(count)s AND COALESCE(BOOL_AND(
        state = 1 AND created >= %(not_before)s AND link = %(link)s AND owner = %(owner)s
    ), FALSE) AS ok FROM locked
), taken AS (
    UPDATE units SET state = 2, key = NULL FROM locked
    WHERE units.seq = locked.seq AND (SELECT ok FROM fine)
)
SELECT key_id, seq, state, key, created, link, owner, (SELECT ok FROM fine) FROM locked
"""


def _plan_take_for_master(
    count: _Counter,
    *,
    link: str,
    owner: str,
    master: str,
    slave: str,
    number: int,
    size: int,
    unit_bits: int,
    not_before: float,
) -> _Plan[list[tuple[str, bytes]]]:
    per_key = -(-size // unit_bits)
    wanted = number * per_key
    params = {
        "link": link,
        "owner": owner,
        "master": master,
        "slave": slave,
        "size": size,
        "not_before": not_before,
        "wanted": wanted,
        "per_key": per_key,
    }
    rows: list[tuple[int, str, bytes]] = []
    # A unit that another transaction delivered while this statement waited drops out of
    # its result, leaving it short though other units are ready: run it again (the units it
    # locked stay locked by this transaction and come back) until it stops finding more.
    for _ in range(_RETRIES):
        found = yield (_TAKE_FOR_MASTER, {**params, "now": time.time()})
        if len(found) <= len(rows):
            break
        rows = found
        if len(rows) == wanted:
            break
    if len(rows) < wanted:
        raise PoolExhausted(
            f"link {link}: {len(rows)} ready units, {wanted} needed for {number} key(s)"
            f" of {size} bits"
        )
    keys: list[tuple[str, bytes]] = []
    for i in range(number):
        chunk = rows[i * per_key : (i + 1) * per_key]
        keys.append((chunk[0][1], b"".join(bytes(r[2]) for r in chunk)[: size // 8]))
    count(link, owner, -wanted)
    return keys


def _plan_take_for_slave(
    count: _Counter,
    *,
    link: str,
    owner: str,
    deliveries: Sequence[Delivery],
    not_before: float,
) -> _Plan[list[tuple[str, bytes]]]:
    wanted = [part for delivery in deliveries for part in delivery.parts]
    found = yield (
        _TAKE_FOR_SLAVE,
        {
            "parts": wanted,
            "count": len(wanted),
            "not_before": not_before,
            "link": link,
            "owner": owner,
        },
    )
    rows = {r[0]: r[1:] for r in found}
    keys: list[tuple[str, bytes]] = []
    for delivery in deliveries:
        chunk = []
        for part in delivery.parts:
            row = rows.get(part)
            if row is None or row[4] != link or row[5] != owner:
                raise UnitUnavailable("key_ID unknown at this KME", delivery.key_id)
            if row[1] == DELIVERED:
                raise UnitUnavailable("key_ID already delivered", delivery.key_id)
            if row[1] != READY or row[3] < not_before:
                raise UnitUnavailable("key_ID expired or not ready", delivery.key_id)
            chunk.append(row)
        material = b"".join(bytes(r[2]) for r in chunk)[: delivery.size // 8]
        keys.append((delivery.key_id, material))
    if not (found and found[0][7]):
        # The statement's own check and the one above agree; this guards the invariant that
        # nothing is handed out that the statement did not erase.
        raise UnitUnavailable("key_ID changed while it was being taken", deliveries[0].key_id)
    count(link, owner, -len(wanted))
    return keys


def _plan_require_lock(pid: int, key: int) -> _Plan[None]:
    # pg_locks shows a bigint advisory key as its high and low 32 bits, with objsubid 1.
    rows = yield (
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s"
        " AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
        (pid, (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
    )
    if not rows:
        raise LockLost("the feeder lock is no longer held by this replica's session")


def _plan_expire(count: _Counter, *, not_before: float, tombstones_before: float) -> _Plan[int]:
    expired = yield (
        "WITH gone AS (DELETE FROM units WHERE state = 1 AND created < %s RETURNING link, owner)"
        " SELECT link, owner, COUNT(*) FROM gone GROUP BY link, owner",
        (not_before,),
    )
    yield ("DELETE FROM units WHERE state = 2 AND created < %s", (tombstones_before,))
    yield ("DELETE FROM deliveries WHERE delivered < %s", (tombstones_before,))
    for link, owner, n in expired:
        count(link, owner, -n)
    return sum(int(r[2]) for r in expired)


_COUNTS: _Query = (
    "SELECT link, owner, COUNT(*) FROM units WHERE state = 1 GROUP BY link, owner",
    (),
)


def _result(cursor: psycopg.Cursor[Any]) -> Any:
    return cursor.fetchall() if cursor.description is not None else cursor.rowcount


def _drive(cursor: psycopg.Cursor[Any], plan: _Plan[T]) -> T:
    """Run a query plan on a cursor; returns the plan's result."""
    try:
        query, params = next(plan)
        while True:
            cursor.execute(query, params)
            query, params = plan.send(_result(cursor))
    except StopIteration as stop:
        value: T = stop.value
        return value
    finally:
        plan.close()


async def _adrive(cursor: psycopg.AsyncCursor[Any], plan: _Plan[T]) -> T:
    """Run a query plan on an async cursor; returns the plan's result."""
    try:
        query, params = next(plan)
        while True:
            await cursor.execute(query, params)
            rows = await cursor.fetchall() if cursor.description is not None else cursor.rowcount
            query, params = plan.send(rows)
    except StopIteration as stop:
        value: T = stop.value
        return value
    finally:
        plan.close()


def _lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name``."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _connect(conninfo: str, schema: str | None, where: str) -> psycopg.Connection[Any]:
    try:
        db = psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=10,
            application_name=f"qkd-kme-{os.getpid()}",
        )
        if schema is not None:
            db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        raise KeyStoreError(
            f"cannot open the key store {where}: {exc}; check the URL, that the server"
            " runs, and the credentials"
        ) from exc
    return db


def _is_retryable(exc: psycopg.Error) -> bool:
    return isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)


# ---------------------------------------------------------------------- the sync store


class PostgresTransaction(Transaction):
    """Operations inside one transaction of a :class:`PostgresKeyStore`; the methods and their
    meaning are :class:`qkd.delivery.store.Transaction`'s."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor
        self.deltas = {}

    def insert_block(
        self,
        *,
        block: int,
        link: str,
        owner: str,
        created: float,
        units: Sequence[tuple[str, bytes]],
    ) -> None:
        _drive(
            self._cursor,
            _plan_insert_block(block=block, link=link, owner=owner, created=created, units=units),
        )

    def mark_ready(self, block: int) -> int:
        return _drive(self._cursor, _plan_mark_ready(self._count, block))

    def delete_block(self, block: int) -> None:
        _drive(self._cursor, _plan_delete_block(block))

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
        return _drive(
            self._cursor,
            _plan_take_for_master(
                self._count,
                link=link,
                owner=owner,
                master=master,
                slave=slave,
                number=number,
                size=size,
                unit_bits=unit_bits,
                not_before=not_before,
            ),
        )

    def take_for_slave(
        self,
        *,
        link: str,
        owner: str,
        deliveries: Sequence[Delivery],
        not_before: float,
    ) -> list[tuple[str, bytes]]:
        return _drive(
            self._cursor,
            _plan_take_for_slave(
                self._count,
                link=link,
                owner=owner,
                deliveries=deliveries,
                not_before=not_before,
            ),
        )

    def require_lock(self, fence: tuple[int, int]) -> None:
        """Fail this operation (:class:`LockLost`) unless the session ``fence[0]`` still holds
        advisory lock ``fence[1]`` (see :meth:`AdvisoryLock.fence`): the check and the writes
        after it are one transaction, so a replica that lost the lock writes nothing more."""
        _drive(self._cursor, _plan_require_lock(*fence))

    def expire(self, *, not_before: float, tombstones_before: float) -> int:
        return _drive(
            self._cursor,
            _plan_expire(self._count, not_before=not_before, tombstones_before=tombstones_before),
        )


class PostgresKeyStore:
    """The key pool of one KME in a PostgreSQL schema, shareable by several processes.

    The same interface as :class:`qkd.delivery.store.KeyStore`, and like it not thread-safe
    except for :meth:`lookup_delivery`, :meth:`has_block`, :meth:`pending_blocks` and
    :meth:`ready_count`. Example::

        store = PostgresKeyStore("postgresql://kme@db.example/qkd", schema="KME-A")
        store.run(lambda tx: tx.mark_ready(block))
    """

    def __init__(self, conninfo: str, *, schema: str = "qkd_keys", refresh_s: float = 0.1) -> None:
        if not schema or len(schema.encode()) > 63:
            raise KeyStoreError(f"schema name {schema!r} must have 1 to 63 bytes")
        self.conninfo = conninfo
        self.schema = schema
        self.label = f"{describe_conninfo(conninfo)} schema {schema}"
        self._db = _connect(conninfo, None, self.label)
        try:
            with self._db.transaction(), self._db.cursor() as cursor:
                for statement in _plan_schema(schema):
                    cursor.execute(statement)
            self._db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        except psycopg.Error as exc:
            self._db.close()
            raise KeyStoreError(f"key store {self.label}: cannot create the tables: {exc}") from exc
        self._reader = _connect(conninfo, schema, self.label)
        self._reader_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._ready: dict[tuple[str, str], int] = {}
        self._since_refresh: dict[tuple[str, str], int] | None = None
        self.refresh_counts()
        self._stop = threading.Event()
        self._refresher = threading.Thread(
            target=self._refresh_loop, args=(refresh_s,), name=f"keystore-counts:{schema}"
        )
        self._refresher.daemon = True
        self._refresher.start()

    # ------------------------------------------------------------------ connections

    def _writer(self) -> psycopg.Connection[Any]:
        if self._db.closed or self._db.broken:
            self._db.close()
            self._db = _connect(self.conninfo, self.schema, self.label)
        return self._db

    def _read(self, query: _Query) -> Any:
        with self._reader_lock:
            if self._reader.closed or self._reader.broken:
                self._reader.close()
                self._reader = _connect(self.conninfo, self.schema, self.label)
            try:
                with self._reader.cursor() as cursor:
                    cursor.execute(query[0], query[1])
                    return _result(cursor)
            except psycopg.Error as exc:
                raise KeyStoreError(f"key store {self.label}: read failed: {exc}") from exc

    def close(self) -> None:
        self._stop.set()
        if self._refresher.is_alive() and self._refresher is not threading.current_thread():
            self._refresher.join(5)
        self._db.close()
        with self._reader_lock:
            self._reader.close()

    # ------------------------------------------------------------------ counts

    def ready_count(self, link: str, owner: str) -> int:
        """Ready units of ``link`` owned by ``owner``, as of at most ``refresh_s`` ago plus this
        process's own commits since."""
        return self._ready.get((link, owner), 0)

    def refresh_counts(self) -> None:
        """Re-read the ready counts that every replica's commits have left.

        This process's commits that finish while the count is read are added to what it
        reads. One that committed just before the read's snapshot is then counted twice for
        one period: a block's units briefly over-counted (the feeder waits a little), or a
        take's few units under-counted (it writes a few units more); never a whole block
        written twice, as replacing the counts outright would allow.
        """
        with self._refresh_lock:
            with self._counts_lock:
                self._since_refresh = {}
            try:
                rows = self._read(_COUNTS)
            except BaseException:
                with self._counts_lock:
                    self._since_refresh = None
                raise
            with self._counts_lock:
                counts = {(link, owner): int(n) for link, owner, n in rows}
                for key, change in (self._since_refresh or {}).items():
                    counts[key] = counts.get(key, 0) + change
                self._ready = counts
                self._since_refresh = None

    def _refresh_loop(self, period: float) -> None:
        while not self._stop.wait(period):
            try:
                self.refresh_counts()
            except KeyStoreError:
                # The server is away: keep the last counts; requests fail on their own.
                continue

    # ------------------------------------------------------------------ transactions

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
        """Run ``operations`` in one transaction, each under its own SAVEPOINT (none for a
        single operation). Returns each result or the exception that rolled it back; a failed
        COMMIT or a lost connection fails every operation."""
        deltas: dict[tuple[str, str], int] = {}
        try:
            db = self._writer()
            if len(operations) == 1:
                results = [self._attempt(db, operations[0], deltas)]
            else:
                with db.transaction():
                    results = [self._attempt(db, op, deltas) for op in operations]
        except (psycopg.Error, KeyStoreError) as exc:
            error = (
                exc
                if isinstance(exc, KeyStoreError)
                else KeyStoreError(f"key store {self.label}: transaction failed: {exc}")
            )
            if error is not exc:
                error.__cause__ = exc
            return [error] * len(operations)
        with self._counts_lock:
            for key, change in deltas.items():
                self._ready[key] = self._ready.get(key, 0) + change
                if self._since_refresh is not None:
                    self._since_refresh[key] = self._since_refresh.get(key, 0) + change
        return results

    def _attempt(
        self,
        db: psycopg.Connection[Any],
        operation: Callable[[Transaction], Any],
        deltas: dict[tuple[str, str], int],
    ) -> Any:
        """One operation in a transaction (or a savepoint of the batch's), retried when the
        server picks it as a deadlock or serialization victim. Connection failures and a
        failed COMMIT propagate; anything else becomes the operation's result."""
        for attempt in range(_RETRIES):
            with db.cursor() as cursor:
                tx = PostgresTransaction(cursor)
                try:
                    with db.transaction():
                        value = operation(tx)
                except psycopg.Error as exc:
                    if db.broken or db.closed:
                        raise
                    if _is_retryable(exc) and attempt + 1 < _RETRIES:
                        continue
                    error = KeyStoreError(f"key store {self.label}: {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    return error
                except Exception as exc:
                    return exc
            for key, change in tx.deltas.items():
                deltas[key] = deltas.get(key, 0) + change
            return value
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ reads

    def lookup_delivery(self, key_id: str) -> Delivery | None:
        """The delivery record of ``key_id`` at this (owner) KME, if any replica handed it out."""
        rows = self._read(
            (
                "SELECT key_id, link, master, slave, size, parts FROM deliveries WHERE key_id = %s",
                (key_id,),
            )
        )
        if not rows:
            return None
        row = rows[0]
        return Delivery(row[0], row[1], row[2], row[3], row[4], tuple(row[5].split()))

    def has_block(self, block: int) -> bool:
        return bool(self._read(("SELECT 1 FROM units WHERE block = %s LIMIT 1", (block,))))

    def pending_blocks(self) -> list[int]:
        return [r[0] for r in self._read(("SELECT DISTINCT block FROM units WHERE state = 0", ()))]

    def expire(self, *, not_before: float, tombstones_before: float) -> int:
        """Delete expired ready units and old tombstones in a transaction of their own."""
        return self.run(
            lambda tx: tx.expire(not_before=not_before, tombstones_before=tombstones_before)
        )

    def snapshot(self) -> dict[str, Any]:
        """Counts by state (for status extensions and tests); never key bytes."""
        rows = self._read(("SELECT state, COUNT(*) FROM units GROUP BY state", ()))
        names = {0: "pending", READY: "ready", DELIVERED: "delivered"}
        return {names.get(s, str(s)): int(n) for s, n in rows}


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a connection of its own.

    Held until :meth:`release`, or until the connection ends: when the holding process dies,
    the server closes its session and the lock is free again. Replicas use it to elect the
    one that runs the link feeder. Example::

        lock = AdvisoryLock(url, "feeder:KME-A:KME-B")
        if lock.try_acquire():
            ...  # lead while lock.held() stays true
    """

    def __init__(self, conninfo: str, name: str) -> None:
        self.conninfo = conninfo
        self.name = name
        self.key = _lock_key(name)
        self._db: psycopg.Connection[Any] | None = None
        self._held = False
        self._pid = 0

    def try_acquire(self) -> bool:
        """Take the lock if it is free; returns whether this object holds it. A follower
        keeps its connection between tries."""
        if self._held and self.held():
            return True
        try:
            if self._db is None or self._db.closed or self._db.broken:
                self._drop()
                self._db = _connect(self.conninfo, None, describe_conninfo(self.conninfo))
            row = self._db.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except (psycopg.Error, KeyStoreError):
            self._drop()
            return False
        self._held = bool(row and row[0])
        self._pid = self._db.info.backend_pid
        return self._held

    def fence(self) -> tuple[int, int]:
        """(holding session's process id, lock key), for
        :meth:`PostgresTransaction.require_lock` in the writes this lock guards."""
        if not self._held:
            raise LockLost(f"advisory lock {self.name!r} is not held")
        return self._pid, self.key

    def held(self) -> bool:
        """Whether the lock is still ours: its session answers and still holds it."""
        if not self._held or self._db is None:
            return False
        # A session-level lock lasts as long as its session: a session that answers holds it.
        try:
            row = self._db.execute("SELECT 1").fetchone()
        except psycopg.Error:
            row = None
        if row is None:
            self._drop()
        return row is not None

    def release(self) -> None:
        """Unlock (at once, not when the server notices the closed session), then close."""
        if self._held and self._db is not None and not self._db.closed:
            with contextlib.suppress(psycopg.Error):
                self._db.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._drop()

    def _drop(self) -> None:
        self._held = False
        if self._db is not None:
            self._db.close()
            self._db = None


# ---------------------------------------------------------------------- the async store


class AsyncPostgresTransaction:
    """The operations of :class:`qkd.delivery.store.Transaction`, as coroutines, inside one
    transaction of an :class:`AsyncPostgresKeyStore`."""

    def __init__(self, cursor: psycopg.AsyncCursor[Any]) -> None:
        self._cursor = cursor
        self.deltas: dict[tuple[str, str], int] = {}

    def _count(self, link: str, owner: str, change: int) -> None:
        self.deltas[(link, owner)] = self.deltas.get((link, owner), 0) + change

    async def insert_block(
        self,
        *,
        block: int,
        link: str,
        owner: str,
        created: float,
        units: Sequence[tuple[str, bytes]],
    ) -> None:
        await _adrive(
            self._cursor,
            _plan_insert_block(block=block, link=link, owner=owner, created=created, units=units),
        )

    async def mark_ready(self, block: int) -> int:
        return await _adrive(self._cursor, _plan_mark_ready(self._count, block))

    async def delete_block(self, block: int) -> None:
        await _adrive(self._cursor, _plan_delete_block(block))

    async def take_for_master(
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
        return await _adrive(
            self._cursor,
            _plan_take_for_master(
                self._count,
                link=link,
                owner=owner,
                master=master,
                slave=slave,
                number=number,
                size=size,
                unit_bits=unit_bits,
                not_before=not_before,
            ),
        )

    async def take_for_slave(
        self,
        *,
        link: str,
        owner: str,
        deliveries: Sequence[Delivery],
        not_before: float,
    ) -> list[tuple[str, bytes]]:
        return await _adrive(
            self._cursor,
            _plan_take_for_slave(
                self._count,
                link=link,
                owner=owner,
                deliveries=deliveries,
                not_before=not_before,
            ),
        )

    async def expire(self, *, not_before: float, tombstones_before: float) -> int:
        return await _adrive(
            self._cursor,
            _plan_expire(self._count, not_before=not_before, tombstones_before=tombstones_before),
        )


AsyncOperation = Callable[[AsyncPostgresTransaction], Awaitable[Any]]


class AsyncPostgresKeyStore:
    """:class:`PostgresKeyStore` on psycopg's ``AsyncConnection``, with group commit built in:
    operations awaited together share one transaction, each under its own SAVEPOINT.

    Open it with :meth:`open`; use it from one event loop. Example::

        store = await AsyncPostgresKeyStore.open(url, schema="KME-A")
        keys = await store.run(lambda tx: tx.take_for_master(...))
        await store.aclose()
    """

    def __init__(
        self,
        conninfo: str,
        schema: str,
        writer: psycopg.AsyncConnection[Any],
        reader: psycopg.AsyncConnection[Any],
        *,
        max_batch: int = 512,
    ) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.label = f"{describe_conninfo(conninfo)} schema {schema}"
        self._db = writer
        self._reader = reader
        self._reader_lock = asyncio.Lock()
        self._max_batch = max_batch
        self._pending: list[tuple[AsyncOperation, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, conninfo: str, *, schema: str = "qkd_keys", max_batch: int = 512
    ) -> AsyncPostgresKeyStore:
        if not schema or len(schema.encode()) > 63:
            raise KeyStoreError(f"schema name {schema!r} must have 1 to 63 bytes")
        label = f"{describe_conninfo(conninfo)} schema {schema}"
        connections: list[psycopg.AsyncConnection[Any]] = []
        try:
            for _ in range(2):
                db = await psycopg.AsyncConnection.connect(
                    conninfo,
                    autocommit=True,
                    connect_timeout=10,
                    application_name=f"qkd-kme-{os.getpid()}",
                )
                connections.append(db)
            writer, reader = connections
            async with writer.transaction(), writer.cursor() as cursor:
                for statement in _plan_schema(schema):
                    await cursor.execute(statement)
            for db in connections:
                await db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        except psycopg.Error as exc:
            for db in connections:
                await db.close()
            raise KeyStoreError(f"cannot open the key store {label}: {exc}") from exc
        return cls(conninfo, schema, writer, reader, max_batch=max_batch)

    async def run(self, operation: Callable[[AsyncPostgresTransaction], Awaitable[T]]) -> T:
        """Run ``operation`` in the next group transaction; returns once it is committed."""
        if self._closed:
            raise KeyStoreError(f"key store {self.label} is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((operation, future))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            results = await self.run_batch([op for op, _ in batch])
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def run_batch(self, operations: Sequence[AsyncOperation]) -> list[Any | BaseException]:
        """Run ``operations`` in one transaction, each under its own SAVEPOINT."""
        db = self._db
        results: list[Any | BaseException] = []
        try:
            if db.closed or db.broken:
                await db.close()
                db = self._db = await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True, connect_timeout=10
                )
                await db.execute(
                    sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema))
                )
            async with db.transaction():
                for operation in operations:
                    results.append(await self._attempt(db, operation))
        except psycopg.Error as exc:
            error = KeyStoreError(f"key store {self.label}: transaction failed: {exc}")
            error.__cause__ = exc
            return [error] * len(operations)
        return results

    async def _attempt(self, db: psycopg.AsyncConnection[Any], operation: AsyncOperation) -> Any:
        for attempt in range(_RETRIES):
            async with db.cursor() as cursor:
                tx = AsyncPostgresTransaction(cursor)
                try:
                    async with db.transaction():
                        return await operation(tx)
                except psycopg.Error as exc:
                    if db.broken or db.closed:
                        raise
                    if _is_retryable(exc) and attempt + 1 < _RETRIES:
                        continue
                    error = KeyStoreError(f"key store {self.label}: {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    return error
                except Exception as exc:
                    return exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, query: _Query) -> Any:
        async with self._reader_lock:
            try:
                async with self._reader.cursor() as cursor:
                    await cursor.execute(query[0], query[1])
                    if cursor.description is None:
                        return cursor.rowcount
                    return await cursor.fetchall()
            except psycopg.Error as exc:
                raise KeyStoreError(f"key store {self.label}: read failed: {exc}") from exc

    async def ready_count(self, link: str, owner: str) -> int:
        """Ready units of ``link`` owned by ``owner``, counted now across all replicas."""
        rows = await self._read(
            (
                "SELECT COUNT(*) FROM units WHERE link = %s AND owner = %s AND state = 1",
                (link, owner),
            )
        )
        return int(rows[0][0])

    async def lookup_delivery(self, key_id: str) -> Delivery | None:
        rows = await self._read(
            (
                "SELECT key_id, link, master, slave, size, parts FROM deliveries WHERE key_id = %s",
                (key_id,),
            )
        )
        if not rows:
            return None
        row = rows[0]
        return Delivery(row[0], row[1], row[2], row[3], row[4], tuple(row[5].split()))

    async def has_block(self, block: int) -> bool:
        return bool(await self._read(("SELECT 1 FROM units WHERE block = %s LIMIT 1", (block,))))

    async def pending_blocks(self) -> list[int]:
        rows = await self._read(("SELECT DISTINCT block FROM units WHERE state = 0", ()))
        return [r[0] for r in rows]

    async def expire(self, *, not_before: float, tombstones_before: float) -> int:
        return await self.run(
            lambda tx: tx.expire(not_before=not_before, tombstones_before=tombstones_before)
        )

    async def snapshot(self) -> dict[str, Any]:
        rows = await self._read(("SELECT state, COUNT(*) FROM units GROUP BY state", ()))
        names = {0: "pending", READY: "ready", DELIVERED: "delivered"}
        return {names.get(s, str(s)): int(n) for s, n in rows}

    async def aclose(self) -> None:
        """Finish the operations already submitted, then close both connections."""
        self._closed = True
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task])
        await self._db.close()
        await self._reader.close()
