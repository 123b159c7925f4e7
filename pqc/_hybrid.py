"""Hybrid KEMs built from an ML-KEM of any provider and a pyca/cryptography curve.

Two constructions:

* The CG combiner of draft-irtf-cfrg-hybrid-kems as instantiated by
  draft-irtf-cfrg-concrete-hybrid-kems and, for X25519, draft-connolly-cfrg-xwing-kem-10:
  ``MLKEM768-X25519`` (alias ``X-Wing``), ``MLKEM768-P256``, ``MLKEM1024-P384``. The secret
  key is a 32-byte seed; ``SHAKE256(seed, 64 + Nseed_T)`` gives the ML-KEM seed d || z and
  the curve seed (RandomScalar: identity for X25519, rejection sampling for the NIST
  curves). The shared secret is ``SHA3-256(ss_M || ss_T || ct_T || pk_T || label)`` with
  the label last; public keys and ciphertexts are ``ML-KEM part || curve part``.
* The TLS concatenation hybrids of draft-ietf-tls-ecdhe-mlkem: ``X25519MLKEM768`` (0x11EC,
  ML-KEM first), ``SecP256r1MLKEM768`` (0x11EB) and ``SecP384r1MLKEM1024`` (0x11ED) with
  ECDH first. The ECDH part is plain ECDH (raw X25519, uncompressed NIST points, secret =
  x-coordinate); key shares, ciphertexts and shared secrets are concatenations in that order.
  TLS defines no secret-key encoding; here it is the component secret keys concatenated in
  the same order (ML-KEM in its provider's format, the curve scalar raw or big-endian).

Both offer prepared private keys (:class:`HybridPrivateKey`): the ML-KEM component's own key
object and the parsed curve scalar, with the curve public key computed once.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from pqc._checks import bad_ciphertext, bad_public_key, bad_secret_key
from pqc._errors import InvalidCiphertext, InvalidKey, PQCError, UnsupportedAlgorithm
from pqc._groups import P256, P384, X25519, Group
from pqc._interface import (
    SK_CONCATENATION,
    SK_FIPS203_SEED,
    SK_HYBRID_SEED,
    Encapsulation,
    Kem,
    KemInfo,
    KemPrivateKey,
)

XWING_LABEL = b"\\.//^\\"  # the six ASCII bytes 5C 2E 2F 2F 5E 5C

# name -> (ML-KEM component, curve, label, standard)
COMBINED: dict[str, tuple[str, Group, bytes, str]] = {
    "MLKEM768-X25519": ("ML-KEM-768", X25519, XWING_LABEL, "draft-connolly-cfrg-xwing-kem-10"),
    "MLKEM768-P256": ("ML-KEM-768", P256, b"MLKEM768-P256", "draft-irtf-cfrg-concrete-hybrid-kems"),
    "MLKEM1024-P384": (
        "ML-KEM-1024",
        P384,
        b"MLKEM1024-P384",
        "draft-irtf-cfrg-concrete-hybrid-kems",
    ),
}

# name -> (ML-KEM component, curve, ML-KEM first?, TLS NamedGroup codepoint)
CONCATENATED: dict[str, tuple[str, Group, bool, int]] = {
    "X25519MLKEM768": ("ML-KEM-768", X25519, True, 0x11EC),
    "SecP256r1MLKEM768": ("ML-KEM-768", P256, False, 0x11EB),
    "SecP384r1MLKEM1024": ("ML-KEM-1024", P384, False, 0x11ED),
}

ALIASES = {"X-Wing": "MLKEM768-X25519"}

HYBRID_NAMES = (*COMBINED, *CONCATENATED)


def _mlkem_decapsulate_with_seed(mlkem: Kem, seed: bytes, ciphertext: bytes) -> bytes:
    """Decapsulate with a key given as its 64-byte FIPS 203 seed, whatever the provider."""
    if mlkem.info.secret_key_format == SK_FIPS203_SEED:
        return mlkem.decapsulate(seed, ciphertext)
    _, expanded = mlkem.generate_keypair(seed)
    return mlkem.decapsulate(expanded, ciphertext)


def _relabel(name: str, exc: PQCError) -> PQCError:
    return type(exc)(f"{name}: {exc}")


class CombinedKem(Kem):
    """The CG hybrid (X-Wing and the concrete hybrid KEMs)."""

    SEED_SIZE = 32

    def __init__(self, name: str, mlkem: Kem) -> None:
        component, group, label, standard = COMBINED[name]
        if mlkem.info.name != component:
            raise UnsupportedAlgorithm(f"{name} needs {component}, got {mlkem.info.name}")
        if mlkem.info.seed_size != 64:
            raise UnsupportedAlgorithm(
                f"{name} needs {component} key generation from a 64-byte seed, which provider "
                f"{mlkem.info.provider!r} cannot do here; use provider='cryptography', or "
                "install liboqs (which expands ML-KEM seeds, for pqcrypto too)"
            )
        self._mlkem = mlkem
        self._group = group
        self._label = label
        self._pq_pk = mlkem.info.public_key_size
        self._pq_ct = mlkem.info.ciphertext_size
        self.info = KemInfo(
            name=name,
            provider=mlkem.info.provider,
            family="hybrid",
            nist_level=mlkem.info.nist_level,
            public_key_size=self._pq_pk + group.element_size,
            secret_key_size=self.SEED_SIZE,
            ciphertext_size=self._pq_ct + group.element_size,
            shared_secret_size=32,
            standard=standard,
            secret_key_format=SK_HYBRID_SEED,
            seed_size=self.SEED_SIZE,
        )

    def _expand(self, secret_key: bytes) -> tuple[bytes, bytes]:
        """Return (ML-KEM seed d || z, curve scalar) for a 32-byte hybrid secret key."""
        if len(secret_key) != self.SEED_SIZE:
            raise InvalidKey(
                f"{self.info.name} ({self.info.provider}): secret key (seed) must be "
                f"{self.SEED_SIZE} bytes, got {len(secret_key)}"
            )
        expanded = hashlib.shake_256(secret_key).digest(64 + self._group.seed_size)
        return expanded[:64], self._group.random_scalar(expanded[64:])

    def _combine(self, ss_m: bytes, ss_t: bytes, ct_t: bytes, pk_t: bytes) -> bytes:
        return hashlib.sha3_256(ss_m + ss_t + ct_t + pk_t + self._label).digest()

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        secret_key = os.urandom(self.SEED_SIZE) if seed is None else seed
        pq_seed, scalar = self._expand(secret_key)
        pk_m, _ = self._mlkem.generate_keypair(pq_seed)
        return pk_m + self._group.public_key(scalar), secret_key

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        info = self.info
        if len(public_key) != info.public_key_size:
            raise bad_public_key(info.name, info.provider, info.public_key_size, public_key)
        pk_m, pk_t = public_key[: self._pq_pk], public_key[self._pq_pk :]
        try:
            inner = self._mlkem.encapsulate(pk_m)
            ct_t, ss_t = self._group.ephemeral_exchange(pk_t)
        except PQCError as exc:
            raise _relabel(info.name, exc) from exc
        ss = self._combine(inner.shared_secret, ss_t, ct_t, pk_t)
        return Encapsulation(inner.ciphertext + ct_t, ss)

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        ct_m, ct_t = self._split_ciphertext(ciphertext)
        pq_seed, scalar = self._expand(secret_key)
        try:
            ss_m = _mlkem_decapsulate_with_seed(self._mlkem, pq_seed, ct_m)
            t_key = self._group.load_private(scalar)
            pk_t = self._group.encode_public(t_key)
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        ss_t = self._exchange(t_key, ct_t)
        return self._combine(ss_m, ss_t, ct_t, pk_t)

    def generate_private_key(self, seed: bytes | None = None) -> KemPrivateKey:
        return self.load_private_key(os.urandom(self.SEED_SIZE) if seed is None else seed)

    def load_private_key(self, secret_key: bytes) -> KemPrivateKey:
        pq_seed, scalar = self._expand(secret_key)
        try:
            m_key = self._mlkem.generate_private_key(pq_seed)
            t_key = self._group.load_private(scalar)
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        return HybridPrivateKey(self, m_key, t_key, secret_key)

    def _decapsulate_prepared(self, key: HybridPrivateKey, ciphertext: bytes) -> bytes:
        ct_m, ct_t = self._split_ciphertext(ciphertext)
        try:
            ss_m = key.mlkem_key.decapsulate(ct_m)
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        ss_t = self._exchange(key.curve_key, ct_t)
        return self._combine(ss_m, ss_t, ct_t, key.curve_public)

    def _split_ciphertext(self, ciphertext: bytes) -> tuple[bytes, bytes]:
        """Return (ML-KEM part, curve part) after checking the total length."""
        info = self.info
        if len(ciphertext) != info.ciphertext_size:
            raise bad_ciphertext(info.name, info.provider, info.ciphertext_size, ciphertext)
        return ciphertext[: self._pq_ct], ciphertext[self._pq_ct :]

    def _exchange(self, curve_key: Any, ct_t: bytes) -> bytes:
        """The curve shared secret; a bad curve part is the ciphertext's fault."""
        try:
            return self._group.exchange_private(curve_key, ct_t)
        except InvalidKey as exc:
            raise InvalidCiphertext(
                f"{self.info.name} ({self.info.provider}): the {self._group.name} part of the "
                f"ciphertext is not a valid element ({exc})"
            ) from exc

    def _join_keys(self, m_key: KemPrivateKey, curve_public: bytes) -> bytes:
        return m_key.public_key + curve_public


