"""The capability interfaces every provider implements: ``Kem`` and ``SignatureScheme``.

A provider adapts one library to these small interfaces; the registry (``pqc._registry``)
maps standard algorithm names to them. The bytes API (``generate_keypair``, ``encapsulate``,
``decapsulate``, ``sign``, ``verify``) takes and returns plain ``bytes``.

Beside it, pyca-style *prepared key objects* parse or expand a key once and then use it many
times: ``Kem.generate_private_key``/``load_private_key`` return a :class:`KemPrivateKey`,
``SignatureScheme.load_private_key``/``load_public_key`` a :class:`SignaturePrivateKey` or
:class:`SignaturePublicKey`. A provider that has nothing to prepare inherits wrappers over
its bytes API, which check sizes once at load. Private key objects never show key bytes in
their repr and refuse to be pickled or copied; ``secret_bytes()`` is the one way out.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from pqc._errors import InvalidKey, UnsupportedAlgorithm

# Secret-key formats. Public keys and ciphertexts always use the standard encoding; secret
# keys differ between libraries, so every ``info`` says which one its keys use.
SK_FIPS203_SEED = "fips203-seed"  # 64-byte seed d || z (FIPS 203 KeyGen_internal input)
SK_FIPS203_EXPANDED = "fips203-expanded"  # expanded decapsulation key dk (FIPS 203 7.1)
SK_FIPS204_SEED = "fips204-seed"  # 32-byte seed xi (FIPS 204 ML-DSA.KeyGen_internal)
SK_FIPS204_EXPANDED = "fips204-expanded"  # expanded ML-DSA secret key (FIPS 204 7.2)
SK_RAW_SCALAR = "raw-scalar"  # X25519 / X448 / Ed25519 / Ed448 private key bytes (RFC 7748/8032)
SK_BIG_ENDIAN_SCALAR = "big-endian-scalar"  # P-curve private scalar, Nsk bytes big-endian
SK_HYBRID_SEED = "hybrid-seed"  # 32-byte seed expanded with SHAKE256 (X-Wing, concrete hybrids)
SK_CONCATENATION = "concatenation"  # component secret keys concatenated in key-share order
SK_PROVIDER_NATIVE = "provider-native"  # the library's own encoding (no standard exists)


@dataclass(frozen=True, slots=True, kw_only=True)
class KemInfo:
    """What a KEM is and how big its inputs and outputs are."""

    name: str
    provider: str
    family: str
    nist_level: int | None  # None for classical (pre-quantum) algorithms
    public_key_size: int
    secret_key_size: int
    ciphertext_size: int
    shared_secret_size: int
    standard: str
    secret_key_format: str
    seed_size: int | None  # bytes of ``seed=`` for generate_keypair, None when unsupported
    kind: Literal["kem"] = "kem"


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureInfo:
    """What a signature scheme is and how big its keys and signatures are."""

    name: str
    provider: str
    family: str
    nist_level: int | None
    public_key_size: int
    secret_key_size: int
    signature_size: int  # the maximum; some schemes produce shorter signatures
    standard: str
    secret_key_format: str
    seed_size: int | None
    supports_context: bool
    kind: Literal["signature"] = "signature"


@dataclass(frozen=True, slots=True, eq=False)
class Encapsulation:
    """The result of ``Kem.encapsulate``: the ciphertext to send and the secret to keep.

    The repr shows only sizes; equality is constant-time.
    """

    ciphertext: bytes
    shared_secret: bytes = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"Encapsulation(ciphertext=<{len(self.ciphertext)} bytes>, "
            f"shared_secret=<{len(self.shared_secret)} bytes>)"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Encapsulation):
            return NotImplemented
        same_ct = hmac.compare_digest(self.ciphertext, other.ciphertext)
        return hmac.compare_digest(self.shared_secret, other.shared_secret) and same_ct

    def __hash__(self) -> int:
        return hash(self.ciphertext)


class _PrivateKeyObject:
    """What every private key object shares: no key bytes in repr, no pickling or copying."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled or copied: key material stays in memory "
            "(use secret_bytes() explicitly if the key must be stored)"
        )

    def __reduce__(self) -> NoReturn:
        self.__reduce_ex__(2)


