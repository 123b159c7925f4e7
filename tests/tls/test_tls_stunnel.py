"""agile.tls against stunnel 5 (Debian's stunnel4, a real process), both directions.

The PSKsecrets file is written by ``agile.export.stunnel_psk_secrets``, the format that
``agile keys export`` writes. Debian's stunnel is built on OpenSSL 3.0, which has no ML-KEM
group, so these use a policy with a classical X25519 suite; the PSK binds a SHA-256 suite,
as stunnel's PSK always does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agile.export import stunnel_psk_secrets
from agile.secret import SecretBytes
from agile.tls import PskSecrets, TlsContext
from agile.tls.sockets import TlsSocket

from .conftest import X25519, make_policy, needs_tls

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
pytestmark = [
    needs_tls,
    pytest.mark.skipif(
        STUNNEL is None, reason="stunnel is not installed (.ci/run apt-installs stunnel4)"
    ),
]
TIMEOUT_S = 30.0
IDENTITY = "site-a"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_ready(proc: subprocess.Popen[str]) -> None:
    # stunnel logs "Configuration successful" once it listens. (A probe connection would be
    # forwarded, and use up the single connection the test's peer accepts.)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "Configuration successful" in line:
            return
    raise AssertionError("stunnel exited: " + "".join(seen)[-2000:])


@pytest.fixture
def psk_file(tmp_path: Path) -> Path:
    path = tmp_path / "psk.txt"
    path.write_text(stunnel_psk_secrets({IDENTITY: SecretBytes(os.urandom(32))}))
    return path


@pytest.fixture
def stunnel(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(section: str) -> subprocess.Popen[str]:
        config = tmp_path / f"stunnel-{len(started)}.conf"
        config.write_text(f"foreground = yes\npid =\ndebug = 5\n\n{section}", encoding="utf-8")
        assert STUNNEL is not None
        proc = subprocess.Popen(
            [STUNNEL, str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()
        proc.communicate(timeout=10)  # also drains the log left after "ready"


def _contexts(psk_file: Path) -> tuple[TlsContext, TlsContext]:
    policy = make_policy(X25519, qkd=False)
    secrets = PskSecrets.load(psk_file)
    return TlsContext.client(policy, psk_secrets=secrets), TlsContext.server(
        policy, psk_secrets=secrets
    )


def _plain_upper_echo() -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_agile_client_through_a_stunnel_server(stunnel: object, psk_file: Path) -> None:
    backend, thread = _plain_upper_echo()
    port = _free_port()
    proc = stunnel(  # type: ignore[operator]
        f"[svc]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend}\n"
        f"PSKsecrets = {psk_file}\nsslVersionMin = TLSv1.3\n"
    )
    _wait_until_ready(proc)
    client_ctx, _ = _contexts(psk_file)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
        TlsSocket.client(raw, client_ctx) as tls,
    ):
        tls.sendall(b"agile to stunnel")
        reply = b""
        while len(reply) < len(b"agile to stunnel"):
            reply += tls.recv()
        info = tls.info
    thread.join(TIMEOUT_S)
    assert reply == b"AGILE TO STUNNEL"
    assert info.group == "X25519"
    assert info.psk_identity == IDENTITY
    assert info.cipher_suite.endswith("SHA256")


def test_stunnel_client_against_an_agile_server(stunnel: object, psk_file: Path) -> None:
    _, server_ctx = _contexts(psk_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)
    agile_port = listener.getsockname()[1]
    results: dict[str, object] = {}

    def serve() -> None:
        with listener:
            raw, _ = listener.accept()
            try:
                with TlsSocket.server(raw, server_ctx) as tls:
                    data = tls.recv()
                    results["info"] = tls.info
                    tls.sendall(b"agile says: " + data)
            except Exception as exc:  # reported to the test thread
                results["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    local = _free_port()
    proc = stunnel(  # type: ignore[operator]
        f"[svc]\nclient = yes\naccept = 127.0.0.1:{local}\nconnect = 127.0.0.1:{agile_port}\n"
        f"PSKsecrets = {psk_file}\nPSKidentity = {IDENTITY}\nsslVersionMin = TLSv1.3\n"
        "sni =\n"
    )
    _wait_until_ready(proc)
    with socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT_S) as plain:
        plain.sendall(b"hello")
        reply = b""
        while not reply.endswith(b"hello"):
            chunk = plain.recv(65536)
            assert chunk, results.get("error")
            reply += chunk
    thread.join(TIMEOUT_S)
    assert "error" not in results, results["error"]
    assert reply == b"agile says: hello"
    assert getattr(results["info"], "group", None) == "X25519"
