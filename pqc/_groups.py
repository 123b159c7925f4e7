"""Elliptic-curve groups over pyca/cryptography, as the KEM constructions use them.

One small class per curve family: X25519/X448 (RFC 7748, raw little-endian scalars and
u-coordinates) and the NIST curves P-256/P-384 (SP 800-186, big-endian scalars, SEC 1
uncompressed points, shared secret = x-coordinate). DHKEM (RFC 9180), the concrete hybrid
KEMs and the TLS hybrids are all written against this interface.

Two levels: the bytes methods (``public_key``, ``exchange``, ``generate``) parse a scalar on
every call; the private-object methods (``generate_private``, ``load_private``,
``exchange_private``, ...) let a caller that uses a key more than once parse it once. Parsing
an X25519 scalar costs as much as an exchange (pyca computes the public key on load), so the
KEMs keep objects wherever a key is used twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519

from pqc._errors import InvalidKey, PQCError


class Group(ABC):
    """A Diffie-Hellman group with fixed-size byte encodings."""

    name: str
    scalar_size: int  # Nsk / Nscalar
    element_size: int  # Npk / Nelem
    shared_size: int  # bytes of the Diffie-Hellman output
    order: int | None  # the group order for the NIST curves; None for X25519/X448

    @abstractmethod
    def public_key(self, secret_key: bytes) -> bytes:
        """Return the encoded public element g^sk; raises InvalidKey for a bad scalar."""

    def exchange(self, secret_key: bytes, peer: bytes) -> bytes:
        """Return the Diffie-Hellman shared secret; raises InvalidKey for a bad peer element."""
        return self.exchange_private(self.load_private(secret_key), peer)

    def generate(self) -> tuple[bytes, bytes]:
        """Return a fresh ``(secret_key, public_key)``."""
        private = self.generate_private()
        return self.encode_private(private), self.encode_public(private)

    # -- private key objects (pyca objects, parsed once) --------------------------------------

    @abstractmethod
    def generate_private(self) -> Any:
        """A fresh private key object (uniform scalar from the OS CSPRNG)."""

    @abstractmethod
    def load_private(self, secret_key: bytes) -> Any:
        """Parse a secret key into a private key object; raises InvalidKey for a bad scalar."""

    @abstractmethod
    def encode_public(self, private: Any) -> bytes:
        """The encoded public element of a private key object."""

    @abstractmethod
    def encode_private(self, private: Any) -> bytes:
        """The encoded scalar of a private key object."""

    @abstractmethod
    def exchange_private(self, private: Any, peer: bytes) -> bytes:
        """Diffie-Hellman with a private key object; raises InvalidKey for a bad peer element."""

    def ephemeral_exchange(self, peer: bytes, ephemeral: Any = None) -> tuple[bytes, bytes]:
        """The group side of an encapsulation: ``ephemeral`` (a private key object, or a fresh
        one) as its encoded public element, and its Diffie-Hellman secret with ``peer``.
        Raises InvalidKey for a bad peer element."""
        if ephemeral is None:
            ephemeral = self.generate_private()
        return self.encode_public(ephemeral), self.exchange_private(ephemeral, peer)

    @property
    def seed_size(self) -> int:
        return self.scalar_size

    def random_scalar(self, seed: bytes) -> bytes:
        """Map uniformly random bytes to a scalar (identity for the Montgomery curves)."""
        return seed[: self.scalar_size]


class Montgomery(Group):
    order = None

    def __init__(self, name: str, size: int, private_cls: Any, public_cls: Any) -> None:
        self.name = name
        self.scalar_size = self.element_size = self.shared_size = size
        self._private = private_cls
        self._public = public_cls

    def public_key(self, secret_key: bytes) -> bytes:
        return self.encode_public(self.load_private(secret_key))

    def ephemeral_exchange(self, peer: bytes, ephemeral: Any = None) -> tuple[bytes, bytes]:
        # Group.ephemeral_exchange with generate_private and encode_public inlined: X25519 is
        # the classical half of most suites, and this runs in every handshake.
        if ephemeral is None:
            ephemeral = self._private.generate()
        public: bytes = ephemeral.public_key().public_bytes_raw()
        return public, self.exchange_private(ephemeral, peer)

    def generate_private(self) -> Any:
        return self._private.generate()

    def load_private(self, secret_key: bytes) -> Any:
        if len(secret_key) != self.scalar_size:
            raise InvalidKey(
                f"{self.name}: secret key must be {self.scalar_size} bytes, got {len(secret_key)}"
            )
        return self._private.from_private_bytes(secret_key)

    def encode_public(self, private: Any) -> bytes:
        raw: bytes = private.public_key().public_bytes_raw()
        return raw

    def encode_private(self, private: Any) -> bytes:
        raw: bytes = private.private_bytes_raw()
        return raw

    def clamp(self, secret_key: bytes) -> bytes:
        """RFC 7748 decodeScalar clamping (RFC 9180 7.1.2 serializes private keys clamped)."""
        scalar = bytearray(secret_key)
        if self.scalar_size == 32:
            scalar[0] &= 248
            scalar[31] = (scalar[31] & 127) | 64
        else:
            scalar[0] &= 252
            scalar[55] |= 128
        return bytes(scalar)

    def exchange_private(self, private: Any, peer: bytes) -> bytes:
        if len(peer) != self.element_size:
            raise InvalidKey(
                f"{self.name}: public key must be {self.element_size} bytes, got {len(peer)}"
            )
        try:
            shared: bytes = private.exchange(self._public.from_public_bytes(peer))
        except ValueError as exc:
            # pyca refuses an all-zero result (a low-order peer point), as RFC 7748 section 6
            # and RFC 9180 section 7.1.4 require.
            raise InvalidKey(
                f"{self.name}: public key is a low-order point (all-zero shared secret)"
            ) from exc
        return shared


class _Nist(Group):
    def __init__(
        self, name: str, curve: ec.EllipticCurve, size: int, order: int, seed_size: int
    ) -> None:
        self.name = name
        self._curve = curve
        self.scalar_size = self.shared_size = size
        self.element_size = 2 * size + 1
        self.order = order
        self._seed_size = seed_size

    @property
    def seed_size(self) -> int:
        return self._seed_size

    def _private_key(self, secret_key: bytes) -> ec.EllipticCurvePrivateKey:
        if len(secret_key) != self.scalar_size:
            raise InvalidKey(
                f"{self.name}: secret key must be {self.scalar_size} bytes, got {len(secret_key)}"
            )
        value = int.from_bytes(secret_key, "big")
        if not 0 < value < self._order_value:
            raise InvalidKey(f"{self.name}: secret scalar is zero or not below the group order")
        return ec.derive_private_key(value, self._curve)

    @property
    def _order_value(self) -> int:
        assert self.order is not None
        return self.order

    def public_key(self, secret_key: bytes) -> bytes:
        return self.encode_public(self._private_key(secret_key))

    def generate_private(self) -> Any:
        return ec.generate_private_key(self._curve)

    def load_private(self, secret_key: bytes) -> Any:
        return self._private_key(secret_key)

    def encode_public(self, private: Any) -> bytes:
        encoded: bytes = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return encoded

    def encode_private(self, private: Any) -> bytes:
        value: int = private.private_numbers().private_value
        return value.to_bytes(self.scalar_size, "big")

    def exchange_private(self, private: Any, peer: bytes) -> bytes:
        # Only the uncompressed SEC 1 encoding is valid here (RFC 9180 7.1.1, RFC 8446 4.2.8.2).
        if len(peer) != self.element_size or peer[0] != 0x04:
            raise InvalidKey(
                f"{self.name}: public key must be a {self.element_size}-byte uncompressed point, "
                f"got {len(peer)} bytes"
            )
        try:
            point = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, peer)
            shared: bytes = private.exchange(ec.ECDH(), point)
            return shared
        except ValueError as exc:
            raise InvalidKey(f"{self.name}: public key is not a point on the curve") from exc

    def random_scalar(self, seed: bytes) -> bytes:
        """Rejection sampling (draft-irtf-cfrg-concrete-hybrid-kems, RandomScalar)."""
        size = self.scalar_size
        for start in range(0, len(seed) - size + 1, size):
            value = int.from_bytes(seed[start : start + size], "big")
            if 0 < value < self._order_value:
                return seed[start : start + size]
        raise PQCError(f"{self.name}: rejection sampling of a scalar failed (retry)")


X25519 = Montgomery("X25519", 32, x25519.X25519PrivateKey, x25519.X25519PublicKey)
X448 = Montgomery("X448", 56, x448.X448PrivateKey, x448.X448PublicKey)
P256 = _Nist(
    "P-256",
    ec.SECP256R1(),
    32,
    0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    128,
)
P384 = _Nist(
    "P-384",
    ec.SECP384R1(),
    48,
    int(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
        "581a0db248b0a77aecec196accc52973",
        16,
    ),
    48,
)
