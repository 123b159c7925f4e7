"""Fixtures for agile.tls: policies, contexts over a simulated QKD link, a pump between ends."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from typing import Any

import pytest

from agile.policy.loader import policy_from_dict
from agile.policy.model import Policy
from agile.tls import unavailable_reason
from tests.peer.conftest import identities, processes  # noqa: F401 - fixtures for stunnel tests

REASON = unavailable_reason()
needs_tls = pytest.mark.skipif(REASON is not None, reason=f"agile.tls unavailable: {REASON}")

HYBRID = ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]
X25519 = ["DHKEM(X25519, HKDF-SHA256)"]


def make_policy(
    *suites: list[str], qkd: bool = True, qkd_required: bool = True, **overrides: Any
) -> Policy:
    """A policy whose suites have these KEM components (plus QKD when ``qkd``)."""
    document: dict[str, Any] = {
        "schema_version": 1,
        "name": "tls-test",
        "version": "1",
        "suites": [
            {"name": f"s{i}", "components": [*kems, *(["QKD"] if qkd else [])]}
            for i, kems in enumerate(suites or (HYBRID,))
        ],
        "qkd": (
            {"source": "simulated", "required": qkd_required, "key_size_bits": 256}
            if qkd
            else {"source": "none"}
        ),
        "rules": {"min_nist_level": 0},
    }
    document.update(overrides)
    return policy_from_dict(document, source="tests/tls")


def pump(client: Any, server: Any) -> None:
    """Run a handshake in memory: ClientHello, the server's flight, the client's Finished."""
    server.receive_data(client.start())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())


OPENSSL = shutil.which("openssl")
TIMEOUT_S = 30.0


def plain_upper_echo() -> tuple[int, threading.Thread]:
    """A plain TCP service for one connection that answers what it gets in capitals."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT_S)

    def run() -> None:
        with listener, listener.accept()[0] as conn:
            while data := conn.recv(65536):
                conn.sendall(data.upper())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def openssl(*args: str) -> subprocess.Popen[str]:
    """Debian's ``openssl`` with line-buffered text pipes on stdin and stdout."""
    assert OPENSSL is not None
    return subprocess.Popen(
        [OPENSSL, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
