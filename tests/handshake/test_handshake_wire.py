"""The wire format, byte for byte, and the codec's properties over every valid message.

- each message type's frame equals one written out by hand from docs/handshake.md;
- ``decode(encode(m)) == m`` for every valid message ``m`` (hypothesis);
- ``encode(decode(b)) == b`` for every frame ``b`` that decodes (mutated valid frames);
- a mutation fuzzer feeds each message type's decoder frames that reach it (a header of
  that type, a body length that matches): every one yields a message that encodes back to
  the same bytes, or a HandshakeError, never another exception. The default suite runs a few
  thousand per type; the ``slow`` run, 10^5 per type.
"""

from __future__ import annotations

import dataclasses
import random
import string
import types
import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agile import HandshakeError
from agile.engine import peer_engines
from agile.handshake import config as config_module
from agile.handshake import events as events_module
from agile.handshake import machine as machine_module
from agile.handshake import messages as messages_module
from agile.handshake.messages import (
    HEADER_LENGTH,
    Auth,
    AuthMethod,
    ClientHello,
    Finished,
    KeyShare,
    Message,
    MessageType,
    ServerHello,
    SignatureEntry,
    decode,
    encode,
)

from .conftest import make_policy, run_in_memory
from .message_strategies import MESSAGE_STRATEGIES, messages

# -- the frames written out by hand ---------------------------------------------------------


