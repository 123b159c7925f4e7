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


def test_sender_availability_matches_a_recount() -> None:
    rng = random.Random(7)
    for _ in range(100):
        stream = LinkKeyStream("L", "A>B", sending=True)
        blocks, start = [], 0
        for _ in range(rng.randint(1, 8)):
            size = 32 * rng.randint(1, 40)
            start += 32 * rng.randint(0, 3)
            blocks.append((start, bytes(size)))
            start += size
        rng.shuffle(blocks)
        added: list[tuple[int, bytes]] = []
        for block_start, data in blocks:
            stream.add_block(block_start, data)
            added.append((block_start, data))
            for _ in range(rng.randint(0, 3)):
                with contextlib.suppress(LinkKeyError):  # an exhausted stream is fine here
                    stream.take(32 * rng.randint(1, 4), align=32)
            recount = sum(max(0, s + len(d) - max(s, stream.next)) for s, d in added)
            assert stream.available_bytes == recount


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
