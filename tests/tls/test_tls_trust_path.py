"""agile.tls applies the policy's trust-path bounds to its QKD PSKs, at both ends.

The relayed keys (A-B-C-D, two trusted nodes) come over real HTTPS from the named test double
of a network KME (tests/handshake/relay_kme_double.py); a direct link's come from a simulated
link, which reports its two ends. tests/network/test_node_trust_path.py checks the same
bounds with keys a real 4-node chain of network KMEs relays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agile import QKDUnavailable, TrustPathViolation
from agile.policy.loader import policy_from_dict
from agile.policy.model import Policy
from agile.tls import TlsContext
from qkd.delivery.etsi014 import Etsi014Client
from qkd.delivery.keysource import SimulatedLink
from qkd.delivery.kme.certs import write_certificates
from tests.handshake.relay_kme_double import RelayedKmeDouble

from .conftest import HYBRID, make_policy, needs_tls, pump

pytestmark = needs_tls

RELAYED = ("A", "B", "C", "D")


def _policy(required: bool = True, **bounds: Any) -> Policy:
    document = make_policy(HYBRID, qkd_required=required).model_dump(mode="json")
    document["qkd"].update(bounds)
    policy = policy_from_dict(document, source="tests/tls")
    assert policy.qkd.constrains_path == bool(bounds.keys() - {"on_violation"})
    return policy


@pytest.fixture(scope="module")
def relayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    certs = tmp_path_factory.mktemp("tls-trust-path")
    write_certificates(certs)
    with RelayedKmeDouble(certs, RELAYED) as kme:
        yield certs, kme.url


def _client(certs: Path, url: str, me: str, peer: str) -> Etsi014Client:
    return Etsi014Client(
        url,
        peer_sae_id=peer,
        cert=certs / f"{me}.pem",
        key=certs / f"{me}.key",
        ca=certs / "ca.pem",
    )


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_a_direct_link_within_the_bounds_is_used_and_recorded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = _policy(max_trusted_nodes=0, required_nodes=["KME-1"])
    link = SimulatedLink(kme_ids=("KME-1", "KME-2"))
    client_ctx = TlsContext.client(policy, key_source=link.source("sae-a", peer="sae-b"))
    server_ctx = TlsContext.server(policy, key_source=link.source("sae-b", peer="sae-a"))
    client, server = client_ctx.connection(), server_ctx.connection()
    with caplog.at_level(logging.INFO, logger="agile.audit"):
        pump(client, server)
    for info in (client.info, server.info):
        assert info.qkd_used
        assert info.qkd_path == ("KME-1", "KME-2")
        assert info.trusted_nodes == 0
    used = _events(caplog, "qkd_key_used")
    assert [getattr(r, "qkd_path", None) for r in used] == [["KME-1", "KME-2"]] * 2


def test_relayed_keys_pass_where_the_policy_allows_two_trusted_nodes(
    relayed: tuple[Path, str],
) -> None:
    certs, url = relayed
    policy = _policy(max_trusted_nodes=2)
    with (
        _client(certs, url, "sae-a", "sae-b") as a,
        _client(certs, url, "sae-b", "sae-a") as b,
    ):
        client = TlsContext.client(policy, key_source=a).connection()
        server = TlsContext.server(policy, key_source=b).connection()
        pump(client, server)
    assert client.info.qkd_path == server.info.qkd_path == RELAYED
    assert client.info.trusted_nodes == 2


def test_the_client_refuses_two_trusted_nodes_and_fails(
    relayed: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    certs, url = relayed
    policy = _policy(max_trusted_nodes=1)
    with _client(certs, url, "sae-a", "sae-b") as a, _client(certs, url, "sae-b", "sae-a") as b:
        client = TlsContext.client(policy, key_source=a).connection()
        TlsContext.server(policy, key_source=b)
        with (
            caplog.at_level(logging.INFO, logger="agile.audit"),
            pytest.raises(TrustPathViolation, match="2 trusted node"),
        ):
            client.start()
    [refused] = _events(caplog, "qkd_path_refused")
    assert getattr(refused, "role", None) == "tls-client"
    assert getattr(refused, "trusted_nodes", None) == 2
    assert _events(caplog, "handshake_failed")


def test_the_server_refuses_two_trusted_nodes_and_fails(
    relayed: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    certs, url = relayed
    with _client(certs, url, "sae-a", "sae-b") as a, _client(certs, url, "sae-b", "sae-a") as b:
        client = TlsContext.client(_policy(), key_source=a).connection()
        server = TlsContext.server(_policy(max_trusted_nodes=1), key_source=b).connection()
        with (
            caplog.at_level(logging.INFO, logger="agile.audit"),
            pytest.raises(TrustPathViolation, match="allows at most 1") as info,
        ):
            server.receive_data(client.start())
    assert info.value.relay_path == RELAYED
    [refused] = _events(caplog, "qkd_path_refused")
    assert getattr(refused, "role", None) == "tls-server"


def test_fallback_without_a_certificate_fallback_fails_closed(
    relayed: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    # on_violation = "fallback" hands the refusal to agile.tls's certificate fallback; with
    # none configured, the connection fails closed, saying why.
    certs, url = relayed
    policy = _policy(required=False, max_trusted_nodes=1, on_violation="fallback")
    with _client(certs, url, "sae-a", "sae-b") as a:
        client = TlsContext.client(policy, key_source=a).connection()
        with pytest.raises(QKDUnavailable) as info:
            client.start()
    assert not isinstance(info.value, TrustPathViolation)
    assert "trust path refused" in str(info.value)
    assert "no certificate fallback" in str(info.value)
