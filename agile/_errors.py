"""The exception tree of the recipe layer.

AgileError
 ├── PolicyError          a policy file or document is invalid (carries every problem found)
 ├── HandshakeError       a handshake message or transition was rejected
 ├── QKDUnavailable       the policy needs a QKD key that could not be had
 └── CryptoError          a lower-layer (pqc/qkd) failure, translated at the boundary

Lower-layer exceptions (``pqc.PQCError``, ``qkd.QKDError``) are translated at the boundary of
``agile`` with ``raise ... from exc``. Messages name what was wrong and the way out; they never
contain key material.
"""

from __future__ import annotations


class AgileError(Exception):
    """Root of every error raised by the ``agile`` package."""
