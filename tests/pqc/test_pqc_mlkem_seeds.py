"""Seeded ML-KEM key generation comes from a kept library, never from this project's code.

- pyca expands seeds for ML-KEM-768 and ML-KEM-1024; liboqs for every set it enables, through
  liboqs-python's ``generate_keypair_seed`` or, in a liboqs-python without it, through
  ``OQS_KEM_keypair_derand`` in the library liboqs-python loaded.
- pqcrypto has no seeded key generation: its ML-KEM keys are the expanded FIPS 203 keys, and
  its seeds are expanded by liboqs where present. Without liboqs, seeded generation raises
  ``UnsupportedAlgorithm`` with the reason and the way out, and random generation still works.
- The FIPS 203 KATs (``test_pqc_kat.py``) run against every provider that accepts seeds.
"""

from __future__ import annotations

import importlib.util

import pytest
from pqc_testing import hexbytes, liboqs_available, liboqs_reason, load_rsp

import pqc
from pqc._interface import SK_FIPS203_EXPANDED
from pqc._pqcrypto import PqcryptoProvider

SIZES = ("512", "768", "1024")
EXPANDED_SIZE = {"512": 1632, "768": 2400, "1024": 3168}

needs_pqcrypto = pytest.mark.skipif(
    "pqcrypto" not in pqc.kem_providers("ML-KEM-768"), reason="pqcrypto is not installed"
)
needs_liboqs = pytest.mark.skipif(
    not liboqs_available(), reason=f"liboqs is not available here: {liboqs_reason()}"
)


def _record(size: str, index: int = 0) -> dict[str, str]:
    return load_rsp(f"asymmetric/MLKEM/kat_MLKEM_{size}.rsp")[index]


def _seed(record: dict[str, str]) -> bytes:
    return hexbytes(record, "d") + hexbytes(record, "z")


def _no_expander(name: str) -> tuple[None, str]:
    return None, "no seed expander in this test"


def test_the_hand_written_key_expansion_is_gone() -> None:
    assert importlib.util.find_spec("pqc._mlkem_keygen") is None


@needs_pqcrypto
@pytest.mark.parametrize("size", SIZES)
def test_pqcrypto_without_an_expander_refuses_seeds_and_says_how(size: str) -> None:
    kem = PqcryptoProvider(seed_expander=_no_expander).kem(f"ML-KEM-{size}")
    assert kem.info.seed_size is None
    assert kem.info.secret_key_format == SK_FIPS203_EXPANDED
    assert kem.info.secret_key_size == EXPANDED_SIZE[size]
    public_key, secret_key = kem.generate_keypair()  # random generation still works
    enc = kem.encapsulate(public_key)
    assert kem.decapsulate(secret_key, enc.ciphertext) == enc.shared_secret
    seed = _seed(_record(size))
    with pytest.raises(pqc.UnsupportedAlgorithm, match=r"install liboqs") as caught:
        kem.generate_keypair(seed)
    assert "no seed expander in this test" in str(caught.value)  # the reason
    with pytest.raises(pqc.UnsupportedAlgorithm, match=r"install liboqs"):
        kem.decapsulate(seed, enc.ciphertext)  # a seed as the secret key needs expanding too


@needs_pqcrypto
def test_mlkem512_seeds_here_follow_liboqs() -> None:
    """The process-wide registry: ML-KEM-512 has seeds exactly where liboqs is present."""
    record = _record("512")
    for provider in pqc.kem_providers("ML-KEM-512"):
        kem = pqc.kem("ML-KEM-512", provider=provider)
        if liboqs_available():
            assert kem.generate_keypair(_seed(record))[0] == hexbytes(record, "pk")
        else:
            assert kem.info.seed_size is None
            with pytest.raises(pqc.UnsupportedAlgorithm, match="install liboqs") as caught:
                kem.generate_keypair(_seed(record))
            assert "liboqs shared library not found" in str(caught.value)


@needs_pqcrypto
@pytest.mark.parametrize("size", SIZES)
def test_pqcrypto_rejects_a_corrupt_expanded_key(size: str) -> None:
    kem = pqc.kem(f"ML-KEM-{size}", provider="pqcrypto")
    public_key, secret_key = kem.generate_keypair()
    ciphertext = kem.encapsulate(public_key).ciphertext
    index = EXPANDED_SIZE[size] - 64  # the first byte of H(ek)
    corrupt = secret_key[:index] + bytes([secret_key[index] ^ 1]) + secret_key[index + 1 :]
    with pytest.raises(pqc.InvalidKey, match="hash check"):
        kem.decapsulate(corrupt, ciphertext)
    with pytest.raises(pqc.InvalidKey, match="hash check"):
        kem.load_private_key(corrupt)


@needs_pqcrypto
@needs_liboqs
@pytest.mark.parametrize("size", SIZES)
def test_pqcrypto_takes_a_seed_as_secret_key_through_liboqs(size: str) -> None:
    kem = pqc.kem(f"ML-KEM-{size}", provider="pqcrypto")
    assert kem.info.seed_size == 64
    for record in load_rsp(f"asymmetric/MLKEM/kat_MLKEM_{size}.rsp")[:20]:
        seed = _seed(record)
        assert kem.generate_keypair(seed) == (hexbytes(record, "pk"), hexbytes(record, "sk"))
        assert kem.decapsulate(seed, hexbytes(record, "ct")) == hexbytes(record, "ss")
        key = kem.load_private_key(seed)
        assert key.public_key == hexbytes(record, "pk")
        assert key.decapsulate(hexbytes(record, "ct_n")) == hexbytes(record, "ss_n")


@needs_liboqs
@pytest.mark.parametrize("size", SIZES)
def test_liboqs_ctypes_derand_matches_the_kat(size: str) -> None:
    """The fallback for liboqs-python releases without ``generate_keypair_seed``."""
    from pqc._liboqs import keypair_derand_ctypes, load_oqs

    oqs, _ = load_oqs()
    for record in load_rsp(f"asymmetric/MLKEM/kat_MLKEM_{size}.rsp")[:50]:
        outcome = keypair_derand_ctypes(oqs, f"ML-KEM-{size}", _seed(record))
        assert outcome == (hexbytes(record, "pk"), hexbytes(record, "sk")), record["count"]


@needs_liboqs
def test_liboqs_uses_ctypes_when_liboqs_python_has_no_seeded_keygen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pqc._liboqs import load_oqs

    oqs, _ = load_oqs()
    assert oqs is not None
    kem = pqc.kem("ML-KEM-768", provider="liboqs")
    record = _record("768", 7)
    monkeypatch.delattr(oqs.KeyEncapsulation, "generate_keypair_seed")
    assert kem.generate_keypair(_seed(record)) == (hexbytes(record, "pk"), hexbytes(record, "sk"))
