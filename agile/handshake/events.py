"""Events that a handshake state machine reports to its caller (h11 style).

Each event is an immutable record (a named tuple: a machine makes two per handshake, and a
tuple is the cheapest immutable object to build). Compare events by type and fields, as the
examples do::

    for event in responder.receive_data(data):
        if isinstance(event, HandshakeComplete):
            session = event.session
"""

from __future__ import annotations

from typing import NamedTuple

from agile.session import HybridSession


class SuiteNegotiated(NamedTuple):
    """The suite is fixed (the responder chose it; the initiator learnt it)."""

    suite: tuple[str, ...]
    qkd_used: bool
    qkd_key_ids: tuple[str, ...]


class QkdFallback(NamedTuple):
    """QKD was wanted but not used; the policy allowed falling back. ``reason`` says why."""

    reason: str


class HandshakeComplete(NamedTuple):
    """Both sides are authenticated and have confirmed the key."""

    session: HybridSession


Event = SuiteNegotiated | QkdFallback | HandshakeComplete
