"""Full handshakes: built-in policy pairs, providers, QKD on and off, PSK, state rules."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

import pqc
from agile import EngineError, HandshakeError, QKDUnavailable, load_policy
from agile.engine import Engine, peer_engines
from agile.handshake.events import HandshakeComplete, SuiteNegotiated
from agile.handshake.machine import State, strip_qkd
from agile.policy.model import Policy

from .conftest import builtin_policies, make_policy, run_in_memory


def _compatible(a: Policy, b: Policy) -> bool:
    """Our compatibility rule: same combiner and hash, same auth method, each side signs with
    every algorithm the other requires, and a suite that both accept."""
    if (a.kdf.combiner, a.kdf.hash) != (b.kdf.combiner, b.kdf.hash):
        return False
    if a.auth.method != b.auth.method:
        return False
    if set(a.auth.signature_algorithms) != set(b.auth.signature_algorithms):
        return False

    def accepted(p: Policy) -> set[tuple[str, ...]]:
        out = set()
        for s in p.suites:
            out.add(tuple(s.components))
            if s.uses_qkd and not p.qkd.required:
                out.add(strip_qkd(tuple(s.components)))
        return out

    return bool(accepted(a) & accepted(b))


PAIRS = list(itertools.product(builtin_policies(), repeat=2))


@pytest.mark.parametrize(("initiator_name", "responder_name"), PAIRS)
def test_every_pair_of_builtin_policies(initiator_name: str, responder_name: str) -> None:
    a, b = load_policy(initiator_name), load_policy(responder_name)
    initiator_engine, responder_engine = peer_engines(a, b)
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    if _compatible(a, b):
        ours, theirs = run_in_memory(initiator, responder)
        assert ours is not None
        assert theirs is not None
        assert ours.key == theirs.key
        assert ours.key_id == theirs.key_id
        assert ours.suite == theirs.suite
        assert ours.qkd_used == (a.uses_qkd and b.uses_qkd and "QKD" in ours.suite)
        assert theirs.open(ours.seal(b"ping")) == b"ping"
    else:
        with pytest.raises(HandshakeError):
            run_in_memory(initiator, responder)
        assert State.ERROR in (initiator.state, responder.state)


def test_the_compatibility_matrix_is_not_trivial() -> None:
    policies = [load_policy(n) for n in builtin_policies()]
    verdicts = {_compatible(a, b) for a, b in itertools.product(policies, repeat=2)}
    assert verdicts == {True, False}


@pytest.mark.parametrize("name", builtin_policies())
@pytest.mark.parametrize("qkd", [True, False], ids=["with-qkd", "without-qkd"])
def test_each_builtin_policy_with_and_without_qkd(name: str, qkd: bool) -> None:
    policy = load_policy(name)
    initiator_engine, responder_engine = peer_engines(policy, policy, qkd=qkd)
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    if not qkd and policy.qkd.required:
        with pytest.raises(QKDUnavailable, match="fail closed"):
            run_in_memory(initiator, responder)
        return
    ours, theirs = run_in_memory(initiator, responder)
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert ours.qkd_used == (qkd and policy.uses_qkd)
    if ours.qkd_used:
        assert ours.suite[-1] == "QKD"
        assert len(ours.qkd_key_ids) == 1
        assert ours.qkd_key_ids == theirs.qkd_key_ids
    else:
        assert "QKD" not in ours.suite
        assert ours.qkd_key_ids == ()
    if policy.uses_qkd and not qkd:
        assert initiator.fallback_reason is not None


def _providers() -> list[str]:
    return [p.name for p in pqc.providers() if p.available]


@pytest.mark.parametrize("provider", _providers())
@pytest.mark.parametrize("name", builtin_policies())
def test_each_available_provider(provider: str, name: str) -> None:
    policy = load_policy(name)
    refusal: str | None = None
    try:
        initiator_engine, responder_engine = peer_engines(policy, policy, providers=[provider])
    except EngineError as exc:
        refusal = str(exc)
    if refusal is not None:
        # The engine refuses, at load time and with the reason, what this provider lacks.
        assert provider in refusal
        assert "unavailable" in refusal
        return
    ours, theirs = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    for kem in initiator_engine.config.kems.values():
        assert kem.info.provider == provider


@pytest.mark.parametrize("provider", _providers())
@pytest.mark.parametrize("qkd", [True, False], ids=["with-qkd", "without-qkd"])
def test_each_available_provider_with_its_own_algorithms(provider: str, qkd: bool) -> None:
    suite = "ML-KEM-768"
    policy = make_policy(
        suites=[{"name": "one-qkd", "components": [suite, "QKD"]}],
        auth={"method": "signature", "signature_algorithms": ["ML-DSA-65"]},
    )
    initiator_engine, responder_engine = peer_engines(policy, policy, providers=[provider], qkd=qkd)
    ours, theirs = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert ours.qkd_used is qkd
    assert initiator_engine.config.kems[suite].info.provider == provider
    assert initiator_engine.config.signers[0].scheme.info.provider == provider


def test_cross_provider_handshake() -> None:
    providers = _providers()
    if len(providers) < 2:
        pytest.skip("only one pqc provider is available here")
    # PSK authentication: signature secret-key formats are provider specific, KEM public keys
    # and ciphertexts are standard, which is what this test is about.
    policy = make_policy(
        suites=[{"name": "mlkem768", "components": ["ML-KEM-768"]}],
        qkd={"source": "none"},
        auth={"method": "psk", "psk_id": "x"},
    )
    psk = b"s" * 32
    for first, second in ((providers[0], providers[1]), (providers[1], providers[0])):
        a = Engine(policy, psk=psk, providers=[first])
        b = Engine(policy, psk=psk, providers=[second])
        ours, theirs = run_in_memory(a.initiator(), b.responder())
        assert ours is not None
        assert theirs is not None
        assert ours.key == theirs.key
        assert b.config.kems["ML-KEM-768"].info.provider == second


def test_events_report_suite_and_completion(
    pair: Callable[..., tuple[Engine, Engine]], default_policy: Policy
) -> None:
    initiator_engine, responder_engine = pair(default_policy)
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    events = responder.receive_data(initiator.start())
    assert [type(e) for e in events] == [SuiteNegotiated]
    events = initiator.receive_data(responder.data_to_send())
    assert [type(e) for e in events] == [SuiteNegotiated, HandshakeComplete]
    events = responder.receive_data(initiator.data_to_send())
    assert [type(e) for e in events] == [HandshakeComplete]
    assert initiator.is_complete
    assert responder.is_complete


def test_data_arriving_byte_by_byte(
    pair: Callable[..., tuple[Engine, Engine]], default_policy: Policy
) -> None:
    initiator_engine, responder_engine = pair(default_policy)
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    hello = initiator.start()
    for i in range(len(hello)):
        responder.receive_data(hello[i : i + 1])
    flight = responder.data_to_send()
    for i in range(0, len(flight), 7):
        initiator.receive_data(flight[i : i + 7])
    responder.receive_data(initiator.data_to_send())
    assert initiator.session is not None
    assert responder.session is not None
    assert initiator.session.key == responder.session.key


def test_no_common_suite_names_both_sides(pair: Callable[..., tuple[Engine, Engine]]) -> None:
    a = make_policy(suites=[{"name": "xwing", "components": ["X-Wing"]}], qkd={"source": "none"})
    b = make_policy(
        suites=[{"name": "mlkem1024", "components": ["ML-KEM-1024"]}], qkd={"source": "none"}
    )
    initiator_engine, responder_engine = pair(a, b)
    with pytest.raises(HandshakeError) as info:
        run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    message = str(info.value)
    assert "no common suite" in message
    assert "MLKEM768-X25519" in message
    assert "ML-KEM-1024" in message


def test_responder_picks_the_first_offered_suite_it_accepts(
    pair: Callable[..., tuple[Engine, Engine]],
) -> None:
    a = make_policy(
        suites=[
            {"name": "mlkem1024", "components": ["ML-KEM-1024"]},
            {"name": "mlkem768", "components": ["ML-KEM-768"]},
        ],
        qkd={"source": "none"},
    )
    b = make_policy(
        suites=[
            {"name": "mlkem768", "components": ["ML-KEM-768"]},
            {"name": "mlkem1024", "components": ["ML-KEM-1024"]},
        ],
        qkd={"source": "none"},
    )
    initiator_engine, responder_engine = pair(a, b)
    ours, _ = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert ours is not None
    assert ours.suite == ("ML-KEM-1024",)


def test_psk_handshake_and_wrong_psk(pair: Callable[..., tuple[Engine, Engine]]) -> None:
    policy = make_policy(
        auth={"method": "psk", "psk_id": "link-1"},
        qkd={"source": "none"},
        suites=[{"name": "mlkem768", "components": ["ML-KEM-768"]}],
    )
    initiator_engine, responder_engine = pair(policy, psk=b"p" * 32)
    ours, theirs = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    wrong = Engine(policy, psk=b"q" * 32)
    with pytest.raises(HandshakeError, match="PSK binder"):
        run_in_memory(initiator_engine.initiator(), wrong.responder())


def test_auth_method_and_kdf_mismatch_are_clear(pair: Callable[..., tuple[Engine, Engine]]) -> None:
    base: dict[str, Any] = {
        "qkd": {"source": "none"},
        "suites": [{"name": "mlkem768", "components": ["ML-KEM-768"]}],
    }
    psk = make_policy(auth={"method": "psk", "psk_id": "x"}, **base)
    sig = make_policy(**base)
    initiator_engine, responder_engine = pair(psk, sig)
    with pytest.raises(HandshakeError, match="authenticates by psk"):
        run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    cas = make_policy(kdf={"combiner": "caskdf", "hash": "SHA-384"}, **base)
    initiator_engine, responder_engine = pair(sig, cas)
    with pytest.raises(HandshakeError, match=r"align kdf\.combiner"):
        run_in_memory(initiator_engine.initiator(), responder_engine.responder())


def test_out_of_order_messages_and_reuse(
    pair: Callable[..., tuple[Engine, Engine]], default_policy: Policy
) -> None:
    initiator_engine, responder_engine = pair(default_policy)
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    hello = initiator.start()
    with pytest.raises(HandshakeError, match="start"):
        initiator.start()
    with pytest.raises(HandshakeError, match="unexpected ClientHello"):
        initiator.receive_data(hello)
    assert initiator.state is State.ERROR
    with pytest.raises(HandshakeError, match="already failed"):
        initiator.receive_data(b"")
    responder.receive_data(hello)
    with pytest.raises(HandshakeError, match="unexpected ClientHello"):
        responder.receive_data(hello)


def test_data_after_completion_is_refused(
    pair: Callable[..., tuple[Engine, Engine]], default_policy: Policy
) -> None:
    initiator_engine, responder_engine = pair(default_policy)
    initiator, responder = initiator_engine.initiator(), responder_engine.responder()
    run_in_memory(initiator, responder)
    with pytest.raises(HandshakeError, match="after the handshake"):
        responder.receive_data(b"\x04")


def test_engine_fails_at_load_time_with_reasons(default_policy: Policy) -> None:
    with pytest.raises(EngineError, match="simulated QKD link"):
        Engine(default_policy)
    policy = make_policy(
        qkd={"source": "none"}, suites=[{"name": "m", "components": ["ML-KEM-768"]}]
    )
    with pytest.raises(EngineError, match="signing key"):
        Engine(policy)
    with pytest.raises(EngineError, match="peer's Ed25519 public key"):
        Engine(policy, signing_keys={"Ed25519": b"k" * 32})
    with pytest.raises(EngineError, match="unavailable from every provider"):
        Engine(policy, providers=["no-such-provider"])
    psk = make_policy(
        qkd={"source": "none"},
        auth={"method": "psk"},
        suites=[{"name": "m", "components": ["ML-KEM-768"]}],
    )
    with pytest.raises(EngineError, match="psk_file or pass psk"):
        Engine(psk)
    with pytest.raises(EngineError, match="at least 32"):
        Engine(psk, psk=b"short")


def test_psk_and_trust_files_are_read(tmp_path: Any) -> None:
    from agile.engine import Identity

    psk_file = tmp_path / "link.psk"
    psk_file.write_text(("ab" * 32) + "\n")
    psk_policy = make_policy(
        qkd={"source": "none"},
        auth={"method": "psk", "psk_file": str(psk_file)},
        suites=[{"name": "m", "components": ["ML-KEM-768"]}],
    )
    a, b = Engine(psk_policy), Engine(psk_policy, psk=bytes.fromhex("ab" * 32))
    ours, theirs = run_in_memory(a.initiator(), b.responder())
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key

    base = make_policy(qkd={"source": "none"}, suites=[{"name": "m", "components": ["ML-KEM-768"]}])
    me, peer = Identity.generate(base), Identity.generate(base)
    trust = tmp_path / "trust.toml"
    trust.write_text(f'[peer_public_keys]\n"Ed25519" = "{peer.public_keys["Ed25519"].hex()}"\n')
    trusting = make_policy(
        qkd={"source": "none"},
        auth={"method": "signature", "signature_algorithms": ["Ed25519"], "trust_file": str(trust)},
        suites=[{"name": "m", "components": ["ML-KEM-768"]}],
    )
    engine = Engine(trusting, signing_keys=me.signing_keys)
    assert engine.config.verifiers[0].public_key == peer.public_keys["Ed25519"]
    trust.write_text("not toml [")
    with pytest.raises(EngineError, match="not a trust file"):
        Engine(trusting, signing_keys=me.signing_keys)


def test_engine_reapplies_the_rules_today(caplog: pytest.LogCaptureFixture) -> None:
    import datetime as dt
    import logging

    from agile.policy.loader import policy_from_dict

    from .conftest import make_policy as base

    today = dt.date.today()
    document = base().model_dump(mode="json")
    document["qkd"] = {"source": "none"}
    document["suites"] = [{"name": "m", "components": ["ML-KEM-768"]}]
    soon = (today + dt.timedelta(days=100)).isoformat()
    document["rules"] = {
        "min_nist_level": 0,
        "sunset": [{"algorithm": "ML-KEM-768", "date": soon, "warn_days": 365}],
    }
    caplog.set_level(logging.INFO, logger="agile.audit")
    Engine(
        policy_from_dict(document),
        signing_keys={"Ed25519": b"k" * 32},
        peer_public_keys={"Ed25519": b"p" * 32},
    )
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "policy_warning"]
    assert warnings
    assert "sunset" in getattr(warnings[0], "reason", "")

    # Valid when it was loaded, but the sunset has passed since: the engine refuses it.
    passed = (today - dt.timedelta(days=1)).isoformat()
    document["rules"]["sunset"][0]["date"] = passed
    old = policy_from_dict(document, today=today - dt.timedelta(days=30))
    with pytest.raises(EngineError, match="no longer valid today"):
        Engine(old, signing_keys={"Ed25519": b"k" * 32}, peer_public_keys={"Ed25519": b"p" * 32})
