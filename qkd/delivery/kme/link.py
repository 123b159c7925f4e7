"""Key material for a KME link: the seam between the KME pair and the QKD link simulator.

A link's supplier is a :data:`qkd.KeyMaterialSupplier`: ``supplier(nbytes) -> (alice, bob)``,
the final keys at the two ends. ``source = "ideal"`` draws them from the OS CSPRNG (an ideal,
error-free link; identical by construction). ``source = "simulated"`` runs the QKD link
simulator (:func:`qkd.simulate`) with the link's ``simulation`` settings and hands out the
final, post-processed keys it yields.
"""

from __future__ import annotations

import importlib

from qkd.delivery.keysource import KeyMaterialSupplier, csprng_supplier
from qkd.delivery.kme.config import ConfigError, LinkSettings

__all__ = ["make_supplier"]


def make_supplier(link: LinkSettings) -> KeyMaterialSupplier:
    """The key-material supplier configured for ``link``."""
    if link.source == "ideal":
        return csprng_supplier
    try:
        simulated = importlib.import_module("qkd.delivery.kme._simulated")
    except ImportError as exc:
        raise ConfigError(
            f"link {link.name}: source='simulated' needs the QKD link simulator"
            f" (qkd.simulate), which is unavailable: {exc}; use source='ideal'"
        ) from exc
    supplier: KeyMaterialSupplier = simulated.simulated_supplier(link)
    return supplier
