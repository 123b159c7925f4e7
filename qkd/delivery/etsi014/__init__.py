"""ETSI GS QKD 014 v1.1.1: REST key delivery over mutual TLS (hazmat).

- :mod:`qkd.delivery.etsi014.client` - :class:`Etsi014Client` and :class:`AsyncEtsi014Client`,
  :class:`qkd.KeySource` implementations for any KME that speaks the standard.
- :mod:`qkd.delivery.etsi014.models` - the standard's JSON objects, validated in both directions.
- :mod:`qkd.delivery.etsi014.server` - the mutual-TLS HTTP/1.1 server the local KME pair runs on.

Example::

    from qkd.delivery.etsi014 import Etsi014Client

    with Etsi014Client("https://127.0.0.1:8443", peer_sae_id="sae-b",
                       cert="sae-a.pem", key="sae-a.key", ca="ca.pem") as kme:
        key = kme.get_keys(1, 256)[0]
"""

from __future__ import annotations

from qkd.delivery.etsi014.client import AsyncEtsi014Client, Etsi014Client, client_ssl_context

__all__ = ["AsyncEtsi014Client", "Etsi014Client", "client_ssl_context"]
