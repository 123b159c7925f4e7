"""The registry: names, aliases, preference order, provider conflicts, error messages."""

from __future__ import annotations

import pytest

import pqc
from pqc._pqcrypto import PqcryptoProvider
from pqc._pyca import CryptographyProvider


def _fresh() -> pqc.Registry:
    return pqc.Registry([CryptographyProvider(), PqcryptoProvider()])


def test_default_preference_and_providers_listing() -> None:
    assert pqc.DEFAULT_PREFERENCE == ("cryptography", "pqcrypto", "liboqs")
    statuses = pqc.providers()
    assert [s.name for s in statuses] == ["cryptography", "pqcrypto", "liboqs"]
    for status in statuses:
        assert status.reason
        assert (status.version is not None) == status.available


def test_alias_and_case_insensitive_names() -> None:
    assert pqc.kem("X-Wing") is pqc.kem("MLKEM768-X25519")
    assert pqc.kem("x-wing").info.name == "MLKEM768-X25519"
    assert pqc.kem("ml-kem-768").info.name == "ML-KEM-768"
    assert pqc.signature("ml-dsa-65").info.name == "ML-DSA-65"


def test_preference_changes_which_provider_serves() -> None:
    registry = _fresh()
    assert registry.kem("ML-KEM-768").info.provider == "cryptography"
    registry.set_preference(["pqcrypto", "cryptography"])
    assert registry.kem("ML-KEM-768").info.provider == "pqcrypto"
    assert registry.kem("X25519MLKEM768").info.provider == "pqcrypto"
    # X-Wing needs seeded ML-KEM: pqcrypto has it only where liboqs expands its seeds;
    # elsewhere the registry passes over pqcrypto to pyca.
    seeded = registry.provider("pqcrypto").kem("ML-KEM-768").info.seed_size is not None
    assert registry.kem("X-Wing").info.provider == ("pqcrypto" if seeded else "cryptography")
    assert registry.kem("ML-KEM-768", preference=["cryptography"]).info.provider == "cryptography"
    with pytest.raises(pqc.UnsupportedAlgorithm, match="nope"):
        registry.set_preference(["nope"])


def test_explicit_provider_flows_to_hybrid_components() -> None:
    hybrid = pqc.kem("SecP256r1MLKEM768", provider="pqcrypto")
    assert hybrid.info.provider == "pqcrypto"
    assert hybrid.info.secret_key_size == 32 + 2400  # P-256 scalar + expanded ML-KEM key
    if pqc.kem("ML-KEM-768", provider="pqcrypto").info.seed_size is None:
        with pytest.raises(pqc.UnsupportedAlgorithm, match="install liboqs"):
            pqc.kem("X-Wing", provider="pqcrypto")
        return
    assert hybrid.info.seed_size == 32 + 64
    xwing = pqc.kem("X-Wing", provider="pqcrypto")
    assert xwing.info.provider == "pqcrypto"
    # The same hybrid seed gives the same keys through either ML-KEM provider.
    seed = bytes(range(32))
    assert xwing.generate_keypair(seed) == pqc.kem("X-Wing").generate_keypair(seed)


def test_registering_twice_is_harmless_and_a_conflict_raises() -> None:
    registry = _fresh()
    registry.register(CryptographyProvider())
    registry.register(registry.provider("pqcrypto"))
    assert [s.name for s in registry.providers()] == ["cryptography", "pqcrypto"]

    class Impostor(PqcryptoProvider):
        pass

    with pytest.raises(pqc.ProviderConflict, match="pqcrypto"):
        registry.register(Impostor())


def test_unknown_algorithm_and_provider_messages() -> None:
    with pytest.raises(pqc.UnsupportedAlgorithm, match="no available provider offers KEM 'ML"):
        pqc.kem("ML-KEM-9")
    with pytest.raises(pqc.UnsupportedAlgorithm, match=r"cryptography.*no KEM 'HQC-128'"):
        pqc.kem("HQC-128", provider="cryptography")
    with pytest.raises(pqc.UnsupportedAlgorithm, match="no provider named 'openssl'"):
        pqc.kem("ML-KEM-768", provider="openssl")
    scheme = pqc.signature("Ed25519")
    secret_key = scheme.generate_keypair()[1]
    with pytest.raises(pqc.UnsupportedAlgorithm, match=r"Ed25519.*context"):
        scheme.sign(secret_key, b"m", context=b"c")


def test_error_tree() -> None:
    for error in (
        pqc.UnsupportedAlgorithm,
        pqc.InvalidKey,
        pqc.InvalidCiphertext,
        pqc.InvalidSignature,
        pqc.ProviderConflict,
    ):
        assert issubclass(error, pqc.PQCError)
        assert error.__name__ in (pqc.__doc__ or "")


def test_tls_hybrid_layout() -> None:
    """X25519MLKEM768 puts ML-KEM first; the SecP* groups put ECDH first (uncompressed)."""
    mlkem = pqc.kem("ML-KEM-768")
    xhybrid = pqc.kem("X25519MLKEM768")
    seed = bytes(range(64)) + bytes(range(100, 132))
    public_key, _ = xhybrid.generate_keypair(seed)
    assert public_key[:1184] == mlkem.generate_keypair(seed[:64])[0]
    p256 = pqc.kem("SecP256r1MLKEM768")
    public_key, _ = p256.generate_keypair()
    assert public_key[0] == 0x04
    assert len(public_key) == 65 + 1184
    enc = p256.encapsulate(public_key)
    assert enc.ciphertext[0] == 0x04
    assert len(enc.shared_secret) == 32 + 32
    assert p256.info.standard.endswith("0x11EB)")
    assert pqc.kem("SecP384r1MLKEM1024").info.shared_secret_size == 48 + 32
    assert xhybrid.info.shared_secret_size == 64


def test_pyca_already_runs_the_modulus_check() -> None:
    """The reason the pyca hot path adds no modulus check of its own."""
    from cryptography.hazmat.primitives.asymmetric import mlkem

    public_key, _ = pqc.kem("ML-KEM-768").generate_keypair()
    bad = bytearray(public_key)
    bad[0], bad[1] = 0xFF, bad[1] | 0x0F
    with pytest.raises(ValueError):
        mlkem.MLKEM768PublicKey.from_public_bytes(bytes(bad))
