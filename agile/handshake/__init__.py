"""The hybrid handshake without I/O: messages, state machines and events (h11 style).

Feed bytes in, get bytes and events out; :mod:`agile.transport` moves the bytes over sockets
or asyncio streams, and :class:`agile.engine.Engine` creates the machines from a policy.
See docs/handshake.md for the protocol.
"""

from __future__ import annotations

from agile.handshake.events import Event, HandshakeComplete, QkdFallback, SuiteNegotiated
from agile.handshake.machine import Initiator, Responder, State
from agile.handshake.messages import PROTOCOL_VERSION, decode, encode

__all__ = [
    "PROTOCOL_VERSION",
    "Event",
    "HandshakeComplete",
    "Initiator",
    "QkdFallback",
    "Responder",
    "State",
    "SuiteNegotiated",
    "decode",
    "encode",
]