def _name(value: str) -> bytes:
    return bytes([len(value)]) + value.encode("ascii")


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def _u32_bytes(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def _frame(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + (2).to_bytes(2, "big") + len(body).to_bytes(4, "big") + body


_KEY_ID = str(uuid.UUID(int=7))
_KEMS = ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)")


def test_client_hello_frame_by_hand() -> None:
    hello = ClientHello(
        random=b"r" * 32,
        policy_fingerprint="fp-i",
        combiner="catkdf",
        hash_name="SHA-256",
        suites=((*_KEMS, "QKD"), (_KEMS[0],)),
        key_shares=(
            KeyShare(algorithm=_KEMS[0], public_key=b"p" * 5),
            KeyShare(algorithm=_KEMS[1], public_key=b"x" * 3),
        ),
        qkd_key_ids=(_KEY_ID,),
        auth_method=AuthMethod.PSK,
        psk_id="site-a",
        psk_binder=b"b" * 32,
    )
    body = (
        b"r" * 32
        + _name("fp-i")
        + _name("catkdf")
        + _name("SHA-256")
        + _u16(2)
        + (_u16(3) + _name(_KEMS[0]) + _name(_KEMS[1]) + _name("QKD"))
        + (_u16(1) + _name(_KEMS[0]))
        + _u16(2)
        + (_name(_KEMS[0]) + _u32_bytes(b"p" * 5))
        + (_name(_KEMS[1]) + _u32_bytes(b"x" * 3))
        + _u16(1)
        + _name(_KEY_ID)
        + b"\x02"
        + _name("site-a")
        + b"\x20"
        + b"b" * 32
    )
    assert encode(hello) == _frame(1, body)
    assert decode(_frame(1, body)) == hello


def test_client_hello_with_signatures_frame_by_hand() -> None:
    hello = ClientHello(
        random=b"r" * 32,
        policy_fingerprint="fp-i",
        combiner="caskdf",
        hash_name="SHA-384",
        suites=(("MLKEM768-X25519",),),
        key_shares=(),
    )
    body = (
        b"r" * 32
        + _name("fp-i")
        + _name("caskdf")
        + _name("SHA-384")
        + _u16(1)
        + _u16(1)
        + _name("MLKEM768-X25519")
        + _u16(0)  # no key shares
        + _u16(0)  # no QKD key IDs
        + b"\x01"  # signatures
        + b"\x00"  # no PSK id
        + b"\x00"  # no binder
    )
    assert encode(hello) == _frame(1, body)
    assert decode(_frame(1, body)) == hello


def test_server_hello_frame_by_hand() -> None:
    hello = ServerHello(
        random=b"s" * 32,
        policy_fingerprint="fp-r",
        suite=(*_KEMS, "QKD"),
        ciphertexts=(b"c" * 4, b"e" * 2),
        qkd_key_ids=(_KEY_ID,),
    )
    body = (
        b"s" * 32
        + _name("fp-r")
        + (_u16(3) + _name(_KEMS[0]) + _name(_KEMS[1]) + _name("QKD"))
        + (_u16(2) + _u32_bytes(b"c" * 4) + _u32_bytes(b"e" * 2))
        + (_u16(1) + _name(_KEY_ID))
    )
    assert encode(hello) == _frame(2, body)
    assert decode(_frame(2, body)) == hello


def test_auth_and_finished_frames_by_hand() -> None:
    auth = Auth(
        signatures=(
            SignatureEntry(algorithm="ML-DSA-65", signature=b"m" * 7),
            SignatureEntry(algorithm="Ed25519", signature=b"g" * 64),
        )
    )
    body = (
        _u16(2)
        + _name("ML-DSA-65")
        + _u32_bytes(b"m" * 7)
        + _name("Ed25519")
        + _u32_bytes(b"g" * 64)
    )
    assert encode(auth) == _frame(3, body)
    assert decode(_frame(3, body)) == auth
    finished = Finished(verify_data=b"f" * 48)
    assert encode(finished) == _frame(4, b"\x30" + b"f" * 48)
    assert decode(_frame(4, b"\x30" + b"f" * 48)) == finished


def _reframe(frame: bytes) -> bytes:
    """``frame`` with its header's body length fixed after an edit."""
    return frame[:3] + (len(frame) - HEADER_LENGTH).to_bytes(4, "big") + frame[HEADER_LENGTH:]


def test_the_decoder_runs_the_constructors_checks() -> None:
    """A frame that is well formed but breaks a rule of its message is refused with the
    constructor's own message."""
    good = encode(
        ClientHello(
            random=bytes(32),
            policy_fingerprint="fp",
            combiner="catkdf",
            hash_name="SHA-256",
            suites=(_KEMS,),
            key_shares=(
                KeyShare(algorithm=_KEMS[0], public_key=b"k"),
                KeyShare(algorithm=_KEMS[1], public_key=b"x"),
            ),
        )
    )
    decode(good)
    with pytest.raises(HandshakeError, match="public_key: 0 bytes"):
        decode(_reframe(good.replace(b"\x00\x00\x00\x01x", b"\x00\x00\x00\x00")))
    assert good.endswith(b"\x01\x00\x00")  # signatures, no PSK id, no binder
    with pytest.raises(HandshakeError, match="only a ClientHello that authenticates by PSK"):
        decode(_reframe(good[:-1] + b"\x01z"))
    with pytest.raises(HandshakeError, match="unknown auth_method 3"):
        decode(good[:-3] + b"\x03\x00\x00")
    with pytest.raises(HandshakeError, match=r"suites\[0\]\[0\]: not a printable ASCII name"):
        decode(good.replace(b"ML-KEM-768", b"ML-KEM-76\x07", 1))
    share = b"\x1a" + _KEMS[1].encode() + b"\x00\x00\x00\x01x"
    with pytest.raises(HandshakeError, match="an algorithm has two key shares"):
        decode(_reframe(good.replace(share, b"\x0aML-KEM-768\x00\x00\x00\x01x")))


def test_each_wire_table_lists_its_message_fields_in_order() -> None:
    """encode and decode follow the tables: a field missing from one would never travel."""
    for kind, record in messages_module._WIRE.items():
        cls = record.cls
        assert cls.TYPE is kind
        assert [name for name, _ in record.layout] == [f.name for f in dataclasses.fields(cls)]
    for record in (messages_module._KEY_SHARE, messages_module._SIGNATURE):
        assert [name for name, _ in record.layout] == [
            f.name for f in dataclasses.fields(record.cls)
        ]


def _module_state() -> dict[str, str]:
    """The repr of every global of the handshake's modules that is not a module, class or
    plain function, and the fill of any cache on a function."""
    state: dict[str, str] = {}
    for module in (messages_module, machine_module, config_module, events_module):
        for name, value in vars(module).items():
            if isinstance(value, types.ModuleType | type):
                continue
            if callable(value) and hasattr(value, "cache_info"):
                state[f"{module.__name__}.{name}"] = str(value.cache_info())
            elif not callable(value):
                state[f"{module.__name__}.{name}"] = repr(value)
    return state


def test_the_handshake_keeps_no_module_state() -> None:
    """Handshakes between different policies and decoding of many frames leave every
    module-level value of agile.handshake as it was: nothing is remembered across frames,
    connections or peers outside the objects that a caller holds."""
    before = _module_state()
    for name in ("test-a", "test-b"):
        for auth in (
            {"method": "psk", "psk_id": "t"},
            {"method": "signature", "signature_algorithms": ["Ed25519"]},
        ):
            policy = make_policy(name=name, auth=auth)
            first, second = peer_engines(policy, policy)
            ours, theirs = run_in_memory(first.initiator(), second.responder())
            assert ours is not None
            assert theirs is not None
    rng = random.Random(5)
    for kind in MessageType:
        frame = encode(_GENERATORS[kind](rng))
        assert encode(decode(frame)) == frame
    assert _module_state() == before


# -- properties over every valid message ----------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages)
def test_decode_of_encode_is_the_message(message: Message) -> None:
    frame = encode(message)
    assert frame[0] == message.TYPE
    assert decode(frame) == message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), kind=st.sampled_from(sorted(MESSAGE_STRATEGIES)))
