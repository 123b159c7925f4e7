"""Cross-provider agreement: one property test over every algorithm two providers both offer.

The cases come from the registry (every name, every pair of providers that serve it), so a
new provider joins without code. For each case, hypothesis draws a seed (where both take
seeds), a FIPS 203 KAT record (for ML-KEM) and a message, and checks:

- the same seed gives byte-identical public keys (or is rejected by both), and
  byte-identical secret keys where both use one format; where the formats differ,
  ``FORMAT_DIFFERENCES`` says which and why, and each provider's key must still
  decapsulate what the other encapsulates;
- the same KAT input gives byte-identical keys and shared secrets on both (the record's
  public key from its seed, the record's shared secrets from its ciphertexts);
- a ciphertext made by one decapsulates to the same shared secret in the other, both ways;
  a signature made by one verifies in the other, both ways.

Encapsulation and signing draw their randomness inside each library, and none of the
libraries takes it as an input, so ciphertexts are compared through the KAT records and
through cross-decapsulation rather than by making the same one twice.

Pairs that share a name but not an algorithm (``pqc_testing.KNOWN_DISAGREEMENTS``) are
expected to disagree, strictly: the test fails when they start agreeing.
"""

from __future__ import annotations

import hmac
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pqc_testing import (
    disagreement,
    hexbytes,
    is_slow_kem,
    is_slow_signature,
    load_rsp,
    vectors_installed,
)

import pqc
from pqc._interface import SK_FIPS203_SEED

# (format of one, format of the other) -> why they differ.
FORMAT_DIFFERENCES = {
    frozenset({"fips203-seed", "fips203-expanded"}): (
        "pyca keeps the ML-KEM secret key as the 64-byte seed d || z; liboqs and pqcrypto keep "
        "the expanded decapsulation key, which cannot be turned back into its seed (FIPS 203 "
        "allows both)"
    ),
    frozenset({"fips204-seed", "fips204-expanded"}): (
        "pyca keeps the ML-DSA secret key as the 32-byte seed xi; liboqs and pqcrypto keep the "
        "expanded key (FIPS 204 allows both)"
    ),
}
# A TLS hybrid's secret key is its components' keys concatenated, so it differs exactly when
# its ML-KEM component's format does.
_CONCATENATION = "concatenation"

_SETTINGS = settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _cases() -> list[Any]:
    cases = []
    kinds = (
        ("kem", pqc.available_kems(), pqc.kem_providers, is_slow_kem),
        ("signature", pqc.available_signatures(), pqc.signature_providers, is_slow_signature),
    )
    for kind, names, providers_of, slow in kinds:
        for name in names:
            for a, b in itertools.combinations(providers_of(name), 2):
                marks: list[Any] = []
                if slow(name) or slow(name, a) or slow(name, b):
                    marks.append(pytest.mark.slow)
                why = disagreement(name, a, b)
                if why:
                    marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=why))
                cases.append(pytest.param(kind, name, a, b, id=f"{name}:{a}={b}", marks=marks))
    return cases


def _same(x: bytes, y: bytes) -> bool:
    return hmac.compare_digest(x, y)


def _kat_records(name: str) -> tuple[dict[str, str], ...]:
    if not name.startswith("ML-KEM-") or not vectors_installed():
        return ()
    return load_rsp(f"asymmetric/MLKEM/kat_MLKEM_{name.removeprefix('ML-KEM-')}.rsp")


