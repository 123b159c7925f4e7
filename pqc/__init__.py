"""Post-quantum and classical KEM and signature providers: the low ("hazmat") layer.

This package is easy to misuse: it takes explicit parameters and returns plain ``bytes``.
Applications should use ``agile``, which wraps secrets and enforces policy.

Errors::

    PQCError
"""

from __future__ import annotations

from pqc._errors import PQCError

__all__ = ["PQCError"]
