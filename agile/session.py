"""``HybridSession``: what a completed handshake gives the application.

The session key never leaves its :class:`~agile.secret.SecretBytes` wrapper unless the caller
asks for it. Everything else is derived from it one-way with distinct labels, in the shape of
TLS 1.3's HKDF-Expand-Label (RFC 8446 clause 7.1), so that no derived value reveals another:

- ``key_id``: a public 8-byte identifier (hex), ``Expand-Label(key, "key id", "", 8)``;
- ``export(label, context, length)``: RFC 8446 clause 7.5 exporters over an exporter secret
  bound to the handshake transcript;
- ``seal``/``open``: AEAD (AES-256-GCM or ChaCha20-Poly1305) under ``Expand-Label(key,
  "aead key", ...)``, each output prefixed Tink-style with a version byte and the key id, so
  ``open`` refuses a message sealed under another key before trying to decrypt it;
- ``rekey()``: the next epoch's key is ``Expand-Label(key, "rekey", ...)``; the key id changes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from agile._errors import SessionError
from agile.kdf._common import hashlib_name
from agile.secret import SecretBytes

SEAL_VERSION = 1
KEY_ID_LENGTH = 8
_NONCE_LENGTH = 12
_HEADER_LENGTH = 1 + KEY_ID_LENGTH
_AEADS: dict[str, Callable[[bytes], AESGCM | ChaCha20Poly1305]] = {
    "AES-256-GCM": AESGCM,
    "ChaCha20-Poly1305": ChaCha20Poly1305,
}
_LABEL_PREFIX = b"qkd-agile "


def expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 clause 7.1) with the prefix ``"qkd-agile "``.

    ``HKDF-Expand(secret, u16(length) || u8-prefixed(prefix + label) || u8-prefixed(context))``.
    """
    if len(context) > 255:
        raise SessionError("expand_label: label or context over 255 bytes, or bad length")
    info = _label_prefix(label, length) + _CONTEXT_LENGTH[len(context)] + context
    return _hkdf_expand(_hash_of(hash_name), secret, info, length)


_CONTEXT_LENGTH = tuple(bytes([n]) for n in range(256))


def expand_label_info(label: bytes, context: bytes, length: int) -> bytes:
    """The message of the first (and, for ``length`` <= the hash's output, only) HMAC of
    :func:`expand_label`: ``HMAC(secret, expand_label_info(...))[:length]`` equals
    ``expand_label(..., secret, label, context, length)`` when one block suffices."""
    if len(context) > 255:
        raise SessionError("expand_label: label or context over 255 bytes, or bad length")
    if not context:
        return _empty_context_info(label, length)
    return _label_prefix(label, length) + _CONTEXT_LENGTH[len(context)] + context + b"\x01"


@functools.lru_cache(maxsize=256)
def _empty_context_info(label: bytes, length: int) -> bytes:
    return _label_prefix(label, length) + b"\x00\x01"


@functools.lru_cache(maxsize=256)
def _label_prefix(label: bytes, length: int) -> bytes:
    """``u16(length) || u8-prefixed("qkd-agile " + label)``: the same few labels every time."""
    full_label = _LABEL_PREFIX + label
    if len(full_label) > 255 or not 0 < length < 65536:
        raise SessionError("expand_label: label or context over 255 bytes, or bad length")
    return length.to_bytes(2, "big") + bytes([len(full_label)]) + full_label


@functools.lru_cache(maxsize=16)
def _hash_of(hash_name: str) -> str:
    return hashlib_name(hash_name)


def _hkdf_expand(name: str, prk: bytes, info: bytes, length: int) -> bytes:
    # HKDF-Expand (RFC 5869 clause 2.3) over the one-shot hmac.digest: one or two HMAC calls
    # for every length used here, without building an HMAC or HKDFExpand object for each.
    block = hmac.digest(prk, info + b"\x01", name)
    if length <= len(block):
        return block[:length]
    out = block
    counter = 2
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), name)
        out += block
        counter += 1
    return out[:length]


_KEY_ID_INFO = _empty_context_info(b"key id", KEY_ID_LENGTH)


