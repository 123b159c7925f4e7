"""Where a TLS connection's external PSK comes from: a QKD key by key ID, or a static file.

**QKD keys, imported per RFC 9258.** The client takes a key from its ``KeySource``
(``enc_keys`` on an ETSI GS QKD 014 KME, or the simulated link) and offers it under the
identity ``ImportedIdentity{external_identity = key_ID, context = "", target_protocol =
TLS 1.3, target_kdf = HKDF-SHA256 or -SHA384}``. The server parses that identity, fetches the
same key with ``dec_keys``, and both derive the imported PSK
``HKDF-Expand-Label(HKDF-Extract(0, key), "derived psk", Hash(ImportedIdentity), L)``. The
target KDF is the hash of the cipher suite the PSK is bound to. Each key serves one
connection: the KME delivers it once.

**Static PSKs from a stunnel ``PSKsecrets`` file**, for interop with OpenSSL's ``-psk``,
stunnel, and keys exported by ``agile peer``. Those tools know no importer, so this mode puts
the raw identity and key on the wire as they do, bound to a SHA-256 cipher suite as theirs
are. The file is parsed as stunnel 5.68 parses it: one ``IDENTITY:KEY`` per line, split at
the first ``:``; a key that parses as hex is binary, any other key is its ASCII bytes; keys
are 16 to 512 bytes; identities at most 127 characters.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass
from pathlib import Path

from agile._errors import AgileError
from agile.export import TLS13, TLS_HKDF_SHA256, TLS_HKDF_SHA384, ImportedIdentity, import_psk
from agile.secret import SecretBytes

_TARGET_KDF = {"sha256": TLS_HKDF_SHA256, "sha384": TLS_HKDF_SHA384}
_KDF_HASH = {value: name for name, value in _TARGET_KDF.items()}
MAX_IDENTITY_CHARS = 127
MIN_KEY_BYTES, MAX_KEY_BYTES = 16, 512


class PskError(AgileError):
    """A PSK file or a PSK identity is malformed; the message says where and why."""


# -- QKD keys by key ID ---------------------------------------------------------------------


def qkd_identity(key_id: str, hash_name: str) -> ImportedIdentity:
    """The RFC 9258 identity that names QKD key ``key_id`` for a ``hash_name`` suite."""
    return ImportedIdentity(
        external_identity=key_id.encode("ascii"),
        target_protocol=TLS13,
        target_kdf=_TARGET_KDF[hash_name],
    )


def parse_qkd_identity(identity: bytes) -> tuple[str, str]:
    """``(key_id, hash_name)`` from an encoded ``ImportedIdentity``; :class:`PskError` if not one.

    Only the form :func:`qkd_identity` writes is accepted: an ASCII key ID, no context,
    TLS 1.3, and HKDF-SHA256 or -SHA384.
    """
    if len(identity) < 2:
        raise PskError("the PSK identity is not an RFC 9258 ImportedIdentity (too short)")
    n = int.from_bytes(identity[:2], "big")
    rest = identity[2 + n :]
    if n == 0 or len(identity) < 2 + n or len(rest) != 2 + 2 + 2:
        raise PskError("the PSK identity is not an RFC 9258 ImportedIdentity (bad lengths)")
    context_length = int.from_bytes(rest[:2], "big")
    protocol = int.from_bytes(rest[2:4], "big")
    kdf = int.from_bytes(rest[4:6], "big")
    if context_length != 0 or protocol != TLS13 or kdf not in _KDF_HASH:
        raise PskError(
            "the PSK identity names another context, protocol or KDF than TLS 1.3 with "
            "HKDF-SHA256/384"
        )
    try:
        key_id = identity[2 : 2 + n].decode("ascii")
    except UnicodeDecodeError as exc:
        raise PskError("the PSK identity's key ID is not ASCII") from exc
    if not key_id.isprintable():
        raise PskError("the PSK identity's key ID has control characters")
    return key_id, _KDF_HASH[kdf]


def imported_psk(key: bytes, identity: ImportedIdentity) -> SecretBytes:
    """The imported PSK for QKD key ``key`` under ``identity`` (RFC 9258 §5.1)."""
    return import_psk(SecretBytes(key), identity)


# -- static PSKs ----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PskSecrets:
    """The identities and keys of a stunnel-format ``PSKsecrets`` file; keys never shown."""

    source: str
    entries: tuple[tuple[str, SecretBytes], ...]

    def __repr__(self) -> str:
        return f"<PskSecrets {self.source}: {len(self.entries)} identities>"

    def identities(self) -> tuple[str, ...]:
        return tuple(identity for identity, _ in self.entries)

    def key_for(self, identity: str) -> SecretBytes | None:
        for name, key in self.entries:
            if name == identity:
                return key
        return None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PskSecrets:
        """Read a ``PSKsecrets`` file; :class:`PskError` names ``FILE:LINE`` of a bad line."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PskError(f"{path}: cannot read the PSK secrets file ({exc})") from exc
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<psk secrets>") -> PskSecrets:
        entries: list[tuple[str, SecretBytes]] = []
        seen: set[str] = set()
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            identity, sep, key_text = line.partition(":")
            where = f"{source}:{number}"
            if not sep:
                raise PskError(f"{where}: expected IDENTITY:KEY (no ':' on this line)")
            if not identity or len(identity) > MAX_IDENTITY_CHARS:
                raise PskError(f"{where}: the identity must be 1 to {MAX_IDENTITY_CHARS} chars")
            if identity in seen:
                raise PskError(f"{where}: identity {identity!r} is listed twice")
            key = _key_bytes(key_text)
            if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
                raise PskError(
                    f"{where}: the key of {identity!r} is {len(key)} bytes; stunnel takes "
                    f"{MIN_KEY_BYTES} to {MAX_KEY_BYTES}"
                )
            seen.add(identity)
            entries.append((identity, SecretBytes(key)))
        if not entries:
            raise PskError(f"{source}: no IDENTITY:KEY line")
        return cls(source, tuple(entries))


def _key_bytes(text: str) -> bytes:
    # stunnel 5.68: a key that parses as hex is binary; any other key is used as it is.
    if text and len(text) % 2 == 0 and all(c in string.hexdigits for c in text):
        return bytes.fromhex(text)
    return text.encode("utf-8")