class KemPrivateKey(_PrivateKeyObject, ABC):
    """A KEM private key, parsed or expanded once, that decapsulates many times.

    Example::

        kem = pqc.kem("ML-KEM-768")
        key = kem.generate_private_key()
        enc = kem.encapsulate(key.public_key)
        assert key.decapsulate(enc.ciphertext) == enc.shared_secret
    """

    __slots__ = ("info",)

    info: KemInfo

    @property
    @abstractmethod
    def public_key(self) -> bytes:
        """The encoded public (encapsulation) key."""

    @abstractmethod
    def secret_bytes(self) -> bytes:
        """The secret key in ``info.secret_key_format``, as ``Kem.decapsulate`` takes it."""

    @abstractmethod
    def decapsulate(self, ciphertext: bytes) -> bytes:
        """Return the shared secret in ``ciphertext`` (as ``Kem.decapsulate`` would)."""

    def __repr__(self) -> str:
        return f"<KemPrivateKey {self.info.name} provider={self.info.provider}>"


class _BytesKemPrivateKey(KemPrivateKey):
    """A private key over a provider's bytes API, for providers with nothing to prepare."""

    __slots__ = ("_kem", "_public", "_secret")

    def __init__(self, kem: Kem, public_key: bytes | None, secret_key: bytes) -> None:
        self.info = kem.info
        self._kem = kem
        self._public = public_key
        self._secret = secret_key

    @property
    def public_key(self) -> bytes:
        if self._public is None:
            raise UnsupportedAlgorithm(
                f"{self.info.name} ({self.info.provider}): the public key cannot be derived from "
                f"a {self.info.secret_key_format} secret key; keep it from key generation"
            )
        return self._public

    def secret_bytes(self) -> bytes:
        return self._secret

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return self._kem.decapsulate(self._secret, ciphertext)


class Kem(ABC):
    """A key encapsulation mechanism: key generation, encapsulation, decapsulation.

    Example::

        kem = pqc.kem("ML-KEM-768")
        pk, sk = kem.generate_keypair()
        enc = kem.encapsulate(pk)
        assert kem.decapsulate(sk, enc.ciphertext) == enc.shared_secret

    or, with a prepared key object (parsed once, used many times)::

        key = kem.generate_private_key()
        enc = kem.encapsulate(key.public_key)
        assert key.decapsulate(enc.ciphertext) == enc.shared_secret
    """

    __slots__ = ("info",)

    info: KemInfo

    @abstractmethod
    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        """Return ``(public_key, secret_key)``; deterministic when ``seed`` is given."""

    @abstractmethod
    def encapsulate(self, public_key: bytes) -> Encapsulation:
        """Encapsulate a fresh shared secret to ``public_key``."""

    @abstractmethod
    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        """Return the shared secret in ``ciphertext`` (implicit rejection where specified)."""

    def generate_private_key(self, seed: bytes | None = None) -> KemPrivateKey:
        """A fresh private key object (deterministic when ``seed`` is given, as
        ``generate_keypair``); its ``secret_bytes()`` is what ``generate_keypair`` returns."""
        public_key, secret_key = self.generate_keypair(seed)
        return _BytesKemPrivateKey(self, public_key, secret_key)

    def load_private_key(self, secret_key: bytes) -> KemPrivateKey:
        """A private key object from a secret key in ``info.secret_key_format``.

        Raises ``InvalidKey`` for a key of the wrong size or one the provider rejects.
        """
        info = self.info
        if not isinstance(secret_key, bytes) or len(secret_key) != info.secret_key_size:
            size = len(secret_key) if isinstance(secret_key, bytes) else type(secret_key).__name__
            raise InvalidKey(
                f"{info.name} ({info.provider}): secret key must be {info.secret_key_size} "
                f"bytes, got {size}"
            )
        return _BytesKemPrivateKey(self, self._public_key_of(secret_key), secret_key)

    def _public_key_of(self, secret_key: bytes) -> bytes | None:
        """The public key inside ``secret_key`` where its format holds one, else None."""
        if self.info.secret_key_format == SK_FIPS203_EXPANDED:
            # FIPS 203 7.1: dk = dk_PKE (384k bytes) || ek || H(ek) || z.
            start = self.info.secret_key_size - self.info.public_key_size - 64
            return secret_key[start : start + self.info.public_key_size]
        return None

    def __repr__(self) -> str:
        return f"<Kem {self.info.name} provider={self.info.provider}>"


class SignaturePrivateKey(_PrivateKeyObject, ABC):
    """A signing key, parsed or expanded once, that signs many times."""

    __slots__ = ("info",)

    info: SignatureInfo

    @abstractmethod
    def sign(self, message: bytes, context: bytes = b"") -> bytes:
        """Sign ``message`` (as ``SignatureScheme.sign`` would)."""

    def __repr__(self) -> str:
        return f"<SignaturePrivateKey {self.info.name} provider={self.info.provider}>"