def test_encode_of_decode_is_the_frame(data: st.DataObject, kind: str) -> None:
    """Any frame that decodes, valid or a valid one with a byte changed, encodes back to
    itself: the encoding is canonical, so a message has one wire form."""
    frame = bytearray(encode(data.draw(MESSAGE_STRATEGIES[kind])))
    if data.draw(st.booleans()):
        at = data.draw(st.integers(min_value=HEADER_LENGTH, max_value=len(frame) - 1))
        frame[at] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        message = decode(bytes(frame))
    except HandshakeError:
        return
    assert encode(message) == frame


# -- the mutation fuzzer --------------------------------------------------------------------

_PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "
_BOUNDARY_BYTES = (0x00, 0x01, 0x02, 0x03, 0x04, 0x1F, 0x20, 0x40, 0x7F, 0x80, 0xFF)


def _random_name(rng: random.Random) -> str:
    size = rng.choice((1, 2, 3, 8, 20, 127, 128))
    name = "".join(rng.choice(_PRINTABLE) for _ in range(size)).strip()
    return name or "n"


def _random_names(rng: random.Random, low: int, high: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_random_name(rng) for _ in range(rng.randint(low, high))))


def _random_bytes(rng: random.Random, low: int, high: int) -> bytes:
    return rng.randbytes(rng.randint(low, high))


def _random_key_ids(rng: random.Random) -> tuple[str, ...]:
    return tuple(str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(rng.choice((0, 0, 1, 2))))


def _random_client_hello(rng: random.Random) -> Message:
    method = rng.choice(list(AuthMethod))
    algorithms = _random_names(rng, 0, 4)
    return ClientHello(
        random=rng.randbytes(32),
        policy_fingerprint=_random_name(rng),
        combiner=_random_name(rng),
        hash_name=_random_name(rng),
        suites=tuple(dict.fromkeys(_random_names(rng, 1, 4) for _ in range(rng.randint(1, 3)))),
        key_shares=tuple(
            KeyShare(algorithm=a, public_key=_random_bytes(rng, 1, 40)) for a in algorithms
        ),
        qkd_key_ids=_random_key_ids(rng),
        auth_method=method,
        psk_id=rng.choice(("", _random_name(rng))),
        psk_binder=_random_bytes(rng, 0, 64) if method is AuthMethod.PSK else b"",
    )


def _random_server_hello(rng: random.Random) -> Message:
    return ServerHello(
        random=rng.randbytes(32),
        policy_fingerprint=_random_name(rng),
        suite=_random_names(rng, 1, 6),
        ciphertexts=tuple(_random_bytes(rng, 1, 40) for _ in range(rng.randint(0, 6))),
        qkd_key_ids=_random_key_ids(rng),
    )


