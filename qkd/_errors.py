"""The exception tree of the ``qkd`` package (see the package docstring)."""

from __future__ import annotations


class QKDError(Exception):
    """Root of every error raised by the ``qkd`` package."""
