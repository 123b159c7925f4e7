"""Key relay, one hop (qkd.network.relay): the message, Wegman-Carter tags, the ledger."""

from __future__ import annotations

import itertools
import math
import os
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd import QKDError
from qkd.network.relay import (
    AUTH_KEY_BYTES,
    MAX_KEY_BYTES,
    MAX_NAME_BYTES,
    MAX_PATH_NODES,
    MAX_SAE_ID_BYTES,
    SLOT_BYTES,
    VERSION,
    LinkKeyError,
    LinkKeyLedger,
    RelayAuthenticationError,
    RelayDecodeError,
    RelayError,
    RelayMessage,
    decode,
    encode,
    link_key_bytes,
    open_hop,
    seal_hop,
    wegman_carter_tag,
)

PATH = ("A", "B", "C", "D")
SAES = {"master_sae_id": "sae-a", "slave_sae_id": "sae-d"}
LINKS = ("A-B", "B-C", "C-D")
P = (1 << 127) - 1


def _pair(link: str, nbytes: int = 4096) -> tuple[LinkKeyLedger, LinkKeyLedger]:
    """The two ends of one direction of a link, built from the same random link key."""
    key = os.urandom(nbytes)
    return LinkKeyLedger(link, key), LinkKeyLedger(link, key)


def _chain(nbytes: int = 4096) -> list[tuple[LinkKeyLedger, LinkKeyLedger]]:
    return [_pair(link, nbytes) for link in LINKS]


def _relay(
    key_id: uuid.UUID, key: bytes, chain: list[tuple[LinkKeyLedger, LinkKeyLedger]]
) -> tuple[uuid.UUID, bytes, tuple[str, ...], int]:
    got_id, got_key, got_path, hop = key_id, key, PATH, 0
    for i, (send, recv) in enumerate(chain):
        frame = seal_hop(got_id, got_key, got_path, i, send, **SAES)
        opened = open_hop(frame, recv)
        got_id, got_key, got_path, hop = opened.key_id, opened.key, opened.path, opened.hop
        assert hop == i
        assert (opened.master_sae_id, opened.slave_sae_id) == ("sae-a", "sae-d")
    return got_id, got_key, got_path, hop


def test_errors_are_qkd_errors() -> None:
    for cls in (RelayDecodeError, RelayAuthenticationError, LinkKeyError):
        assert issubclass(cls, RelayError)
    assert issubclass(RelayError, QKDError)


def test_four_node_chain_delivers_the_same_key_at_d() -> None:
    chain = _chain()
    for _ in range(20):
        key_id, key = uuid.uuid4(), os.urandom(32)
        got_id, got_key, got_path, hop = _relay(key_id, key, chain)
        assert (got_id, got_key, got_path, hop) == (key_id, key, PATH, 2)


def test_padded_key_is_not_the_key_and_differs_per_hop() -> None:
    chain = _chain()
    key_id, key = uuid.uuid4(), os.urandom(32)
    padded = []
    for i, (send, recv) in enumerate(chain):
        frame = seal_hop(key_id, key, PATH, i, send, **SAES)
        assert key not in frame
        padded.append(decode(frame[:-16]).padded_key)
        assert open_hop(frame, recv).key == key
    assert len(set(padded)) == 3


