"""agile.tls end to end in memory: QKD PSKs over the hybrid group, and every refusal.

Both ends are real OpenSSL (the one pyca/cryptography bundles) over memory BIOs; the QKD keys
come from a simulated link shared by both ends, each key delivered once.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from agile import QKDUnavailable
from agile.engine import simulated_link
from agile.tls import PskSecrets, TlsConnection, TlsContext, TlsError
from agile.tls.psk import qkd_identity
from qkd import KeySource, KeyStatus, KMEUnavailable, QkdKey

from .conftest import HYBRID, X25519, make_policy, needs_tls, pump

pytestmark = needs_tls


def _contexts(policy: Any = None) -> tuple[TlsContext, TlsContext, Any]:
    policy = policy or make_policy(HYBRID)
    link = simulated_link(policy)
    client = TlsContext.client(policy, key_source=link.source("sae-a", peer="sae-b"))
    server = TlsContext.server(policy, key_source=link.source("sae-b", peer="sae-a"))
    return client, server, link


def _static(secret: str, policy: Any, role: str, identity: str | None = None) -> TlsContext:
    secrets = PskSecrets.parse(f"site-a:{secret}\n")
    if role == "client":
        return TlsContext.client(policy, psk_secrets=secrets, psk_identity=identity)
    return TlsContext.server(policy, psk_secrets=secrets)


class CountingSource:
    """A real key source behind a counter of dec_keys calls (not a mock: keys are real)."""

    def __init__(self, inner: KeySource) -> None:
        self.inner = inner
        self.by_id_calls = 0

    def status(self) -> KeyStatus:
        return self.inner.status()

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        return self.inner.get_keys(number, size_bits)

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        self.by_id_calls += 1
        return self.inner.get_keys_by_id(key_ids)

    def close(self) -> None:
        self.inner.close()


def test_qkd_psk_with_the_hybrid_group(caplog: pytest.LogCaptureFixture) -> None:
    client_ctx, server_ctx, _ = _contexts()
    client, server = client_ctx.connection(), server_ctx.connection()
    with caplog.at_level(logging.INFO, logger="agile.audit"):
        pump(client, server)
    assert client.handshake_complete
    assert server.handshake_complete
    for info in (client.info, server.info):
        assert info.version == "TLSv1.3"
        assert info.group == "X25519MLKEM768"
        assert info.cipher_suite == "TLS_AES_256_GCM_SHA384"
        assert info.psk_used
        assert info.qkd_used
        assert info.policy_fingerprint == client_ctx.settings.policy.fingerprint
        assert "key schedule" in info.combiner
    assert client.info.qkd_key_id == server.info.qkd_key_id is not None
    assert client.export_keying_material("EXPORTER-test", b"c", 48) == (
        server.export_keying_material("EXPORTER-test", b"c", 48)
    )
    client.send(b"ping " * 5000)
    server.receive_data(client.data_to_send())
    assert server.read() == b"ping " * 5000
    server.send(b"pong")
    client.receive_data(server.data_to_send())
    assert client.read() == b"pong"
    events = [r.event for r in caplog.records]  # type: ignore[attr-defined]
    assert events.count("handshake_complete") == 2
    assert events.count("qkd_key_used") == 2


def test_each_qkd_key_serves_one_connection() -> None:
    client_ctx, server_ctx, _ = _contexts()
    ids = set()
    for _ in range(3):
        client, server = client_ctx.connection(), server_ctx.connection()
        pump(client, server)
        ids.add(client.info.qkd_key_id)
    assert len(ids) == 3


def test_key_material_stays_out_of_reprs_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    policy = make_policy(HYBRID)
    link = simulated_link(policy)
    source = link.source("sae-a", peer="sae-b")
    seen: list[bytes] = []

    class Recording(CountingSource):
        def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
            keys = super().get_keys(number, size_bits)
            seen.extend(k.key for k in keys)
            return keys

    client_ctx = TlsContext.client(policy, key_source=Recording(source))
    server_ctx = TlsContext.server(policy, key_source=link.source("sae-b", peer="sae-a"))
    client, server = client_ctx.connection(), server_ctx.connection()
    with caplog.at_level(logging.DEBUG):
        pump(client, server)
    exported = client.export_keying_material("EXPORTER-x").reveal()
    text = caplog.text + repr(client) + repr(client.info) + repr(client_ctx) + str(client.info)
    for secret in (*seen, exported):
        assert secret.hex() not in text.lower()
        assert repr(secret)[2:-1] not in text


def test_a_wrong_static_psk_fails_and_no_data_passes() -> None:
    policy = make_policy(HYBRID, qkd=False)
    client = _static("11" * 32, policy, "client").connection()
    server = _static("22" * 32, policy, "server").connection()
    with pytest.raises(TlsError, match="binder does not verify"):
        server.receive_data(client.start())
    with pytest.raises(TlsError, match="handshake failed"):
        client.receive_data(server.data_to_send())  # the alert
    assert not server.handshake_complete
    with pytest.raises(TlsError):
        client.send(b"secret")


def test_static_psk_with_the_same_key_works() -> None:
    policy = make_policy(HYBRID, qkd=False)
    client = _static("33" * 32, policy, "client").connection()
    server = _static("33" * 32, policy, "server").connection()
    pump(client, server)
    assert client.info.psk_identity == server.info.psk_identity == "site-a"
    assert not client.info.qkd_used
    assert client.info.cipher_suite.endswith("SHA256")  # as OpenSSL -psk and stunnel bind it


def test_an_unknown_key_id_is_refused_and_the_kme_is_asked_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = make_policy(HYBRID)
    # Two separate links: the server's source has never seen the client's key.
    client_link, server_link = simulated_link(policy), simulated_link(policy)
    server_source = CountingSource(server_link.source("sae-b", peer="sae-a"))
    client = TlsContext.client(policy, key_source=client_link.source("sae-a", peer="sae-b"))
    server = TlsContext.server(policy, key_source=server_source)
    c, s = client.connection(), server.connection()
    with caplog.at_level(logging.INFO, logger="agile.audit"), pytest.raises(TlsError) as caught:
        s.receive_data(c.start())
    assert "could not be had" in str(caught.value)
    assert server_source.by_id_calls == 1
    with pytest.raises(TlsError):
        c.receive_data(s.data_to_send())  # the client gets the alert
    failed = [r for r in caplog.records if r.event == "handshake_failed"]  # type: ignore[attr-defined]
    assert {r.role for r in failed} == {"tls-server", "tls-client"}  # type: ignore[attr-defined]


def test_a_classical_only_client_is_refused_by_a_post_quantum_policy() -> None:
    classical = make_policy(X25519, qkd=False)
    client = _static("44" * 32, classical, "client").connection()
    server = _static("44" * 32, make_policy(HYBRID, qkd=False), "server").connection()
    with pytest.raises(TlsError) as caught:
        server.receive_data(client.start())
    assert "shared group" in str(caught.value) or "key share" in str(caught.value)


def test_a_client_offering_x25519_first_gets_the_hybrid() -> None:
    client_policy = make_policy(X25519, HYBRID, qkd=False)
    client = _static("55" * 32, client_policy, "client").connection()
    server = _static("55" * 32, make_policy(HYBRID, qkd=False), "server").connection()
    server.receive_data(client.start())  # x25519 key share: HelloRetryRequest for the hybrid
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())  # second ClientHello
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    assert client.info.group == server.info.group == "X25519MLKEM768"


@pytest.mark.parametrize(
    "data",
    [b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 4],
)
def test_garbage_instead_of_a_client_hello_fails_cleanly(data: bytes) -> None:
    _, server_ctx, _ = _contexts()
    server = server_ctx.connection()
    with pytest.raises(TlsError, match="handshake failed"):
        server.receive_data(data)


def test_a_truncated_client_hello_then_eof_fails_cleanly() -> None:
    client_ctx, server_ctx, _ = _contexts()
    hello = client_ctx.connection().start()
    server = server_ctx.connection()
    server.receive_data(hello[: len(hello) // 2])
    assert not server.handshake_complete
    with pytest.raises(TlsError, match="closed the connection during the handshake"):
        server.receive_data(b"")


def test_an_unavailable_kme_fails_closed_before_anything_is_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Down(CountingSource):
        def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
            raise KMEUnavailable(503, "no keys in the pool")

    policy = make_policy(HYBRID)
    link = simulated_link(policy)
    client = TlsContext.client(policy, key_source=Down(link.source("sae-a", peer="sae-b")))
    connection = client.connection()
    with caplog.at_level(logging.INFO, logger="agile.audit"), pytest.raises(QKDUnavailable):
        connection.start()
    assert [r.event for r in caplog.records] == ["handshake_failed"]  # type: ignore[attr-defined]
    assert connection.data_to_send() == b""


def test_a_failing_callback_means_no_psk_and_a_clear_error() -> None:
    class Broken(CountingSource):
        def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
            raise RuntimeError("a bug in a key source")

    policy = make_policy(HYBRID)
    link = simulated_link(policy)
    client = TlsContext.client(policy, key_source=link.source("sae-a", peer="sae-b"))
    server = TlsContext.server(policy, key_source=Broken(link.source("sae-b", peer="sae-a")))
    c, s = client.connection(), server.connection()
    with pytest.raises(TlsError, match="PSK could not be prepared: a bug in a key source"):
        s.receive_data(c.start())


def test_a_server_identity_from_another_hash_is_refused() -> None:
    # A SHA-256-bound QKD identity against a policy that allows SHA-384 suites only.
    cnsa = make_policy(
        ["ML-KEM-1024", "DHKEM(P-384, HKDF-SHA384)"],
        kdf={"hash": "SHA-384"},
        auth={"signature_algorithms": ["ML-DSA-87"]},
        rules={"min_nist_level": 5, "forbidden": ["SHA-256"]},
    )
    link = simulated_link(cnsa)
    server = TlsContext.server(cnsa, key_source=link.source("sae-b", peer="sae-a")).connection()
    reply = server.server_psk(
        qkd_identity("0b5c9a53-4a5b-4fd3-a1a0-3c2f3e8f0d11", "sha256").encode()
    )
    assert reply is None
    assert server.refusal is not None
    assert "sha256" in server.refusal


def test_a_policy_without_qkd_refuses_a_key_source() -> None:
    policy = make_policy(HYBRID, qkd=False)
    link = simulated_link(make_policy(HYBRID))
    with pytest.raises(TlsError, match="has no suite with QKD"):
        TlsContext.client(policy, key_source=link.source("sae-a", peer="sae-b"))


def test_a_static_psk_needs_a_sha256_suite() -> None:
    cnsa_static = make_policy(
        ["ML-KEM-1024", "DHKEM(P-384, HKDF-SHA384)"],
        qkd=False,
        kdf={"hash": "SHA-384"},
        auth={"signature_algorithms": ["ML-DSA-87"]},
        rules={"min_nist_level": 5, "forbidden": ["SHA-256"]},
    )
    with pytest.raises(TlsError, match="no SHA-256 cipher suite"):
        _static("66" * 32, cnsa_static, "server")


def test_a_library_failure_never_crashes_the_interpreter() -> None:
    # Error paths through the C callbacks, with tracebacks formatted, in a fresh process.
    code = """
