"""Aliases of non-hybrid algorithm names: another spelling -> the canonical name.

HQC's parameter sets are ``HQC-128``, ``HQC-192`` and ``HQC-256`` here (the names of the
NIST selection report, IR 8545, and of DESIGN.md); the HQC specification of 2025, and
liboqs from 0.14 on, call them ``HQC-1``, ``HQC-3`` and ``HQC-5`` (by NIST security
category). Both spellings are accepted everywhere; the canonical one is what providers list.
(The hybrid KEMs' aliases, such as ``X-Wing``, live with them in ``pqc._hybrid``.)
"""

from __future__ import annotations

ALIASES: dict[str, str] = {"HQC-1": "HQC-128", "HQC-3": "HQC-192", "HQC-5": "HQC-256"}
