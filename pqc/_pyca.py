"""The ``cryptography`` provider: pyca/cryptography (OpenSSL) behind ``Kem``/``SignatureScheme``.

Offers ML-KEM-768/1024 (FIPS 203; secret key = 64-byte seed d || z), the RFC 9180 DHKEMs
over X25519, X448, P-256 and P-384, ML-DSA-44/65/87 (FIPS 204; secret key = 32-byte seed
xi), Ed25519 and Ed448.

pyca performs the FIPS 203 modulus check itself when it parses an encapsulation key (a
key with a coefficient >= q is rejected by ``from_public_bytes``; a test pins this), so the
hot path adds nothing to it: a foreign ``ValueError`` is translated only on the error path.

The prepared key objects hold pyca's own key objects, so an ML-KEM seed is expanded and an
ML-DSA seed is expanded once per key, not at every decapsulation or signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cryptography
from cryptography import exceptions as pyca_exceptions
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, mldsa, mlkem

from pqc._checks import (
    MLKEM_CIPHERTEXT_SIZE,
    MLKEM_LEVEL,
    bad_ciphertext,
    bad_public_key,
    bad_seed,
    mlkem_public_key_size,
)
from pqc._dhkem import dhkems
from pqc._errors import InvalidKey, InvalidSignature, UnsupportedAlgorithm
from pqc._interface import (
    SK_FIPS203_SEED,
    SK_FIPS204_SEED,
    SK_RAW_SCALAR,
    Encapsulation,
    Kem,
    KemInfo,
    KemPrivateKey,
    Provider,
    ProviderStatus,
    SignatureInfo,
    SignaturePrivateKey,
    SignaturePublicKey,
    SignatureScheme,
)

NAME = "cryptography"


class _MlKem(Kem):
    """ML-KEM through pyca; the secret key is the 64-byte seed d || z."""

    __slots__ = ("_from_public", "_from_seed", "_generate")

    def __init__(self, name: str, private_cls: Any, public_cls: Any) -> None:
        self._from_seed: Callable[[bytes], Any] = private_cls.from_seed_bytes
        self._from_public: Callable[[bytes], Any] = public_cls.from_public_bytes
        self._generate: Callable[[], Any] = private_cls.generate
        self.info = KemInfo(
            name=name,
            provider=NAME,
            family="ML-KEM",
            nist_level=MLKEM_LEVEL[name],
            public_key_size=mlkem_public_key_size(name),
            secret_key_size=64,
            ciphertext_size=MLKEM_CIPHERTEXT_SIZE[name],
            shared_secret_size=32,
            standard="FIPS 203",
            secret_key_format=SK_FIPS203_SEED,
            seed_size=64,
        )

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        if seed is None:
            key = self._generate()
        else:
            try:
                key = self._from_seed(seed)
            except (ValueError, TypeError) as exc:
                raise bad_seed(self.info.name, NAME, 64, seed) from exc
        return key.public_key().public_bytes_raw(), key.private_bytes_raw()

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        # The hot path: parse (pyca runs the FIPS 203 length and modulus checks) and
        # encapsulate. pyca returns (shared_secret, ciphertext); Encapsulation fixes the order.
        try:
            shared_secret, ciphertext = self._from_public(public_key).encapsulate()
        except (ValueError, TypeError) as exc:
            info = self.info
            raise bad_public_key(info.name, NAME, info.public_key_size, public_key) from exc
        return Encapsulation(ciphertext, shared_secret)

    def _load(self, secret_key: bytes) -> Any:
        try:
            return self._from_seed(secret_key)
        except (ValueError, TypeError) as exc:
            size = len(secret_key) if isinstance(secret_key, bytes) else 0
            raise InvalidKey(
                f"{self.info.name} ({NAME}): secret key must be the 64-byte seed d || z, "
                f"got {size} bytes"
            ) from exc

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        return _mlkem_decapsulate(self.info, self._load(secret_key), ciphertext)

    def generate_private_key(self, seed: bytes | None = None) -> KemPrivateKey:
        if seed is None:
            return _MlKemPrivateKey(self.info, self._generate())
        try:
            key = self._from_seed(seed)
        except (ValueError, TypeError) as exc:
            raise bad_seed(self.info.name, NAME, 64, seed) from exc
        return _MlKemPrivateKey(self.info, key)

    def load_private_key(self, secret_key: bytes) -> KemPrivateKey:
        return _MlKemPrivateKey(self.info, self._load(secret_key))


def _mlkem_decapsulate(info: KemInfo, key: Any, ciphertext: bytes) -> bytes:
    try:
        shared_secret: bytes = key.decapsulate(ciphertext)
    except (ValueError, TypeError) as exc:
        raise bad_ciphertext(info.name, NAME, info.ciphertext_size, ciphertext) from exc
    return shared_secret


class _MlKemPrivateKey(KemPrivateKey):
    """An ML-KEM key expanded once from its seed (pyca's key object)."""

    __slots__ = ("_key", "_public")

    def __init__(self, info: KemInfo, key: Any) -> None:
        self.info = info
        self._key = key
        self._public: bytes = key.public_key().public_bytes_raw()

    @property
    def public_key(self) -> bytes:
        return self._public

    def secret_bytes(self) -> bytes:
        seed: bytes = self._key.private_bytes_raw()
        return seed

    def decapsulate(self, ciphertext: bytes) -> bytes:
        return _mlkem_decapsulate(self.info, self._key, ciphertext)


class _PycaSigningKey(SignaturePrivateKey):
    """A pyca signing key object, loaded once."""

    __slots__ = ("_key", "_takes_context")

    def __init__(self, info: SignatureInfo, key: Any) -> None:
        self.info = info
        self._key = key
        self._takes_context = info.supports_context

    def sign(self, message: bytes, context: bytes = b"") -> bytes:
        if context:
            _check_context(self.info, context)
        signature: bytes = (
            self._key.sign(message, context) if self._takes_context else self._key.sign(message)
        )
        return signature


class _PycaVerifyingKey(SignaturePublicKey):
    """A pyca public key object, parsed once."""

    __slots__ = ("_key", "_takes_context")

    def __init__(self, info: SignatureInfo, key: Any, public_key: bytes) -> None:
        self.info = info
        self._key = key
        self._takes_context = info.supports_context
        self.public_bytes = public_key

    def verify(self, message: bytes, signature: bytes, context: bytes = b"") -> None:
        if context:
            _check_context(self.info, context)
        try:
            if self._takes_context:
                self._key.verify(signature, message, context)
            else:
                self._key.verify(signature, message)
        except (pyca_exceptions.InvalidSignature, ValueError, TypeError) as exc:
            raise InvalidSignature(f"{self.info.name} ({NAME}): signature did not verify") from exc


def _load_public(info: SignatureInfo, public_cls: Any, public_key: bytes) -> SignaturePublicKey:
    try:
        key = public_cls.from_public_bytes(public_key)
    except (ValueError, TypeError) as exc:
        raise bad_public_key(info.name, NAME, info.public_key_size, public_key) from exc
    return _PycaVerifyingKey(info, key, public_key)


class _PycaScheme(SignatureScheme):
    """What ML-DSA and EdDSA share: the bytes API runs through the prepared key objects."""

    _private_cls: Any
    _public_cls: Any

    def _private(self, secret_key: bytes) -> Any:
        raise NotImplementedError

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        key = self._private_cls.generate() if seed is None else self._private(seed)
        return key.public_key().public_bytes_raw(), key.private_bytes_raw()

    def sign(self, secret_key: bytes, message: bytes, context: bytes = b"") -> bytes:
        return self.load_private_key(secret_key).sign(message, context)

    def verify(
        self, public_key: bytes, message: bytes, signature: bytes, context: bytes = b""
    ) -> None:
        self.load_public_key(public_key).verify(message, signature, context)

    def load_private_key(self, secret_key: bytes) -> SignaturePrivateKey:
        return _PycaSigningKey(self.info, self._private(secret_key))

    def load_public_key(self, public_key: bytes) -> SignaturePublicKey:
        return _load_public(self.info, self._public_cls, public_key)


class _MlDsa(_PycaScheme):
    """ML-DSA through pyca; the secret key is the 32-byte seed xi."""

    def __init__(
        self, name: str, level: int, sizes: tuple[int, int], private_cls: Any, public_cls: Any
    ) -> None:
        self._private_cls = private_cls
        self._public_cls = public_cls
        self.info = SignatureInfo(
            name=name,
            provider=NAME,
            family="ML-DSA",
            nist_level=level,
            public_key_size=sizes[0],
            secret_key_size=32,
            signature_size=sizes[1],
            standard="FIPS 204",
            secret_key_format=SK_FIPS204_SEED,
            seed_size=32,
            supports_context=True,
        )

    def _private(self, secret_key: bytes) -> Any:
        try:
            return self._private_cls.from_seed_bytes(secret_key)
        except (ValueError, TypeError) as exc:
            raise InvalidKey(
                f"{self.info.name} ({NAME}): secret key must be the 32-byte seed xi, "
                f"got {len(secret_key)} bytes"
            ) from exc


class _EdDsa(_PycaScheme):
    """Ed25519 / Ed448 (RFC 8032, pure, empty context only: pyca has no context API)."""

    def __init__(self, name: str, size: int, sig_size: int, private_cls: Any, public_cls: Any):
        self._private_cls = private_cls
        self._public_cls = public_cls
        self.info = SignatureInfo(
            name=name,
            provider=NAME,
            family="EdDSA",
            nist_level=None,
            public_key_size=size,
            secret_key_size=size,
            signature_size=sig_size,
            standard="RFC 8032",
            secret_key_format=SK_RAW_SCALAR,
            seed_size=size,
            supports_context=False,
        )

    def _private(self, secret_key: bytes) -> Any:
        try:
            return self._private_cls.from_private_bytes(secret_key)
        except (ValueError, TypeError) as exc:
            raise InvalidKey(
                f"{self.info.name} ({NAME}): secret key must be {self.info.secret_key_size} "
                f"bytes, got {len(secret_key)}"
            ) from exc


def _check_context(info: SignatureInfo, context: bytes) -> None:
    if context and not info.supports_context:
        raise UnsupportedAlgorithm(
            f"{info.name} ({info.provider}) takes no context string; pass context=b''"
        )
    if len(context) > 255:
        raise InvalidSignature(
            f"{info.name} ({info.provider}): context must be at most 255 bytes, got {len(context)}"
        )


class CryptographyProvider(Provider):
    """pyca/cryptography: always installed (it is a core dependency)."""

    name = NAME

    def __init__(self) -> None:
        kems: dict[str, Kem] = {
            "ML-KEM-768": _MlKem("ML-KEM-768", mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey),
            "ML-KEM-1024": _MlKem(
                "ML-KEM-1024", mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey
            ),
        }
        kems.update(dhkems(NAME))
        self._kems = kems
        self._signatures: dict[str, SignatureScheme] = {
            "ML-DSA-44": _MlDsa(
                "ML-DSA-44", 2, (1312, 2420), mldsa.MLDSA44PrivateKey, mldsa.MLDSA44PublicKey
            ),
            "ML-DSA-65": _MlDsa(
                "ML-DSA-65", 3, (1952, 3309), mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey
            ),
            "ML-DSA-87": _MlDsa(
                "ML-DSA-87", 5, (2592, 4627), mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey
            ),
            "Ed25519": _EdDsa(
                "Ed25519", 32, 64, ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey
            ),
            "Ed448": _EdDsa("Ed448", 57, 114, ed448.Ed448PrivateKey, ed448.Ed448PublicKey),
        }

    def status(self) -> ProviderStatus:
        return ProviderStatus(
            name=NAME, available=True, reason="installed", version=cryptography.__version__
        )

    def kem_names(self) -> tuple[str, ...]:
        return tuple(self._kems)

    def signature_names(self) -> tuple[str, ...]:
        return tuple(self._signatures)

    def kem(self, name: str) -> Kem:
        try:
            return self._kems[name]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"provider {NAME!r} has no KEM {name!r}; it offers {', '.join(self._kems)}"
            ) from None

    def signature(self, name: str) -> SignatureScheme:
        try:
            return self._signatures[name]
        except KeyError:
            raise UnsupportedAlgorithm(
                f"provider {NAME!r} has no signature scheme {name!r}; "
                f"it offers {', '.join(self._signatures)}"
            ) from None
