"""The node's link-key streams and store: every byte once, frames never span blocks."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from qkd.network.nodestore import (
    LinkKeyStream,
    NodeStore,
    NodeStoreBackend,
    RelayedKey,
    StagedLedger,
    StoreTx,
)
from qkd.network.relay import LinkKeyError, RelayError, open_hop, seal_hop

SAES = {"master_sae_id": "sae-a", "slave_sae_id": "sae-b"}


def _pair(blocks: list[tuple[int, bytes]]) -> tuple[LinkKeyStream, LinkKeyStream]:
    sender = LinkKeyStream("A-B", "A>B", sending=True)
    receiver = LinkKeyStream("A-B", "A>B", sending=False)
    for start, data in blocks:
        sender.add_block(start, data)
        receiver.add_block(start, data)
    return sender, receiver


def test_frames_skip_gaps_and_block_ends_and_open_once() -> None:
    material = bytes(range(256)) * 16
    sender, receiver = _pair([(0, material[:96]), (256, material[:1024])])
    key = b"k" * 32  # 64 bytes of link key per frame
    frames = [seal_hop(uuid.uuid4(), key, ("A", "B"), 0, sender, **SAES) for _ in range(3)]
    # 0..64 fits in the first block, 64..128 does not (96 bytes): the next frame starts at 256.
    assert sender.next == 256 + 128
    assert sender.available_bytes == 1024 - 128
    for frame in frames:
        assert open_hop(frame, receiver).key == key
    with pytest.raises(LinkKeyError, match="already used"):
        open_hop(frames[0], receiver)
    with pytest.raises(LinkKeyError, match="only receives"):
        receiver.take(64)
    with pytest.raises(LinkKeyError, match="only sends"):
        sender.peek(0, 64)


def test_a_staged_ledger_uses_nothing_until_applied() -> None:
    sender, receiver = _pair([(0, bytes(4096))])
    frame = seal_hop(uuid.uuid4(), b"x" * 32, ("A", "B"), 0, sender, **SAES)
    staged = StagedLedger(receiver)
    open_hop(frame, staged)
    with pytest.raises(LinkKeyError, match="same key twice"):
        open_hop(frame, staged)
    assert not receiver.any_used(staged.slots)
    open_hop(frame, StagedLedger(receiver))  # still unused in the stream
    staged.apply()
    assert receiver.any_used(staged.slots)
    with pytest.raises(LinkKeyError, match="already used"):
        open_hop(frame, receiver)


def _random_blocks(rng: random.Random) -> tuple[list[tuple[int, bytes]], int]:
    """1 to 8 blocks of whole slots with gaps between them, shuffled; and where they end."""
    blocks, start = [], 0
    for _ in range(rng.randint(1, 8)):
        size = 32 * rng.randint(1, 40)
        start += 32 * rng.randint(0, 3)
        blocks.append((start, bytes(size)))
        start += size
    rng.shuffle(blocks)
    return blocks, start


def test_sender_availability_matches_a_recount() -> None:
    rng = random.Random(7)
    for _ in range(100):
        stream = LinkKeyStream("L", "A>B", sending=True)
        blocks, _ = _random_blocks(rng)
        added: list[tuple[int, bytes]] = []
        for block_start, data in blocks:
            stream.add_block(block_start, data)
            added.append((block_start, data))
            for _ in range(rng.randint(0, 3)):
                with contextlib.suppress(LinkKeyError):  # an exhausted stream is fine here
                    stream.take(32 * rng.randint(1, 4), align=32)
            recount = sum(max(0, s + len(d) - max(s, stream.next)) for s, d in added)
            assert stream.available_bytes == recount


def test_receiver_availability_matches_a_recount() -> None:
    """The receiver keeps its count of held bytes above the floor as blocks arrive; it must
    equal a recount over the blocks, the floor and the used slots at every step."""
    rng = random.Random(11)
    for _ in range(100):
        stream = LinkKeyStream("L", "A>B", sending=False)
        blocks, start = _random_blocks(rng)
        added: list[tuple[int, bytes]] = []
        floor_at = rng.randrange(len(blocks) + 1)
        for i, (block_start, data) in enumerate(blocks):
            if i == floor_at:  # a restart: the stored receive mark becomes the floor
                stream.set_floor(32 * rng.randint(0, start // 32))
            stream.add_block(block_start, data)
            added.append((block_start, data))
            for _ in range(rng.randint(0, 3)):
                at = 32 * rng.randint(0, start // 32)
                with contextlib.suppress(LinkKeyError):  # not held, or used already
                    stream.consume(at, 32 * rng.randint(1, 3))
            floor = stream.floor_bytes
            held = sum(max(0, s + len(d) - max(s, floor)) for s, d in added)
            used = sum(
                1
                for s, d in added
                for slot in range(s // 32, (s + len(d)) // 32)
                if slot * 32 >= floor and stream.any_used([slot])
            )
            assert stream.available_bytes == held - 32 * used


def test_trim_forgets_used_key_and_refuses_frames_far_behind() -> None:
    blocks = [(start, bytes(range(256)) * 4) for start in range(0, 8192, 1024)]
    sender, receiver = _pair(blocks)
    frames = [seal_hop(uuid.uuid4(), b"k" * 32, ("A", "B"), 0, sender, **SAES) for _ in range(80)]
    assert sender.next == 80 * 64
    late = frames.pop(3)  # delayed far behind the others
    for frame in frames:
        open_hop(frame, receiver)
    available = (sender.available_bytes, receiver.available_bytes)
    # The sender forgets the five whole blocks below next; availability does not change.
    assert sender.trim(window=2048) == 80 * 64
    assert sender.held_bytes == 3 * 1024
    # The receiver raises its floor to 2,048 bytes below the highest byte used.
    assert receiver.trim(window=2048) == 80 * 64 - 2048
    assert receiver.held_bytes == 8192 - 3 * 1024
    # The late frame's 64 bytes now lie below the floor: the receiver counts them as used.
    assert (sender.available_bytes, receiver.available_bytes) == (available[0], available[1] - 64)
    with pytest.raises(LinkKeyError, match="not held here"):
        open_hop(late, receiver)
    # What was sent within the window and after it still opens.
    fresh = seal_hop(uuid.uuid4(), b"f" * 32, ("A", "B"), 0, sender, **SAES)
    assert open_hop(fresh, receiver).key == b"f" * 32
    # A stream with nothing used trims nothing.
    idle_sender, idle_receiver = _pair(blocks)
    assert idle_sender.trim(window=0) == 0
    assert idle_receiver.trim(window=0) == 0
    assert idle_receiver.held_bytes == idle_sender.held_bytes == 8192


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeStoreBackend]:
    """The node store on each backend: SQLite, and PostgreSQL (a real server)."""
    opened: NodeStoreBackend
    if request.param == "sqlite":
        opened = NodeStore(tmp_path / "s.sqlite")
    else:
        from qkd.network.nodestore_postgres import PgNodeStore

        url = request.getfixturevalue("postgres_url")
        opened = PgNodeStore(url, schema="qkd_node_B")
    try:
        yield opened
    finally:
        opened.close()


def _run(store: NodeStoreBackend, operation: Callable[[StoreTx], Any]) -> Any:
    return store.run_batch([operation])[0]


def test_store_trim_deletes_blocks_and_slots_below_the_cut(store: NodeStoreBackend) -> None:
    def fill(tx: StoreTx) -> None:
        for start in (0, 1024, 2048):
            tx.add_block(link="A-B", direction="A>B", start=start, data=bytes(1024), ready=True)
            tx.add_block(link="A-B", direction="B>A", start=start, data=bytes(1024), ready=True)
        tx.add_block(link="A-B", direction="A>B", start=3072, data=bytes(1024), ready=False)
        tx.use_slots(link="A-B", direction="A>B", slots=[0, 31, 32, 70])

    assert _run(store, fill) is None
    assert _run(store, lambda tx: tx.trim(link="A-B", direction="A>B", below=4096)) is None
    rows = {(d, s, r) for _, d, s, _, r, _ in store.blocks()}
    # Ready blocks of that direction ending at or below 4,096 go; a pending one stays, and
    # the other direction is untouched.
    assert rows == {("A>B", 3072, False), ("B>A", 0, True), ("B>A", 1024, True),
                    ("B>A", 2048, True)}  # fmt: skip
    # The used slots are the replicas' shared ledger on PostgreSQL: only SQLite's one process
    # forgets them (its receive floor covers them).
    expected = {} if isinstance(store, NodeStore) else {("A-B", "A>B"): [0, 31, 32, 70]}
    assert store.used_slots() == expected


def test_the_store_refuses_a_second_use_and_a_second_key_id(store: NodeStoreBackend) -> None:
    def use(tx: StoreTx) -> None:
        tx.use_slots(link="A-B", direction="A>B", slots=[1, 2])

    assert _run(store, use) is None
    assert isinstance(_run(store, use), LinkKeyError)
    # One slot of a batch used already: none of the batch is recorded.
    assert isinstance(
        _run(store, lambda tx: tx.use_slots(link="A-B", direction="A>B", slots=[3, 2])),
        LinkKeyError,
    )
    key = RelayedKey("k1", "m", "s", ("A", "B"), b"x" * 32)
    assert _run(store, lambda tx: tx.store_keys([key])) is None
    assert isinstance(_run(store, lambda tx: tx.store_keys([key])), RelayError)

    def take(master: str = "m") -> Any:
        return _run(
            store,
            lambda tx: tx.take_keys(key_ids=["k1"], master=master, slave="s", not_before=0),
        )

    assert "not found" in str(take("other"))
    assert take() == [("k1", b"x" * 32, ("A", "B"))]
    assert "already delivered" in str(take())
    assert store.used_slots() == {("A-B", "A>B"): [1, 2]}
    assert store.relayed_count() == {"delivered": 1}


def test_the_store_keeps_blocks_and_marks(store: NodeStoreBackend) -> None:
    def write(tx: StoreTx) -> None:
        tx.add_block(link="A-B", direction="A>B", start=0, data=b"a" * 64, ready=True)
        tx.add_block(link="A-B", direction="B>A", start=0, data=b"b" * 64, ready=True)
        tx.set_send_mark(link="A-B", direction="B>A", next_byte=96)
        tx.set_send_mark(link="A-B", direction="B>A", next_byte=32)  # never goes down
        tx.set_recv_mark(link="A-B", direction="A>B", next_byte=64)

    assert _run(store, write) is None
    assert sorted(store.blocks()) == [
        ("A-B", "A>B", 0, b"a" * 64, True, ""),
        ("A-B", "B>A", 0, b"b" * 64, True, ""),
    ]
    assert store.send_marks() == {("A-B", "B>A"): 96}
    assert store.recv_marks() == {("A-B", "A>B"): 64}
    old = RelayedKey("k-old", "m", "s", ("A", "B"), b"y" * 32)
    assert _run(store, lambda tx: tx.store_keys([old])) is None
    expired = _run(store, lambda tx: tx.expire(not_before=1e12, tombstones_before=0))
    assert expired == 1
    assert store.relayed_count() == {}
