"""A man in the middle: suite stripping, ciphertext swaps, replays, key_ID substitution and
any changed byte all make the handshake fail; none ends with two different keys."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pqc
from agile import AgileError, HandshakeError, load_policy
from agile.engine import Engine, peer_engines
from agile.handshake.messages import ClientHello, Message, ServerHello, decode, encode, frame_length
from agile.policy.model import Policy

from .conftest import engines_with_sources, link_sources, make_policy, run_in_memory


def _frames(flight: bytes) -> list[bytes]:
    out = []
    while flight:
        n = frame_length(flight)
        assert n is not None
        out.append(flight[:n])
        flight = flight[n:]
    return out


def _rewrite(flight: bytes, change: Callable[[Message], Message]) -> bytes:
    return b"".join(encode(change(decode(frame))) for frame in _frames(flight))


@pytest.fixture
def engines(default_policy: Policy) -> tuple[Engine, Engine]:
    return peer_engines(default_policy, default_policy)


def test_suite_stripping_is_detected(engines: tuple[Engine, Engine]) -> None:
    initiator_engine, responder_engine = engines

    def strip(message: Message) -> Message:
        if isinstance(message, ClientHello):
            return dataclasses.replace(message, suites=message.suites[1:])
        return message

    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    with pytest.raises(HandshakeError, match="signature over the transcript does not verify"):
        run_in_memory(
            initiator, responder, tamper=lambda n, data: _rewrite(data, strip) if n == 1 else data
        )
    # The responder was fooled into a weaker suite, but no session came out of it.
    assert "QKD" not in responder.suite
    assert initiator.session is None
    assert responder.session is None


def test_ciphertext_swap_is_detected(engines: tuple[Engine, Engine]) -> None:
    initiator_engine, responder_engine = engines
    kem = pqc.kem("ML-KEM-768")
    offered: dict[str, bytes] = {}

    def remember(n: int, data: bytes) -> bytes:
        if n == 1:
            hello = decode(data)
            assert isinstance(hello, ClientHello)
            share = hello.share("ML-KEM-768")
            assert share is not None
            offered["pk"] = share
            return data
        if n == 2:

            def swap(message: Message) -> Message:
                if isinstance(message, ServerHello):
                    attacker_ct = kem.encapsulate(offered["pk"]).ciphertext
                    return dataclasses.replace(
                        message, ciphertexts=(attacker_ct, *message.ciphertexts[1:])
                    )
                return message

            return _rewrite(data, swap)
        return data

    with pytest.raises(HandshakeError):
        run_in_memory(initiator_engine.initiator(), responder_engine.responder(), tamper=remember)


def test_replayed_messages_are_rejected(engines: tuple[Engine, Engine]) -> None:
    initiator_engine, responder_engine = engines
    recorded: list[bytes] = []

    def record(n: int, data: bytes) -> bytes:
        recorded.append(data)
        return data

    run_in_memory(initiator_engine.initiator(), responder_engine.responder(), tamper=record)
    old_hello, old_server_flight, old_client_flight = recorded

    # Replaying the initiator's side to a new responder: the responder answers with a fresh
    # random and fresh ciphertexts, so the old Auth and Finished do not cover its transcript.
    # (The QKD key of the old ClientHello was already delivered, so the responder falls back.)
    responder = responder_engine.responder()
    responder.receive_data(old_hello)
    with pytest.raises(HandshakeError):
        responder.receive_data(old_client_flight)
    assert responder.session is None

    # Replaying the responder's side to a new initiator: its ClientHello differs.
    initiator = initiator_engine.initiator()
    initiator.start()
    with pytest.raises(HandshakeError):
        initiator.receive_data(old_server_flight)
    assert initiator.session is None


@pytest.mark.parametrize("substitute", ["unknown", "other-pending-key"])
def test_qkd_key_id_substitution_is_detected(substitute: str) -> None:
    policy = load_policy("hybrid-default-latest")
    master, slave = link_sources()
    initiator_engine, responder_engine = engines_with_sources(policy, master, slave)
    spare = master.get_keys(1)[0].key_id  # a real key ID of this link, not the offered one

    def substitute_ids(message: Message) -> Message:
        if isinstance(message, ClientHello):
            new_id = str(uuid.uuid4()) if substitute == "unknown" else spare
            return dataclasses.replace(message, qkd_key_ids=(new_id,))
        return message

    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    with pytest.raises(HandshakeError):
        run_in_memory(
            initiator,
            responder,
            tamper=lambda n, data: _rewrite(data, substitute_ids) if n == 1 else data,
        )
    assert initiator.session is None


def test_qkd_key_id_substitution_fails_closed_when_qkd_is_required() -> None:
    policy = load_policy("qkd-required-latest")
    master, slave = link_sources()
    initiator_engine, responder_engine = engines_with_sources(policy, master, slave)

    def substitute_ids(message: Message) -> Message:
        if isinstance(message, ClientHello):
            return dataclasses.replace(message, qkd_key_ids=(str(uuid.uuid4()),))
        return message

    with pytest.raises(AgileError, match="requires a QKD key"):
        run_in_memory(
            initiator_engine.initiator(),
            responder_engine.responder(),
            tamper=lambda n, data: _rewrite(data, substitute_ids) if n == 1 else data,
        )


_PSK_POLICY = make_policy(
    auth={"method": "psk", "psk_id": "mitm"},
    suites=[
        {"name": "mlkem768-x25519", "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]}
    ],
    qkd={"source": "none"},
)
_SIG_ENGINES = peer_engines(
    load_policy("hybrid-default-latest"), load_policy("hybrid-default-latest")
)
_PSK_ENGINES = peer_engines(_PSK_POLICY, _PSK_POLICY)


@settings(max_examples=60, deadline=None)
@given(
    auth=st.sampled_from(["signature", "psk"]),
    flight=st.integers(min_value=1, max_value=3),
    position=st.integers(min_value=0),
    bit=st.integers(min_value=0, max_value=7),
)
def test_any_changed_byte_fails_the_handshake(
    auth: str, flight: int, position: int, bit: int
) -> None:
    initiator_engine, responder_engine = _SIG_ENGINES if auth == "signature" else _PSK_ENGINES

    def flip(n: int, data: bytes) -> bytes:
        if n != flight:
            return data
        i = position % len(data)
        return data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]

    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    try:
        run_in_memory(initiator, responder, tamper=flip)
    except AgileError:
        pass
    else:
        # A grown length field leaves the receiver waiting for bytes that never come (the
        # transport times out); it must not have completed anything either. (Like a TLS
        # client, the initiator is done once it has sent its Finished: flight 3 is the last.)
        assert not responder.is_complete
        assert flight == 3 or not initiator.is_complete
    # Whatever the change, the responder never ends up with a session.
    assert responder.session is None
