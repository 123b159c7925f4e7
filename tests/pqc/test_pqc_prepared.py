"""The prepared-key contract (``KemPrivateKey``, ``SignaturePrivateKey``, ``SignaturePublicKey``),
run over every available (provider, algorithm) pair, like the bytes contract beside it.

A prepared key must agree with the bytes API in both directions (a key object decapsulates what
``Kem.decapsulate`` would with its ``secret_bytes()``, and a secret key from
``generate_keypair`` loads into an object that does the same), reject malformed input with pqc
errors, and never show or give away key material by repr, pickling or copying.
"""

from __future__ import annotations

import copy
import pickle
import re
from collections.abc import Iterator

import pytest
from pqc_testing import is_slow_kem, is_slow_signature, kem_pairs, signature_pairs

import pqc
from pqc._interface import SK_PROVIDER_NATIVE


def _params(pairs: list[tuple[str, str]], slow: object) -> Iterator[object]:
    for provider, name in pairs:
        marks = [pytest.mark.slow] if slow(name, provider) else []  # type: ignore[operator]
        yield pytest.param((provider, name), id=f"{provider}:{name}", marks=marks)


@pytest.fixture(params=list(_params(kem_pairs(), is_slow_kem)), scope="module")
def kem_key(request: pytest.FixtureRequest) -> tuple[pqc.Kem, pqc.KemPrivateKey]:
    provider, name = request.param
    kem = pqc.kem(name, provider=provider)
    return kem, kem.generate_private_key()


@pytest.fixture(params=list(_params(signature_pairs(), is_slow_signature)), scope="module")
def sig_keys(request: pytest.FixtureRequest) -> tuple[pqc.SignatureScheme, bytes, bytes]:
    provider, name = request.param
    scheme = pqc.signature(name, provider=provider)
    public_key, secret_key = scheme.generate_keypair()
    return scheme, public_key, secret_key


def _secret_forms(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), repr(secret)[2:-1]]


# -- KEMs ---------------------------------------------------------------------------------


def test_private_key_agrees_with_the_bytes_api(
    kem_key: tuple[pqc.Kem, pqc.KemPrivateKey],
) -> None:
    kem, key = kem_key
    info = kem.info
    assert key.info == info
    assert len(key.public_key) == info.public_key_size
    secret = key.secret_bytes()
    assert len(secret) == info.secret_key_size
    enc = kem.encapsulate(key.public_key)
    assert key.decapsulate(enc.ciphertext) == enc.shared_secret
    assert key.decapsulate(enc.ciphertext) == enc.shared_secret  # reusable
    assert kem.decapsulate(secret, enc.ciphertext) == enc.shared_secret
    assert kem.generate_private_key().public_key != key.public_key  # fresh randomness


def test_loaded_key_decapsulates_like_the_secret_bytes(
    kem_key: tuple[pqc.Kem, pqc.KemPrivateKey],
) -> None:
    kem, _ = kem_key
    public_key, secret_key = kem.generate_keypair()
    loaded = kem.load_private_key(secret_key)
    assert loaded.secret_bytes() == secret_key
    enc = kem.encapsulate(public_key)
    assert loaded.decapsulate(enc.ciphertext) == enc.shared_secret
    if kem.info.secret_key_format == SK_PROVIDER_NATIVE:
        # A native secret key may not hold the public key; then the object says so.
        derived: bytes | None = None
        reason = ""
        try:
            derived = loaded.public_key
        except pqc.UnsupportedAlgorithm as exc:
            reason = str(exc)
        if derived is None:
            assert "public key" in reason
        else:
            assert derived == public_key
    else:
        assert loaded.public_key == public_key


def test_seeded_private_key_matches_seeded_keypair(
    kem_key: tuple[pqc.Kem, pqc.KemPrivateKey],
) -> None:
    kem, _ = kem_key
    if kem.info.seed_size is None:
        with pytest.raises(pqc.UnsupportedAlgorithm, match="seed"):
            kem.generate_private_key(b"\x01" * 64)
        return
    seed = bytes(range(kem.info.seed_size))
    public_key, secret_key = kem.generate_keypair(seed)
    key = kem.generate_private_key(seed)
    assert key.public_key == public_key
    assert key.secret_bytes() == secret_key


@pytest.mark.parametrize("delta", [-1, 1])
def test_malformed_inputs_raise_pqc_errors(
    kem_key: tuple[pqc.Kem, pqc.KemPrivateKey], delta: int
) -> None:
    kem, key = kem_key
    info = kem.info
    name = re.escape(info.name)
    secret = key.secret_bytes()
    with pytest.raises(pqc.InvalidKey, match=rf"{name}.*{info.secret_key_size}"):
        kem.load_private_key(secret[:delta] if delta < 0 else secret + b"\x00")
    ciphertext = kem.encapsulate(key.public_key).ciphertext
    with pytest.raises(pqc.InvalidCiphertext, match=rf"{name}.*{info.ciphertext_size}"):
        key.decapsulate(ciphertext[:delta] if delta < 0 else ciphertext + b"\x00")


