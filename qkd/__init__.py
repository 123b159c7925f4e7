"""QKD links, post-processing and key delivery: the low ("hazmat") layer.

This package is easy to misuse: it takes explicit parameters, returns plain ``bytes`` and
small frozen dataclasses, and applies no policy. Applications should use ``agile``, which
wraps secrets and enforces policy.

Errors::

    QKDError
"""

from __future__ import annotations

from qkd._errors import QKDError

__all__ = ["QKDError"]
