"""PSK authentication: a binder in the ClientHello, no Auth frames, Finished MACs keyed from a
combiner output that the PSK enters (docs/handshake.md, "PSK authentication").

- the flights carry exactly ClientHello / ServerHello + Finished / Finished;
- an initiator without the PSK is refused at its ClientHello, before the responder
  encapsulates or asks its key source for QKD keys, and the QKD keys stay unspent;
- a missing or altered binder, and an Auth frame where none belongs, are refused;
- a responder without the PSK cannot complete: the initiator refuses its Finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from agile import AgileError, HandshakeError
from agile.engine import Engine
from agile.handshake.machine import State
from agile.handshake.messages import (
    HEADER_LENGTH,
    Auth,
    ClientHello,
    Finished,
    ServerHello,
    SignatureEntry,
    decode,
    encode,
    frame_length,
)
from qkd.delivery.keysource import QkdKey, SimulatedLink

from .conftest import link_sources, make_policy, run_in_memory

PSK = b"k" * 32
_POLICY = make_policy(
    auth={"method": "psk", "psk_id": "link-7"},
    qkd={"source": "simulated", "required": True, "key_size_bits": 256},
    suites=[
        {
            "name": "mlkem768-x25519-qkd",
            "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"],
        }
    ],
)


class _CountingSource:
    """A key source that records the key IDs asked for (the responder's KME requests)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.asked: list[list[str]] = []

    def status(self) -> Any:
        return self._inner.status()

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        keys: list[QkdKey] = self._inner.get_keys(number, size_bits)
        return keys

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        self.asked.append(list(key_ids))
        keys: list[QkdKey] = self._inner.get_keys_by_id(key_ids)
        return keys

    def close(self) -> None:
        return None


def _engines(
    initiator_psk: bytes = PSK, responder_psk: bytes = PSK
) -> tuple[Engine, Engine, _CountingSource, Any]:
    link = SimulatedLink(key_size=256)
    master, slave = link_sources(link)
    counting = _CountingSource(slave)
    initiator = Engine(_POLICY, key_source=master, psk=initiator_psk)
    responder = Engine(_POLICY, key_source=counting, psk=responder_psk)
    return initiator, responder, counting, slave


def _frames(flight: bytes) -> list[Any]:
    messages = []
    pos = 0
    while pos < len(flight):
        total = frame_length(flight, pos)
        assert total is not None
        messages.append(decode(flight[pos : pos + total]))
        pos += total
    return messages


def test_psk_flights_carry_a_binder_and_no_auth_frames() -> None:
    initiator_engine, responder_engine, counting, _ = _engines()
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    hello = initiator.start()
    (client_hello,) = _frames(hello)
    assert isinstance(client_hello, ClientHello)
    assert len(client_hello.psk_binder) == 32
    responder.receive_data(hello)
    second = responder.data_to_send()
    assert [type(m) for m in _frames(second)] == [ServerHello, Finished]
    initiator.receive_data(second)
    third = initiator.data_to_send()
    assert [type(m) for m in _frames(third)] == [Finished]
    responder.receive_data(third)
    assert initiator.session is not None
    assert responder.session is not None
    assert initiator.session.key == responder.session.key
    assert initiator.session.qkd_used
    assert counting.asked == [list(client_hello.qkd_key_ids)]


def test_an_initiator_without_the_psk_is_refused_before_any_work() -> None:
    initiator_engine, responder_engine, counting, slave = _engines(initiator_psk=b"x" * 32)
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    hello = initiator.start()
    with pytest.raises(HandshakeError, match="PSK binder does not verify"):
        responder.receive_data(hello)
    assert responder.state is State.ERROR
    assert responder.data_to_send() == b""  # no ServerHello: nothing encapsulated
    assert counting.asked == []  # the KME was not asked for the QKD keys
    # ... so they are still there for the responder's side of the link.
    (client_hello,) = _frames(hello)
    assert len(slave.get_keys_by_id(list(client_hello.qkd_key_ids))) == 1


def test_a_responder_without_the_psk_cannot_complete() -> None:
    # The responder holds another PSK: it refuses the binder. An impostor responder that
    # skipped that check would still fail: the initiator checks Finished_R, keyed from the
    # combiner output that the PSK enters.
    initiator_engine, responder_engine, _, _ = _engines(responder_psk=b"y" * 32)
    with pytest.raises(AgileError, match="PSK binder"):
        run_in_memory(initiator_engine.initiator(), responder_engine.responder())


def _reframe(frame: bytes) -> bytes:
    return frame[:3] + (len(frame) - HEADER_LENGTH).to_bytes(4, "big") + frame[HEADER_LENGTH:]


def test_a_missing_or_altered_binder_is_refused() -> None:
    initiator_engine, responder_engine, counting, _ = _engines()
    hello = initiator_engine.initiator().start()
    stripped = _reframe(hello[:-33] + b"\x00")  # binder length 0, no binder
    with pytest.raises(HandshakeError, match="no PSK binder"):
        responder_engine.responder().receive_data(stripped)
    flipped = hello[:-1] + bytes([hello[-1] ^ 1])
    with pytest.raises(HandshakeError, match="PSK binder does not verify"):
        responder_engine.responder().receive_data(flipped)
    assert counting.asked == []


def test_an_auth_frame_is_refused_in_psk_mode() -> None:
    initiator_engine, responder_engine, _, _ = _engines()
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    responder.receive_data(initiator.start())
    initiator.receive_data(responder.data_to_send())
    auth = encode(Auth(signatures=(SignatureEntry(algorithm="Ed25519", signature=b"s" * 64),)))
    with pytest.raises(HandshakeError, match="unexpected Auth"):
        responder.receive_data(auth + initiator.data_to_send())
    assert responder.session is None


def test_a_signature_responder_refuses_a_binder() -> None:
    signature = make_policy(qkd={"source": "simulated", "required": False})
    psk_hello = _engines()[0].initiator().start()
    responder = Engine(signature, allow_missing_key_source=True, **_identity(signature))
    with pytest.raises(HandshakeError, match="authenticates by psk"):
        responder.responder().receive_data(psk_hello)


def _identity(policy: Any) -> dict[str, Any]:
    from agile.engine import Identity

    own, peer = Identity.generate(policy), Identity.generate(policy)
    return {"signing_keys": own.signing_keys, "peer_public_keys": peer.public_keys}