def test_kem_private_key_does_not_leak(kem_key: tuple[pqc.Kem, pqc.KemPrivateKey]) -> None:
    kem, key = kem_key
    text = repr(key) + str(key) + f"{key}"
    assert kem.info.name in text
    for form in _secret_forms(key.secret_bytes()):
        assert form not in text
    for attempt in (
        lambda: pickle.dumps(key),
        lambda: copy.copy(key),
        lambda: copy.deepcopy(key),
    ):
        with pytest.raises(TypeError, match="cannot be pickled"):
            attempt()


def test_dhkem_private_key_rejects_an_invalid_peer_point() -> None:
    kem = pqc.kem("DHKEM(X25519, HKDF-SHA256)", provider="cryptography")
    key = kem.generate_private_key()
    with pytest.raises(pqc.InvalidCiphertext, match="X25519"):
        key.decapsulate(bytes(32))  # the all-zero (low-order) point


# -- signatures ---------------------------------------------------------------------------


def test_loaded_keys_agree_with_the_bytes_api(
    sig_keys: tuple[pqc.SignatureScheme, bytes, bytes],
) -> None:
    scheme, public_key, secret_key = sig_keys
    signer = scheme.load_private_key(secret_key)
    verifier = scheme.load_public_key(public_key)
    assert signer.info == scheme.info
    assert verifier.public_bytes == public_key
    signature = signer.sign(b"prepared message")
    assert len(signature) <= scheme.info.signature_size
    assert verifier.verify(b"prepared message", signature) is None
    scheme.verify(public_key, b"prepared message", signature)
    verifier.verify(b"bytes message", scheme.sign(secret_key, b"bytes message"))
    with pytest.raises(pqc.InvalidSignature):
        verifier.verify(b"prepared messagE", signature)
    with pytest.raises(pqc.InvalidSignature):
        verifier.verify(b"prepared message", signature[:-1])


def test_loaded_keys_honour_the_context(
    sig_keys: tuple[pqc.SignatureScheme, bytes, bytes],
) -> None:
    scheme, public_key, secret_key = sig_keys
    signer = scheme.load_private_key(secret_key)
    verifier = scheme.load_public_key(public_key)
    if not scheme.info.supports_context:
        with pytest.raises(pqc.UnsupportedAlgorithm, match="context"):
            signer.sign(b"m", context=b"ctx")
        with pytest.raises(pqc.UnsupportedAlgorithm, match="context"):
            verifier.verify(b"m", b"\x00" * 8, context=b"ctx")
        return
    if scheme.info.family == "SLH-DSA" and scheme.info.name.endswith("s"):
        pytest.skip("a second SLH-DSA-s signature costs seconds; covered by the f variants")
    signature = signer.sign(b"m", context=b"ctx")
    verifier.verify(b"m", signature, context=b"ctx")
    with pytest.raises(pqc.InvalidSignature):
        verifier.verify(b"m", signature)
    with pytest.raises(pqc.InvalidSignature):
        verifier.verify(b"m", signature, context=b"other")


def test_loading_malformed_signature_keys_raises(
    sig_keys: tuple[pqc.SignatureScheme, bytes, bytes],
) -> None:
    scheme, public_key, secret_key = sig_keys
    name = re.escape(scheme.info.name)
    with pytest.raises(pqc.InvalidKey, match=name):
        scheme.load_private_key(secret_key[:-1])
    with pytest.raises(pqc.InvalidKey, match=name):
        scheme.load_public_key(public_key[:-1])
    with pytest.raises(pqc.InvalidKey, match=name):
        scheme.load_public_key(public_key + b"\x00")


def test_signing_key_does_not_leak(sig_keys: tuple[pqc.SignatureScheme, bytes, bytes]) -> None:
    scheme, public_key, secret_key = sig_keys
    signer = scheme.load_private_key(secret_key)
    text = repr(signer) + str(signer) + repr(scheme.load_public_key(public_key))
    assert scheme.info.name in text
    for form in _secret_forms(secret_key):
        assert form not in text
    for attempt in (
        lambda: pickle.dumps(signer),
        lambda: copy.copy(signer),
        lambda: copy.deepcopy(signer),
    ):
        with pytest.raises(TypeError, match="cannot be pickled"):
            attempt()
