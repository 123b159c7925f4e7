"""Replicas of one KME node of a network, sharing one PostgreSQL store (hazmat).

Used by :mod:`qkd.network.node` when the node's store is a ``postgresql://`` URL; docs/kme.md,
"Replicas of a network node", gives the configuration and the guarantees.

Theory of operation
-------------------
Every replica of a node is a full node process (both HTTPS listeners, its own routing view)
over the one store, :class:`~qkd.network.nodestore_postgres.PgNodeStore`. What a single node
keeps in memory and what must hold across replicas:

- *Link key sent.* Each outbound stream is a :class:`SharedStream`: the replica hands out
  bytes only inside a range it has claimed in the store (``claim_send``: the stored send mark
  moves up, committed, before a byte of the range is used), so two replicas never use one
  byte, whatever they crash. A frame that does not fit what is left of the claim claims
  again; the unused rest of the old claim is never used by anyone (it costs key, never
  safety). The claim is one short transaction in the event loop, once per 32 KiB of key
  (about 500 keys of 256 bits): the relay's hot path is unchanged.
- *Link key received.* A replica holds, in memory, only the slots it used itself. The store's
  ``recv_slots`` (a primary key) is the ledger the replicas share: the node acts on a frame
  (forwards it, or stores its key) only once its slots are committed there; at the last hop
  the slots and the keys are one operation. A conflict means another replica (or an earlier
  life of this one) used the key: the frame is refused with nothing stored.
- *Link-key blocks.* The block a replica receives or the leader writes goes to the store;
  every replica loads the others' blocks every :data:`POLL_S` (``link_blocks.ver``), and at
  once, from the store, when a frame names bytes it does not hold or a claim covers them.
- *Relayed keys* live in the store: ``dec_keys`` at any replica takes them under row locks.
- *One leader* per node holds a PostgreSQL session-level advisory lock named after the node's
  schema. It alone runs the link feeders (the lower end of each link draws blocks and hands
  them over) and the expiry sweep, and its feeding writes are fenced (they check, in their
  transaction, that its session still holds the lock). When it dies its session ends, the
  lock is free, and the next replica to take it (within :data:`LEAD_S`) takes over the
  blocks left pending and feeds.
- *Link liveness and simulated attacks.* A link is up at a node when its other end was heard
  lately; the replica that hears it records that in ``link_state``, and so the attack and cut
  an operator set at one replica, or the other end reported to one: every replica reads them
  every :data:`POLL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from qkd.delivery.etsi014.models import RequestRejected
from qkd.delivery.store import KeyStoreError
from qkd.delivery.store_postgres import AdvisoryLock
from qkd.network import audit
from qkd.network.nodestore import (
    LinkKeyStream,
    NodeCommitter,
    NodeStoreError,
    RelayedKey,
    StoreTx,
)
from qkd.network.nodestore_postgres import PgNodeStore, node_schema
from qkd.network.relay import LinkKeyError, RelayError

if TYPE_CHECKING:
    from qkd.network.node import LinkEnd
    from qkd.network.nodeconfig import NodeSettings

__all__ = ["CLAIM_BYTES", "LEAD_S", "POLL_S", "NodeReplicas", "SharedStream"]

_log = logging.getLogger(__name__)

CLAIM_BYTES = 32 * 1024
POLL_S = 0.1
LEAD_S = 0.25
# Block versions come from a sequence and commit in any order: each poll looks this far back.
_VER_WINDOW = 64
# Marks a node's own single-process bookkeeping (the written-ahead send and receive marks)
# as never needed: with replicas the claims and the slot table take their place.
_NEVER = 1 << 62


class SharedStream(LinkKeyStream):
    """One direction of one link's key at one replica (see the module docstring).

    Sender: hands out bytes only inside the range claimed from the store (``limit``).
    Receiver: loads from the store a block it does not hold when a frame names it.
    ``shared_mark`` (from the store, every poll) tells the sender where every replica's
    claims end and the receiver above which slot no replica has used key, for the counts of
    available key that routing and feeding read.
    """

    def __init__(self, link_id: str, direction: str, *, sending: bool, store: PgNodeStore) -> None:
        super().__init__(link_id, direction, sending=sending)
        self.store = store
        self.limit = 0
        self.shared_mark = 0
        self.claims = 0

    @property
    def available_bytes(self) -> int:
        if self.sending:
            claimed = self._held_between(self.next, max(self.next, self.limit))
            free = self._held_between(max(self.next, self.limit, self.shared_mark), 1 << 62)
            return claimed + free
        return self._held_between(max(self.floor_bytes, self.shared_mark), 1 << 62)

    def load(self, low: int, high: int) -> bool:
        """Add the store's blocks that overlap ``[low, high)`` and are not held; whether any
        was added. A sender loads ready blocks only."""
        try:
            rows = self.store.blocks_between(
                link=self.link_id,
                direction=self.direction,
                low=low,
                high=high,
                ready_only=self.sending,
            )
        except NodeStoreError as exc:
            raise LinkKeyError(f"link {self.link_id!r}: the store is unavailable") from exc
        added = False
        for start, data in rows:
            if self.has_block(start) is None:
                self.add_block(start, data)
                added = True
        return added

    def take(self, nbytes: int, *, align: int = 1) -> tuple[int, bytes]:
        if not self.sending:
            return super().take(nbytes, align=align)  # raises: this end only receives
        for attempt in range(3):
            before = self.next
            offset, data = -1, b""
            with contextlib.suppress(LinkKeyError):
                offset, data = super().take(nbytes, align=align)
            if offset >= 0 and offset + nbytes <= self.limit:
                return offset, data
            self.next = before  # nothing beyond the claim was used
            if attempt == 0 and before < self.limit and self.load(before, self.limit):
                continue
            try:
                claimed = self.store.claim_send(
                    link=self.link_id,
                    direction=self.direction,
                    at_least=before,
                    nbytes=max(CLAIM_BYTES, 2 * nbytes),
                )
            except NodeStoreError as exc:
                raise LinkKeyError(
                    f"link {self.link_id!r} {self.direction}: cannot claim link key, the"
                    " store is unavailable"
                ) from exc
            if claimed is None:
                break
            self.claims += 1
            self.next, self.limit = claimed.start, claimed.stop
            self.load(claimed.start, claimed.stop)
        raise LinkKeyError(
            f"link {self.link_id!r} {self.direction} is exhausted: {nbytes} bytes asked,"
            f" {self.available_bytes} left"
        )

    def peek(self, offset: int, nbytes: int) -> bytes:
        if not self.sending:
            found = self._block_at(offset)
            if found is None or offset + nbytes > found[0] + len(found[1]):
                self.load(offset, offset + max(nbytes, 1))
        return super().peek(offset, nbytes)


class NodeReplicas:
    """This replica's part in a replicated node: shared streams, the poller, the leader lock.

    Example (what :class:`~qkd.network.node.NetworkKme` does)::

        replicas = NodeReplicas.open(settings)
        committer = NodeCommitter(replicas.store)
        replicas.adopt(links)        # before loading the store
        replicas.after_load(links)
        await replicas.run(leader_work)
    """

    def __init__(self, store: PgNodeStore, node: str, replica: int) -> None:
        self.store = store
        self.node = node
        self.replica = replica
        self.leading = False
        self.leader_terms = 0
        self._ends: list[LinkEnd] = []
        self._ver = 0
        self._published: dict[str, float] = {}
        self._synced: dict[str, tuple[str | None, bool]] = {}
        self._versions: dict[str, int] = {}

    @classmethod
    def open(cls, settings: NodeSettings) -> NodeReplicas:
        assert settings.store_url is not None
        schema = node_schema(settings.network.network.name, settings.node)
        return cls(PgNodeStore(settings.store_url, schema=schema), settings.node, settings.replica)

    # ------------------------------------------------------------------ set-up

    def adopt(self, ends: Iterable[LinkEnd]) -> None:
        """Give each link end shared streams (before the node loads its store)."""
        for end in ends:
            end.out = SharedStream(end.id, end.out.direction, sending=True, store=self.store)
            end.inbound = SharedStream(
                end.id, end.inbound.direction, sending=False, store=self.store
            )
            self._ends.append(end)
            self._synced[end.id] = (end.attack, end.cut)
            self._versions[end.id] = 0

    def after_load(self, ends: Iterable[LinkEnd]) -> None:
        """The single process's written-ahead marks are not used: claims and the slot table
        take their place (see the module docstring)."""
        for end in ends:
            end.send_mark.value = _NEVER
            end.recv_mark.value = _NEVER
            end.inbound.set_floor(0)
            assert isinstance(end.out, SharedStream)
            end.out.limit = 0

    def status(self) -> dict[str, Any]:
        return {
            "index": self.replica,
            "pid": os.getpid(),
            "leader": self.leading,
            "claims": sum(e.out.claims for e in self._ends if isinstance(e.out, SharedStream)),
        }

    # ------------------------------------------------------------------ exactly once

    async def store_relayed(
        self,
        committer: NodeCommitter,
        *,
        link: str,
        direction: str,
        slots: Sequence[int],
        records: Sequence[RelayedKey],
    ) -> None:
        """The last hop: the frame's slots and its keys commit together, or neither."""

        def both(tx: StoreTx) -> None:
            tx.use_slots(link=link, direction=direction, slots=slots)
            tx.store_keys(records)

        try:
            await committer.run(both)
        except LinkKeyError as exc:
            raise RequestRejected(409, "relay frame refused: link key already used") from exc
        except RelayError as exc:
            raise RequestRejected(409, str(exc)) from exc
        except (NodeStoreError, KeyStoreError) as exc:
            raise RequestRejected(503, "the node's store is unavailable; retry") from exc

    async def slots_recorded(self, write: asyncio.Future[Any]) -> None:
        """An intermediate hop: wait until the frame's slots are committed (refused if another
        replica used them)."""
        try:
            await write
        except LinkKeyError as exc:
            raise RequestRejected(409, "relay frame refused: link key already used") from exc
        except Exception as exc:
            raise RequestRejected(503, "the node's store is unavailable; retry") from exc

    # ------------------------------------------------------------------ background work

    async def run(
        self, leader_work: Callable[[], Awaitable[list[Coroutine[Any, Any, None]]]]
    ) -> None:
        """Poll the store and contend for leadership until cancelled."""
        await asyncio.gather(self._poll(), self._lead(leader_work))

    async def _poll(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is away: try again next period
                _log.debug("node %s replica %d: poll failed: %r", self.node, self.replica, exc)
            await asyncio.sleep(POLL_S)

    async def poll_once(self) -> None:
        """Load the blocks other replicas wrote, the shared marks and the link state."""
        ends = {end.id: end for end in self._ends}
        changes = await asyncio.to_thread(self.store.block_changes, self._ver - _VER_WINDOW)
        wanted: list[tuple[str, str, int]] = []
        for link, direction, start, ready, ver in changes:
            self._ver = max(self._ver, ver)
            end = ends.get(link)
            if end is None:
                continue
            if direction == end.out.direction:
                if ready and end.out.has_block(start) is None:
                    wanted.append((link, direction, start))
            elif end.inbound.has_block(start) is None:
                wanted.append((link, direction, start))
        for link, direction, start, data in await asyncio.to_thread(self.store.block_data, wanted):
            end = ends[link]
            (end.out if direction == end.out.direction else end.inbound).add_block(start, data)
        sent, received = await asyncio.to_thread(
            self.store.link_marks, [(e.id, e.inbound.direction) for e in self._ends]
        )
        for end in self._ends:
            if isinstance(end.out, SharedStream):
                end.out.shared_mark = sent.get((end.id, end.out.direction), 0)
            if isinstance(end.inbound, SharedStream):
                end.inbound.shared_mark = received.get((end.id, end.inbound.direction), 0)
        await self._sync_links()

    async def _sync_links(self) -> None:
        heard = [e.id for e in self._ends if e.last_heard > self._published.get(e.id, 0.0)]
        changed = {
            e.id: (e.attack, e.cut) for e in self._ends if (e.attack, e.cut) != self._synced[e.id]
        }
        states = await asyncio.to_thread(self.store.sync_link_state, heard, changed)
        now = time.monotonic()
        for end in self._ends:
            state = states.get(end.id)
            if state is None:
                continue
            age, attack, cut, version = state
            if end.id in changed:
                self._synced[end.id] = changed[end.id]
                self._versions[end.id] = version
            elif version > self._versions[end.id]:
                end.attack, end.cut = attack, cut
                self._synced[end.id] = (attack, cut)
                self._versions[end.id] = version
            if age is not None:
                end.last_heard = max(end.last_heard, now - age)
            self._published[end.id] = end.last_heard

    async def _lead(
        self, leader_work: Callable[[], Awaitable[list[Coroutine[Any, Any, None]]]]
    ) -> None:
        lock = AdvisoryLock(self.store.conninfo, f"qkd-node-leader:{self.store.schema}")
        tasks: list[asyncio.Task[None]] = []
        try:
            while True:
                held = await asyncio.to_thread(lock.try_acquire)
                # A lock taken again on a new session (the old one was lost) is a new term:
                # another replica may have led in between.
                if self.leading and (not held or lock.fence() != self.store.fence):
                    self.store.fence = None
                    self.leading = False
                    await _cancel(tasks)
                    tasks = []
                if held and not self.leading:
                    self.store.fence = lock.fence()
                    try:
                        work = await leader_work()
                    except Exception as exc:  # the store is away: let another replica lead
                        _log.warning("node %s: taking over failed: %r", self.node, exc)
                        self.store.fence = None
                        await asyncio.to_thread(lock.release)
                        await asyncio.sleep(LEAD_S)
                        continue
                    self.leading = True
                    self.leader_terms += 1
                    audit.emit(
                        "replica_leader",
                        node=self.node,
                        reason=f"replica {self.replica} (pid {os.getpid()}) leads",
                    )
                    tasks = [asyncio.create_task(coroutine) for coroutine in work]
                await asyncio.sleep(LEAD_S)
        finally:
            self.store.fence = None
            self.leading = False
            await _cancel(tasks)
            await asyncio.to_thread(lock.release)

    async def take_over(
        self, ends: Iterable[LinkEnd], pending: Callable[[int, int, bytes, dict[str, Any]], Any]
    ) -> None:
        """A new leader: the feed marks and the blocks the old leader left pending, from the
        store (``pending`` makes the node's record of one: start, size, data, descriptor)."""
        feeds = await asyncio.to_thread(self.store.feed_marks)
        rows = await asyncio.to_thread(self.store.pending_blocks)
        for end in ends:
            if not end.lower:
                continue
            end.feed_next = max(end.feed_next, feeds.get(end.id, 0))
            low_dir, high_dir = end.out.direction, end.inbound.direction
            halves: dict[int, dict[str, tuple[bytes, str]]] = {}
            for link, direction, start, data, meta in rows:
                if link == end.id:
                    halves.setdefault(start, {})[direction] = (data, meta)
            end.pending = []
            for start, parts in sorted(halves.items()):
                if low_dir not in parts or high_dir not in parts:
                    continue
                low, meta = parts[low_dir]
                high = parts[high_dir][0]
                end.inbound.add_block(start, high)
                end.pending.append(pending(start, len(low), low + high, json.loads(meta or "{}")))


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
