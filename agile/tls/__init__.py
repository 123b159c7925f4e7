"""Hybrid keys inside real TLS 1.3: QKD keys as external PSKs, with X25519MLKEM768.

TLS 1.3 mixes an external PSK into its early secret and, in ``psk_dhe_ke`` mode, the key
exchange's shared secret into its handshake secret (RFC 8446 §7.1). With a QKD key as the PSK
and the hybrid group X25519MLKEM768 as the key share, the traffic keys depend on the QKD key,
on ML-KEM-768 and on X25519 at once, and stay secret while any one of them does.

``agile.tls`` runs this on the OpenSSL that pyca/cryptography bundles, driven by pyOpenSSL
(the ``tls`` extra: ``pip install 'qkd-agile[tls]'``). The policy decides the groups, cipher
suites and PSK source (:mod:`agile.tls.config`); QKD keys are fetched by key ID and imported
per RFC 9258 (:mod:`agile.tls.psk`).

Example (both ends in one process, over a socket pair)::

    import socket
    from agile import load_policy
    from agile.engine import simulated_link
    from agile.tls import TlsContext, connect, accept

    policy = load_policy("hybrid-default-latest")
    link = simulated_link(policy)
    client_ctx = TlsContext.client(policy, key_source=link.source("a", peer="b"))
    server_ctx = TlsContext.server(policy, key_source=link.source("b", peer="a"))
    ...

Errors: :class:`TlsError` (refused or failed connections), :class:`agile.tls.psk.PskError`
(a malformed PSK file), :class:`agile.QKDUnavailable` (no QKD key), all under
:class:`agile.AgileError`.
"""

from __future__ import annotations

from agile.tls._openssl import unavailable_reason
from agile.tls.config import TlsSettings, tls_settings
from agile.tls.connection import ConnectionInfo, TlsConnection, TlsContext, TlsError
from agile.tls.psk import PskError, PskSecrets

__all__ = [
    "ConnectionInfo",
    "PskError",
    "PskSecrets",
    "TlsConnection",
    "TlsContext",
    "TlsError",
    "TlsSettings",
    "tls_settings",
    "unavailable_reason",
]
