"""The message codec: round trips, validation on construction, and a decoder that only ever
raises HandshakeError (fuzzed, truncated and mutated frames)."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agile import HandshakeError
from agile.handshake.messages import (
    HEADER_LENGTH,
    PROTOCOL_VERSION,
    Auth,
    AuthMethod,
    ClientHello,
    Finished,
    KeyShare,
    Message,
    ServerHello,
    SignatureEntry,
    decode,
    encode,
    frame_length,
)

KEY_ID = str(uuid.UUID(int=7))

CLIENT_HELLO = ClientHello(
    random=b"r" * 32,
    policy_fingerprint="sha256:" + "ab" * 32,
    combiner="catkdf",
    hash_name="SHA-256",
    suites=(("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"), ("MLKEM768-X25519",)),
    key_shares=(
        KeyShare(algorithm="ML-KEM-768", public_key=b"p" * 1184),
        KeyShare(algorithm="DHKEM(X25519, HKDF-SHA256)", public_key=b"x" * 32),
        KeyShare(algorithm="MLKEM768-X25519", public_key=b"w" * 1216),
    ),
    qkd_key_ids=(KEY_ID,),
    auth_method=AuthMethod.PSK,
    psk_id="site-a",
    psk_binder=b"b" * 32,
)
SERVER_HELLO = ServerHello(
    random=b"s" * 32,
    policy_fingerprint="sha256:" + "cd" * 32,
    suite=("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"),
    ciphertexts=(b"c" * 1088, b"e" * 32),
    qkd_key_ids=(KEY_ID,),
)
AUTH = Auth(signatures=(SignatureEntry(algorithm="Ed25519", signature=b"g" * 64),))
FINISHED = Finished(verify_data=b"f" * 32)
MESSAGES: list[Message] = [CLIENT_HELLO, SERVER_HELLO, AUTH, FINISHED]
FRAMES = [encode(m) for m in MESSAGES]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    frame = encode(message)
    assert frame[0] == message.TYPE
    assert int.from_bytes(frame[1:3], "big") == PROTOCOL_VERSION
    assert int.from_bytes(frame[3:7], "big") == len(frame) - HEADER_LENGTH
    assert decode(frame) == message
    assert frame_length(frame) == len(frame)


def test_frame_length_waits_for_a_whole_header() -> None:
    assert frame_length(FRAMES[0][:6]) is None


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Finished(verify_data=b"short"), "verify_data"),
        (
            lambda: ServerHello(
                random=b"r" * 31, policy_fingerprint="x", suite=("a",), ciphertexts=()
            ),
            "random",
        ),
        (
            lambda: ServerHello(random=b"r" * 32, policy_fingerprint="x", suite=(), ciphertexts=()),
            "suite",
        ),
        (
            lambda: ServerHello(
                random=b"r" * 32, policy_fingerprint="x", suite=("a", "a"), ciphertexts=()
            ),
            "twice",
        ),
        (
            lambda: ServerHello(
                random=b"r" * 32, policy_fingerprint="bad name\n", suite=("a",), ciphertexts=()
            ),
            "policy_fingerprint",
        ),
        (
            lambda: ServerHello(
                random=b"r" * 32,
                policy_fingerprint="x",
                suite=("a",),
                ciphertexts=(),
                qkd_key_ids=("not-a-uuid",),
            ),
            "UUID",
        ),
        (lambda: Auth(signatures=()), "signatures: 0 entries"),
        (
            lambda: ClientHello(
                random=b"r" * 32,
                policy_fingerprint="x",
                combiner="catkdf",
                hash_name="SHA-256",
                suites=(("a",),),
                key_shares=(),
                psk_binder=b"b" * 32,
            ),
            "only a ClientHello that authenticates by PSK",
        ),
        (
            lambda: ClientHello(
                random=b"r" * 32,
                policy_fingerprint="x",
                combiner="catkdf",
                hash_name="SHA-256",
                suites=(("a",),),
                key_shares=(),
                auth_method=AuthMethod.PSK,
                psk_binder=b"b" * 65,
            ),
            "psk_binder",
        ),
        (lambda: KeyShare(algorithm="ML-KEM-768", public_key=b""), "public_key"),
        (
            lambda: ClientHello(
                random=b"r" * 32,
                policy_fingerprint="x",
                combiner="catkdf",
                hash_name="SHA-256",
                suites=(("a",), ("a",)),
                key_shares=(),
            ),
            "offered twice",
        ),
    ],
)
def test_messages_validate_on_construction(build: object, match: str) -> None:
    with pytest.raises(HandshakeError, match=match):
        build()  # type: ignore[operator]


def test_messages_are_frozen() -> None:
    with pytest.raises(AttributeError):
        FINISHED.verify_data = b"x" * 32  # type: ignore[misc]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f"type{f[0]}")
def test_every_truncation_is_a_handshake_error(frame: bytes) -> None:
    for cut in range(len(frame)):
        with pytest.raises(HandshakeError):
            decode(frame[:cut])


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f"type{f[0]}")
def test_trailing_bytes_and_bad_headers_are_rejected(frame: bytes) -> None:
    with pytest.raises(HandshakeError, match="length mismatch"):
        decode(frame + b"\x00")
    body = frame[HEADER_LENGTH:]
    longer = frame[:3] + (len(body) + 1).to_bytes(4, "big") + body + b"\x00"
    with pytest.raises(HandshakeError, match="trailing"):
        decode(longer)
    with pytest.raises(HandshakeError, match="version"):
        decode(frame[:1] + b"\x00\x09" + frame[3:])
    with pytest.raises(HandshakeError, match="unknown message type"):
        decode(b"\x63" + frame[1:])


def test_oversized_frame_header_is_rejected_before_reading_the_body() -> None:
    with pytest.raises(HandshakeError, match="exceeds"):
        frame_length(b"\x01" + PROTOCOL_VERSION.to_bytes(2, "big") + b"\xff\xff\xff\xff")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_fuzzed_bytes_raise_only_handshake_error(data: bytes) -> None:
    with contextlib.suppress(HandshakeError):
        decode(data)


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(FRAMES) - 1),
    position=st.integers(min_value=0),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=0, max_value=64),
)
def test_mutated_frames_raise_only_handshake_error(
    index: int, position: int, value: int, cut: int
) -> None:
    frame = bytearray(FRAMES[index])
    frame[position % len(frame)] = value
    mutated = bytes(frame[: len(frame) - cut])
    try:
        message = decode(mutated)
    except HandshakeError:
        return
    # Whatever decodes must be a valid message that encodes back to the same bytes.
    assert encode(message) == mutated


def test_decode_refuses_non_bytes() -> None:
    with pytest.raises(HandshakeError):
        decode("not bytes")  # type: ignore[arg-type]