def test_tag_is_the_polynomial_of_the_docstring() -> None:
    """Known answer from the formula: sum c_i r^(L+2-i) + s, blocks of 15 bytes, then |M|."""
    message = bytes(range(40))  # 3 blocks, the last zero-padded
    r_bytes = (0x0123456789ABCDEF0123456789ABCDEF | 1 << 127).to_bytes(16, "big")
    s_bytes = (0xFEDCBA9876543210FEDCBA9876543210).to_bytes(16, "big")
    r = (int.from_bytes(r_bytes, "big") & P) % P  # the top bit is dropped
    blocks = [int.from_bytes(message[i : i + 15].ljust(15, b"\0"), "big") for i in (0, 15, 30)]
    blocks.append(len(message))
    h = sum(c * pow(r, len(blocks) + 1 - i, P) for i, c in enumerate(blocks, start=1)) % P
    want = ((h + int.from_bytes(s_bytes, "big")) % (1 << 128)).to_bytes(16, "big")
    assert wegman_carter_tag(message, r_bytes + s_bytes) == want
    # messages that differ only by trailing zero bytes hash differently (the length block)
    assert wegman_carter_tag(message, r_bytes + s_bytes) != wegman_carter_tag(
        message + b"\0", r_bytes + s_bytes
    )


def _one_hop() -> tuple[bytes, LinkKeyLedger, bytes]:
    send, recv = _pair("A-B", 256)
    key = os.urandom(32)
    return seal_hop(uuid.uuid4(), key, PATH, 0, send, **SAES), recv, key


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_single_byte_change_is_refused(data: st.DataObject) -> None:
    frame, recv, key = _one_hop()
    i = data.draw(st.integers(0, len(frame) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != frame[i]))
    bad = frame[:i] + bytes([new]) + frame[i + 1 :]
    with pytest.raises(RelayError):
        open_hop(bad, recv)
    assert recv.used_bytes == 0  # nothing consumed, nothing delivered
    assert open_hop(frame, recv).key == key  # the genuine frame still opens


def test_every_byte_position_changed_is_refused() -> None:
    frame, recv, key = _one_hop()
    for i in range(len(frame)):
        for flip in (0x01, 0x80, 0xFF):
            bad = frame[:i] + bytes([frame[i] ^ flip]) + frame[i + 1 :]
            with pytest.raises(RelayError):
                open_hop(bad, recv)
    assert recv.used_bytes == 0
    assert open_hop(frame, recv).key == key


@settings(max_examples=100, deadline=None)
@given(extra=st.binary(min_size=1, max_size=40))
def test_truncation_and_extension_are_refused(extra: bytes) -> None:
    frame, recv, key = _one_hop()
    for cut in range(len(frame)):
        with pytest.raises(RelayError):
            open_hop(frame[:cut], recv)
    with pytest.raises(RelayError):
        open_hop(frame + extra, recv)
    with pytest.raises(RelayError):
        open_hop(extra + frame, recv)
    assert recv.used_bytes == 0
    assert open_hop(frame, recv).key == key


def test_replayed_frame_is_refused() -> None:
    frame, recv, key = _one_hop()
    assert open_hop(frame, recv).key == key
    used = recv.used_ranges
    with pytest.raises(LinkKeyError, match="already used"):
        open_hop(frame, recv)
    assert recv.used_ranges == used


def test_tag_forged_with_another_key_is_refused() -> None:
    frame, recv, _ = _one_hop()
    body = frame[:-16]
    for _ in range(50):
        forged = body + wegman_carter_tag(body, os.urandom(AUTH_KEY_BYTES))
        with pytest.raises(RelayAuthenticationError):
            open_hop(forged, recv)
    # a whole frame sealed by someone holding another key for the same link name
    impostor = LinkKeyLedger("A-B", os.urandom(256))
    with pytest.raises(RelayAuthenticationError):
        open_hop(seal_hop(uuid.uuid4(), os.urandom(32), PATH, 0, impostor, **SAES), recv)
    assert recv.used_bytes == 0


def test_wrong_ledger_is_refused() -> None:
    chain = _chain()
    frame = seal_hop(uuid.uuid4(), os.urandom(32), PATH, 0, chain[0][0], **SAES)
    with pytest.raises(RelayAuthenticationError, match="link 'A-B'"):
        open_hop(frame, chain[1][1])  # B-C's receiving ledger
    same_name_other_key = LinkKeyLedger("A-B", os.urandom(4096))
    with pytest.raises(RelayAuthenticationError):
        open_hop(frame, same_name_other_key)
    assert chain[1][1].used_bytes == 0
    assert same_name_other_key.used_bytes == 0


