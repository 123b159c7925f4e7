"""agile.tls against tlslite-ng, an independent pure-Python TLS 1.3 with X25519MLKEM768.

tlslite-ng is a test-only dependency: the second implementation of the hybrid group and of
TLS 1.3 external PSKs, with its own key schedule. It also lets a client offer ``psk_ke``
alone, which OpenSSL's tools cannot.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agile.tls import PskSecrets, TlsContext, TlsError
from agile.tls.sockets import TlsSocket

from .conftest import HYBRID, TIMEOUT_S, make_policy, needs_tls

tlslite = pytest.importorskip("tlslite", reason="tlslite-ng is a test dependency (make test)")
pytest.importorskip("kyber_py", reason="tlslite-ng's ML-KEM groups need kyber-py")
pytestmark = needs_tls
KEY = os.urandom(32)
IDENTITY = "site-a"


def _settings(psk_modes: list[str], key: bytes = KEY) -> Any:
    settings = tlslite.HandshakeSettings()
    settings.pskConfigs = [(IDENTITY.encode(), key, "sha256")]
    settings.psk_modes = psk_modes
    settings.eccCurves = ["x25519mlkem768"]
    settings.keyShares = ["x25519mlkem768"]
    settings.minVersion = (3, 4)
    return settings


def _contexts() -> tuple[TlsContext, TlsContext]:
    policy = make_policy(HYBRID, qkd=False)
    secrets = PskSecrets.parse(f"{IDENTITY}:{KEY.hex()}\n")
    return TlsContext.client(policy, psk_secrets=secrets), TlsContext.server(
        policy, psk_secrets=secrets
    )


def _in_thread(target: Callable[[socket.socket], None]) -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)

    def run() -> None:
        with listener:
            raw, _ = listener.accept()
            with raw:
                raw.settimeout(TIMEOUT_S)
                target(raw)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_tlslite_client_against_agile_server() -> None:
    _, server_ctx = _contexts()
    results: dict[str, Any] = {}

    def serve(raw: socket.socket) -> None:
        try:
            with TlsSocket.server(raw, server_ctx) as tls:
                results["info"] = tls.info
                tls.sendall(b"agile: " + tls.recv())
        except Exception as exc:  # reported to the test thread
            results["error"] = exc

    port, thread = _in_thread(serve)
    client = tlslite.TLSConnection(socket.create_connection(("127.0.0.1", port), TIMEOUT_S))
    client.handshakeClientCert(settings=_settings(["psk_dhe_ke"]), serverName="localhost")
    client.write(b"from tlslite")
    reply = client.read()
    client.close()
    thread.join(TIMEOUT_S)
    assert "error" not in results, results.get("error")
    assert reply == b"agile: from tlslite"
    assert results["info"].group == "X25519MLKEM768"
    assert results["info"].psk_identity == IDENTITY


def test_agile_client_against_tlslite_server() -> None:
    client_ctx, _ = _contexts()
    results: dict[str, Any] = {}

    def serve(raw: socket.socket) -> None:
        connection = tlslite.TLSConnection(raw)
        try:
            connection.handshakeServer(settings=_settings(["psk_dhe_ke"]))
            connection.write(b"tlslite: " + connection.read())
            connection.close()
        except Exception as exc:  # reported to the test thread
            results["error"] = exc

    port, thread = _in_thread(serve)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
        TlsSocket.client(raw, client_ctx) as tls,
    ):
        tls.sendall(b"from agile")
        reply = tls.recv()
        info = tls.info
    thread.join(TIMEOUT_S)
    assert "error" not in results, results.get("error")
    assert reply == b"tlslite: from agile"
    assert info.group == "X25519MLKEM768"
    assert info.psk_used


@pytest.mark.parametrize(
    ("modes", "key", "reason"),
    [
        (["psk_ke"], KEY, "psk_ke alone, which is refused"),
        (["psk_dhe_ke"], bytes(32), "binder does not verify"),
    ],
    ids=["psk_ke-only", "wrong-key"],
)
def test_agile_server_refuses(modes: list[str], key: bytes, reason: str) -> None:
    _, server_ctx = _contexts()
    results: dict[str, Any] = {}

    def serve(raw: socket.socket) -> None:
        try:
            TlsSocket.server(raw, server_ctx)
            results["accepted"] = True
        except TlsError as exc:
            results["refused"] = str(exc)

    port, thread = _in_thread(serve)
    with socket.create_connection(("127.0.0.1", port), TIMEOUT_S) as raw:
        client = tlslite.TLSConnection(raw)
        with pytest.raises(tlslite.TLSRemoteAlert):
            client.handshakeClientCert(settings=_settings(modes, key), serverName="localhost")
    thread.join(TIMEOUT_S)
    assert "accepted" not in results
    assert reason in results["refused"]