class SignaturePublicKey(ABC):
    """A verification key, parsed once, that verifies many times."""

    __slots__ = ("info", "public_bytes")

    info: SignatureInfo
    public_bytes: bytes

    @abstractmethod
    def verify(self, message: bytes, signature: bytes, context: bytes = b"") -> None:
        """Return None when ``signature`` is valid; raise ``pqc.InvalidSignature`` if not."""

    def __repr__(self) -> str:
        return f"<SignaturePublicKey {self.info.name} provider={self.info.provider}>"


class _BytesSignaturePrivateKey(SignaturePrivateKey):
    __slots__ = ("_scheme", "_secret")

    def __init__(self, scheme: SignatureScheme, secret_key: bytes) -> None:
        self.info = scheme.info
        self._scheme = scheme
        self._secret = secret_key

    def sign(self, message: bytes, context: bytes = b"") -> bytes:
        return self._scheme.sign(self._secret, message, context)


class _BytesSignaturePublicKey(SignaturePublicKey):
    __slots__ = ("_scheme",)

    def __init__(self, scheme: SignatureScheme, public_key: bytes) -> None:
        self.info = scheme.info
        self._scheme = scheme
        self.public_bytes = public_key

    def verify(self, message: bytes, signature: bytes, context: bytes = b"") -> None:
        self._scheme.verify(self.public_bytes, message, signature, context)


def _check_key_size(info: SignatureInfo, key: object, expected: int, what: str) -> bytes:
    if not isinstance(key, bytes) or len(key) != expected:
        size = len(key) if isinstance(key, bytes) else type(key).__name__
        raise InvalidKey(
            f"{info.name} ({info.provider}): {what} must be {expected} bytes, got {size}"
        )
    return key


class SignatureScheme(ABC):
    """A signature scheme: key generation, signing, verification.

    ``verify`` returns None on success and raises ``pqc.InvalidSignature`` otherwise.

    Example::

        scheme = pqc.signature("ML-DSA-65")
        pk, sk = scheme.generate_keypair()
        sig = scheme.sign(sk, b"message")
        scheme.verify(pk, b"message", sig)

    or, with keys parsed once::

        signer = scheme.load_private_key(sk)
        scheme.load_public_key(pk).verify(b"message", signer.sign(b"message"))
    """

    __slots__ = ("info",)

    info: SignatureInfo

    @abstractmethod
    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        """Return ``(public_key, secret_key)``; deterministic when ``seed`` is given."""

    @abstractmethod
    def sign(self, secret_key: bytes, message: bytes, context: bytes = b"") -> bytes:
        """Sign ``message`` (FIPS 204/205 pure mode with ``context`` where supported)."""

    @abstractmethod
    def verify(
        self, public_key: bytes, message: bytes, signature: bytes, context: bytes = b""
    ) -> None:
        """Return None when ``signature`` is valid; raise ``pqc.InvalidSignature`` if not."""

    def load_private_key(self, secret_key: bytes) -> SignaturePrivateKey:
        """A signing key object from a secret key in ``info.secret_key_format``.

        Raises ``InvalidKey`` for a key of the wrong size or one the provider rejects.
        """
        _check_key_size(self.info, secret_key, self.info.secret_key_size, "secret key")
        return _BytesSignaturePrivateKey(self, secret_key)

    def load_public_key(self, public_key: bytes) -> SignaturePublicKey:
        """A verification key object; raises ``InvalidKey`` for a malformed key."""
        _check_key_size(self.info, public_key, self.info.public_key_size, "public key")
        return _BytesSignaturePublicKey(self, public_key)

    def __repr__(self) -> str:
        return f"<SignatureScheme {self.info.name} provider={self.info.provider}>"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderStatus:
    """Whether a provider can be used here, and why not."""

    name: str
    available: bool
    reason: str
    version: str | None


class Provider(ABC):
    """Adapts one library to ``Kem`` and ``SignatureScheme``.

    ``kem``/``signature`` raise ``UnsupportedAlgorithm`` (with the reason) for algorithms
    the provider does not have, or when the provider is unavailable.
    """

    name: str

    @abstractmethod
    def status(self) -> ProviderStatus:
        """Report availability without raising (and without importing what may crash)."""

    @abstractmethod
    def kem_names(self) -> tuple[str, ...]:
        """Standard names of the KEMs this provider offers (empty when unavailable)."""

    @abstractmethod
    def signature_names(self) -> tuple[str, ...]:
        """Standard names of the signature schemes this provider offers."""

    @abstractmethod
    def kem(self, name: str) -> Kem:
        """Return the KEM ``name`` (a standard name listed by ``kem_names``)."""

    @abstractmethod
    def signature(self, name: str) -> SignatureScheme:
        """Return the signature scheme ``name``."""

    def __repr__(self) -> str:
        return f"<Provider {self.name}>"
