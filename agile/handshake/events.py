"""Events that a handshake state machine reports to its caller (h11 style)."""

from __future__ import annotations

from dataclasses import dataclass

from agile.session import HybridSession


@dataclass(frozen=True, kw_only=True, slots=True)
class SuiteNegotiated:
    """The suite is fixed (the responder chose it; the initiator learnt it)."""

    suite: tuple[str, ...]
    qkd_used: bool
    qkd_key_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class QkdFallback:
    """QKD was wanted but not used; the policy allowed falling back. ``reason`` says why."""

    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class HandshakeComplete:
    """Both sides are authenticated and have confirmed the key."""

    session: HybridSession


Event = SuiteNegotiated | QkdFallback | HandshakeComplete
