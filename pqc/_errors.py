"""The exception tree of the ``pqc`` package (see the package docstring)."""

from __future__ import annotations


class PQCError(Exception):
    """Root of every error raised by the ``pqc`` package."""
