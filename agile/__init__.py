"""Hybrid post-quantum + QKD key establishment with crypto agility.

``agile`` is the recipe layer: policy-driven, safe defaults, hard to misuse. It combines a
post-quantum KEM (from ``pqc``), a classical ECDH and a QKD key (from ``qkd``) through a
standard KDF into hybrid session keys.

Errors::

    AgileError
     └── (subclasses are listed in ``agile._errors``)
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
]
