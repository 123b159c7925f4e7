"""Issue 15, item 8: a handshake whose QKD keys a real network relays over 2 trusted nodes.

A 4-node chain A-B-C-D of ``agile kme serve --network --node`` processes (mutual TLS on
127.0.0.1, keys relayed hop by hop). The SAE ``sae-a`` at A and ``sae-d`` at D each hold the
certificate ``agile net up`` wrote for them and reach their own node through
:class:`~qkd.delivery.etsi014.Etsi014Client`: the initiator's engine asks A for a key
(``enc_keys``), A relays it over B and C, and the responder's engine fetches it at D
(``dec_keys``). The key's ``key_extension.relay_path`` is ``A-B-C-D``, two trusted nodes. The
policies are the built-ins ``hybrid-default-20261207`` (at most 2 trusted nodes, fall back)
and ``qkd-required-20261207`` (at most 1, fail), with the QKD source pointed at the nodes.
The same bounds are checked for ``agile.tls`` over the same network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from agile import HybridSession, TrustPathViolation
from agile.engine import Engine, Identity
from agile.policy.loader import policy_from_dict
from agile.policy.model import Policy
from agile.tls import TlsContext
from tests.handshake.conftest import run_in_memory
from tests.network.netproc import RunningNetwork, network_toml, start_network
from tests.tls.conftest import needs_tls, pump
from tests.trust_path_checks import check_fallback_without_qkd

RELAYED = ("A", "B", "C", "D")  # two trusted nodes, B and C
CHAIN = network_toml(
    "trust-chain",
    {"A": ["sae-a"], "B": [], "C": [], "D": ["sae-d"]},
    [("A", "B"), ("B", "C"), ("C", "D")],
)
ENDS = {"sae-a": ("A", "sae-d"), "sae-d": ("D", "sae-a")}  # SAE: (its node, its peer)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNetwork]:
    net = start_network(tmp_path_factory.mktemp("trust-chain"), CHAIN)
    try:
        net.wait_links_up()
        yield net
    finally:
        net.close()


def _policy(net: RunningNetwork, builtin: str, me: str, **qkd: Any) -> Policy:
    """The built-in ``builtin`` with its QKD keys from ``me``'s node (and ``qkd`` overrides)."""
    node, peer = ENDS[me]
    sae = net.state / "saes" / me
    return policy_from_dict(
        {
            "schema_version": 1,
            "name": f"{builtin}-on-the-chain",
            "version": "1",
            "extends": builtin,
            "qkd": {
                "source": "etsi014",
                "etsi014": {
                    "kme_url": net.url(node),
                    "sae_id": me,
                    "peer_sae_id": peer,
                    "cert": str(sae / "cert.pem"),
                    "key": str(sae / "key.pem"),
                    "ca": str(net.state / "ca.pem"),
                    "timeout_s": 15,
                },
                **qkd,
            },
        },
        source=f"tests/network ({builtin})",
    )