def key_id_of(hash_name: str, key: bytes) -> bytes:
    """The public identifier of ``key``: one-way, with its own label."""
    return hmac.digest(key, _KEY_ID_INFO, _hash_of(hash_name))[:KEY_ID_LENGTH]


def expand_label_prefix(label: bytes, context_length: int, length: int) -> bytes:
    """What precedes the context in :func:`expand_label_info` for a context of
    ``context_length`` bytes: ``expand_label_info(label, context, length)`` equals
    ``expand_label_prefix(label, len(context), length) + context + b"\\x01"`` for a non-empty
    context (formatted once by callers whose context length does not change)."""
    if not 0 < context_length <= 255:
        raise SessionError("expand_label: label or context over 255 bytes, or bad length")
    return _label_prefix(label, length) + _CONTEXT_LENGTH[context_length]


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class HybridSession:
    """A session key established by a hybrid handshake, with what went into it.

    >>> s = HybridSession.create(SecretBytes(bytes(32)), suite=("ML-KEM-768",),
    ...                          hash_name="SHA-256", aead="AES-256-GCM", transcript_hash=b"")
    >>> s.open(s.seal(b"hello"))
    b'hello'
    """

    key: SecretBytes
    key_id: str
    suite: tuple[str, ...]
    qkd_used: bool = False
    qkd_key_ids: tuple[str, ...] = ()
    qkd_path: tuple[str, ...] | None = None
    """The QKD key's relay path (KME node names, master SAE's KME first), when the KME
    reported one and QKD contributed; see :attr:`trusted_nodes`."""
    hash_name: str = "SHA-256"
    aead: str = "AES-256-GCM"
    epoch: int = 0
    lifetime_s: float | None = None
    rekey_interval_s: float | None = None
    created_at: float = field(default_factory=time.monotonic)
    epoch_started_at: float = field(default_factory=time.monotonic)
    transcript_hash: bytes = b""

    @classmethod
    def create(
        cls,
        key: SecretBytes,
        *,
        suite: tuple[str, ...],
        hash_name: str,
        aead: str,
        transcript_hash: bytes,
        qkd_used: bool = False,
        qkd_key_ids: tuple[str, ...] = (),
        qkd_path: tuple[str, ...] | None = None,
        lifetime_s: float | None = None,
        rekey_interval_s: float | None = None,
        epoch: int = 0,
        created_at: float | None = None,
    ) -> HybridSession:
        """Build a session from the established key and the handshake's public facts."""
        if aead not in _AEADS:
            raise SessionError(f"unknown AEAD {aead!r}; use one of {', '.join(_AEADS)}")
        key_id = key_id_of(hash_name, key.reveal()).hex()
        now = time.monotonic()
        # Every field is set here, from checked values: the instance dictionary is made at
        # once rather than through the frozen class's one-by-one object.__setattr__ (the class
        # stays frozen to its users; its derived values are cached_property entries there).
        session = object.__new__(cls)
        object.__setattr__(
            session,
            "__dict__",
            {
                "key": key,
                "key_id": key_id,
                "suite": suite,
                "qkd_used": qkd_used,
                "qkd_key_ids": qkd_key_ids,
                "qkd_path": qkd_path,
                "hash_name": hash_name,
                "aead": aead,
                "epoch": epoch,
                "lifetime_s": lifetime_s,
                "rekey_interval_s": rekey_interval_s,
                "created_at": now if created_at is None else created_at,
                "epoch_started_at": now,
                "transcript_hash": transcript_hash,
            },
        )
        return session

    @property
    def trusted_nodes(self) -> int | None:
        """How many trusted nodes saw the QKD key (``len(qkd_path) - 2``), or ``None``."""
        return None if self.qkd_path is None else len(self.qkd_path) - 2

    # Derived on first use: most sessions use either the exporter or the AEAD, not both.

    @cached_property
    def _key_id_bytes(self) -> bytes:
        return bytes.fromhex(self.key_id)

    @cached_property
    def _exporter_secret(self) -> SecretBytes:
        size = hashlib.new(hashlib_name(self.hash_name)).digest_size
        return SecretBytes(
            expand_label(
                self.hash_name, self.key.reveal(), b"exp master", self.transcript_hash, size
            )
        )

    @cached_property
    def _cipher(self) -> AESGCM | ChaCha20Poly1305:
        key = expand_label(self.hash_name, self.key.reveal(), b"aead key", b"", 32)
        return _AEADS[self.aead](key)

    def __repr__(self) -> str:
        return (
            f"<HybridSession key_id={self.key_id} suite={'+'.join(self.suite)} "
            f"qkd_used={self.qkd_used} epoch={self.epoch}>"
        )

    # -- lifetime -------------------------------------------------------------------------

    @property
    def expired(self) -> bool:
        """True once the policy's session lifetime has passed."""
        return self.lifetime_s is not None and time.monotonic() - self.created_at > self.lifetime_s

    @property
    def needs_rekey(self) -> bool:
        """True once this epoch is older than the policy's rekey interval."""
        return (
            self.rekey_interval_s is not None
            and time.monotonic() - self.epoch_started_at > self.rekey_interval_s
        )

    def rekey(self) -> HybridSession:
        """Return the next epoch's session; its key is derived one-way from this one's."""
        next_key = expand_label(
            self.hash_name,
            self.key.reveal(),
            b"rekey",
            self.epoch.to_bytes(8, "big"),
            len(self.key),
        )
        return HybridSession.create(
            SecretBytes(next_key),
            suite=self.suite,
            hash_name=self.hash_name,
            aead=self.aead,
            transcript_hash=self.transcript_hash,
            qkd_used=self.qkd_used,
            qkd_key_ids=self.qkd_key_ids,
            qkd_path=self.qkd_path,
            lifetime_s=self.lifetime_s,
            rekey_interval_s=self.rekey_interval_s,
            epoch=self.epoch + 1,
            created_at=self.created_at,
        )

    # -- exporters ------------------------------------------------------------------------

    def export(self, label: str | bytes, context: bytes = b"", length: int = 32) -> SecretBytes:
        """Export keying material for another protocol (RFC 8446 clause 7.5)."""
        label_bytes = label.encode() if isinstance(label, str) else label
        name = hashlib_name(self.hash_name)
        derived = expand_label(
            self.hash_name,
            self._exporter_secret.reveal(),
            label_bytes,
            hashlib.new(name, b"").digest(),
            hashlib.new(name).digest_size,
        )
        return SecretBytes(
            expand_label(
                self.hash_name, derived, b"exporter", hashlib.new(name, context).digest(), length
            )
        )

    # -- AEAD -----------------------------------------------------------------------------

    def seal(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Encrypt and authenticate: ``version || key_id || nonce || ciphertext``."""
        if self.expired:
            raise SessionError("session lifetime exceeded: run a new handshake")
        header = bytes([SEAL_VERSION]) + self._key_id_bytes
        nonce = os.urandom(_NONCE_LENGTH)
        return header + nonce + self._cipher.encrypt(nonce, plaintext, header + associated_data)

    def open(self, sealed: bytes, associated_data: bytes = b"") -> bytes:
        """Check the key-id prefix, then decrypt and verify; raise :class:`SessionError`."""
        if len(sealed) < _HEADER_LENGTH + _NONCE_LENGTH + 16:
            raise SessionError("sealed message too short")
        header = sealed[:_HEADER_LENGTH]
        if header[0] != SEAL_VERSION:
            raise SessionError(f"sealed message version {header[0]} is not {SEAL_VERSION}")
        if header[1:] != self._key_id_bytes:
            raise SessionError(
                f"sealed under key id {header[1:].hex()}, this session is {self.key_id}"
            )
        nonce = sealed[_HEADER_LENGTH : _HEADER_LENGTH + _NONCE_LENGTH]
        try:
            return self._cipher.decrypt(
                nonce, sealed[_HEADER_LENGTH + _NONCE_LENGTH :], header + associated_data
            )
        except InvalidTag as exc:
            raise SessionError("sealed message failed authentication") from exc
