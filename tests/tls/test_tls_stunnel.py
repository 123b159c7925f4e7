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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agile.export import stunnel_psk_secrets
from agile.secret import SecretBytes
from agile.tls import PskSecrets, TlsContext, TlsError
from agile.tls.sockets import TlsSocket
from tests.peer.conftest import Identities, Processes

from .conftest import TIMEOUT_S, X25519, make_policy, needs_tls, plain_upper_echo

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
pytestmark = [
    needs_tls,
    pytest.mark.skipif(
        STUNNEL is None, reason="stunnel is not installed (.ci/run apt-installs stunnel4)"
    ),
]
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


def test_agile_client_through_a_stunnel_server(stunnel: object, psk_file: Path) -> None:
    backend, thread = plain_upper_echo()
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


def test_rotation_agile_peer_writes_stunnel_reloads_new_connections_use_the_new_key(
    processes: Processes, identities: Identities, tmp_path: Path
) -> None:
    """Two `agile peer` daemons rotate the PSK; stunnel reloads on SIGHUP after each write.

    Host B's daemon writes stunnel's PSKsecrets and signals it; host A's daemon writes the file
    that an agile.tls client reads for each new connection. New connections go through with
    each new key, and a key two rotations old is refused once stunnel has reloaded.
    """
    backend_listener = socket.create_server(("127.0.0.1", 0))
    backend_port = backend_listener.getsockname()[1]
    stop = threading.Event()

    def backend() -> None:  # a plain service that answers every connection with "ok"
        backend_listener.settimeout(0.2)
        with backend_listener:
            while not stop.is_set():
                try:
                    conn, _ = backend_listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.sendall(b"ok")

    threading.Thread(target=backend, daemon=True).start()
    pid_file = tmp_path / "stunnel.pid"
    common = ["--policy", "pqc-only-latest", "--interval", "1", "--grace", "0.2", "--json"]
    listener = processes.agile(
        "peer",
        *common,
        *identities.args_b(),
        "--listen",
        "127.0.0.1:0",
        "--sink",
        f"stunnel:{tmp_path / 'b.psk'}:{IDENTITY}",
        "--sink-command",
        f"sh -c 'test -s {pid_file} && kill -HUP $(cat {pid_file}) || true'",
    )
    address = listener.wait_for_line(r'"address": "(127\.0\.0\.1:\d+)"').group(1)
    connector = processes.agile(
        "peer",
        *common,
        *identities.args_a(),
        "--connect",
        address,
        "--sink",
        f"stunnel:{tmp_path / 'a.psk'}:{IDENTITY}",
    )
    listener.wait_for_line(r'"event": "rotated"')
    port = _free_port()
    config = tmp_path / "rotating.conf"
    config.write_text(
        f"foreground = yes\npid = {pid_file}\ndebug = 5\n\n[svc]\naccept = 127.0.0.1:{port}\n"
        f"connect = 127.0.0.1:{backend_port}\nPSKsecrets = {tmp_path / 'b.psk'}\n"
        "sslVersionMin = TLSv1.3\n",
        encoding="utf-8",
    )
    assert STUNNEL is not None
    tunnel = processes.start([STUNNEL, str(config)])
    tunnel.wait_for_line("Configuration successful", stream="stderr")

    def connect(secrets: PskSecrets) -> bool:
        policy = make_policy(X25519, qkd=False)
        context = TlsContext.client(policy, psk_secrets=secrets)
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
                TlsSocket.client(raw, context) as tls,
            ):
                return tls.recv() == b"ok"
        except (TlsError, OSError):
            return False

    used: list[bytes] = []
    deadline = time.monotonic() + 4 * TIMEOUT_S
    while len(used) < 3 and time.monotonic() < deadline:
        secrets = PskSecrets.load(tmp_path / "a.psk")
        key = secrets.entries[0][1].reveal()
        # Both hosts have written this key and stunnel has reloaded it: it must be accepted.
        agreed = (tmp_path / "b.psk").read_text() == (tmp_path / "a.psk").read_text()
        if agreed and connect(secrets) and (not used or used[-1] != key):
            used.append(key)
        time.sleep(0.1)
    stop.set()
    assert len(used) >= 3, "new connections did not follow the rotated keys"
    # A key from two rotations ago no longer opens a connection.
    old = PskSecrets.parse(f"{IDENTITY}:{used[0].hex()}\n")
    assert not connect(old)
    assert listener.proc.poll() is None
    assert connector.proc.poll() is None
    loaded = [line for line in tunnel.stderr if "Configuration successful" in line]
    assert len(loaded) >= 3  # the first load and at least one reload per key used after it