def _both(
    initiator_policy: Policy, responder_policy: Policy
) -> tuple[HybridSession | None, HybridSession | None]:
    ida, idb = Identity.generate(initiator_policy), Identity.generate(responder_policy)
    initiator_engine = Engine(
        initiator_policy, signing_keys=ida.signing_keys, peer_public_keys=idb.public_keys
    )
    responder_engine = Engine(
        responder_policy, signing_keys=idb.signing_keys, peer_public_keys=ida.public_keys
    )
    with initiator_engine, responder_engine:
        return run_in_memory(initiator_engine.initiator(), responder_engine.responder())


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_two_trusted_nodes_complete_under_hybrid_default_20261207(
    chain: RunningNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    initiator_policy = _policy(chain, "hybrid-default-20261207", "sae-a")
    responder_policy = _policy(chain, "hybrid-default-20261207", "sae-d")
    assert initiator_policy.qkd.max_trusted_nodes == 2
    assert initiator_policy.qkd.on_violation == "fallback"
    caplog.set_level(logging.INFO, logger="agile.audit")
    ours, theirs = _both(initiator_policy, responder_policy)
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert ours.qkd_used
    assert theirs.qkd_used
    assert ours.suite == theirs.suite == ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD")
    assert ours.qkd_path == theirs.qkd_path == RELAYED
    assert ours.trusted_nodes == theirs.trusted_nodes == 2
    assert ours.rekey().qkd_path == RELAYED
    completed = _events(caplog, "handshake_complete")
    assert {getattr(r, "role", None) for r in completed} == {"initiator", "responder"}
    used = _events(caplog, "qkd_key_used")
    assert {getattr(r, "role", None) for r in used} == {"initiator", "responder"}
    for record in completed + used:
        assert getattr(record, "qkd_path", None) == list(RELAYED)
        assert getattr(record, "trusted_nodes", None) == 2
    # One key, the same key_ID at both ends: the one A relayed to D.
    key_ids = {tuple(getattr(r, "qkd_key_ids", ())) for r in used}
    assert len(key_ids) == 1
    assert not _events(caplog, "qkd_path_refused")
    assert not _events(caplog, "qkd_fallback")


@pytest.mark.parametrize("refusing", ["both", "responder"])
def test_at_most_one_trusted_node_fails_under_qkd_required_20261207(
    chain: RunningNetwork, refusing: str, caplog: pytest.LogCaptureFixture
) -> None:
    strict = _policy(chain, "qkd-required-20261207", "sae-d")
    assert (strict.qkd.max_trusted_nodes, strict.qkd.on_violation) == (1, "fail")
    initiator_policy = (
        _policy(chain, "qkd-required-20261207", "sae-a")
        if refusing == "both"
        else _policy(chain, "qkd-required-20261207", "sae-a", max_trusted_nodes=2)
    )
    caplog.set_level(logging.INFO, logger="agile.audit")
    with pytest.raises(TrustPathViolation) as info:
        _both(initiator_policy, strict)
    role = "initiator" if refusing == "both" else "responder"
    assert info.value.relay_path == RELAYED
    message = str(info.value)
    assert "passed through 2 trusted node(s) (A -> B -> C -> D)" in message
    assert "allows at most 1" in message
    assert 'on_violation = "fail"' in message
    assert not _events(caplog, "handshake_complete")
    assert not _events(caplog, "qkd_fallback")
    [refused] = _events(caplog, "qkd_path_refused")
    assert getattr(refused, "role", None) == role
    assert getattr(refused, "qkd_path", None) == list(RELAYED)
    assert getattr(refused, "trusted_nodes", None) == 2
    assert len(getattr(refused, "qkd_key_ids", ())) == 1
    [failed] = _events(caplog, "handshake_failed")
    assert getattr(failed, "role", None) == role
    assert getattr(failed, "qkd_path", None) == list(RELAYED)


@pytest.mark.parametrize("refusing", ["both", "responder"])
def test_at_most_one_trusted_node_falls_back_without_qkd(
    chain: RunningNetwork, refusing: str, caplog: pytest.LogCaptureFixture
) -> None:
    lenient = _policy(chain, "hybrid-default-20261207", "sae-d", max_trusted_nodes=1)
    assert lenient.qkd.on_violation == "fallback"
    initiator_policy = (
        _policy(chain, "hybrid-default-20261207", "sae-a", max_trusted_nodes=1)
        if refusing == "both"
        else _policy(chain, "hybrid-default-20261207", "sae-a")
    )
    caplog.set_level(logging.INFO, logger="agile.audit")
    ida, idb = Identity.generate(initiator_policy), Identity.generate(lenient)
    initiator_engine = Engine(
        initiator_policy, signing_keys=ida.signing_keys, peer_public_keys=idb.public_keys
    )
    responder_engine = Engine(
        lenient, signing_keys=idb.signing_keys, peer_public_keys=ida.public_keys
    )
    with initiator_engine, responder_engine:
        initiator, responder = initiator_engine.initiator(), responder_engine.responder()
        sessions = run_in_memory(initiator, responder)
    check_fallback_without_qkd(
        caplog,
        sessions,
        initiator,
        responder,
        refusing=refusing,
        relayed=RELAYED,
        suite=("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"),
    )


# ---------------------------------------------------------------------------- agile.tls


@needs_tls
def test_tls_takes_relayed_keys_within_the_bounds_and_refuses_them_outside(
    chain: RunningNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    # agile.tls needs QKD (its fallback is a certificate, not a suite): the required built-in,
    # once with its bound raised to 2 trusted nodes, once as released (at most 1, fail).
    allows = _policy(chain, "qkd-required-20261207", "sae-a", max_trusted_nodes=2)
    with chain.client("sae-a", "A", "sae-d") as a, chain.client("sae-d", "D", "sae-a") as d:
        client = TlsContext.client(allows, key_source=a).connection()
        server = TlsContext.server(allows, key_source=d).connection()
        pump(client, server)
        assert client.info.qkd_used
        assert client.info.qkd_path == server.info.qkd_path == RELAYED
        assert client.info.trusted_nodes == server.info.trusted_nodes == 2

        strict = _policy(chain, "qkd-required-20261207", "sae-a")
        client = TlsContext.client(allows, key_source=a).connection()
        server = TlsContext.server(strict, key_source=d).connection()
        with (
            caplog.at_level(logging.INFO, logger="agile.audit"),
            pytest.raises(TrustPathViolation, match="allows at most 1") as info,
        ):
            server.receive_data(client.start())
    assert info.value.relay_path == RELAYED
    [refused] = _events(caplog, "qkd_path_refused")
    assert getattr(refused, "role", None) == "tls-server"
    assert getattr(refused, "trusted_nodes", None) == 2
