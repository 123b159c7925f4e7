"""`agile tls serve` and `agile tls connect` as processes, stunnel style, on loopback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import OPENSSL, TIMEOUT_S, needs_tls, openssl, plain_upper_echo

pytestmark = needs_tls
AGILE = [sys.executable, "-m", "agile.cli"]
KEY_HEX = "c3" * 32

CLASSICAL_POLICY = """\
schema_version = 1
name = "x25519-for-openssl-3"
version = "1"

[[suites]]
name = "x25519"
components = ["DHKEM(X25519, HKDF-SHA256)"]

[auth]
method = "psk"

[rules]
min_nist_level = 0
"""


@pytest.fixture
def psk_file(tmp_path: Path) -> Path:
    path = tmp_path / "psk.txt"
    path.write_text(f"site-a:{KEY_HEX}\n", encoding="ascii")
    return path


class Served:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["event"] == "listening", first
        self.port = int(first["address"].rsplit(":", 1)[1])

    def stop(self) -> tuple[int, list[dict[str, object]]]:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=TIMEOUT_S)
        return self.proc.returncode, [json.loads(line) for line in out.splitlines() if line]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    started: list[Served] = []

    def start(*args: str) -> Served:
        proc = subprocess.Popen(
            [*AGILE, "tls", "serve", "--listen", "127.0.0.1:0", "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        served = Served(proc)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.communicate(timeout=10)


def test_echo_through_serve_and_connect_then_a_clean_stop(serve: object, psk_file: Path) -> None:
    served = serve("--echo", "--psk-secrets", str(psk_file))  # type: ignore[operator]
    proc = subprocess.run(
        [*AGILE, "tls", "connect", f"127.0.0.1:{served.port}", "--psk-secrets", str(psk_file)],
        input="hello over X25519MLKEM768\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello over X25519MLKEM768\n"
    assert "group=X25519MLKEM768" in proc.stderr
    code, events = served.stop()
    assert code == 0
    (connection,) = [e for e in events if e["event"] == "connection"]
    assert connection["group"] == "X25519MLKEM768"
    assert connection["psk_identity"] == "site-a"
    assert connection["bytes_in"] == connection["bytes_out"] == 26
    assert events[-1] == {"event": "stopped"}
    assert KEY_HEX not in json.dumps(events)


def test_plain_tcp_through_two_tunnels(serve: object, psk_file: Path, tmp_path: Path) -> None:
    backend_port, backend = plain_upper_echo()
    served = serve(  # type: ignore[operator]
        "--forward", f"127.0.0.1:{backend_port}", "--psk-secrets", str(psk_file)
    )
    client = subprocess.Popen(
        [
            *AGILE,
            "tls",
            "connect",
            f"127.0.0.1:{served.port}",
            "--listen",
            "127.0.0.1:0",
            "--psk-secrets",
            str(psk_file),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        listening = json.loads(client.stdout.readline())
        port = int(listening["address"].rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as plain:
            plain.sendall(b"through the tunnel")
            received = b""
            while len(received) < len(b"through the tunnel"):
                received += plain.recv(65536)
        assert received == b"THROUGH THE TUNNEL"
        backend.join(TIMEOUT_S)
    finally:
        client.send_signal(signal.SIGTERM)
        out, err = client.communicate(timeout=TIMEOUT_S)
    assert client.returncode == 0, err
    assert any(json.loads(line)["event"] == "connection" for line in out.splitlines())
    code, events = served.stop()
    assert code == 0
    assert [e["group"] for e in events if e["event"] == "connection"] == ["X25519MLKEM768"]


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is missing")
def test_openssl_s_client_against_agile_tls_serve(
    serve: object, psk_file: Path, tmp_path: Path
) -> None:
    assert OPENSSL is not None
    policy = tmp_path / "x25519.toml"
    policy.write_text(CLASSICAL_POLICY, encoding="utf-8")
    served = serve("--echo", "--psk-secrets", str(psk_file), "--policy", str(policy))  # type: ignore[operator]
    # -quiet implies -ign_eof: s_client waits for the server, so read the echo, then stop it.
    client = openssl(
        *("s_client", "-connect", f"127.0.0.1:{served.port}", "-tls1_3", "-quiet"),
        *("-psk", KEY_HEX, "-psk_identity", "site-a", "-groups", "X25519"),
    )
    try:
        assert client.stdin is not None
        assert client.stdout is not None
        client.stdin.write("from openssl 3.0\n")
        client.stdin.flush()
        echoed = client.stdout.readline()
    finally:
        client.kill()
        client.communicate(timeout=TIMEOUT_S)
    assert echoed == "from openssl 3.0\n"
    _, events = served.stop()
    assert [e["group"] for e in events if e["event"] == "connection"] == ["X25519"]


@pytest.mark.skipif(OPENSSL is None, reason="the openssl command is missing")
def test_default_policy_refuses_a_classical_only_client(serve: object, psk_file: Path) -> None:
    assert OPENSSL is not None
    served = serve("--echo", "--psk-secrets", str(psk_file))  # type: ignore[operator]
    proc = subprocess.run(
        [
            *(OPENSSL, "s_client", "-connect", f"127.0.0.1:{served.port}", "-tls1_3", "-quiet"),
            *("-psk", KEY_HEX, "-psk_identity", "site-a", "-groups", "X25519"),
        ],
        input="never delivered\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert "never delivered" not in proc.stdout
    _, events = served.stop()
    (refused,) = [e for e in events if e["event"] == "refused"]
    assert "no suitable key share" in str(refused["reason"])
    assert not [e for e in events if e["event"] == "connection"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["serve", "--listen", "127.0.0.1:0", "--echo"], 1, "simulated QKD link"),
        (
            ["serve", "--listen", "127.0.0.1:0", "--echo", "--psk-secrets", "p", "--kme", "u"],
            2,
            "give one PSK source",
        ),
        (["serve", "--listen", "127.0.0.1:0", "--echo", "--tls-cert", "c"], 2, "go together"),
        (
            ["serve", "--listen", "nonsense", "--echo", "--psk-secrets", "p"],
            2,
            "expected HOST:PORT",
        ),
        (["connect", "127.0.0.1:1", "--kme", "https://127.0.0.1:1"], 2, "--kme needs"),
        (["connect", "127.0.0.1:1", "--psk-secrets", "missing.txt"], 1, "missing.txt"),
    ],
)
def test_usage_and_input_errors_are_one_line(
    args: list[str], code: int, message: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [*AGILE, "tls", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == code
    assert proc.stderr.count("\n") == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_policy_without_a_tls_group_is_a_located_error(psk_file: Path, tmp_path: Path) -> None:
    policy = tmp_path / "hqc.toml"
    policy.write_text(
        'schema_version = 1\nname = "hqc"\nversion = "1"\n\n[[suites]]\nname = "hqc"\n'
        'components = ["HQC-128"]\n',
        encoding="utf-8",
    )
    proc = subprocess.run(
        [
            *AGILE,
            "tls",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--echo",
            "--psk-secrets",
            str(psk_file),
            "--policy",
            str(policy),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 1
    assert f"{policy}:7:" in proc.stderr
    assert "suites.0.components" in proc.stderr
