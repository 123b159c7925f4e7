"""A local pair of Key Management Entities serving ETSI GS QKD 014 (``agile kme serve``).

For development and tests against something that behaves like a vendor KME: durable key
pools, client-certificate identities, once-only delivery. See ``docs/kme.md``.
"""

from __future__ import annotations

from qkd.delivery.kme.certs import write_certificates
from qkd.delivery.kme.config import ConfigError, PairConfig, load_config, quick_config
from qkd.delivery.kme.service import KmePair, serve_pair

__all__ = [
    "ConfigError",
    "KmePair",
    "PairConfig",
    "load_config",
    "quick_config",
    "serve_pair",
    "write_certificates",
]
