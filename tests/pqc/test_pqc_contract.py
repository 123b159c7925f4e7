"""The KEM and signature contract, run over every available (provider, algorithm) pair.

The pairs come from the registry, so installing a provider (liboqs) adds its algorithms here
without editing this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from pqc_testing import is_slow_kem, is_slow_signature, kem_pairs, signature_pairs

import pqc


def _params(pairs: list[tuple[str, str]], slow: object) -> Iterator[object]:
    for provider, name in pairs:
        marks = [pytest.mark.slow] if slow(name, provider) else []  # type: ignore[operator]
        yield pytest.param((provider, name), id=f"{provider}:{name}", marks=marks)


@pytest.fixture(params=list(_params(kem_pairs(), is_slow_kem)), scope="module")
def kem_case(request: pytest.FixtureRequest) -> tuple[pqc.Kem, bytes, bytes]:
    provider, name = request.param
    kem = pqc.kem(name, provider=provider)
    public_key, secret_key = kem.generate_keypair()
    return kem, public_key, secret_key


@pytest.fixture(params=list(_params(signature_pairs(), is_slow_signature)), scope="module")
def sig_case(request: pytest.FixtureRequest) -> tuple[pqc.SignatureScheme, bytes, bytes, bytes]:
    provider, name = request.param
    scheme = pqc.signature(name, provider=provider)
    public_key, secret_key = scheme.generate_keypair()
    return scheme, public_key, secret_key, scheme.sign(secret_key, b"contract message")


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# -- KEMs ---------------------------------------------------------------------------------


def test_round_trip_and_sizes_match_info(kem_case: tuple[pqc.Kem, bytes, bytes]) -> None:
    kem, public_key, secret_key = kem_case
    info = kem.info
    enc = kem.encapsulate(public_key)
    assert isinstance(enc, pqc.Encapsulation)
    assert kem.decapsulate(secret_key, enc.ciphertext) == enc.shared_secret
    assert len(public_key) == info.public_key_size
    assert len(secret_key) == info.secret_key_size
    assert len(enc.ciphertext) == info.ciphertext_size
    assert len(enc.shared_secret) == info.shared_secret_size
    assert kem.encapsulate(public_key).shared_secret != enc.shared_secret  # fresh randomness


def test_repr_never_shows_the_secret(kem_case: tuple[pqc.Kem, bytes, bytes]) -> None:
    kem, public_key, _ = kem_case
    enc = kem.encapsulate(public_key)
    text = repr(enc) + str(enc) + repr(kem) + repr(kem.info)
    assert enc.shared_secret.hex() not in text
    assert repr(enc.shared_secret)[2:-1] not in repr(enc)
    assert f"{len(enc.shared_secret)} bytes" in repr(enc)


@pytest.mark.parametrize("delta", [-1, 1])
def test_wrong_length_inputs_raise_pqc_errors(
    kem_case: tuple[pqc.Kem, bytes, bytes], delta: int
) -> None:
    kem, public_key, secret_key = kem_case
    name = re.escape(kem.info.name)
    ciphertext = kem.encapsulate(public_key).ciphertext
    with pytest.raises(pqc.InvalidKey, match=rf"{name}.*{kem.info.public_key_size}"):
        kem.encapsulate(public_key[:delta] if delta < 0 else public_key + b"\x00")
    with pytest.raises(pqc.InvalidKey, match=rf"{name}.*{kem.info.secret_key_size}"):
        kem.decapsulate(secret_key[:delta] if delta < 0 else secret_key + b"\x00", ciphertext)
    with pytest.raises(pqc.InvalidCiphertext, match=rf"{name}.*{kem.info.ciphertext_size}"):
        kem.decapsulate(secret_key, ciphertext[:delta] if delta < 0 else ciphertext + b"\x00")


def test_modified_ciphertext_gives_a_different_secret(
    kem_case: tuple[pqc.Kem, bytes, bytes],
) -> None:
    """Implicit rejection (FIPS 203 and its hybrids): no exception, a different secret."""
    kem, public_key, secret_key = kem_case
    if kem.info.family == "DHKEM":
        pytest.skip("DHKEM has no implicit rejection; a flipped point is usually invalid")
    enc = kem.encapsulate(public_key)
    # Flip a bit in the ML-KEM / post-quantum part (the first byte after any ECDH prefix).
    index = 0
    if kem.info.name in ("SecP256r1MLKEM768", "SecP384r1MLKEM1024"):
        index = kem.info.ciphertext_size - 1
    assert kem.decapsulate(secret_key, _flip(enc.ciphertext, index)) != enc.shared_secret


def test_seeded_keygen_is_deterministic(kem_case: tuple[pqc.Kem, bytes, bytes]) -> None:
    kem, _, _ = kem_case
    if kem.info.seed_size is None:
        with pytest.raises(pqc.UnsupportedAlgorithm, match="seed"):
            kem.generate_keypair(b"\x01" * 64)
        return
    seed = bytes(range(kem.info.seed_size))
    first = kem.generate_keypair(seed)
    assert kem.generate_keypair(seed) == first
    assert kem.generate_keypair(bytes(reversed(seed)))[0] != first[0]
    enc = kem.encapsulate(first[0])
    assert kem.decapsulate(first[1], enc.ciphertext) == enc.shared_secret


def test_mlkem_modulus_check(kem_case: tuple[pqc.Kem, bytes, bytes]) -> None:
    """FIPS 203 7.2: an encapsulation key with a coefficient >= q is rejected, everywhere."""
    kem, public_key, _ = kem_case
    name = kem.info.name
    if kem.info.family not in ("ML-KEM", "hybrid"):
        pytest.skip("the modulus check applies to ML-KEM keys")
    # Where the ML-KEM key starts: after the ECDH share for the SecP* TLS hybrids.
    offset = {"SecP256r1MLKEM768": 65, "SecP384r1MLKEM1024": 97}.get(name, 0)
    bad = bytearray(public_key)
    bad[offset], bad[offset + 1] = 0xFF, bad[offset + 1] | 0x0F  # coefficient 4095 >= q
    with pytest.raises(pqc.InvalidKey, match=re.escape(name)):
        kem.encapsulate(bytes(bad))


# -- signatures ---------------------------------------------------------------------------


def test_sign_verify_round_trip(
    sig_case: tuple[pqc.SignatureScheme, bytes, bytes, bytes],
) -> None:
    scheme, public_key, secret_key, signature = sig_case
    assert scheme.verify(public_key, b"contract message", signature) is None
    assert len(public_key) == scheme.info.public_key_size
    assert len(secret_key) == scheme.info.secret_key_size
    assert len(signature) <= scheme.info.signature_size


def test_verify_raises_on_any_change(
    sig_case: tuple[pqc.SignatureScheme, bytes, bytes, bytes],
) -> None:
    scheme, public_key, _, signature = sig_case
    with pytest.raises(pqc.InvalidSignature):
        scheme.verify(public_key, b"contract messagE", signature)
    with pytest.raises(pqc.InvalidSignature):
        scheme.verify(public_key, b"contract message", _flip(signature, len(signature) // 2))
    with pytest.raises(pqc.InvalidSignature):
        scheme.verify(public_key, b"contract message", signature[:-1])
    with pytest.raises(pqc.InvalidKey, match=re.escape(scheme.info.name)):
        scheme.verify(public_key[:-1], b"contract message", signature)


def test_context_binds_the_signature(
    sig_case: tuple[pqc.SignatureScheme, bytes, bytes, bytes],
) -> None:
    scheme, public_key, secret_key, _ = sig_case
    if not scheme.info.supports_context:
        with pytest.raises(pqc.UnsupportedAlgorithm, match="context"):
            scheme.sign(secret_key, b"m", context=b"ctx")
        return
    if scheme.info.family == "SLH-DSA" and scheme.info.name.endswith("s"):
        pytest.skip("a second SLH-DSA-s signature costs seconds; covered by the f variants")
    with_context = scheme.sign(secret_key, b"m", context=b"ctx")
    scheme.verify(public_key, b"m", with_context, context=b"ctx")
    with pytest.raises(pqc.InvalidSignature):
        scheme.verify(public_key, b"m", with_context)
    with pytest.raises(pqc.InvalidSignature):
        scheme.verify(public_key, b"m", with_context, context=b"other")


def test_signature_seeded_keygen(
    sig_case: tuple[pqc.SignatureScheme, bytes, bytes, bytes],
) -> None:
    scheme = sig_case[0]
    if scheme.info.seed_size is None:
        with pytest.raises(pqc.UnsupportedAlgorithm, match="seed"):
            scheme.generate_keypair(b"\x02" * 32)
        return
    seed = bytes(range(scheme.info.seed_size))
    assert scheme.generate_keypair(seed) == scheme.generate_keypair(seed)
    with pytest.raises(pqc.InvalidKey, match=re.escape(scheme.info.name)):
        scheme.generate_keypair(seed[:-1])


def test_error_messages_never_contain_key_material(
    kem_case: tuple[pqc.Kem, bytes, bytes],
) -> None:
    kem, public_key, secret_key = kem_case
    ciphertext = kem.encapsulate(public_key).ciphertext
    failures = []
    for call in (
        lambda: kem.decapsulate(secret_key[:-1], ciphertext),
        lambda: kem.decapsulate(secret_key, ciphertext[:-1]),
        lambda: kem.encapsulate(public_key[:-1]),
    ):
        with pytest.raises(pqc.PQCError) as caught:
            call()
        failures.append(caught.value)
    for error in failures:
        text = f"{error} {error!r} {error.__cause__!r}"
        for material in (secret_key, public_key, ciphertext):
            assert material[:12].hex() not in text
            assert repr(material[:12])[2:-1] not in text