class HybridPrivateKey(KemPrivateKey):
    """A hybrid private key: the ML-KEM key object and the parsed curve scalar."""

    __slots__ = ("_kem", "_public", "_secret", "curve_key", "curve_public", "mlkem_key")

    def __init__(
        self,
        kem: CombinedKem | ConcatenatedKem,
        mlkem_key: KemPrivateKey,
        curve_key: Any,
        secret_key: bytes | None,
    ) -> None:
        self.info = kem.info
        self._kem = kem
        self.mlkem_key = mlkem_key
        self.curve_key = curve_key
        self.curve_public = kem._group.encode_public(curve_key)
        self._secret = secret_key
        self._public = kem._join_keys(mlkem_key, self.curve_public)

    @property
    def public_key(self) -> bytes:
        return self._public

    def secret_bytes(self) -> bytes:
        if self._secret is not None:
            return self._secret
        kem = self._kem
        assert isinstance(kem, ConcatenatedKem)
        return kem._join(self.mlkem_key.secret_bytes(), kem._group.encode_private(self.curve_key))

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return self._kem._decapsulate_prepared(self, ciphertext)


class ConcatenatedKem(Kem):
    """A TLS ``ecdhe-mlkem`` hybrid: every part concatenated in key-share order."""

    def __init__(self, name: str, mlkem: Kem) -> None:
        component, group, mlkem_first, codepoint = CONCATENATED[name]
        if mlkem.info.name != component:
            raise UnsupportedAlgorithm(f"{name} needs {component}, got {mlkem.info.name}")
        self._mlkem = mlkem
        self._group = group
        self._mlkem_first = mlkem_first
        self.codepoint = codepoint
        m = mlkem.info
        self._sizes = {
            # (ML-KEM part, ECDH part) per field, ordered below as the key share orders them.
            "pk": (m.public_key_size, group.element_size),
            "sk": (m.secret_key_size, group.scalar_size),
            "ct": (m.ciphertext_size, group.element_size),
        }
        seeded = m.seed_size is not None
        self.info = KemInfo(
            name=name,
            provider=m.provider,
            family="hybrid",
            nist_level=m.nist_level,
            public_key_size=m.public_key_size + group.element_size,
            secret_key_size=m.secret_key_size + group.scalar_size,
            ciphertext_size=m.ciphertext_size + group.element_size,
            shared_secret_size=m.shared_secret_size + group.shared_size,
            standard=f"draft-ietf-tls-ecdhe-mlkem (TLS group 0x{codepoint:04X})",
            secret_key_format=SK_CONCATENATION,
            seed_size=(m.seed_size + group.scalar_size) if seeded and m.seed_size else None,
        )

    def _join(self, mlkem_part: bytes, ecdh_part: bytes) -> bytes:
        return mlkem_part + ecdh_part if self._mlkem_first else ecdh_part + mlkem_part

    def _split(self, field: str, data: bytes) -> tuple[bytes, bytes]:
        """Return (ML-KEM part, ECDH part) after checking the total length."""
        m_size, t_size = self._sizes[field]
        if len(data) != m_size + t_size:
            bad = _BAD_SIZE[field]
            raise bad(self.info.name, self.info.provider, m_size + t_size, data)
        if self._mlkem_first:
            return data[:m_size], data[m_size:]
        return data[t_size:], data[:t_size]

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        info = self.info
        try:
            if seed is None:
                pk_m, sk_m = self._mlkem.generate_keypair()
                scalar, pk_t = self._group.generate()
            else:
                if info.seed_size is None:
                    raise UnsupportedAlgorithm(
                        f"{info.name} ({info.provider}) cannot take a seed: the ML-KEM "
                        "component has no seeded key generation"
                    )
                if len(seed) != info.seed_size:
                    raise InvalidKey(
                        f"{info.name} ({info.provider}): seed must be {info.seed_size} bytes "
                        "(the component seeds concatenated in key-share order), "
                        f"got {len(seed)}"
                    )
                m_seed_size = info.seed_size - self._group.scalar_size
                if self._mlkem_first:
                    m_seed, scalar = seed[:m_seed_size], seed[m_seed_size:]
                else:
                    t_size = self._group.scalar_size
                    scalar, m_seed = seed[:t_size], seed[t_size:]
                pk_m, sk_m = self._mlkem.generate_keypair(m_seed)
                pk_t = self._group.public_key(scalar)
        except (InvalidKey, InvalidCiphertext) as exc:
            raise _relabel(info.name, exc) from exc
        return self._join(pk_m, pk_t), self._join(sk_m, scalar)

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        pk_m, pk_t = self._split("pk", public_key)
        try:
            inner = self._mlkem.encapsulate(pk_m)
            ct_t, ss_t = self._group.ephemeral_exchange(pk_t)
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        return Encapsulation(
            self._join(inner.ciphertext, ct_t), self._join(inner.shared_secret, ss_t)
        )

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        sk_m, scalar = self._split("sk", secret_key)
        ct_m, ct_t = self._split("ct", ciphertext)
        try:
            ss_m = self._mlkem.decapsulate(sk_m, ct_m)
            t_key = self._group.load_private(scalar)  # validates the scalar (NIST: range)
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        return self._join(ss_m, self._exchange(t_key, ct_t))

    def generate_private_key(self, seed: bytes | None = None) -> KemPrivateKey:
        if seed is not None:
            return self.load_private_key(self.generate_keypair(seed)[1])
        try:
            m_key = self._mlkem.generate_private_key()
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        return HybridPrivateKey(self, m_key, self._group.generate_private(), None)

    def load_private_key(self, secret_key: bytes) -> KemPrivateKey:
        sk_m, scalar = self._split("sk", secret_key)
        try:
            m_key = self._mlkem.load_private_key(sk_m)
            t_key = self._group.load_private(scalar)
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        return HybridPrivateKey(self, m_key, t_key, None)

    def _decapsulate_prepared(self, key: HybridPrivateKey, ciphertext: bytes) -> bytes:
        ct_m, ct_t = self._split("ct", ciphertext)
        try:
            ss_m = key.mlkem_key.decapsulate(ct_m)
        except PQCError as exc:
            raise _relabel(self.info.name, exc) from exc
        return self._join(ss_m, self._exchange(key.curve_key, ct_t))

    def _exchange(self, curve_key: Any, ct_t: bytes) -> bytes:
        """The ECDH shared secret; a bad key share is the ciphertext's fault."""
        try:
            return self._group.exchange_private(curve_key, ct_t)
        except InvalidKey as exc:
            raise InvalidCiphertext(
                f"{self.info.name} ({self.info.provider}): the {self._group.name} key share "
                f"in the ciphertext is invalid ({exc})"
            ) from exc

    def _join_keys(self, m_key: KemPrivateKey, curve_public: bytes) -> bytes:
        return self._join(m_key.public_key, curve_public)


# The size-error helper for each field ConcatenatedKem._split checks.
_BAD_SIZE = {"pk": bad_public_key, "sk": bad_secret_key, "ct": bad_ciphertext}


def build(name: str, mlkem: Kem) -> Kem:
    """Build hybrid ``name`` over the given ML-KEM component (raises UnsupportedAlgorithm)."""
    if name in COMBINED:
        return CombinedKem(name, mlkem)
    if name in CONCATENATED:
        return ConcatenatedKem(name, mlkem)
    raise UnsupportedAlgorithm(f"{name!r} is not a hybrid KEM; known: {', '.join(HYBRID_NAMES)}")


def component_of(name: str) -> str:
    """The ML-KEM parameter set hybrid ``name`` is built on."""
    return COMBINED[name][0] if name in COMBINED else CONCATENATED[name][0]