import traceback
from agile.engine import simulated_link
from agile.tls import TlsContext, TlsError
from tests.tls.conftest import make_policy, HYBRID, pump
policy = make_policy(HYBRID)
a, b = simulated_link(policy), simulated_link(policy)
for _ in range(20):
    c = TlsContext.client(policy, key_source=a.source("sae-a", peer="sae-b")).connection()
    s = TlsContext.server(policy, key_source=b.source("sae-b", peer="sae-a")).connection()
    try:
        pump(c, s)
    except TlsError as exc:
        "".join(traceback.format_exception(exc))
print("clean")
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "clean"


def test_connection_repr_and_states() -> None:
    client_ctx, server_ctx, _ = _contexts()
    client: TlsConnection = client_ctx.connection()
    assert "handshaking" in repr(client)
    with pytest.raises(TlsError, match="has not completed"):
        _ = client.info
    server = server_ctx.connection()
    pump(client, server)
    assert "complete" in repr(client)
    server.receive_data(client.close())
    assert server.read() == b""
    assert server.closed


def _refusal_wrong_psk() -> tuple[TlsConnection, bytes]:
    policy = make_policy(HYBRID, qkd=False)
    client = _static("11" * 32, policy, "client").connection()
    return _static("22" * 32, policy, "server").connection(), client.start()


