"""The certificate fallback of a policy whose QKD is optional, and the link-alarm check.

No silent downgrade: a client falls back only when it could not get a QKD key and has a
trust anchor and a server name; each fallback is a ``qkd_fallback`` audit event at both ends;
a PSK that was offered must key the connection; a policy that requires QKD has no fallback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa
from cryptography.x509.oid import NameOID

from agile import QKDUnavailable
from agile.engine import simulated_link
from agile.tls import TlsContext, TlsError
from qkd import KeySource, KeyStatus, KMEUnavailable, QkdKey

from .conftest import HYBRID, make_policy, needs_tls, pump

pytestmark = needs_tls


def _optional_policy() -> Any:
    return make_policy(
        HYBRID,
        qkd_required=False,
        auth={"signature_algorithms": ["ML-DSA-65"]},
    )


@pytest.fixture(scope="module")
def server_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed ML-DSA-65 certificate for localhost: the server's and the trust anchor."""
    directory = tmp_path_factory.mktemp("cert")
    key = mldsa.MLDSA65PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, None)
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Source:
    """A real simulated-link source whose status or delivery can be made to fail."""

    def __init__(self, inner: KeySource, *, down: bool = False, qber: float | None = None):
        self.inner, self.down, self.qber = inner, down, qber

    def status(self) -> KeyStatus:
        status = self.inner.status()
        if self.qber is None:
            return status
        return dataclasses.replace(status, status_extension={"qber": self.qber})

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        if self.down:
            raise KMEUnavailable(503, "the key pool is empty")
        return self.inner.get_keys(number, size_bits)

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        return self.inner.get_keys_by_id(key_ids)

    def close(self) -> None:
        self.inner.close()


def _pair(
    certificate: tuple[Path, Path],
    *,
    down: bool = False,
    qber: float | None = None,
    server_name: str = "localhost",
) -> tuple[TlsContext, TlsContext]:
    policy = _optional_policy()
    link = simulated_link(policy)
    client = TlsContext.client(
        policy,
        key_source=Source(link.source("sae-a", peer="sae-b"), down=down, qber=qber),
        ca=certificate[0],
        server_name=server_name,
    )
    server = TlsContext.server(
        policy, key_source=link.source("sae-b", peer="sae-a"), certificate=certificate
    )
    return client, server


def test_qkd_still_keys_the_connection_when_it_is_there(
    server_certificate: tuple[Path, Path],
) -> None:
    client_ctx, server_ctx = _pair(server_certificate)
    client, server = client_ctx.connection(), server_ctx.connection()
    pump(client, server)
    assert client.info.qkd_used
    assert server.info.psk_used
    assert client.info.fallback_reason is None


def test_no_qkd_key_falls_back_to_a_verified_certificate(
    server_certificate: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    client_ctx, server_ctx = _pair(server_certificate, down=True)
    client, server = client_ctx.connection(), server_ctx.connection()
    with caplog.at_level(logging.INFO, logger="agile.audit"):
        pump(client, server)
    for info in (client.info, server.info):
        assert info.group == "X25519MLKEM768"
        assert not info.psk_used
        assert not info.qkd_used
        assert info.fallback_reason is not None
    assert "503" in (client.info.fallback_reason or "")
    fallbacks = [r for r in caplog.records if r.event == "qkd_fallback"]  # type: ignore[attr-defined]
    assert {r.role for r in fallbacks} == {"tls-client", "tls-server"}  # type: ignore[attr-defined]
    assert client.export_keying_material("EXPORTER-x") == server.export_keying_material(
        "EXPORTER-x"
    )


def test_a_link_in_alarm_is_not_used(server_certificate: tuple[Path, Path]) -> None:
    client_ctx, server_ctx = _pair(server_certificate, qber=0.2)
    client, server = client_ctx.connection(), server_ctx.connection()
    pump(client, server)
    assert not client.info.qkd_used
    assert "QBER 0.2000 exceeds the policy maximum" in (client.info.fallback_reason or "")


def test_the_fallback_verifies_the_server_name(server_certificate: tuple[Path, Path]) -> None:
    client_ctx, server_ctx = _pair(server_certificate, down=True, server_name="other.example")
    client, server = client_ctx.connection(), server_ctx.connection()
    server.receive_data(client.start())
    with pytest.raises(TlsError, match="certificate verify failed"):
        client.receive_data(server.data_to_send())


def test_an_offered_psk_is_never_replaced_by_the_certificate(
    server_certificate: tuple[Path, Path],
) -> None:
    # The server cannot find the client's key (another link) but has a certificate: OpenSSL
    # would complete with the certificate; the client refuses, since it offered a PSK.
    policy = _optional_policy()
    client_ctx = TlsContext.client(
        policy,
        key_source=simulated_link(policy).source("sae-a", peer="sae-b"),
        ca=server_certificate[0],
        server_name="localhost",
    )
    server_ctx = TlsContext.server(
        policy,
        key_source=simulated_link(policy).source("sae-b", peer="sae-a"),
        certificate=server_certificate,
    )
    client, server = client_ctx.connection(), server_ctx.connection()
    server.receive_data(client.start())
    with pytest.raises(TlsError, match="without our PSK"):
        client.receive_data(server.data_to_send())


def test_without_a_configured_fallback_an_optional_policy_fails_closed() -> None:
    policy = _optional_policy()
    link = simulated_link(policy)
    client_ctx = TlsContext.client(
        policy, key_source=Source(link.source("sae-a", peer="sae-b"), down=True)
    )
    with pytest.raises(QKDUnavailable, match="no certificate fallback is configured"):
        client_ctx.connection().start()


def test_a_policy_requiring_qkd_takes_no_certificate(server_certificate: tuple[Path, Path]) -> None:
    policy = make_policy(HYBRID, auth={"signature_algorithms": ["ML-DSA-65"]})  # required
    link = simulated_link(policy)
    with pytest.raises(TlsError, match="requires QKD"):
        TlsContext.server(
            policy, key_source=link.source("sae-b", peer="sae-a"), certificate=server_certificate
        )


def test_a_bad_certificate_file_is_a_clear_error(tmp_path: Path) -> None:
    policy = _optional_policy()
    (tmp_path / "c.pem").write_text("not a certificate")
    with pytest.raises(TlsError, match="give a PEM chain and its private key"):
        TlsContext.server(
            policy,
            key_source=simulated_link(policy).source("sae-b", peer="sae-a"),
            certificate=(tmp_path / "c.pem", tmp_path / "c.pem"),
        )
