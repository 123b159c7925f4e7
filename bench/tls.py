"""Benchmark of ``agile.tls``; prints one JSON document ``{"results": [...]}``.

Every TLS figure is a full TLS 1.3 handshake between two OpenSSL endpoints in this process
(memory BIOs, no sockets), group X25519MLKEM768, external PSK, TLS_AES_256_GCM_SHA384.

- ``tls.handshakes_per_s``: ``agile.tls`` with a QKD PSK: the client takes a key from a local
  key source (a simulated link delivering CSPRNG keys), both ends import it per RFC 9258, the
  server fetches it by key ID; then the PSK-was-used check, info and audit.
- ``tls.pyopenssl_handshakes_per_s``: bare pyOpenSSL with the same settings: the same group,
  cipher suite and PSK callbacks written directly against cryptography's binding, one fixed
  PSK, no key source, no import, no checks.
- ``tls.vs_pyopenssl``: the median over interleaved rounds of bare time / agile time per
  handshake (1.0 = no overhead; goal >= 0.9).
- ``tls.bulk_mbit_per_s``: one agile.tls connection, 16 KiB writes, client to server.
- ``tls.agile_handshake_per_s``: the project's own handshake (hybrid-default policy, with a
  QKD key and signatures) in the same run, for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.bindings.openssl.binding import Binding
from OpenSSL import SSL

# Run as a script, this file's directory comes first on sys.path, where bench/pqc.py and
# bench/qkd.py would shadow the packages that agile imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from agile import load_policy  # noqa: E402
from agile.engine import peer_engines, simulated_link  # noqa: E402
from agile.tls import TlsContext  # noqa: E402

GROUP = b"X25519MLKEM768"
# The client offers the suites of its PSK's hash; the server accepts the policy's suites.
SUITES = {
    "client": b"TLS_AES_256_GCM_SHA384",
    "server": b"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
}
_lib, _ffi = Binding.lib, Binding.ffi


def _bare_contexts() -> tuple[SSL.Context, SSL.Context, list[Any]]:
    """Client and server contexts with a fixed PSK, as a pyOpenSSL user would write them."""
    key, identity = os.urandom(48), b"bench-identity"
    keep: list[Any] = []

    def session(ssl: Any) -> Any:
        sess = _lib.Cryptography_SSL_SESSION_new()
        _lib.SSL_SESSION_set1_master_key(sess, key, len(key))
        _lib.SSL_SESSION_set_cipher(sess, _lib.SSL_CIPHER_find(ssl, b"\x13\x02"))
        _lib.SSL_SESSION_set_protocol_version(sess, 0x0304)
        return sess

    def use(ssl: Any, md: Any, id_out: Any, id_len: Any, sess: Any) -> int:
        buffer = _ffi.new("unsigned char[]", identity)
        keep.append(buffer)
        id_out[0], id_len[0], sess[0] = buffer, len(identity), session(ssl)
        return 1

    def find(ssl: Any, got: Any, got_len: int, sess: Any) -> int:
        sess[0] = session(ssl) if _ffi.buffer(got, got_len)[:] == identity else _ffi.NULL
        return 1

    contexts = []
    for role in ("client", "server"):
        # The settings agile.tls makes from the default policy, set by hand.
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.set_max_proto_version(SSL.TLS1_3_VERSION)
        context.set_tls13_ciphersuites(SUITES[role])
        context.set_options(SSL.OP_NO_TICKET)
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        _lib.SSL_CTX_set1_curves_list(context._context, GROUP)
        if role == "client":
            context.set_verify(SSL.VERIFY_PEER, lambda *_: False)
            callback = _ffi.callback(
                "int(SSL *, EVP_MD *, unsigned char **, size_t *, SSL_SESSION **)", use
            )
            _lib.SSL_CTX_set_psk_use_session_callback(context._context, callback)
        else:
            callback = _ffi.callback("int(SSL *, unsigned char *, size_t, SSL_SESSION **)", find)
            _lib.SSL_CTX_set_psk_find_session_callback(context._context, callback)
        keep.append(callback)
        contexts.append(context)
    return contexts[0], contexts[1], keep


def _drain(connection: SSL.Connection) -> bytes:
    out = b""
    while True:
        try:
            out += connection.bio_read(65536)
        except SSL.WantReadError:
            return out


def _step(connection: SSL.Connection) -> None:
    with contextlib.suppress(SSL.WantReadError):
        connection.do_handshake()


def bare_handshake(client_ctx: SSL.Context, server_ctx: SSL.Context) -> None:
    client, server = SSL.Connection(client_ctx, None), SSL.Connection(server_ctx, None)
    client.set_connect_state()
    server.set_accept_state()
    _step(client)
    server.bio_write(_drain(client))
    _step(server)
    client.bio_write(_drain(server))
    _step(client)
    server.bio_write(_drain(client))
    _step(server)
    assert _lib.SSL_session_reused(client._ssl) == 1


def agile_handshake(client_ctx: TlsContext, server_ctx: TlsContext) -> None:
    client, server = client_ctx.connection(), server_ctx.connection()
    server.receive_data(client.start())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    assert client.handshake_complete
    assert server.handshake_complete


def _per_call(function: Callable[[], None], calls: int) -> float:
    function()  # warm
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds, calls = (5, 20) if args.quick else (21, 50)

    policy = load_policy("hybrid-default-latest")
    link = simulated_link(policy)
    client_ctx = TlsContext.client(policy, key_source=link.source("sae-a", peer="sae-b"))
    server_ctx = TlsContext.server(policy, key_source=link.source("sae-b", peer="sae-a"))
    bare_client, bare_server, _keep = _bare_contexts()

    def ours() -> None:
        agile_handshake(client_ctx, server_ctx)

    def bare() -> None:
        bare_handshake(bare_client, bare_server)

    agile_times, bare_times, ratios = [], [], []
    for _ in range(rounds):
        a = _per_call(ours, calls)
        b = _per_call(bare, calls)
        agile_times.append(a)
        bare_times.append(b)
        ratios.append(b / a)

    # Bulk: one connection, 16 KiB writes.
    client, server = client_ctx.connection(), server_ctx.connection()
    server.receive_data(client.start())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    block = os.urandom(16384)
    writes = 640 if args.quick else 6400
    start = time.perf_counter()
    received = 0
    for _ in range(writes):
        client.send(block)
        server.receive_data(client.data_to_send())
        received += len(server.read())
    bulk_s = time.perf_counter() - start
    assert received == writes * len(block)

    alice, bob = peer_engines(policy, policy)
    own = []
    with alice, bob:

        def own_handshake() -> None:
            initiator, responder = alice.initiator(), bob.responder()
            responder.receive_data(initiator.start())
            initiator.receive_data(responder.data_to_send())
            responder.receive_data(initiator.data_to_send())

        for _ in range(max(3, rounds // 3)):
            own.append(_per_call(own_handshake, calls))

    results = [
        {
            "name": "tls.handshakes_per_s",
            "value": 1 / statistics.median(agile_times),
            "unit": "1/s",
        },
        {
            "name": "tls.pyopenssl_handshakes_per_s",
            "value": 1 / statistics.median(bare_times),
            "unit": "1/s",
        },
        {"name": "tls.vs_pyopenssl", "value": statistics.median(ratios), "unit": "ratio"},
        {
            "name": "tls.bulk_mbit_per_s",
            "value": writes * len(block) * 8 / bulk_s / 1e6,
            "unit": "Mbit/s",
        },
        {"name": "tls.agile_handshake_per_s", "value": 1 / statistics.median(own), "unit": "1/s"},
    ]
    print(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
