"""Cross-provider interoperability: keys from provider A, encapsulate with B, decapsulate with A.

Runs for every pair of available providers that share an algorithm (and, for signatures,
sign with A and verify with B). Public keys and ciphertexts use the standard encodings, so
this also pins the (ciphertext, shared_secret) order each adapter returns.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pqc_testing import disagreement, is_slow_kem, is_slow_signature

import pqc


def _kem_pairs() -> list[Any]:
    cases = []
    for name in pqc.available_kems():
        providers = pqc.kem_providers(name)
        for a, b in itertools.permutations(providers, 2):
            slow = is_slow_kem(name) or any(is_slow_kem(name, p) for p in (a, b))
            marks: list[Any] = [pytest.mark.slow] if slow else []
            why = disagreement(name, a, b)
            if why:
                marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=why))
            cases.append(pytest.param(name, a, b, id=f"{name}:{a}->{b}", marks=marks))
    return cases


def _signature_pairs() -> list[Any]:
    cases = []
    for name in pqc.available_signatures():
        providers = pqc.signature_providers(name)
        for a, b in itertools.permutations(providers, 2):
            slow = is_slow_signature(name) or any(is_slow_signature(name, p) for p in (a, b))
            marks = [pytest.mark.slow] if slow else []
            cases.append(pytest.param(name, a, b, id=f"{name}:{a}->{b}", marks=marks))
    return cases


@pytest.mark.parametrize(("name", "keys_by", "encaps_by"), _kem_pairs())
def test_kem_interop(name: str, keys_by: str, encaps_by: str) -> None:
    owner = pqc.kem(name, provider=keys_by)
    sender = pqc.kem(name, provider=encaps_by)
    assert owner.info.public_key_size == sender.info.public_key_size
    assert owner.info.ciphertext_size == sender.info.ciphertext_size
    public_key, secret_key = owner.generate_keypair()
    enc = sender.encapsulate(public_key)
    assert owner.decapsulate(secret_key, enc.ciphertext) == enc.shared_secret


@pytest.mark.parametrize(("name", "signer", "verifier"), _signature_pairs())
def test_signature_interop(name: str, signer: str, verifier: str) -> None:
    signing = pqc.signature(name, provider=signer)
    verifying = pqc.signature(name, provider=verifier)
    public_key, secret_key = signing.generate_keypair()
    signature = signing.sign(secret_key, b"interop", context=b"ctx")
    verifying.verify(public_key, b"interop", signature, context=b"ctx")
    with pytest.raises(pqc.InvalidSignature):
        verifying.verify(public_key, b"interop", signature, context=b"other")


def test_interop_cases_exist() -> None:
    """Guards against a silently empty parametrisation: pyca and pqcrypto share ML-KEM."""
    ids = [p.id for p in _kem_pairs()]
    assert "ML-KEM-768:cryptography->pqcrypto" in ids
    assert "X25519MLKEM768:pqcrypto->cryptography" in ids
    assert any(p.id == "ML-DSA-65:pqcrypto->cryptography" for p in _signature_pairs())
