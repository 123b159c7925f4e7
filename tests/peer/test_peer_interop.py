"""Interop with a real TLS stack: Debian's openssl, TLS 1.3 with an external PSK.

Two agile hosts (separate processes on 127.0.0.1) run one hybrid handshake with
``agile keys export``; ``openssl s_server -nocert`` uses the key the listening host exported,
``openssl s_client`` the key the connecting host exported. With no certificate the TLS
handshake can only succeed through the PSK: data then flows both ways. A key exported from
another session makes the TLS handshake fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.peer.conftest import Identities, Processes, Running, export_pair, file_mode

OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(
    OPENSSL is None,
    reason="the openssl command is not installed (.ci/run apt-installs Debian's openssl)",
)
SUITE = "TLS_AES_128_GCM_SHA256"
IDENTITY = "site-a"


def _tls_args(key_file: Path) -> list[str]:
    key = key_file.read_text(encoding="ascii").strip()
    return ["-psk", key, "-psk_identity", IDENTITY, "-tls1_3", "-ciphersuites", SUITE]


def _server(processes: Processes, key_file: Path) -> tuple[Running, str]:
    assert OPENSSL is not None
    server = processes.start(
        [
            OPENSSL,
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-nocert",
            "-naccept",
            "1",
            *_tls_args(key_file),
        ],
        stdin=True,
    )
    port = server.wait_for_line(r"ACCEPT 127\.0\.0\.1:(\d+)").group(1)
    return server, port


@pytest.fixture
def sessions(processes: Processes, identities: Identities, tmp_path: Path) -> dict[str, Path]:
    """Two separate agile sessions; each host wrote the TLS key of each."""
    keys: dict[str, Path] = {}
    for run in ("one", "two"):
        client, server = export_pair(
            processes,
            identities,
            [f"openssl:client-{run}.hex:{IDENTITY}"],
            [f"openssl:server-{run}.hex:{IDENTITY}"],
        )
        assert client["session_key_id"] == server["session_key_id"]
        assert client["keys"][0]["key_id"] == server["keys"][0]["key_id"]
        keys[f"client-{run}"] = tmp_path / f"client-{run}.hex"
        keys[f"server-{run}"] = tmp_path / f"server-{run}.hex"
    for path in keys.values():
        assert file_mode(path) == 0o600
    return keys


def test_openssl_tls13_psk_exchanges_data_with_keys_exported_on_each_side(
    processes: Processes, sessions: dict[str, Path]
) -> None:
    assert OPENSSL is not None
    server, port = _server(processes, sessions["server-one"])
    client = processes.start(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", *_tls_args(sessions["client-one"])],
        stdin=True,
    )
    client.wait_for_line(rf"TLSv1\.3, Cipher is {SUITE}")
    client.send("ping from the agile client host\n")
    server.wait_for_line(r"^ping from the agile client host$")
    server.send("pong from the agile server host\n")
    client.wait_for_line(r"^pong from the agile server host$")
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    client.wait()
    server.wait()
    assert any("1 server accepts that finished" in line for line in server.stdout)
    # s_server -nocert has no certificate to offer: the handshake succeeded through the PSK.
    assert not any("BEGIN CERTIFICATE" in line for line in client.stdout)


def test_a_key_from_another_session_fails_the_tls_handshake(
    processes: Processes, sessions: dict[str, Path]
) -> None:
    assert OPENSSL is not None
    server, port = _server(processes, sessions["server-one"])
    client = processes.start(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", *_tls_args(sessions["client-two"])],
        stdin=True,
    )
    client.send("must not arrive\n")
    code = client.wait()
    assert code != 0
    assert not any("Cipher is TLS_AES" in line for line in client.stdout)
    server.wait()
    assert not any("must not arrive" in line for line in server.stdout)
    # OpenSSL checks the PSK binder of the ClientHello with its own key: a different key
    # cannot produce it.
    assert any("binder does not verify" in line for line in server.stderr)
    assert any("0 server accepts that finished" in line for line in server.stdout)
