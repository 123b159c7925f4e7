"""What a handshake that refused a relayed QKD key for its trust path and fell back must show.

Shared by the handshake tests over a test-double KME (tests/handshake) and those over a real
network of KME processes (tests/network): the outcome must not depend on which served the key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from agile import HybridSession
from agile.handshake.events import QkdFallback
from agile.handshake.machine import Initiator, Responder


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    """The audit records of one event, in order."""
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def check_fallback_without_qkd(
    caplog: pytest.LogCaptureFixture,
    sessions: tuple[HybridSession | None, HybridSession | None],
    initiator: Initiator,
    responder: Responder,
    *,
    refusing: str,
    relayed: Sequence[str],
    suite: Sequence[str],
) -> None:
    """Both ends completed without QKD on ``suite`` after the ``refusing`` side(s) ("both" or
    "responder") refused the key relayed over ``relayed`` (two trusted nodes)."""
    ours, theirs = sessions
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert not ours.qkd_used
    assert not theirs.qkd_used
    assert ours.suite == theirs.suite == tuple(suite)
    assert ours.qkd_path is None
    assert theirs.trusted_nodes is None
    role = "initiator" if refusing == "both" else "responder"
    [refused] = events(caplog, "qkd_path_refused")
    assert getattr(refused, "role", None) == role
    assert getattr(refused, "qkd_path", None) == list(relayed)
    assert getattr(refused, "trusted_nodes", None) == 2
    assert "on_violation = fallback" in getattr(refused, "reason", "")
    fallbacks = {getattr(r, "role", None): r for r in events(caplog, "qkd_fallback")}
    assert getattr(fallbacks[role], "qkd_path", None) == list(relayed)
    assert getattr(fallbacks[role], "trusted_nodes", None) == 2
    assert "trust path refused" in getattr(fallbacks[role], "reason", "")
    if refusing == "both":
        # The initiator refused the key before offering it: the far SAE never fetched it.
        assert any(isinstance(e, QkdFallback) for e in initiator.start_events)
        assert set(fallbacks) == {"initiator"}
    else:
        # The far SAE fetched the key; the responder refused its path, the initiator followed.
        assert responder.fallback_reason is not None
        assert "trust path refused" in responder.fallback_reason
        assert set(fallbacks) == {"initiator", "responder"}
    completed = events(caplog, "handshake_complete")
    assert [getattr(r, "qkd_used", None) for r in completed] == [False, False]
