"""Hybrid post-quantum + QKD key establishment with crypto agility.

``agile`` is the recipe layer: policy-driven, safe defaults, hard to misuse. It combines a
post-quantum KEM (from ``pqc``), a classical ECDH and a QKD key (from ``qkd``) through a
standard KDF into hybrid session keys.

Example (two peers in one process; across a network, use ``agile.transport``)::

    from agile.engine import peer_engines
    from agile import load_policy

    policy = load_policy("hybrid-default-latest")
    alice, bob = peer_engines(policy, policy)       # trusting engines sharing a simulated link
    initiator, responder = alice.initiator(), bob.responder()
    responder.receive_data(initiator.start())
    initiator.receive_data(responder.data_to_send())
    responder.receive_data(initiator.data_to_send())
    assert initiator.session.key_id == responder.session.key_id

Errors::

    AgileError
     ├── PolicyError       a policy file or document is invalid (every problem, located)
     ├── HandshakeError    a handshake message or transition was rejected
     ├── QKDUnavailable    the policy requires a QKD key that could not be had
     │    └── TrustPathViolation  a QKD key's relay path is outside the policy's bounds
     ├── CryptoError       a pqc/qkd failure, translated at the boundary
     ├── EngineError       a policy cannot be resolved here (algorithm, key, key source)
     └── SessionError      a session operation was refused (wrong key id, forged, expired)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from agile._errors import (
    AgileError,
    CryptoError,
    EngineError,
    HandshakeError,
    PolicyError,
    PolicyProblem,
    QKDUnavailable,
    SessionError,
    TrustPathViolation,
)
from agile.engine import Engine, Identity
from agile.handshake.machine import Initiator, Responder
from agile.policy.loader import load_policy
from agile.policy.model import Policy
from agile.secret import SecretBytes
from agile.session import HybridSession

try:
    __version__ = version("qkd-agile")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"

__all__ = ["AgileError", "Policy", "PolicyError", "PolicyProblem", "__version__", "load_policy"]
__all__ += [
    "CryptoError",
    "Engine",
    "EngineError",
    "HandshakeError",
    "HybridSession",
    "Identity",
    "Initiator",
    "QKDUnavailable",
    "Responder",
    "SecretBytes",
    "SessionError",
    "TrustPathViolation",
]
