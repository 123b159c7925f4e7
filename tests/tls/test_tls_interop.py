"""agile.tls over real TCP: QKD keys from a running `agile kme serve` pair, Debian's OpenSSL.

- An application opens a TLS 1.3 connection whose group is X25519MLKEM768 and whose PSK is a
  QKD key fetched by key ID from a KME pair running as its own process (real HTTPS with
  mutual TLS to the KMEs, real TCP between the two ends); both ends read the same exporter.
- Debian's ``openssl`` 3.0 (no ML-KEM groups, so a policy with a classical X25519 suite):
  ``s_client -psk`` against an agile server and an agile client against ``s_server -nocert
  -psk``. With no certificate anywhere, only the PSK can complete these handshakes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agile.engine import simulated_link
from agile.tls import PskSecrets, TlsContext
from agile.tls.sockets import TlsSocket, TlsStream, open_connection, start_server
from qkd import Etsi014Client

from .conftest import HYBRID, OPENSSL, TIMEOUT_S, X25519, make_policy, needs_tls, openssl

pytestmark = needs_tls
needs_openssl = pytest.mark.skipif(
    OPENSSL is None, reason="the openssl command is missing (.ci/run apt-installs it)"
)


@pytest.fixture
def kme_processes(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """`agile kme certs` and `agile kme serve` as a separate process; its two base URLs."""
    certs = tmp_path / "certs"
    subprocess.run(
        [sys.executable, "-m", "agile.cli", "kme", "certs", "--out", str(certs)],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "agile.cli", "kme", "serve", "--certs", str(certs)),
            *("--listen-a", "127.0.0.1:0", "--listen-b", "127.0.0.1:0", "--json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        addresses = json.loads(proc.stdout.readline())
        yield certs, {k: f"https://{v}" for k, v in addresses.items()}
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def _serve_once(context: TlsContext, results: dict[str, object]) -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)

    def run() -> None:
        with listener:
            raw, _ = listener.accept()
            raw.settimeout(TIMEOUT_S)
            try:
                with TlsSocket.server(raw, context) as tls:
                    results["info"] = tls.info
                    results["exporter"] = tls.export_keying_material("EXPORTER-app", b"ctx")
                    results["received"] = tls.recv()
                    tls.sendall(b"pong from the server")
            except Exception as exc:  # reported to the test thread
                results["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def test_application_connection_keyed_by_a_kme_pair(
    kme_processes: tuple[Path, dict[str, str]],
) -> None:
    certs, urls = kme_processes
    policy = make_policy(HYBRID)

    def client(sae: str, kme: str, peer: str) -> Etsi014Client:
        return Etsi014Client(
            urls[kme],
            peer_sae_id=peer,
            cert=certs / f"{sae}.pem",
            key=certs / f"{sae}.key",
            ca=certs / "ca.pem",
            retries=10,
        )

    with client("sae-a", "kme_a", "sae-b") as master, client("sae-b", "kme_b", "sae-a") as slave:
        deadline = time.monotonic() + TIMEOUT_S
        while master.status().stored_key_count < 1:  # the simulated link fills the pool
            assert time.monotonic() < deadline, "the KME link did not fill"
            time.sleep(0.05)
        server_ctx = TlsContext.server(policy, key_source=slave)
        client_ctx = TlsContext.client(policy, key_source=master)
        results: dict[str, object] = {}
        port, thread = _serve_once(server_ctx, results)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
            TlsSocket.client(raw, client_ctx) as tls,
        ):
            tls.sendall(b"ping from the client")
            reply = tls.recv()
            info = tls.info
            exporter = tls.export_keying_material("EXPORTER-app", b"ctx")
        thread.join(TIMEOUT_S)
    assert "error" not in results, results.get("error")
    assert reply == b"pong from the server"
    assert results["received"] == b"ping from the client"
    assert info.group == "X25519MLKEM768"
    assert info.qkd_used
    assert info.qkd_key_id is not None
    server_info = results["info"]
    assert getattr(server_info, "qkd_key_id", None) == info.qkd_key_id
    assert results["exporter"] == exporter


def test_asyncio_adapter_round_trip() -> None:
    policy = make_policy(HYBRID, qkd=False)
    secrets = PskSecrets.parse("site-a:" + "77" * 32)
    server_ctx = TlsContext.server(policy, psk_secrets=secrets)
    client_ctx = TlsContext.client(policy, psk_secrets=secrets)

    async def main() -> tuple[bytes, str]:
        async def echo(stream: TlsStream) -> None:
            await stream.write(b"echo: " + await stream.read())

        server = await start_server(echo, "127.0.0.1", 0, server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            stream = await open_connection("127.0.0.1", port, client_ctx)
            await stream.write(b"hello")
            reply = await stream.read()
            await stream.close()
        return reply, stream.info.group

    reply, group = asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))
    assert reply == b"echo: hello"
    assert group == "X25519MLKEM768"


KEY_HEX = "5a" * 32
IDENTITY = "site-a"


def _classical_contexts(role: str) -> TlsContext:
    # Debian's OpenSSL 3.0 has no ML-KEM group: this policy allows a classical X25519 suite.
    policy = make_policy(X25519, qkd=False)
    secrets = PskSecrets.parse(f"{IDENTITY}:{KEY_HEX}\n")
    if role == "server":
        return TlsContext.server(policy, psk_secrets=secrets)
    return TlsContext.client(policy, psk_secrets=secrets)


@needs_openssl
def test_openssl_s_client_against_agile_server() -> None:
    assert OPENSSL is not None
    results: dict[str, object] = {}
    port, thread = _serve_once(_classical_contexts("server"), results)
    proc = subprocess.run(
        [
            *(OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-quiet"),
            *("-psk", KEY_HEX, "-psk_identity", IDENTITY, "-groups", "X25519"),
        ],
        input="ping from openssl\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    thread.join(TIMEOUT_S)
    assert "error" not in results, (results.get("error"), proc.stderr[-1500:])
    assert results["received"] == b"ping from openssl\n"
    assert "pong from the server" in proc.stdout
    info = results["info"]
    assert getattr(info, "group", None) == "X25519"
    assert getattr(info, "psk_identity", None) == IDENTITY


@needs_openssl
def test_agile_client_against_openssl_s_server() -> None:
    assert OPENSSL is not None
    server = openssl(
        *("s_server", "-accept", "127.0.0.1:0", "-nocert", "-naccept", "1"),
        *("-tls1_3", "-psk", KEY_HEX, "-psk_identity", IDENTITY, "-groups", "X25519"),
    )
    try:
        assert server.stdout is not None
        assert server.stdin is not None
        port = 0
        for line in server.stdout:
            if line.startswith("ACCEPT"):
                port = int(line.rsplit(":", 1)[1])
                break
        assert port, "s_server did not report its port"
        with (
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw,
            TlsSocket.client(raw, _classical_contexts("client")) as tls,
        ):
            tls.sendall(b"ping from agile\n")
            server.stdin.write("pong from openssl\n")
            server.stdin.flush()
            reply = tls.recv()
            assert tls.info.group == "X25519"
        received = ""
        for line in server.stdout:
            received += line
            if "ping from agile" in line:
                break
    finally:
        server.kill()
        server.communicate(timeout=10)
    assert reply == b"pong from openssl\n"
    assert "ping from agile" in received


def test_many_concurrent_connections_each_with_its_own_qkd_key() -> None:
    policy = make_policy(HYBRID)
    link = simulated_link(policy)
    server_ctx = TlsContext.server(policy, key_source=link.source("sae-b", peer="sae-a"))
    client_ctx = TlsContext.client(policy, key_source=link.source("sae-a", peer="sae-b"))
    count = 24

    async def main() -> list[tuple[bytes, str | None]]:
        async def echo(stream: TlsStream) -> None:
            await stream.write(await stream.read())

        server = await start_server(echo, "127.0.0.1", 0, server_ctx)
        port = server.sockets[0].getsockname()[1]

        async def one(index: int) -> tuple[bytes, str | None]:
            stream = await open_connection("127.0.0.1", port, client_ctx)
            await stream.write(f"client {index}".encode())
            reply = await stream.read()
            await stream.close()
            return reply, stream.info.qkd_key_id

        async with server:
            return await asyncio.gather(*(one(i) for i in range(count)))

    results = asyncio.run(asyncio.wait_for(main(), 2 * TIMEOUT_S))
    assert [reply for reply, _ in results] == [f"client {i}".encode() for i in range(count)]
    assert len({key_id for _, key_id in results}) == count
