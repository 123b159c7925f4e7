"""FIPS 203 key expansion (``pqc._mlkem_keygen``) and the seed format of the pqcrypto adapter.

- Every record of ``kat_MLKEM_{512,768,1024}.rsp``: ML-KEM.KeyGen_internal(d, z) gives the
  record's ``pk`` and expanded ``sk`` byte for byte.
- The pqcrypto adapter takes the 64-byte seed d || z as its secret key (as pyca does), still
  decapsulates with a legacy expanded key (after the FIPS 203 7.3 hash check), and a prepared
  key expands its seed once.
- pqcrypto and pyca interoperate through the seed: the same seed gives the same public key,
  and each decapsulates what the other encapsulated.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from pqc_testing import hexbytes, load_rsp

import pqc
from pqc import _mlkem_keygen
from pqc._interface import SK_FIPS203_SEED
from pqc._mlkem_keygen import MLKEM_PARAMETERS, expand_seed
from pqc._pqcrypto import _PqcryptoMlKem

SIZES = ("512", "768", "1024")
EXPANDED_SIZE = {"512": 1632, "768": 2400, "1024": 3168}

needs_pqcrypto = pytest.mark.skipif(
    "pqcrypto" not in pqc.kem_providers("ML-KEM-768"), reason="pqcrypto is not installed"
)


def _records(size: str) -> tuple[dict[str, str], ...]:
    records = load_rsp(f"asymmetric/MLKEM/kat_MLKEM_{size}.rsp")
    assert len(records) == 1000
    return records


def _seed(record: dict[str, str]) -> bytes:
    return hexbytes(record, "d") + hexbytes(record, "z")


# -- the expansion itself -----------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_expansion_matches_every_kat_record(size: str) -> None:
    name = f"ML-KEM-{size}"
    started = time.perf_counter()
    for record in _records(size):
        public_key, expanded = expand_seed(name, _seed(record))
        assert public_key == hexbytes(record, "pk"), record["count"]
        assert expanded == hexbytes(record, "sk"), record["count"]
    # Far above the ~0.2-0.4 ms per key measured; catches an accidental per-coefficient loop.
    assert time.perf_counter() - started < 20


def test_expansion_sizes_and_seed_check() -> None:
    for size in SIZES:
        k, _ = MLKEM_PARAMETERS[f"ML-KEM-{size}"]
        public_key, expanded = expand_seed(f"ML-KEM-{size}", bytes(64))
        assert len(public_key) == 384 * k + 32
        assert len(expanded) == EXPANDED_SIZE[size] == 768 * k + 96
    for bad in (bytes(63), bytes(65), b""):
        with pytest.raises(ValueError, match="64 bytes"):
            expand_seed("ML-KEM-768", bad)


def test_matrix_ntt_equals_the_layered_algorithm() -> None:
    """The float64 matrix form of Algorithm 9 is exact, including at the largest inputs."""
    rng = np.random.default_rng(203)
    polys = rng.integers(0, _mlkem_keygen.Q, size=(64, 256), dtype=np.int64)
    polys[0] = _mlkem_keygen.Q - 1
    fast = _mlkem_keygen._ntt_fast(polys)
    assert np.array_equal(fast, _mlkem_keygen._ntt(polys))
    assert int(fast.min()) >= 0
    assert int(fast.max()) < _mlkem_keygen.Q


def test_sample_ntt_squeezes_more_when_a_row_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting from one SHAKE128 block (far too few candidates) gives the same matrix."""
    record = _records("768")[0]
    expected = expand_seed("ML-KEM-768", _seed(record))
    monkeypatch.setattr(_mlkem_keygen, "_SAMPLE_NTT_BYTES", 168)
    assert expand_seed("ML-KEM-768", _seed(record)) == expected


# -- the pqcrypto adapter -----------------------------------------------------------------


@needs_pqcrypto
@pytest.mark.parametrize("size", SIZES)
def test_pqcrypto_reports_the_seed_format(size: str) -> None:
    info = pqc.kem(f"ML-KEM-{size}", provider="pqcrypto").info
    assert info.secret_key_format == SK_FIPS203_SEED
    assert info.secret_key_size == 64
    assert info.seed_size == 64


@needs_pqcrypto
@pytest.mark.parametrize("size", SIZES)
def test_pqcrypto_kat_with_seed_and_with_legacy_expanded_key(size: str) -> None:
    kem = pqc.kem(f"ML-KEM-{size}", provider="pqcrypto")
    for record in _records(size):
        seed, expanded = _seed(record), hexbytes(record, "sk")
        ct, ct_n = hexbytes(record, "ct"), hexbytes(record, "ct_n")
        ss, ss_n = hexbytes(record, "ss"), hexbytes(record, "ss_n")
        assert kem.generate_keypair(seed) == (hexbytes(record, "pk"), seed), record["count"]
        key = kem.load_private_key(seed)
        assert key.public_key == hexbytes(record, "pk")
        assert key.secret_bytes() == seed
        assert key.decapsulate(ct) == ss
        assert key.decapsulate(ct_n) == ss_n  # implicit rejection
        # Keys generated before the adapter took seeds: the expanded key still works.
        assert kem.decapsulate(expanded, ct) == ss
        assert kem.decapsulate(expanded, ct_n) == ss_n
        legacy = kem.load_private_key(expanded)
        assert legacy.public_key == hexbytes(record, "pk")
        assert legacy.secret_bytes() == expanded


