"""What the handshake prepares once agrees with the general code it stands in for.

- ``CatKdf`` (the combiner with its per-peer inputs bound once) derives what ``catkdf`` does;
- a Finished refuses a MAC of the wrong size or type;
- the engine loads signature keys once, and a malformed one fails when the engine is built;
- a handshake reuses its config's prepared combiner across connections and peers safely.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agile._errors import EngineError, HandshakeError
from agile.engine import Engine, Identity
from agile.handshake.messages import Finished
from agile.kdf import CatKdf, KdfError, catkdf, hash_names

from .conftest import make_policy, run_in_memory

secret = st.binary(min_size=1, max_size=80)
message = st.binary(min_size=0, max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    secrets=st.lists(secret, min_size=1, max_size=3),
    ma=message,
    mb=message,
    info=st.binary(max_size=100),
    label=st.binary(max_size=40),
    psk=st.one_of(st.just(b""), secret),
    hash_name=st.sampled_from(hash_names()),
    kdf=st.sampled_from(["hkdf", "hmac"]),
    length=st.integers(min_value=1, max_value=200),
)
def test_prepared_catkdf_equals_catkdf(
    secrets: list[bytes],
    ma: bytes,
    mb: bytes,
    info: bytes,
    label: bytes,
    psk: bytes,
    hash_name: str,
    kdf: str,
    length: int,
) -> None:
    params: dict[str, Any] = {
        "info": info,
        "label": label,
        "length": length,
        "hash_name": hash_name,
        "psk": psk,
        "kdf": kdf,
    }
    prepared = CatKdf(**params)
    expected = catkdf(secrets, ma=ma, mb=mb, **params)
    assert prepared.derive(secrets, ma=ma, mb=mb) == expected
    assert prepared.derive(secrets, ma=ma, mb=mb) == expected  # the bound state is not consumed


def test_prepared_catkdf_with_kmac_equals_catkdf() -> None:
    params: dict[str, Any] = {"info": b"i", "label": b"l", "length": 32, "psk": b"p" * 32}
    prepared = CatKdf(kdf="kmac128", **params)
    assert prepared.derive([b"k" * 32], ma=b"A", mb=b"B") == catkdf(
        [b"k" * 32], ma=b"A", mb=b"B", kdf="kmac128", **params
    )


def test_prepared_catkdf_refuses_what_catkdf_refuses() -> None:
    with pytest.raises(KdfError, match="cannot produce"):
        CatKdf(info=b"", label=b"", length=255 * 32 + 1)
    with pytest.raises(KdfError, match="unknown hash"):
        CatKdf(info=b"", label=b"", length=32, hash_name="MD5")
    with pytest.raises(KdfError, match="at least one secret"):
        CatKdf(info=b"", label=b"", length=32).derive([], ma=b"", mb=b"")


def test_prepared_catkdf_hides_and_keeps_its_psk() -> None:
    psk = bytes(range(32))
    prepared = CatKdf(info=b"i", label=b"l", length=32, psk=psk)
    assert psk.hex() not in repr(prepared)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(prepared)


@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 65, bytearray(32)])
def test_finished_refuses_a_mac_of_the_wrong_size_or_type(bad: Any) -> None:
    with pytest.raises(HandshakeError, match="verify_data"):
        Finished(verify_data=bad)


def _signature_policy() -> Any:
    return make_policy(
        auth={"method": "signature", "signature_algorithms": ["ML-DSA-65", "Ed25519"]},
        qkd={"source": "none", "required": False},
        suites=[{"name": "pq", "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]}],
    )


def test_engine_loads_signature_keys_once() -> None:
    policy = _signature_policy()
    me, peer = Identity.generate(policy), Identity.generate(policy)
    engine = Engine(policy, signing_keys=me.signing_keys, peer_public_keys=dict(peer.public_keys))
    for signer in engine.config.signers:
        assert signer.key.info.name == signer.algorithm
        assert "SignaturePrivateKey" in repr(signer.key)
        assert me.signing_keys[signer.algorithm].reveal().hex() not in repr(engine.config)
    for verifier in engine.config.verifiers:
        assert verifier.key.public_bytes == peer.public_keys[verifier.algorithm]


def test_malformed_keys_fail_when_the_engine_is_built() -> None:
    policy = _signature_policy()
    me, peer = Identity.generate(policy), Identity.generate(policy)
    short_signing = dict(me.signing_keys)
    short_signing["ML-DSA-65"] = me.signing_keys["ML-DSA-65"].reveal()[:-1]  # type: ignore[assignment]
    with pytest.raises(EngineError, match=r"our ML-DSA-65 signing key is unusable"):
        Engine(policy, signing_keys=short_signing, peer_public_keys=dict(peer.public_keys))
    bad_peer = dict(peer.public_keys)
    bad_peer["Ed25519"] = bad_peer["Ed25519"][:-1]
    with pytest.raises(EngineError, match=r"peer's Ed25519 public key is unusable"):
        Engine(policy, signing_keys=me.signing_keys, peer_public_keys=bad_peer)


def test_prepared_combiner_is_per_peer_and_reused() -> None:
    """One responder config serves two initiators with different policies (fingerprints):
    each pair derives matching keys, and the cache holds one prepared combiner per pair."""
    suites = [{"name": "pq", "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]}]
    base: dict[str, Any] = {
        "auth": {"method": "psk", "psk_id": "t"},
        "qkd": {"source": "none", "required": False},
        "suites": suites,
    }
    responder_policy = make_policy(**base)
    first = make_policy(**base)
    second = make_policy(**base, name="test-policy-b")
    assert first.fingerprint != second.fingerprint
    psk = bytes(range(32))
    responder_engine = Engine(responder_policy, psk=psk)
    for initiator_policy in (first, second, first):
        initiator_engine = Engine(initiator_policy, psk=psk)
        ours, theirs = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
        assert ours is not None
        assert theirs is not None
        assert ours.key == theirs.key
    cached = [k for k in responder_engine.config.cache if k[0] == "catkdf"]
    fingerprints = {first.fingerprint, second.fingerprint}
    assert {k[1][0] for k in cached} == fingerprints
