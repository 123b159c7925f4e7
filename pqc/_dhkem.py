"""DHKEM (RFC 9180 section 4.1) over the pyca/cryptography groups of ``pqc._groups``.

    LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm)
    LabeledExpand(prk, label, info, L) =
        Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L)
    suite_id = "KEM" || I2OSP(kem_id, 2)

Encap: dh = DH(skE, pkR), kem_context = enc || pkRm,
shared_secret = LabeledExpand(LabeledExtract("", "eae_prk", dh), "shared_secret",
kem_context, Nsecret). Seeded key generation is DeriveKeyPair(ikm) (section 7.1.3).
Secret keys are the raw scalar (X25519, X448) or the big-endian scalar (P-256, P-384).

Each scalar is parsed once per operation (pyca derives the public key when it loads one,
which costs as much as the exchange): encapsulation uses the ephemeral key object it just
generated, decapsulation takes the public key from the object it exchanges with, and a
:class:`DhKemPrivateKey` keeps both across decapsulations. Extract and Expand are HMAC
through the one-shot :func:`hmac.digest` (OpenSSL).
"""

from __future__ import annotations

import hmac
from typing import Any

from cryptography.hazmat.primitives import hashes

from pqc._checks import bad_ciphertext, bad_public_key, bad_secret_key
from pqc._errors import InvalidCiphertext, InvalidKey
from pqc._groups import P256, P384, X448, X25519, Group, Montgomery
from pqc._interface import (
    SK_BIG_ENDIAN_SCALAR,
    SK_RAW_SCALAR,
    Encapsulation,
    Kem,
    KemInfo,
    KemPrivateKey,
)

_HPKE_VERSION = b"HPKE-v1"