def _random_auth(rng: random.Random) -> Message:
    return Auth(
        signatures=tuple(
            SignatureEntry(algorithm=a, signature=_random_bytes(rng, 1, 80))
            for a in _random_names(rng, 1, 4)
        )
    )


def _random_finished(rng: random.Random) -> Message:
    return Finished(verify_data=_random_bytes(rng, 32, 64))


_GENERATORS: dict[MessageType, Callable[[random.Random], Message]] = {
    MessageType.CLIENT_HELLO: _random_client_hello,
    MessageType.SERVER_HELLO: _random_server_hello,
    MessageType.AUTH: _random_auth,
    MessageType.FINISHED: _random_finished,
}


def _mutate(rng: random.Random, body: bytes, other: bytes) -> bytes:
    """One to three random edits of a frame's body (``other``: another body to splice from)."""
    data = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(data))
        edit = rng.randrange(8)
        if edit == 0 and data:  # change a byte
            data[at % len(data)] = rng.randrange(256)
        elif edit == 1 and data:  # a byte that is often a length or a count at a boundary
            data[at % len(data)] = rng.choice(_BOUNDARY_BYTES)
        elif edit == 2:  # insert bytes
            data[at:at] = rng.randbytes(rng.randint(1, 4))
        elif edit == 3:  # delete bytes
            del data[at : at + rng.randint(1, 8)]
        elif edit == 4:  # cut
            del data[at:]
        elif edit == 5:  # a slice of another frame of the same type
            start = rng.randint(0, len(other))
            data[at : at + rng.randint(0, 16)] = other[start : start + rng.randint(1, 32)]
        elif edit == 6:  # a u16 count or u32 length at an extreme
            width = rng.choice((2, 4))
            data[at : at + width] = rng.choice((0, 1, 255, 256, 2**16 - 1)).to_bytes(width, "big")
        else:  # random bytes
            data[at : at + rng.randint(0, 8)] = rng.randbytes(rng.randint(0, 8))
    return bytes(data)


def _fuzz(kind: MessageType, inputs: int, seed: int) -> tuple[int, int]:
    """Feed ``inputs`` mutated frames of ``kind`` to the decoder; (decoded, refused)."""
    rng = random.Random(seed)
    generate = _GENERATORS[kind]
    bodies = [encode(generate(rng))[HEADER_LENGTH:] for _ in range(64)]
    decoded = refused = 0
    for n in range(inputs):
        if n % 1000 == 0:  # fresh valid messages now and then
            bodies[rng.randrange(len(bodies))] = encode(generate(rng))[HEADER_LENGTH:]
        if n % 50 == 0:
            body = rng.randbytes(rng.randint(0, 300))  # no structure at all
        else:
            body = _mutate(rng, rng.choice(bodies), rng.choice(bodies))
        frame = bytes([kind]) + (2).to_bytes(2, "big") + len(body).to_bytes(4, "big") + body
        try:
            message = decode(frame)
        except HandshakeError:
            refused += 1
            continue
        assert message.TYPE is kind
        assert encode(message) == frame
        decoded += 1
    return decoded, refused


@pytest.mark.parametrize("kind", list(MessageType), ids=lambda k: k.name)
def test_fuzzed_frames_decode_or_raise_handshake_error(kind: MessageType) -> None:
    decoded, refused = _fuzz(kind, 5_000, seed=kind)
    assert decoded + refused == 5_000
    assert decoded > 0  # the fuzzer also reaches valid frames, not only refusals


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(MessageType), ids=lambda k: k.name)
def test_fuzzed_frames_decode_or_raise_handshake_error_at_scale(kind: MessageType) -> None:
    inputs = 100_000
    decoded, refused = _fuzz(kind, inputs, seed=1000 + kind)
    print(f"\nfuzz {kind.name}: {inputs} inputs, {decoded} decoded, {refused} refused")
    assert decoded + refused == inputs
    assert decoded > 0
