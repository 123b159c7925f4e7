"""Policy over trust paths: two engines, QKD keys with a reported relay path, both ends check.

A real ``agile kme serve`` pair (a subprocess, mutual TLS on 127.0.0.1) reports the 2-node
path of its direct link. For a key relayed over 2 trusted nodes (A-B-C-D) these tests use a
named test double of a network KME (tests/handshake/relay_kme_double.py), which also serves
keys with no path; tests/network/test_node_trust_path.py runs the main cases against a real
4-node chain of network KME processes.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agile import HandshakeError, HybridSession, TrustPathViolation
from agile.engine import Engine, Identity
from agile.handshake.config import QkdConfig
from agile.policy.model import Policy
from qkd.delivery.keysource import QkdKey
from qkd.delivery.kme.certs import write_certificates
from tests.trust_path_checks import check_fallback_without_qkd

from .conftest import make_policy, run_in_memory
from .relay_kme_double import RelayedKmeDouble

RELAYED = ("A", "B", "C", "D")  # two trusted nodes, B and C
QKD_SUITE = ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"]
PQC_SUITE = ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("trust-path-certs")
    write_certificates(directory)
    return directory


@pytest.fixture(scope="module")
def kme_pair(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """``agile kme serve`` as its own process: {"a": URL of KME A, "b": URL of KME B}."""
    state = tmp_path_factory.mktemp("trust-path-state")
    for name in ("ca.pem", "kme-a.pem", "kme-a.key", "kme-b.pem", "kme-b.key"):
        (state / name).write_bytes((certs / name).read_bytes())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agile.cli",
            "kme",
            "serve",
            "--certs",
            str(state),
            "--listen-a",
            "127.0.0.1:0",
            "--listen-b",
            "127.0.0.1:0",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, "agile kme serve printed no addresses"
        addresses = json.loads(line)
        yield {"a": f"https://{addresses['kme_a']}", "b": f"https://{addresses['kme_b']}"}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert proc.stderr is not None
        assert "Traceback" not in proc.stderr.read()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _policy(
    certs: Path, me: str, peer: str, url: str, *, required: bool = False, **bounds: Any
) -> Policy:
    suites = [{"name": "mlkem768-x25519-qkd", "components": QKD_SUITE}]
    if not required:
        suites.append({"name": "mlkem768-x25519", "components": PQC_SUITE})
    return make_policy(
        suites=suites,
        qkd={
            "source": "etsi014",
            "required": required,
            "key_size_bits": 256,
            "etsi014": {
                "kme_url": url,
                "sae_id": me,
                "peer_sae_id": peer,
                "cert": str(certs / f"{me}.pem"),
                "key": str(certs / f"{me}.key"),
                "ca": str(certs / "ca.pem"),
                "timeout_s": 10,
            },
            **bounds,
        },
    )


def _engines(initiator_policy: Policy, responder_policy: Policy) -> tuple[Engine, Engine]:
    ida, idb = Identity.generate(initiator_policy), Identity.generate(responder_policy)
    return (
        Engine(initiator_policy, signing_keys=ida.signing_keys, peer_public_keys=idb.public_keys),
        Engine(responder_policy, signing_keys=idb.signing_keys, peer_public_keys=ida.public_keys),
    )


def _relayed_engines(
    certs: Path, url: str, initiator: dict[str, Any], responder: dict[str, Any]
) -> tuple[Engine, Engine]:
    return _engines(
        _policy(certs, "sae-a", "sae-b", url, **initiator),
        _policy(certs, "sae-b", "sae-a", url, **responder),
    )


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def _field(record: logging.LogRecord, name: str) -> Any:
    return getattr(record, name)


def _both(
    initiator_engine: Engine, responder_engine: Engine
) -> tuple[HybridSession | None, HybridSession | None]:
    with initiator_engine, responder_engine:
        return run_in_memory(initiator_engine.initiator(), responder_engine.responder())


# -------------------------------------------------------------------- the real KME pair


def test_the_pair_reports_its_direct_link_and_a_bounded_policy_takes_it(
    certs: Path, kme_pair: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    bounds = {"max_trusted_nodes": 0, "required_nodes": ["KME-A"], "excluded_nodes": ["Eve"]}
    initiator_engine, responder_engine = _engines(
        _policy(certs, "sae-a", "sae-b", kme_pair["a"], required=True, **bounds),
        _policy(certs, "sae-b", "sae-a", kme_pair["b"], required=True, **bounds),
    )
    caplog.set_level(logging.INFO, logger="agile.audit")
    ours, theirs = _both(initiator_engine, responder_engine)
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert ours.qkd_used
    assert ours.qkd_path == theirs.qkd_path == ("KME-A", "KME-B")
    assert ours.trusted_nodes == theirs.trusted_nodes == 0
    used = _events(caplog, "qkd_key_used")
    assert {_field(r, "role") for r in used} == {"initiator", "responder"}
    assert all(_field(r, "qkd_path") == ["KME-A", "KME-B"] for r in used)
    assert all(_field(r, "trusted_nodes") == 0 for r in used)
    assert not _events(caplog, "qkd_path_refused")


def test_the_pair_refuses_an_excluded_end(
    certs: Path, kme_pair: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    initiator_engine, responder_engine = _engines(
        _policy(certs, "sae-a", "sae-b", kme_pair["a"], excluded_nodes=["KME-B"]),
        _policy(certs, "sae-b", "sae-a", kme_pair["b"]),
    )
    caplog.set_level(logging.INFO, logger="agile.audit")
    with pytest.raises(TrustPathViolation, match=r"excluded node\(s\) KME-B") as info:
        _both(initiator_engine, responder_engine)
    assert info.value.relay_path == ("KME-A", "KME-B")
    [failed] = _events(caplog, "handshake_failed")
    assert _field(failed, "qkd_path") == ["KME-A", "KME-B"]


# ------------------------------------------------- keys relayed over 2 trusted nodes (double)


def test_two_trusted_nodes_complete_where_the_policy_allows_them(
    certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with RelayedKmeDouble(certs, RELAYED) as kme:
        engines = _relayed_engines(
            certs, kme.url, {"max_trusted_nodes": 2}, {"required_nodes": ["B", "C"]}
        )
        caplog.set_level(logging.INFO, logger="agile.audit")
        ours, theirs = _both(*engines)
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert ours.qkd_used
    assert theirs.qkd_used
    assert ours.qkd_path == theirs.qkd_path == RELAYED
    assert ours.trusted_nodes == theirs.trusted_nodes == 2
    assert ours.rekey().qkd_path == RELAYED  # the next epoch keeps what went into it
    completed = _events(caplog, "handshake_complete")
    assert len(completed) == 2
    for record in completed + _events(caplog, "qkd_key_used"):
        assert _field(record, "qkd_path") == list(RELAYED)
        assert _field(record, "trusted_nodes") == 2


@pytest.mark.parametrize("refusing", ["both", "responder"])
def test_max_one_trusted_node_fails_the_handshake(
    certs: Path, refusing: str, caplog: pytest.LogCaptureFixture
) -> None:
    strict = {"max_trusted_nodes": 1, "on_violation": "fail"}
    initiator_bounds = strict if refusing == "both" else {"max_trusted_nodes": 2}
    with RelayedKmeDouble(certs, RELAYED) as kme:
        engines = _relayed_engines(certs, kme.url, initiator_bounds, strict)
        caplog.set_level(logging.INFO, logger="agile.audit")
        with pytest.raises(TrustPathViolation) as info:
            _both(*engines)
    role = "initiator" if refusing == "both" else "responder"
    message = str(info.value)
    assert "passed through 2 trusted node(s) (A -> B -> C -> D)" in message
    assert "allows at most 1" in message
    assert 'on_violation = "fail"' in message
    # Optional QKD does not soften it: the policy said fail, so there is no fallback.
    assert not _events(caplog, "qkd_fallback")
    assert not _events(caplog, "handshake_complete")
    [refused] = _events(caplog, "qkd_path_refused")
    assert _field(refused, "role") == role
    assert _field(refused, "qkd_path") == list(RELAYED)
    assert _field(refused, "trusted_nodes") == 2
    assert len(_field(refused, "qkd_key_ids")) == 1
    [failed] = _events(caplog, "handshake_failed")
    assert _field(failed, "role") == role
    assert _field(failed, "qkd_path") == list(RELAYED)
    assert "2 trusted node(s)" in _field(failed, "reason")


@pytest.mark.parametrize("refusing", ["both", "responder"])
def test_max_one_trusted_node_falls_back_without_qkd(
    certs: Path, refusing: str, caplog: pytest.LogCaptureFixture
) -> None:
    lenient = {"max_trusted_nodes": 1, "on_violation": "fallback"}
    initiator_bounds = lenient if refusing == "both" else {}
    with RelayedKmeDouble(certs, RELAYED) as kme:
        initiator_engine, responder_engine = _relayed_engines(
            certs, kme.url, initiator_bounds, lenient
        )
        caplog.set_level(logging.INFO, logger="agile.audit")
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
        suite=PQC_SUITE,
    )


def test_a_key_without_a_path_is_refused_where_paths_are_bounded(
    certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with RelayedKmeDouble(certs, None) as kme:
        # Unbounded: a vendor KME that reports no path is used as before.
        ours, _ = _both(*_relayed_engines(certs, kme.url, {}, {}))
        assert ours is not None
        assert ours.qkd_used
        assert ours.qkd_path is None
        caplog.set_level(logging.INFO, logger="agile.audit")
        engines = _relayed_engines(certs, kme.url, {"excluded_nodes": ["X"], "required": True}, {})
        with pytest.raises(TrustPathViolation, match="reported no relay path"):
            _both(*engines)
    [refused] = _events(caplog, "qkd_path_refused")
    assert _field(refused, "qkd_path") is None


def test_a_refusing_responder_leaves_an_initiator_that_requires_qkd_no_suite(
    certs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The initiator requires QKD, so it offers only QKD suites; the responder refuses the
    # key's path and would fall back, but there is nothing without QKD to fall back to.
    with RelayedKmeDouble(certs, RELAYED) as kme:
        engines = _relayed_engines(
            certs,
            kme.url,
            {"required": True},
            {"max_trusted_nodes": 1, "on_violation": "fallback"},
        )
        caplog.set_level(logging.INFO, logger="agile.audit")
        with pytest.raises(HandshakeError, match="no common suite"):
            _both(*engines)
    [refused] = _events(caplog, "qkd_path_refused")
    assert _field(refused, "role") == "responder"
    assert not _events(caplog, "handshake_complete")


# ------------------------------------------------------------------ the check on its own


def _config(**bounds: Any) -> QkdConfig:
    return QkdConfig(
        source_kind="etsi014",
        source=None,
        required=False,
        key_size_bits=256,
        max_qber=0.08,
        max_key_age_s=60.0,
        **bounds,
    )


def _key(path: tuple[str, ...] | None) -> QkdKey:
    return QkdKey(key_id="7b0c8f5e-1c1d-4a47-9c1e-2f3f0e6d9a10", key=bytes(32), relay_path=path)


@pytest.mark.parametrize(
    ("bounds", "path", "problem"),
    [
        ({}, None, None),
        ({}, RELAYED, None),
        ({"max_trusted_nodes": 2}, RELAYED, None),
        ({"max_trusted_nodes": 1}, RELAYED, "passed through 2 trusted node(s)"),
        ({"max_trusted_nodes": 0}, ("A", "D"), None),
        ({"max_trusted_nodes": 0}, ("A", "B", "D"), "passed through 1 trusted node(s)"),
        ({"excluded_nodes": ("C",)}, RELAYED, "excluded node(s) C"),
        ({"excluded_nodes": ("D",)}, RELAYED, "excluded node(s) D"),  # an end counts too
        ({"excluded_nodes": ("E",)}, RELAYED, None),
        ({"required_nodes": ("B", "E")}, RELAYED, "did not pass through required node(s) E"),
        ({"required_nodes": ("A", "C")}, RELAYED, None),
        ({"max_trusted_nodes": 5}, None, "reported no relay path"),
        ({"required_nodes": ("A",)}, None, "reported no relay path"),
    ],
)
def test_path_problem(bounds: dict[str, Any], path: Any, problem: str | None) -> None:
    found = _config(**bounds).path_problem([_key(path)])
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