def test_link_key_bits_are_never_used_twice() -> None:
    chain = _chain(nbytes=64 * 100)
    sizes = [1, 16, 32, 64]
    for n in range(40):
        _relay(uuid.uuid4(), os.urandom(sizes[n % 4]), chain)
    expected = sum(link_key_bytes(sizes[n % 4]) for n in range(40))
    assert [link_key_bytes(n) for n in sizes] == [64, 64, 64, 96]
    for send, recv in chain:
        ranges = send.used_ranges
        assert len(ranges) == 40  # one range per relayed key per hop
        assert ranges == recv.used_ranges  # both ends consumed the same bytes
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))
        assert all(start % SLOT_BYTES == 0 for start, _ in ranges)
        assert sum(e - s for s, e in ranges) == send.used_bytes == expected


def test_ledger_refuses_reuse_and_material_it_does_not_hold() -> None:
    ledger = LinkKeyLedger("A-B", bytes(range(100)))
    assert ledger.take(10) == (0, bytes(range(10)))
    assert ledger.take(5) == (10, bytes(range(10, 15)))
    recv = LinkKeyLedger("A-B", bytes(range(100)))
    assert recv.consume(20, 10) == bytes(range(20, 30))
    for offset, n in [(20, 10), (25, 1), (15, 6), (29, 5), (10, 30)]:
        with pytest.raises(LinkKeyError, match="already used"):
            recv.consume(offset, n)
    for offset, n in [(95, 6), (100, 1), (-1, 2), (0, 0)]:
        with pytest.raises(LinkKeyError):
            recv.consume(offset, n)
    assert recv.take(70) == (30, bytes(range(30, 100)))  # take starts after every used byte
    with pytest.raises(LinkKeyError, match="exhausted"):
        recv.take(1)
    assert recv.consume(0, 20) == bytes(range(20))
    assert recv.used_bytes == 100
    aligned = LinkKeyLedger("A-B", bytes(range(100)))
    assert aligned.take(1) == (0, b"\x00")
    assert aligned.take(2, align=32) == (32, b" !")  # bytes 1..31 are skipped, never handed out
    assert aligned.used_ranges == ((0, 1), (32, 34))
    with pytest.raises(LinkKeyError, match="exhausted"):
        aligned.take(37, align=32)  # would start at 64 and end at 101


def test_frame_naming_an_unaligned_offset_is_refused() -> None:
    """A substituted frame may only name whole 32-byte slots (the module docstring's proof)."""
    send, recv = _pair("A-B", 256)
    frame = seal_hop(uuid.uuid4(), os.urandom(32), PATH, 0, send, **SAES)
    genuine = decode(frame[:-16])
    for offset in (1, 16, 31, 33):
        shifted = RelayMessage.__new__(RelayMessage)
        for name in (
            "key_id",
            "master_sae_id",
            "slave_sae_id",
            "path",
            "hop",
            "link",
            "length",
            "padded_key",
        ):
            object.__setattr__(shifted, name, getattr(genuine, name))
        object.__setattr__(shifted, "offset", offset)
        body = shifted.encode()
        with pytest.raises(RelayDecodeError, match="multiple of 32"):
            open_hop(body + wegman_carter_tag(body, recv.peek(offset, AUTH_KEY_BYTES)), recv)
        with pytest.raises(RelayDecodeError, match="multiple of 32"):
            RelayMessage(
                key_id=genuine.key_id,
                master_sae_id=genuine.master_sae_id,
                slave_sae_id=genuine.slave_sae_id,
                path=genuine.path,
                hop=genuine.hop,
                link=genuine.link,
                offset=offset,
                length=genuine.length,
                padded_key=genuine.padded_key,
            )
    assert recv.used_bytes == 0


