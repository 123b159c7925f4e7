"""Durable state of one KME node of a network on PostgreSQL, shared by the node's replicas.

Hazmat: plain bytes, no policy. Used by :mod:`qkd.network.node` and
:mod:`qkd.network.replicas`; read :mod:`qkd.network.nodestore` (the SQLite store) first.

Theory of operation
-------------------
The tables are the SQLite store's (``link_blocks``, ``send_marks``, ``recv_marks``,
``recv_slots``, ``feed_marks``, ``relayed``), in a schema of the node's own (so that every node
of a network may use one database), plus ``link_state`` (when some replica last heard from
the link's other end, and the link's simulated attack and cut, so that every replica sees
what one of them was told). Each operation of :class:`PgStoreTx` means what the SQLite one
means and fails with the same errors; what differs is that several processes (the node's
*replicas*) write at once:

- *link key sent*: replicas hand out disjoint ranges of each outbound stream. A replica
  *claims* a range with :meth:`PgNodeStore.claim_send`: it locks the direction's send mark
  (``SELECT ... FOR UPDATE``), moves it up by the range and commits before it uses a byte of
  it; a mark never goes down, so no two replicas (and no replica before and after a crash)
  ever get the same byte. A claim never reaches past the last ready block, so a node short
  of key does not burn offsets that future blocks will have;
- *link key received*: the slots a frame uses go into ``recv_slots`` (primary key), and the
  replica acts on the frame only once that insert has committed; a conflict is a replay (or
  a frame another replica took), refused with nothing stored. At the last hop the slots and
  the relayed keys are one operation, so a refused frame stores no key;
- *relayed keys*: ``take_keys`` locks the rows it hands out (``FOR UPDATE``); a second
  request for a key_ID, at any replica, waits for the first to commit and then finds it
  delivered;
- *feeding*: the writes only the leader makes (a new block's rows and the feed mark, marking
  a block ready or dropping it) first check, in the same transaction, that the advisory lock
  the leader took is still held by its session (``fence``), as the pair's feeder does
  (:class:`qkd.delivery.store_postgres.AdvisoryLock`). A block a replica receives from the
  other end is written ``ON CONFLICT DO NOTHING``: two replicas may both be sent one block
  (the other end re-sends a block after a failover), and the other end's own primary key
  means that one start offset never carries two different blocks.

Trimming (:meth:`~qkd.network.nodestore.LinkKeyStream.trim`): each replica forgets, in
memory, link key below its own sending position and below its own receive floor, and
deletes those blocks from the store (another replica that still needs one holds it in memory
since its claim, or refuses the frame; never a reuse). The used slots are never deleted
here: a replica's floor is its own, so a slot below it may still be checked by another.

``link_blocks.ver`` (a sequence, set on insert and when a block becomes ready) lets every
replica load the blocks that other replicas wrote (:meth:`PgNodeStore.block_changes`).

Every write goes through :class:`~qkd.network.nodestore.NodeCommitter` as with SQLite: one
transaction per batch, each operation under its own SAVEPOINT, nothing answered before the
COMMIT returns (``synchronous_commit`` as the server has it: ``on`` by default).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString

try:
    import psycopg
    import psycopg.errors
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "a node store on PostgreSQL needs psycopg 3: pip install 'qkd-agile[postgres]'"
    ) from exc

from qkd.delivery.store_postgres import describe_conninfo
from qkd.network.nodestore import (
    DELIVERED,
    READY,
    KeyUnavailable,
    NodeStoreError,
    RelayedKey,
    StoreTx,
)
from qkd.network.relay import LinkKeyError, RelayError

__all__ = ["LeaderLost", "PgNodeStore", "PgStoreTx", "node_schema"]

_SCHEMA_LOCK = 0x71_6B_64_5F_6E_6F_64  # "qkd_nod": serialises CREATE SCHEMA across replicas
_RETRIES = 3

_TABLES: tuple[LiteralString, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS block_ver",
    """CREATE TABLE IF NOT EXISTS link_blocks (
        link  TEXT NOT NULL,
        dir   TEXT NOT NULL,
        start BIGINT NOT NULL,
        data  BYTEA NOT NULL,
        ready BOOLEAN NOT NULL,
        meta  TEXT NOT NULL DEFAULT '',
        ver   BIGINT NOT NULL DEFAULT nextval('block_ver'),
        PRIMARY KEY (link, dir, start)
    )""",
    "CREATE INDEX IF NOT EXISTS link_blocks_ver ON link_blocks (ver)",
    """CREATE TABLE IF NOT EXISTS send_marks (
        link TEXT NOT NULL, dir TEXT NOT NULL, next BIGINT NOT NULL, PRIMARY KEY (link, dir)
    )""",
    """CREATE TABLE IF NOT EXISTS recv_marks (
        link TEXT NOT NULL, dir TEXT NOT NULL, next BIGINT NOT NULL, PRIMARY KEY (link, dir)
    )""",
    """CREATE TABLE IF NOT EXISTS recv_slots (
        link TEXT NOT NULL, dir TEXT NOT NULL, slot BIGINT NOT NULL, PRIMARY KEY (link, dir, slot)
    )""",
    "CREATE TABLE IF NOT EXISTS feed_marks (link TEXT PRIMARY KEY, next BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS relayed (
        key_id  TEXT PRIMARY KEY,
        master  TEXT NOT NULL,
        slave   TEXT NOT NULL,
        path    TEXT NOT NULL,
        key     BYTEA,
        created DOUBLE PRECISION NOT NULL,
        state   SMALLINT NOT NULL
    )""",
    # Every claim of outbound link key, kept for audit: the claims of one direction never
    # overlap (a soak checks it), and every slot the other end used lies in one.
    """CREATE TABLE IF NOT EXISTS send_claims (
        id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        link    TEXT NOT NULL,
        dir     TEXT NOT NULL,
        low     BIGINT NOT NULL,
        high    BIGINT NOT NULL,
        pid     INTEGER NOT NULL,
        claimed TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS link_state (
        link    TEXT PRIMARY KEY,
        heard   TIMESTAMPTZ,
        attack  TEXT,
        cut     BOOLEAN NOT NULL DEFAULT false,
        version BIGINT NOT NULL DEFAULT 0
    )""",
)


