"""The node's link-key streams and store: every byte once, frames never span blocks."""

from __future__ import annotations

import contextlib
import random
import uuid
from pathlib import Path

import pytest

from qkd.network.nodestore import LinkKeyStream, NodeStore, RelayedKey, StagedLedger, StoreTx
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


def test_the_store_refuses_a_second_use_and_a_second_key_id(tmp_path: Path) -> None:
    store = NodeStore(tmp_path / "s.sqlite")
    try:

        def use(tx: StoreTx) -> None:
            tx.use_slots(link="A-B", direction="A>B", slots=[1, 2])

        assert store.run_batch([use])[0] is None
        assert isinstance(store.run_batch([use])[0], LinkKeyError)
        key = RelayedKey("k1", "m", "s", ("A", "B"), b"x" * 32)
        assert store.run_batch([lambda tx: tx.store_keys([key])])[0] is None
        assert isinstance(store.run_batch([lambda tx: tx.store_keys([key])])[0], RelayError)
        taken = store.run_batch(
            [lambda tx: tx.take_keys(key_ids=["k1"], master="m", slave="s", not_before=0)]
        )[0]
        assert taken == [("k1", b"x" * 32, ("A", "B"))]
        again = store.run_batch(
            [lambda tx: tx.take_keys(key_ids=["k1"], master="m", slave="s", not_before=0)]
        )[0]
        assert "already delivered" in str(again)
        assert store.used_slots() == {("A-B", "A>B"): [1, 2]}
    finally:
        store.close()