def _check_kem(name: str, a: pqc.Kem, b: pqc.Kem, data: st.DataObject) -> None:
    ia, ib = a.info, b.info
    assert (ia.public_key_size, ia.ciphertext_size, ia.shared_secret_size) == (
        ib.public_key_size,
        ib.ciphertext_size,
        ib.shared_secret_size,
    )
    if ia.seed_size is not None and ia.seed_size == ib.seed_size:
        seed = data.draw(st.binary(min_size=ia.seed_size, max_size=ia.seed_size), label="seed")
        try:
            pk_a, sk_a = a.generate_keypair(seed)
        except pqc.InvalidKey:
            # A seed one rejects (a curve scalar of zero, say), the other rejects too.
            with pytest.raises(pqc.InvalidKey):
                b.generate_keypair(seed)
            return
        pk_b, sk_b = b.generate_keypair(seed)
        assert pk_a == pk_b, "the same seed gave different public keys"
        formats = (
            (ia.secret_key_format, ia.secret_key_size),
            (ib.secret_key_format, ib.secret_key_size),
        )
        if formats[0] == formats[1]:
            same = _same(sk_a, sk_b)  # a bool, so that a failure shows no key bytes
            assert same, "the same seed gave different secret keys"
        elif ia.secret_key_format == ib.secret_key_format == _CONCATENATION:
            # The components' formats differ: the ML-KEM part is a seed in one, expanded in
            # the other (FORMAT_DIFFERENCES).
            assert ia.secret_key_size != ib.secret_key_size
        else:
            pair = frozenset({ia.secret_key_format, ib.secret_key_format})
            assert pair in FORMAT_DIFFERENCES, pair
        keys = [(a, pk_a, sk_a), (b, pk_b, sk_b)]
    else:
        pk_a, sk_a = a.generate_keypair()
        keys = [(a, pk_a, sk_a)]
    # Each provider's key decapsulates what the other encapsulated, to the same secret.
    for owner, public_key, secret_key in keys:
        for sender in (a, b):
            enc = sender.encapsulate(public_key)
            same = _same(owner.decapsulate(secret_key, enc.ciphertext), enc.shared_secret)
            assert same, f"{sender.info.provider} -> {owner.info.provider}"
    records = _kat_records(name)
    if records:
        record = records[data.draw(st.integers(0, len(records) - 1), label="KAT record")]
        seed = hexbytes(record, "d") + hexbytes(record, "z")
        for kem in (a, b):
            if kem.info.seed_size == 64:
                assert kem.generate_keypair(seed)[0] == hexbytes(record, "pk")
            secret_key = seed if kem.info.secret_key_format == SK_FIPS203_SEED else None
            if secret_key is None:
                secret_key = hexbytes(record, "sk")
            for ct, ss in (("ct", "ss"), ("ct_n", "ss_n")):
                same = _same(
                    kem.decapsulate(secret_key, hexbytes(record, ct)), hexbytes(record, ss)
                )
                assert same, f"{kem.info.provider} {ct}"


def _check_signature(a: pqc.SignatureScheme, b: pqc.SignatureScheme, data: st.DataObject) -> None:
    message = data.draw(st.binary(max_size=256), label="message")
    both_context = a.info.supports_context and b.info.supports_context
    context = data.draw(st.binary(max_size=32), label="context") if both_context else b""
    for signer, verifier in ((a, b), (b, a)):
        public_key, secret_key = signer.generate_keypair()
        signature = signer.sign(secret_key, message, context)
        verifier.verify(public_key, message, signature, context)
        with pytest.raises(pqc.InvalidSignature):
            verifier.verify(public_key, message + b"\x00", signature, context)


@pytest.mark.parametrize(("kind", "name", "provider_a", "provider_b"), _cases())
def test_providers_agree(kind: str, name: str, provider_a: str, provider_b: str) -> None:
    @_SETTINGS
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        if kind == "kem":
            _check_kem(
                name, pqc.kem(name, provider=provider_a), pqc.kem(name, provider=provider_b), data
            )
        else:
            _check_signature(
                pqc.signature(name, provider=provider_a),
                pqc.signature(name, provider=provider_b),
                data,
            )

    check()


def test_the_intersection_is_not_empty() -> None:
    """pyca and pqcrypto share ML-KEM-768/1024, the hybrids and ML-DSA wherever both exist."""
    ids = [p.id for p in _cases()]
    if "pqcrypto" in pqc.kem_providers("ML-KEM-768"):
        assert "ML-KEM-768:cryptography=pqcrypto" in ids
        assert "ML-DSA-65:cryptography=pqcrypto" in ids
    assert len(ids) == len(set(ids))