class DhKem(Kem):
    """One DHKEM instance: a group, a KEM id and an HKDF hash."""

    def __init__(
        self,
        name: str,
        group: Group,
        kem_id: int,
        hash_algorithm: hashes.HashAlgorithm,
        *,
        shared_secret_size: int,
        provider: str,
    ) -> None:
        self._group = group
        self._hash = hash_algorithm
        self._hash_name = hash_algorithm.name  # "sha256": the hashlib spelling
        self._zero_salt = b"\x00" * hash_algorithm.digest_size
        self._suite_id = b"KEM" + kem_id.to_bytes(2, "big")
        # The fixed parts of the two labeled calls of every Encap/Decap, formatted once:
        # LabeledExtract's "HPKE-v1" || suite_id || "eae_prk" and LabeledExpand's
        # I2OSP(Nsecret, 2) || "HPKE-v1" || suite_id || "shared_secret". Nsecret equals the
        # hash length for every DHKEM here, so the expand is a single HMAC block.
        self._eae_prk_prefix = _HPKE_VERSION + self._suite_id + b"eae_prk"
        self._shared_secret_info = (
            shared_secret_size.to_bytes(2, "big")
            + _HPKE_VERSION
            + self._suite_id
            + b"shared_secret"
        )
        self._one_block = shared_secret_size <= hash_algorithm.digest_size
        self.kem_id = kem_id
        self.info = KemInfo(
            name=name,
            provider=provider,
            family="DHKEM",
            nist_level=None,
            public_key_size=group.element_size,
            secret_key_size=group.scalar_size,
            ciphertext_size=group.element_size,
            shared_secret_size=shared_secret_size,
            standard="RFC 9180",
            secret_key_format=SK_RAW_SCALAR if group.order is None else SK_BIG_ENDIAN_SCALAR,
            seed_size=group.scalar_size,
        )

    # -- RFC 9180 section 4 helpers ---------------------------------------------------------

    def _extract(self, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        message = _HPKE_VERSION + self._suite_id + label + ikm
        return hmac.digest(salt or self._zero_salt, message, self._hash_name)

    def _expand(self, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        # HKDF-Expand (RFC 5869 2.3): T(i) = HMAC(prk, T(i-1) || info || i).
        labeled_info = length.to_bytes(2, "big") + _HPKE_VERSION + self._suite_id + label + info
        block = hmac.digest(prk, labeled_info + b"\x01", self._hash_name)
        out = block
        counter = 2
        while len(out) < length:
            block = hmac.digest(prk, block + labeled_info + bytes([counter]), self._hash_name)
            out += block
            counter += 1
        return out[:length]

    def _shared_secret(self, dh: bytes, kem_context: bytes) -> bytes:
        # ExtractAndExpand (RFC 9180 4.1): the same LabeledExtract and LabeledExpand as the
        # helpers above, with their labels formatted once (a hot path: every Encap and Decap).
        name = self._hash_name
        eae_prk = hmac.digest(self._zero_salt, self._eae_prk_prefix + dh, name)
        if self._one_block:
            size = self.info.shared_secret_size
            return hmac.digest(eae_prk, self._shared_secret_info + kem_context + b"\x01", name)[
                :size
            ]
        return self._expand(eae_prk, b"shared_secret", kem_context, self.info.shared_secret_size)

    def derive_keypair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """DeriveKeyPair(ikm) of RFC 9180 section 7.1.3; returns (public_key, secret_key)."""
        group = self._group
        dkp_prk = self._extract(b"", b"dkp_prk", ikm)
        if isinstance(group, Montgomery):
            # Returned unclamped, as RFC 9180's own vectors list it; X25519/X448 clamp on use,
            # so the clamped and unclamped encodings are the same key.
            secret = self._expand(dkp_prk, b"sk", b"", group.scalar_size)
            return group.public_key(secret), secret
        order = group.order
        assert order is not None  # only the Montgomery curves have none
        for counter in range(256):
            candidate = self._expand(
                dkp_prk, b"candidate", counter.to_bytes(1, "big"), group.scalar_size
            )
            # The bitmask is 0xFF for P-256 and P-384, so the first byte is kept whole.
            if 0 < int.from_bytes(candidate, "big") < order:
                return group.public_key(candidate), candidate
        # Unreachable in practice: 256 candidates all failing has probability < 2^-8000.
        raise InvalidKey(f"{self.info.name}: DeriveKeyPair found no valid scalar")

    # -- the Kem interface ------------------------------------------------------------------

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        if seed is None:
            secret, public = self._group.generate()
            return public, secret
        if len(seed) < self._group.scalar_size:
            raise InvalidKey(
                f"{self.info.name} ({self.info.provider}): seed (DeriveKeyPair ikm) must be at "
                f"least {self._group.scalar_size} bytes, got {len(seed)}"
            )
        return self.derive_keypair(seed)

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        return self._encapsulate_derand(public_key, None)

    def _encapsulate_derand(self, public_key: bytes, ikm_e: bytes | None) -> Encapsulation:
        """Encap with a fresh ephemeral key, or the one from DeriveKeyPair(ikm_e) (RFC 9180
        test vectors)."""
        info = self.info
        if len(public_key) != info.public_key_size:
            raise bad_public_key(info.name, info.provider, info.public_key_size, public_key)
        ephemeral = None if ikm_e is None else self._load(self.derive_keypair(ikm_e)[1])
        try:
            enc, dh = self._group.ephemeral_exchange(public_key, ephemeral)
        except InvalidKey as exc:
            raise InvalidKey(f"{info.name} ({info.provider}): {exc}") from exc
        return Encapsulation(enc, self._shared_secret(dh, enc + public_key))

    def _load(self, secret_key: bytes) -> Any:
        info = self.info
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, info.provider, info.secret_key_size, secret_key)
        try:
            return self._group.load_private(secret_key)
        except InvalidKey as exc:
            raise InvalidKey(f"{info.name} ({info.provider}): {exc}") from exc

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        return self.load_private_key(secret_key).decapsulate(ciphertext)

    def generate_private_key(self, seed: bytes | None = None) -> KemPrivateKey:
        if seed is None:
            return DhKemPrivateKey(self, self._group.generate_private())
        return self.load_private_key(self.generate_keypair(seed)[1])

    def load_private_key(self, secret_key: bytes) -> KemPrivateKey:
        return DhKemPrivateKey(self, self._load(secret_key))


class DhKemPrivateKey(KemPrivateKey):
    """A DHKEM private key: the parsed scalar and its encoded public key, computed once."""

    __slots__ = ("_kem", "_private", "_public")

    def __init__(self, kem: DhKem, private: Any) -> None:
        self.info = kem.info
        self._kem = kem
        self._private = private
        self._public = kem._group.encode_public(private)

    @property
    def public_key(self) -> bytes:
        return self._public

    def secret_bytes(self) -> bytes:
        return self._kem._group.encode_private(self._private)

    def decapsulate(self, ciphertext: bytes) -> bytes:
        kem = self._kem
        info = kem.info
        if len(ciphertext) != info.ciphertext_size:
            raise bad_ciphertext(info.name, info.provider, info.ciphertext_size, ciphertext)
        try:
            dh = kem._group.exchange_private(self._private, ciphertext)
        except InvalidKey as exc:
            raise InvalidCiphertext(
                f"{info.name} ({info.provider}): ciphertext is not a valid "
                f"{kem._group.name} public key ({exc})"
            ) from exc
        return kem._shared_secret(dh, ciphertext + self._public)


def dhkems(provider: str) -> dict[str, DhKem]:
    """The four DHKEMs of RFC 9180 that the design names, keyed by their standard name."""
    table = (
        ("DHKEM(P-256, HKDF-SHA256)", P256, 0x0010, hashes.SHA256(), 32),
        ("DHKEM(P-384, HKDF-SHA384)", P384, 0x0011, hashes.SHA384(), 48),
        ("DHKEM(X25519, HKDF-SHA256)", X25519, 0x0020, hashes.SHA256(), 32),
        ("DHKEM(X448, HKDF-SHA512)", X448, 0x0021, hashes.SHA512(), 64),
    )
    return {
        name: DhKem(name, group, kem_id, hash_algorithm, shared_secret_size=size, provider=provider)
        for name, group, kem_id, hash_algorithm, size in table
    }