class LeaderLost(NodeStoreError):
    """A write only the node's leader may make found the leader's lock no longer held."""


def node_schema(network: str, node: str) -> str:
    """The schema of ``node``'s tables: ``qkd_node_<node>`` (at most 63 bytes)."""
    name = f"qkd_node_{node}"
    if len(name.encode()) > 63:
        raise NodeStoreError(
            f"node name {node!r} is too long for a PostgreSQL schema name (of network"
            f" {network!r}); at most 54 bytes"
        )
    return name


def _connect(conninfo: str, schema: str, label: str) -> psycopg.Connection[Any]:
    try:
        db = psycopg.connect(
            conninfo,
            autocommit=True,
            connect_timeout=5,
            application_name=f"qkd-node-{schema}",
        )
        db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        # Claims run in the event loop: a server that hangs fails them instead of the loop.
        db.execute("SET statement_timeout = '5s'")
    except psycopg.Error as exc:
        raise NodeStoreError(
            f"cannot open the node store {label}: {exc}; check the URL, that the server runs,"
            " and the credentials"
        ) from exc
    return db


class PgStoreTx(StoreTx):
    """The operations of :class:`~qkd.network.nodestore.StoreTx` inside one transaction of a
    :class:`PgNodeStore` (see the module docstring for what differs)."""

    def __init__(self, cursor: psycopg.Cursor[Any], fence: tuple[int, int] | None) -> None:
        self._cursor = cursor
        self._fence = fence

    def _require_leader(self) -> None:
        if self._fence is None:
            raise LeaderLost("this replica is not the node's leader")
        pid, key = self._fence
        # pg_locks shows a bigint advisory key as its high and low 32 bits, with objsubid 1.
        self._cursor.execute(
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = %s"
            " AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1",
            (pid, (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        )
        if not self._cursor.fetchall():
            raise LeaderLost("the leader lock is no longer held by this replica's session")

    def add_block(
        self, *, link: str, direction: str, start: int, data: bytes, ready: bool, meta: str = ""
    ) -> None:
        if ready:
            # A block the other end sent: two replicas may be sent the same block.
            self._cursor.execute(
                "INSERT INTO link_blocks (link, dir, start, data, ready, meta)"
                " VALUES (%s, %s, %s, %s, true, %s) ON CONFLICT DO NOTHING",
                (link, direction, start, data, meta),
            )
            return
        self._cursor.execute(
            "INSERT INTO link_blocks (link, dir, start, data, ready, meta)"
            " VALUES (%s, %s, %s, %s, false, %s)",
            (link, direction, start, data, meta),
        )

    def mark_ready(self, *, link: str, start: int) -> None:
        self._require_leader()
        self._cursor.execute(
            "UPDATE link_blocks SET ready = true, ver = nextval('block_ver')"
            " WHERE link = %s AND start = %s AND NOT ready",
            (link, start),
        )

    def drop_pending(self, *, link: str, start: int) -> None:
        self._require_leader()
        self._cursor.execute(
            "DELETE FROM link_blocks WHERE link = %s AND start = %s AND NOT ready", (link, start)
        )

    def set_feed_mark(self, *, link: str, next_start: int) -> None:
        self._require_leader()
        self._cursor.execute(
            "INSERT INTO feed_marks (link, next) VALUES (%s, %s) ON CONFLICT (link)"
            " DO UPDATE SET next = GREATEST(feed_marks.next, excluded.next)",
            (link, next_start),
        )

    def set_recv_mark(self, *, link: str, direction: str, next_byte: int) -> None:
        self._cursor.execute(
            "INSERT INTO recv_marks (link, dir, next) VALUES (%s, %s, %s) ON CONFLICT (link, dir)"
            " DO UPDATE SET next = GREATEST(recv_marks.next, excluded.next)",
            (link, direction, next_byte),
        )

    def set_send_mark(self, *, link: str, direction: str, next_byte: int) -> None:
        self._cursor.execute(
            "INSERT INTO send_marks (link, dir, next) VALUES (%s, %s, %s) ON CONFLICT (link, dir)"
            " DO UPDATE SET next = GREATEST(send_marks.next, excluded.next)",
            (link, direction, next_byte),
        )

    def use_slots(self, *, link: str, direction: str, slots: Sequence[int]) -> None:
        try:
            with self._cursor.connection.transaction():
                self._cursor.execute(
                    "INSERT INTO recv_slots (link, dir, slot)"
                    " SELECT %s, %s, s FROM unnest(%s::bigint[]) AS u(s)",
                    (link, direction, list(slots)),
                )
        except psycopg.errors.UniqueViolation as exc:
            raise LinkKeyError(f"link {link!r} {direction}: link key already used") from exc

    def trim(self, *, link: str, direction: str, below: int) -> None:
        """Delete this direction's ready blocks that end at or below ``below``. Unlike SQLite's,
        the used slots stay: they are the ledger every replica checks, and one replica's
        floor is not the others' (see the module docstring)."""
        self._cursor.execute(
            "DELETE FROM link_blocks WHERE link = %s AND dir = %s AND ready"
            " AND start + octet_length(data) <= %s",
            (link, direction, below),
        )

    def store_keys(self, keys: Sequence[RelayedKey]) -> None:
        now = time.time()
        try:
            with self._cursor.connection.transaction():
                self._cursor.execute(
                    "INSERT INTO relayed (key_id, master, slave, path, key, created, state)"
                    " SELECT k, m, s, p, v, %s, %s"
                    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bytea[])"
                    " AS u(k, m, s, p, v)",
                    (
                        now,
                        READY,
                        [k.key_id for k in keys],
                        [k.master for k in keys],
                        [k.slave for k in keys],
                        [" ".join(k.path) for k in keys],
                        [k.key for k in keys],
                    ),
                )
        except psycopg.errors.UniqueViolation as exc:
            raise RelayError("a relayed key_ID is already stored here; refused") from exc

    def take_keys(
        self, *, key_ids: Sequence[str], master: str, slave: str, not_before: float
    ) -> list[tuple[str, bytes, tuple[str, ...]]]:
        # Row locks in key_ID order (two requests naming the same keys cannot deadlock); a
        # request for a key another replica is handing out waits for that commit, then finds
        # the row delivered.
        self._cursor.execute(
            "SELECT key_id, master, slave, key, created, state, path FROM relayed"
            " WHERE key_id = ANY(%s) ORDER BY key_id FOR UPDATE",
            (list(key_ids),),
        )
        rows = {r[0]: r for r in self._cursor.fetchall()}
        out: list[tuple[str, bytes, tuple[str, ...]]] = []
        for key_id in key_ids:
            row = rows.get(key_id)
            if row is None or row[1] != master or row[2] != slave:
                raise KeyUnavailable("key_ID not found for this master and slave", key_id)
            if row[5] == DELIVERED or row[3] is None:
                raise KeyUnavailable("key_ID already delivered", key_id)
            if row[4] < not_before:
                raise KeyUnavailable("key_ID expired", key_id)
            out.append((key_id, bytes(row[3]), tuple(row[6].split(" "))))
        self._cursor.execute(
            "UPDATE relayed SET state = %s, key = NULL WHERE key_id = ANY(%s)",
            (DELIVERED, list(key_ids)),
        )
        return out

    def expire(self, *, not_before: float, tombstones_before: float) -> int:
        self._cursor.execute(
            "DELETE FROM relayed WHERE (state = %s AND created < %s) OR created < %s",
            (READY, not_before, tombstones_before),
        )
        return self._cursor.rowcount


class PgNodeStore:
    """The store of one node in a PostgreSQL schema, shared by the node's replicas.

    The interface of :class:`~qkd.network.nodestore.NodeStore` (``run_batch`` from the
    committer's thread), plus what replicas need: :meth:`claim_send`, :meth:`blocks_between`,
    :meth:`block_changes`, :meth:`link_marks`, :meth:`sync_link_state` and :attr:`fence`.
    Example::

        store = PgNodeStore("postgresql://kme@db.example/qkd", schema="qkd_node_A")
        store.run_batch([lambda tx: tx.use_slots(link="A-B", direction="B>A", slots=[0])])
    """

    def __init__(self, conninfo: str, *, schema: str) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self.label = f"{describe_conninfo(conninfo)} schema {schema}"
        # The leader's fence (session pid, lock key), set while this replica leads.
        self.fence: tuple[int, int] | None = None
        self._db = _connect_plain(conninfo, self.label)
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                self._db.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                self._db.execute(
                    sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema))
                )
                for statement in _TABLES:
                    self._db.execute(statement)
            self._db.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        except psycopg.Error as exc:
            self._db.close()
            raise NodeStoreError(
                f"node store {self.label}: cannot create the tables: {exc}"
            ) from exc
        # Reads come from the replica poller's thread and, for claims and blocks wanted at
        # once, from the event loop: a connection for each, so that the loop never waits
        # behind a poll.
        self._readers = {
            where: (_connect(conninfo, schema, self.label), threading.Lock())
            for where in ("poll", "loop")
        }

    # ------------------------------------------------------------------ connections

    def _writer(self) -> psycopg.Connection[Any]:
        if self._db.closed or self._db.broken:
            self._db.close()
            self._db = _connect(self.conninfo, self.schema, self.label)
        return self._db

    @contextmanager
    def _reading(self, where: str = "poll") -> Iterator[psycopg.Connection[Any]]:
        db, lock = self._readers[where]
        with lock:
            if db.closed or db.broken:
                db.close()
                db = _connect(self.conninfo, self.schema, self.label)
                self._readers[where] = (db, lock)
            try:
                yield db
            except psycopg.Error as exc:
                raise NodeStoreError(f"node store {self.label}: {exc}") from exc

    def _rows(
        self, query: LiteralString, params: Sequence[Any] = (), where: str = "poll"
    ) -> list[tuple[Any, ...]]:
        with self._reading(where) as db:
            return db.execute(query, params).fetchall()

    def close(self) -> None:
        self._db.close()
        for db, lock in self._readers.values():
            with lock:
                db.close()

    # ------------------------------------------------------------------ NodeStore's reads

    def blocks(self) -> list[tuple[str, str, int, bytes, bool, str]]:
        return [
            (r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5])
            for r in self._rows(
                "SELECT link, dir, start, data, ready, meta FROM link_blocks ORDER BY start"
            )
        ]

    def send_marks(self) -> dict[tuple[str, str], int]:
        return {(r[0], r[1]): r[2] for r in self._rows("SELECT link, dir, next FROM send_marks")}

    def recv_marks(self) -> dict[tuple[str, str], int]:
        return {(r[0], r[1]): r[2] for r in self._rows("SELECT link, dir, next FROM recv_marks")}

    def feed_marks(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._rows("SELECT link, next FROM feed_marks")}

    def used_slots(self) -> dict[tuple[str, str], list[int]]:
        out: dict[tuple[str, str], list[int]] = {}
        for link, direction, slot in self._rows(
            "SELECT link, dir, slot FROM recv_slots ORDER BY slot"
        ):
            out.setdefault((link, direction), []).append(slot)
        return out

    def relayed_count(self) -> dict[str, int]:
        rows = self._rows("SELECT state, COUNT(*) FROM relayed GROUP BY state")
        names = {READY: "ready", DELIVERED: "delivered"}
        return {names.get(s, str(s)): int(n) for s, n in rows}

    # ------------------------------------------------------------------ what replicas add

    def claim_send(self, *, link: str, direction: str, at_least: int, nbytes: int) -> range | None:
        """Claim ``nbytes`` of the outbound stream at or above ``at_least`` for this replica
        (fewer if the ready blocks end sooner); committed when it returns. None when no ready
        key lies above the mark."""
        with self._reading("loop") as db, db.transaction():
            db.execute(
                "INSERT INTO send_marks (link, dir, next) VALUES (%s, %s, 0)"
                " ON CONFLICT DO NOTHING",
                (link, direction),
            )
            (mark,) = db.execute(
                "SELECT next FROM send_marks WHERE link = %s AND dir = %s FOR UPDATE",
                (link, direction),
            ).fetchone() or (0,)
            (top,) = db.execute(
                "SELECT COALESCE(max(start + octet_length(data)), 0) FROM link_blocks"
                " WHERE link = %s AND dir = %s AND ready",
                (link, direction),
            ).fetchone() or (0,)
            low = max(int(mark), at_least)
            if low >= top:
                return None
            high = min(low + nbytes, int(top))
            db.execute(
                "UPDATE send_marks SET next = %s WHERE link = %s AND dir = %s",
                (high, link, direction),
            )
            db.execute(
                "INSERT INTO send_claims (link, dir, low, high, pid) VALUES (%s, %s, %s, %s, %s)",
                (link, direction, low, high, os.getpid()),
            )
        return range(low, high)

    def blocks_between(
        self, *, link: str, direction: str, low: int, high: int, ready_only: bool
    ) -> list[tuple[int, bytes]]:
        """(start, data) of the blocks of one direction that overlap ``[low, high)``."""
        rows = self._rows(
            "SELECT start, data FROM link_blocks WHERE link = %s AND dir = %s AND start < %s"
            " AND start + octet_length(data) > %s AND (ready OR NOT %s) ORDER BY start",
            (link, direction, high, low, ready_only),
            "loop",
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def pending_blocks(self) -> list[tuple[str, str, int, bytes, str]]:
        """(link, direction, start, data, meta) of every block not yet ready."""
        return [
            (r[0], r[1], int(r[2]), bytes(r[3]), r[4])
            for r in self._rows(
                "SELECT link, dir, start, data, meta FROM link_blocks WHERE NOT ready"
                " ORDER BY start"
            )
        ]

    def block_changes(self, since: int) -> list[tuple[str, str, int, bool, int]]:
        """(link, direction, start, ready, ver) of blocks written or made ready after version
        ``since``, without their bytes."""
        return [
            (r[0], r[1], int(r[2]), bool(r[3]), int(r[4]))
            for r in self._rows(
                "SELECT link, dir, start, ready, ver FROM link_blocks WHERE ver > %s ORDER BY ver",
                (since,),
            )
        ]

    def block_data(
        self, wanted: Sequence[tuple[str, str, int]]
    ) -> list[tuple[str, str, int, bytes]]:
        if not wanted:
            return []
        rows = self._rows(
            "SELECT b.link, b.dir, b.start, b.data FROM link_blocks b JOIN"
            " unnest(%s::text[], %s::text[], %s::bigint[]) AS w(link, dir, start)"
            " ON b.link = w.link AND b.dir = w.dir AND b.start = w.start",
            ([w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted]),
        )
        return [(r[0], r[1], int(r[2]), bytes(r[3])) for r in rows]

    def link_marks(
        self, directions: Sequence[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        """(send mark, byte above the highest used receive slot) per (link, direction)."""
        sent = self.send_marks()
        links = [d[0] for d in directions]
        dirs = [d[1] for d in directions]
        rows = self._rows(
            "SELECT w.link, w.dir, (SELECT slot FROM recv_slots r WHERE r.link = w.link"
            " AND r.dir = w.dir ORDER BY slot DESC LIMIT 1)"
            " FROM unnest(%s::text[], %s::text[]) AS w(link, dir)",
            (links, dirs),
        )
        received = {(r[0], r[1]): (int(r[2]) + 1) * 32 for r in rows if r[2] is not None}
        return sent, received

    def sync_link_state(
        self,
        heard: Sequence[str],
        changed: dict[str, tuple[str | None, bool]],
    ) -> dict[str, tuple[float | None, str | None, bool, int]]:
        """Record that this replica heard the far end of ``heard`` links just now and the
        ``changed`` (attack, cut) of links; returns every link's (seconds since some replica
        heard it, attack, cut, version)."""
        with self._reading() as db, db.transaction():
            for link in heard:
                db.execute(
                    "INSERT INTO link_state (link, heard) VALUES (%s, now())"
                    " ON CONFLICT (link) DO UPDATE SET heard = now()",
                    (link,),
                )
            for link, (attack, cut) in changed.items():
                db.execute(
                    "INSERT INTO link_state (link, attack, cut, version) VALUES (%s, %s, %s, 1)"
                    " ON CONFLICT (link) DO UPDATE SET attack = excluded.attack,"
                    " cut = excluded.cut, version = link_state.version + 1",
                    (link, attack, cut),
                )
            rows = db.execute(
                "SELECT link, EXTRACT(EPOCH FROM now() - heard)::float8, attack, cut, version"
                " FROM link_state"
            ).fetchall()
        return {r[0]: (r[1], r[2], bool(r[3]), int(r[4])) for r in rows}

    # ------------------------------------------------------------------ transactions

    def run_batch(self, operations: Sequence[Callable[[StoreTx], Any]]) -> list[Any]:
        """Run ``operations`` in one transaction, each under its own SAVEPOINT; returns each
        result or the exception that rolled it back. A failed COMMIT or a lost connection
        fails them all (the next batch reconnects)."""
        fence = self.fence
        try:
            db = self._writer()
            with db.transaction():
                results = [self._attempt(db, op, fence) for op in operations]
        except psycopg.Error as exc:
            error = NodeStoreError(f"node store {self.label}: transaction failed: {exc}")
            error.__cause__ = exc
            return [error] * len(operations)
        return results

    def _attempt(
        self,
        db: psycopg.Connection[Any],
        operation: Callable[[StoreTx], Any],
        fence: tuple[int, int] | None,
    ) -> Any:
        for attempt in range(_RETRIES):
            with db.cursor() as cursor:
                try:
                    with db.transaction():
                        return operation(PgStoreTx(cursor, fence))
                except psycopg.Error as exc:
                    if db.broken or db.closed:
                        raise
                    retry = isinstance(
                        exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure
                    )
                    if retry and attempt + 1 < _RETRIES:
                        continue
                    error = NodeStoreError(f"node store {self.label}: {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    return error
                except Exception as exc:
                    return exc
        raise AssertionError("unreachable")  # pragma: no cover


def _connect_plain(conninfo: str, label: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        raise NodeStoreError(
            f"cannot open the node store {label}: {exc}; check the URL, that the server runs,"
            " and the credentials"
        ) from exc