def test_refused_seal_uses_no_link_key() -> None:
    send, _ = _pair("A-B", 256)
    for args in [
        (b"", PATH, 0),
        (bytes(MAX_KEY_BYTES + 1), PATH, 0),
        (b"k" * 32, PATH, 3),
        (b"k" * 32, ("A",), 0),
        (b"k" * 32, ("A", "B", "A"), 0),
    ]:
        with pytest.raises(RelayError):
            seal_hop(uuid.uuid4(), *args, send, **SAES)
    for saes in (
        {"master_sae_id": "", "slave_sae_id": "sae-d"},
        {"master_sae_id": "sae-a", "slave_sae_id": "s" * (MAX_SAE_ID_BYTES + 1)},
        {"master_sae_id": "sae-a", "slave_sae_id": "\udc80"},
    ):
        with pytest.raises(RelayDecodeError, match="sae_id"):
            seal_hop(uuid.uuid4(), b"k" * 32, PATH, 0, send, **saes)
    assert send.used_bytes == 0
    with pytest.raises(LinkKeyError, match="exhausted"):
        seal_hop(uuid.uuid4(), bytes(300), PATH, 0, send, **SAES)


def test_no_key_bytes_in_reprs_or_errors() -> None:
    link_key = os.urandom(256)
    send, recv = LinkKeyLedger("A-B", link_key), LinkKeyLedger("A-B", link_key)
    key = os.urandom(32)
    frame = seal_hop(uuid.uuid4(), key, PATH, 0, send, **SAES)
    message = decode(frame[:-16])
    texts = [repr(send), repr(message)]
    bad = frame[:-1] + bytes([frame[-1] ^ 1])
    with pytest.raises(RelayError) as info:
        open_hop(bad, recv)
    texts.append(str(info.value))
    for text in texts:
        for secret in (key, link_key[:32], message.padded_key):
            assert secret.hex() not in text
            assert repr(secret) not in text


names = st.text(min_size=1, max_size=12).filter(lambda s: len(s.encode("utf-8")) <= 64)
sae_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=255
).filter(lambda s: len(s.encode("utf-8")) <= MAX_SAE_ID_BYTES)
messages = st.builds(
    lambda key_id, saes, path, hop, link, offset, padded: RelayMessage(
        key_id=key_id,
        master_sae_id=saes[0],
        slave_sae_id=saes[1],
        path=tuple(path),
        hop=hop % (len(path) - 1),
        link=link,
        offset=offset * SLOT_BYTES,
        length=link_key_bytes(len(padded)),
        padded_key=padded,
    ),
    st.uuids(),
    st.tuples(sae_ids, sae_ids),
    st.lists(names, min_size=2, max_size=16, unique=True),
    st.integers(0, 255),
    names,
    st.integers(0, ((1 << 64) - 1) // SLOT_BYTES),
    st.binary(min_size=1, max_size=MAX_KEY_BYTES),
)


@settings(max_examples=300, deadline=None)
@given(message=messages)
def test_decode_encode_round_trip(message: RelayMessage) -> None:
    data = encode(message)
    assert decode(data) == message
    assert RelayMessage.decode(data).encode() == data
    blocks = math.ceil(len(data) / 15)
    assert blocks + 1 <= 180  # the ε bound of the docstring covers every valid message


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=300), prefixed=st.booleans())
def test_random_bytes_give_the_module_error(data: bytes, prefixed: bool) -> None:
    if prefixed:
        data = bytes((VERSION,)) + data
    try:
        message = decode(data)
    except RelayDecodeError:
        pass
    else:
        assert message.encode() == data  # only a canonical encoding decodes
    _, recv = _pair("A-B", 256)
    with pytest.raises(RelayError):
        open_hop(data, recv)
    assert recv.used_bytes == 0


