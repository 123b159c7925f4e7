"""QKD faults: KME down, QBER over the maximum, old keys, keys exhausted, mismatched keys.

With ``qkd.required = false`` the handshake falls back to the suite without QKD and an audit
event says why; with ``required = true`` it fails closed with the reason.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

import pytest

from agile import AgileError, HandshakeError, QKDUnavailable
from agile.handshake.events import QkdFallback
from agile.policy.model import Policy
from qkd.delivery.etsi014.client import Etsi014Client
from qkd.delivery.keysource import KeyExhausted, SimulatedLink

from .conftest import (
    FaultySource,
    engines_with_sources,
    link_sources,
    make_policy,
    mismatched_link,
    run_in_memory,
)


def _policy(required: bool) -> Policy:
    suites: list[dict[str, Any]] = [
        {
            "name": "mlkem768-x25519-qkd",
            "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"],
        },
    ]
    return make_policy(
        suites=suites,
        qkd={
            "source": "simulated",
            "required": required,
            "max_qber": 0.05,
            "max_key_age_s": 600,
            "key_size_bits": 256,
        },
    )


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _kme_down() -> tuple[Any, Any]:
    # A real ETSI 014 client pointed at a loopback port where nothing listens.
    url = f"https://127.0.0.1:{_closed_port()}"
    context = ssl.create_default_context()
    return (
        Etsi014Client(url, peer_sae_id="sae-b", ssl_context=context, timeout=0.5, retries=1),
        Etsi014Client(url, peer_sae_id="sae-a", ssl_context=context, timeout=0.5, retries=1),
    )


def _qber_high() -> tuple[Any, Any]:
    master, slave = link_sources()
    return FaultySource(master, qber=0.09), FaultySource(slave, qber=0.09)


def _keys_too_old() -> tuple[Any, Any]:
    master, slave = link_sources()
    return FaultySource(master, key_age_s=7200), FaultySource(slave, key_age_s=7200)


def _exhausted() -> tuple[Any, Any]:
    # A metered link that has produced no key yet: get_keys raises KeyExhausted (ETSI 503).
    return link_sources(SimulatedLink(key_size=256, rate_bps=1.0))


def _slave_down() -> tuple[Any, Any]:
    master, slave = link_sources()
    return master, FaultySource(slave, fail_with=KeyExhausted(503, "KME restarting"))


FAULTS: dict[str, tuple[Callable[[], tuple[Any, Any]], str]] = {
    "kme-down": (_kme_down, "KMEUnavailable"),
    "qber-over-maximum": (_qber_high, "QBER 0.0900 exceeds the policy maximum 0.05"),
    "keys-too-old": (_keys_too_old, "over the policy maximum 600 s"),
    "keys-exhausted": (_exhausted, "not enough key material"),
    "slave-kme-fails": (_slave_down, "KME restarting"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_required_qkd_fails_closed_with_the_reason(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_sources, reason = FAULTS[fault]
    initiator_engine, responder_engine = engines_with_sources(_policy(True), *make_sources())
    caplog.set_level(logging.INFO, logger="agile.audit")
    with pytest.raises(QKDUnavailable) as info:
        run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert "fail closed" in str(info.value)
    assert reason in str(info.value)
    failures = [r for r in caplog.records if getattr(r, "event", None) == "handshake_failed"]
    assert failures
    assert reason in getattr(failures[0], "reason", "")


@pytest.mark.parametrize("fault", list(FAULTS))
def test_optional_qkd_falls_back_and_audits_why(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    make_sources, reason = FAULTS[fault]
    initiator_engine, responder_engine = engines_with_sources(_policy(False), *make_sources())
    caplog.set_level(logging.INFO, logger="agile.audit")
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    ours, theirs = run_in_memory(initiator, responder)
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert not ours.qkd_used
    assert ours.suite == ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)")
    fallbacks = [r for r in caplog.records if getattr(r, "event", None) == "qkd_fallback"]
    assert fallbacks
    assert any(reason in getattr(r, "reason", "") for r in fallbacks)
    # The side that met the fault reports it as an event / attribute too.
    initiator_fell_back = any(isinstance(e, QkdFallback) for e in initiator.start_events)
    assert initiator_fell_back or responder.fallback_reason is not None


@pytest.mark.parametrize("required", [True, False])
def test_mismatched_qkd_keys_fail_key_confirmation(required: bool) -> None:
    initiator_engine, responder_engine = engines_with_sources(
        _policy(required), *link_sources(mismatched_link())
    )
    with pytest.raises(HandshakeError, match=r"key confirmation failed|signature") as info:
        run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert "mismatched QKD keys" in str(info.value) or "signature" in str(info.value)


def test_a_qkd_key_is_used_once() -> None:
    master, slave = link_sources()
    initiator_engine, responder_engine = engines_with_sources(_policy(False), master, slave)
    first, _ = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    second, _ = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert first is not None
    assert second is not None
    assert first.qkd_used
    assert second.qkd_used
    assert set(first.qkd_key_ids).isdisjoint(second.qkd_key_ids)


def test_responder_without_a_source_falls_back_or_fails_as_its_policy_says() -> None:
    master, _ = link_sources()
    initiator_engine, responder_engine = engines_with_sources(_policy(False), master, None)
    ours, _ = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert ours is not None
    assert not ours.qkd_used
    initiator_engine, responder_engine = engines_with_sources(
        _policy(False), master, None, responder_policy=_policy(True)
    )
    with pytest.raises(AgileError, match="no QKD key source"):
        run_in_memory(initiator_engine.initiator(), responder_engine.responder())