@needs_pqcrypto
def test_pqcrypto_rejects_malformed_secret_keys_and_seeds() -> None:
    kem = pqc.kem("ML-KEM-768", provider="pqcrypto")
    public_key, seed = kem.generate_keypair()
    ciphertext = kem.encapsulate(public_key).ciphertext
    _, expanded = expand_seed("ML-KEM-768", seed)
    # FIPS 203 7.3 hash check: flip a bit of H(ek) inside the expanded key.
    index = 2400 - 64
    corrupt = expanded[:index] + bytes([expanded[index] ^ 1]) + expanded[index + 1 :]
    with pytest.raises(pqc.InvalidKey, match="hash check"):
        kem.decapsulate(corrupt, ciphertext)
    with pytest.raises(pqc.InvalidKey, match="hash check"):
        kem.load_private_key(corrupt)
    for size in (0, 32, 63, 65, 2399, 2401):
        with pytest.raises(pqc.InvalidKey, match=r"ML-KEM-768.*64-byte seed"):
            kem.decapsulate(bytes(size), ciphertext)
    with pytest.raises(pqc.InvalidKey, match=r"ML-KEM-768.*seed must be 64 bytes, got 63"):
        kem.generate_keypair(bytes(63))
    with pytest.raises(pqc.InvalidKey, match="seed must be bytes"):
        kem.generate_keypair("0" * 64)  # type: ignore[arg-type]
    key_text = repr(kem.load_private_key(seed))
    assert seed.hex() not in key_text
    assert "ML-KEM-768" in key_text


@needs_pqcrypto
def test_prepared_pqcrypto_key_expands_once(monkeypatch: pytest.MonkeyPatch) -> None:
    kem = pqc.kem("ML-KEM-768", provider="pqcrypto")
    assert isinstance(kem, _PqcryptoMlKem)
    calls: list[bytes] = []
    original = kem._expand_seed

    def counting(name: str, seed: bytes) -> tuple[bytes, bytes]:
        calls.append(seed)
        return original(name, seed)

    monkeypatch.setattr(kem, "_expand_seed", counting)
    seed = os.urandom(64)
    key = kem.load_private_key(seed)
    encs = [kem.encapsulate(key.public_key) for _ in range(5)]
    assert [key.decapsulate(e.ciphertext) for e in encs] == [e.shared_secret for e in encs]
    assert calls == [seed]
    # The bytes API, by contrast, expands at every call.
    assert kem.decapsulate(seed, encs[0].ciphertext) == encs[0].shared_secret
    assert len(calls) == 2
    fresh = kem.generate_private_key()
    assert len(calls) == 3
    enc = kem.encapsulate(fresh.public_key)
    assert fresh.decapsulate(enc.ciphertext) == enc.shared_secret
    assert len(calls) == 3


# -- pqcrypto with a seed against pyca ----------------------------------------------------


def _pyca_sizes() -> list[str]:
    return [s for s in SIZES if "cryptography" in pqc.kem_providers(f"ML-KEM-{s}")]


@needs_pqcrypto
@pytest.mark.parametrize("size", _pyca_sizes())
def test_pqcrypto_and_pyca_interoperate_through_the_seed(size: str) -> None:
    pqcrypto_kem = pqc.kem(f"ML-KEM-{size}", provider="pqcrypto")
    pyca_kem = pqc.kem(f"ML-KEM-{size}", provider="cryptography")
    for _ in range(20):
        seed = os.urandom(64)
        assert pqcrypto_kem.generate_keypair(seed) == pyca_kem.generate_keypair(seed)
        public_key = pyca_kem.generate_keypair(seed)[0]
        # pyca encapsulates; pqcrypto decapsulates with the seed (bytes API and prepared key).
        enc = pyca_kem.encapsulate(public_key)
        assert pqcrypto_kem.decapsulate(seed, enc.ciphertext) == enc.shared_secret
        assert pqcrypto_kem.load_private_key(seed).decapsulate(enc.ciphertext) == (
            enc.shared_secret
        )
        # pqcrypto encapsulates; pyca decapsulates with the same seed.
        enc = pqcrypto_kem.encapsulate(public_key)
        assert pyca_kem.decapsulate(seed, enc.ciphertext) == enc.shared_secret
        # Keys generated by pqcrypto without a seed are seeds pyca takes as they are.
        fresh_public, fresh_seed = pqcrypto_kem.generate_keypair()
        assert pyca_kem.generate_keypair(fresh_seed)[0] == fresh_public


def test_pyca_cases_exist() -> None:
    """Guards against a silently empty parametrisation above."""
    assert {"768", "1024"} <= set(_pyca_sizes())