def _refusal_unknown_key_id() -> tuple[TlsConnection, bytes]:
    policy = make_policy(HYBRID)
    client = TlsContext.client(policy, key_source=simulated_link(policy).source("a", peer="b"))
    server = TlsContext.server(policy, key_source=simulated_link(policy).source("b", peer="a"))
    return server.connection(), client.connection().start()


def _refusal_classical_only() -> tuple[TlsConnection, bytes]:
    client = _static("44" * 32, make_policy(X25519, qkd=False), "client").connection()
    server = _static("44" * 32, make_policy(HYBRID, qkd=False), "server").connection()
    return server, client.start()


def _refusal_garbage() -> tuple[TlsConnection, bytes]:
    return _contexts()[1].connection(), b"GET / HTTP/1.1\r\n\r\n"


@pytest.mark.parametrize(
    "scenario",
    [_refusal_wrong_psk, _refusal_unknown_key_id, _refusal_classical_only, _refusal_garbage],
    ids=["wrong-psk", "unknown-key-id", "classical-only", "garbage"],
)
def test_every_refusal_is_an_audit_event(scenario: Any, caplog: pytest.LogCaptureFixture) -> None:
    server, first_flight = scenario()
    with caplog.at_level(logging.INFO, logger="agile.audit"), pytest.raises(TlsError):
        server.receive_data(first_flight)
    (event,) = [r for r in caplog.records if r.event == "handshake_failed"]  # type: ignore[attr-defined]
    assert event.role == "tls-server"  # type: ignore[attr-defined]
    assert event.reason  # type: ignore[attr-defined]
