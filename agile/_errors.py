"""The exception tree of the recipe layer.

AgileError
 ├── PolicyError          a policy file or document is invalid (carries every problem found)
 ├── HandshakeError       a handshake message or transition was rejected
 ├── QKDUnavailable       the policy needs a QKD key that could not be had
 │    └── TrustPathViolation  a QKD key's relay path is outside the policy's bounds
 ├── CryptoError          a lower-layer (pqc/qkd) failure, translated at the boundary
 ├── EngineError          a policy cannot be resolved here (algorithm, key, key source missing)
 └── SessionError         a session operation was refused (wrong key id, forged, expired)

Lower-layer exceptions (``pqc.PQCError``, ``qkd.QKDError``) are translated at the boundary of
``agile`` with ``raise ... from exc``. Messages name what was wrong and the way out; they never
contain key material.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class AgileError(Exception):
    """Root of every error raised by the ``agile`` package."""


@dataclass(frozen=True, kw_only=True)
class PolicyProblem:
    """One problem in a policy document, located: ``FILE:LINE:COL: field.path: message``."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"


class PolicyError(AgileError):
    """A policy file or document is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[PolicyProblem]) -> None:
        self.problems: tuple[PolicyProblem, ...] = tuple(problems)
        count = len(self.problems)
        summary = "; ".join(str(p) for p in self.problems)
        super().__init__(f"invalid policy ({count} problem{'s' if count != 1 else ''}): {summary}")


class HandshakeError(AgileError):
    """A handshake message or transition was rejected; the handshake cannot continue."""


class QKDUnavailable(AgileError):
    """The policy requires a QKD key that could not be had (fail closed); the reason is given."""


class TrustPathViolation(QKDUnavailable):
    """A QKD key passed through KME nodes the policy does not allow (too many trusted nodes,
    an excluded node, a required node missing, or no path reported), and the policy's
    ``qkd.on_violation`` is ``"fail"``. ``relay_path`` is the path the KME reported (public
    node names, or ``None``)."""

    def __init__(self, message: str, *, relay_path: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.relay_path = relay_path


class CryptoError(AgileError):
    """A lower-layer (``pqc``/``qkd``) failure, translated at the boundary of ``agile``."""


class SessionError(AgileError):
    """A session operation was refused: wrong key id, failed authentication, expired session."""


class EngineError(AgileError):
    """A policy cannot be resolved on this machine: an algorithm, a key or a key source is
    missing. The message names what and how to provide it."""