def test_sae_ids_are_under_the_tag() -> None:
    """Who may fetch the key at the far node is authenticated like the key itself."""
    send, recv = _pair("A-B", 256)
    key = os.urandom(32)
    frame = seal_hop(uuid.uuid4(), key, PATH, 0, send, **SAES)
    body, tag = frame[:-16], frame[-16:]
    assert body[0] == VERSION == 2
    genuine = decode(body)
    assert (genuine.master_sae_id, genuine.slave_sae_id) == ("sae-a", "sae-d")
    assert body[17:29] == b"\x05sae-a\x05sae-d"  # right after the version and the key_ID
    for master, slave in [("sae-a", "sae-x"), ("sae-x", "sae-d"), ("sae-d", "sae-a"), ("a", "d")]:
        changed = RelayMessage(
            key_id=genuine.key_id,
            master_sae_id=master,
            slave_sae_id=slave,
            path=genuine.path,
            hop=genuine.hop,
            link=genuine.link,
            offset=genuine.offset,
            length=genuine.length,
            padded_key=genuine.padded_key,
        ).encode()
        with pytest.raises(RelayAuthenticationError, match="does not authenticate"):
            open_hop(changed + tag, recv)
    assert recv.used_bytes == 0
    opened = open_hop(frame, recv)
    assert (opened.key, opened.master_sae_id, opened.slave_sae_id) == (key, "sae-a", "sae-d")
    assert key.hex() not in repr(opened)


def test_older_message_version_is_refused() -> None:
    frame, recv, _ = _one_hop()
    with pytest.raises(RelayDecodeError, match="version 1 is not supported"):
        open_hop(b"\x01" + frame[1:], recv)
    assert recv.used_bytes == 0


def test_docstring_figures() -> None:
    """The message sizes and block counts the module docstring quotes for its ε bound."""
    send, _ = _pair("A-B", 256)
    small = seal_hop(uuid.uuid4(), bytes(32), PATH, 0, send, **SAES)[:-16]
    assert (len(small), math.ceil(len(small) / 15)) == (89, 6)
    assert math.log2(7) - 126 < -123.1
    largest = RelayMessage(
        key_id=uuid.uuid4(),
        master_sae_id="m" * MAX_SAE_ID_BYTES,
        slave_sae_id="s" * MAX_SAE_ID_BYTES,
        path=tuple(f"{i:x}" * MAX_NAME_BYTES for i in range(MAX_PATH_NODES)),
        hop=0,
        link="l" * MAX_NAME_BYTES,
        offset=0,
        length=link_key_bytes(MAX_KEY_BYTES),
        padded_key=bytes(MAX_KEY_BYTES),
    ).encode()
    assert (len(largest), math.ceil(len(largest) / 15)) == (2674, 179)
    assert math.log2(180) - 126 < -118.5


def test_an_outbox_joins_the_entries_of_one_route_and_keeps_the_others_apart() -> None:
    from qkd.network.node import _merge_routes

    def entry(master: str, hop: int, link: str, *frames: str) -> dict[str, object]:
        return {
            "initiator_sae_id": master,
            "target_sae_ids": ["sae-d"],
            "relay_path": ["A", "B", "C", "D"],
            "hop": hop,
            "link": link,
            "frames": list(frames),
        }

    given = [
        entry("sae-a", 1, "B-C", "f1"),
        entry("sae-a", 1, "B-C", "f2", "f3"),
        entry("sae-a2", 1, "B-C", "g1"),  # another master: another entry
        entry("sae-a", 1, "B-C2", "h1"),  # another link between the same nodes
        entry("sae-a", 1, "B-C", "f4"),
    ]
    merged, owners = _merge_routes(given)
    assert [m["frames"] for m in merged] == [["f1", "f2", "f3", "f4"], ["g1"], ["h1"]]
    assert owners == [0, 0, 1, 2, 0]
    assert merged[1]["initiator_sae_id"] == "sae-a2"
    assert merged[2]["link"] == "B-C2"
    assert given[0]["frames"] == ["f1"]  # the entries given are not changed
