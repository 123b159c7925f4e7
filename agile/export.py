"""Key export: turn a key exported from a hybrid session into the file another tool reads.

Teams that keep their TLS stack or VPN add post-quantum and QKD protection by injecting an
external pre-shared key. This module holds the pieces that need no network:

- **domain separation**: each target protocol gets its own exporter label
  (:data:`TARGETS`), and TLS keys are bound to an RFC 9258 ``ImportedIdentity``
  (:class:`ImportedIdentity`, :func:`import_psk`), so a key exported for one tool is never the
  key of another;
- **formats**: OpenSSL ``s_server``/``s_client`` ``-psk`` hex (:func:`openssl_psk`), stunnel
  ``PSKsecrets`` lines (:func:`stunnel_psk_secrets`), WireGuard ``PresharedKey``
  (:func:`wireguard_preshared_key`), strongSwan ``swanctl.conf`` PPK secrets
  (:func:`swanctl_ppk_secrets`, RFC 8784);
- **atomic writing** (:func:`write_secret_file`): a reader sees the old file or the new one,
  never half of either, and the file is mode 0600 from the moment it exists.

Every format function takes the key as :class:`~agile.secret.SecretBytes` (or bytes) and returns
text that contains the key: write it with :func:`write_secret_file`, never log it. Errors never
quote key material.

Example::

    >>> from agile.secret import SecretBytes
    >>> wireguard_preshared_key(SecretBytes(bytes(32)))
    'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\n'
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from agile._errors import AgileError
from agile.secret import SecretBytes

Key = SecretBytes | bytes
Target = Literal["openssl", "stunnel", "wireguard", "strongswan"]


class ExportError(AgileError):
    """A key could not be exported: wrong length, bad identity, or the file not written."""


def _raw(key: Key) -> bytes:
    if isinstance(key, SecretBytes):
        return key.reveal()
    if isinstance(key, bytes):
        return key
    raise ExportError(f"a key must be SecretBytes or bytes, not {type(key).__name__}")


# -- RFC 9258: importing external PSKs into TLS 1.3 -------------------------------------------

TLS13 = 0x0304
DTLS13 = 0xFEFC
TLS_HKDF_SHA256 = 0x0001
TLS_HKDF_SHA384 = 0x0002
_KDF_HASH = {TLS_HKDF_SHA256: "sha256", TLS_HKDF_SHA384: "sha384"}


@dataclass(frozen=True, kw_only=True)
class ImportedIdentity:
    """RFC 9258 clause 5.1::

    struct {
        opaque external_identity<1...2^16-1>;
        opaque context<0..2^16-1>;
        uint16 target_protocol;
        uint16 target_kdf;
    } ImportedIdentity;
    """

    external_identity: bytes
    context: bytes = b""
    target_protocol: int = TLS13
    target_kdf: int = TLS_HKDF_SHA256

    def __post_init__(self) -> None:
        if not 1 <= len(self.external_identity) <= 0xFFFF:
            raise ExportError("ImportedIdentity.external_identity must be 1 to 65535 bytes")
        if len(self.context) > 0xFFFF:
            raise ExportError("ImportedIdentity.context must be at most 65535 bytes")
        for name in ("target_protocol", "target_kdf"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise ExportError(f"ImportedIdentity.{name} must fit in 16 bits")
        if self.target_kdf not in _KDF_HASH:
            raise ExportError(
                f"ImportedIdentity.target_kdf 0x{self.target_kdf:04x} is not supported; "
                "use TLS_HKDF_SHA256 (0x0001) or TLS_HKDF_SHA384 (0x0002)"
            )

    def encode(self) -> bytes:
        """The TLS presentation-language encoding (big-endian length prefixes)."""
        return (
            len(self.external_identity).to_bytes(2, "big")
            + self.external_identity
            + len(self.context).to_bytes(2, "big")
            + self.context
            + self.target_protocol.to_bytes(2, "big")
            + self.target_kdf.to_bytes(2, "big")
        )


def _hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    # RFC 8446 clause 7.1: HkdfLabel = u16 length || u8-prefixed "tls13 " + label ||
    # u8-prefixed context; then HKDF-Expand (RFC 5869 clause 2.3).
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(secret, block + info + bytes([counter]), hash_name)
        out += block
        counter += 1
    return out[:length]


def import_psk(epsk: Key, identity: ImportedIdentity, *, epsk_hash: str = "sha256") -> SecretBytes:
    """Derive the imported PSK (RFC 9258 clause 5.1) that a TLS 1.3 stack uses::

        epskx = HKDF-Extract(0, epsk)
        ipskx = HKDF-Expand-Label(epskx, "derived psk", Hash(ImportedIdentity), L)

    The HKDF hash is the one associated with the EPSK (SHA-256 when it has none), ``L`` is
    the output length of ``identity.target_kdf``'s hash.
    """
    raw = _raw(epsk)
    if not raw:
        raise ExportError("the external PSK is empty")
    if epsk_hash not in {"sha256", "sha384"}:
        raise ExportError("epsk_hash must be 'sha256' or 'sha384'")
    zeros = bytes(hashlib.new(epsk_hash).digest_size)
    epskx = hmac.digest(zeros, raw, epsk_hash)
    length = hashlib.new(_KDF_HASH[identity.target_kdf]).digest_size
    digest = hashlib.new(epsk_hash, identity.encode()).digest()
    return SecretBytes(_hkdf_expand_label(epsk_hash, epskx, b"derived psk", digest, length))


# -- domain separation per target -------------------------------------------------------------


class Exporter(Protocol):
    """What key export needs from a session (``agile.session.HybridSession`` is one)."""

    def export(self, label: str | bytes, context: bytes = b"", length: int = 32) -> SecretBytes:
        """Keying material for ``label`` and ``context``."""
        ...


TARGETS: dict[Target, str] = {
    "openssl": "external psk tls13",
    "stunnel": "external psk tls13",
    "wireguard": "wireguard presharedkey",
    "strongswan": "ikev2 ppk",
}
"""The exporter label of each target; TLS targets share one and differ by ImportedIdentity."""


def derive_target_key(
    session: Exporter, target: Target, identity: str, *, context: bytes = b""
) -> SecretBytes:
    """Derive the key for ``target`` from ``session``, bound to ``identity``.

    Both peers compute the same key from the same session, target and identity; any other
    target or identity gives an unrelated key. For TLS (``openssl``, ``stunnel``) the
    exported 32 bytes are the EPSK and the result is the RFC 9258 imported PSK for
    ``ImportedIdentity(identity, context, TLS 1.3, HKDF-SHA256)``, usable directly by a stack
    without importer support. For WireGuard and strongSwan the exporter context is the
    identity itself, length-prefixed, followed by ``context``.
    """
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}; known: {', '.join(TARGETS)}")
    identity_bytes = _identity(identity, target)
    if target in {"openssl", "stunnel"}:
        imported = ImportedIdentity(external_identity=identity_bytes, context=context)
        epsk = session.export(TARGETS[target], imported.encode(), 32)
        return import_psk(epsk, imported)
    binding = len(identity_bytes).to_bytes(2, "big") + identity_bytes + context
    return session.export(TARGETS[target], binding, 32)


_IDENTITY = re.compile(r"^[A-Za-z0-9._@+=/-]{1,128}$")


def _identity(identity: str, target: str) -> bytes:
    # Identities end up in configuration files and command lines: keep them to characters
    # that need no quoting anywhere (no ':' for stunnel, no spaces, no braces for swanctl).
    if not _IDENTITY.match(identity):
        raise ExportError(
            f"{target}: identity {identity!r} must be 1 to 128 characters from "
            "A-Z a-z 0-9 . _ @ + = / -"
        )
    return identity.encode("ascii")


# -- formats ----------------------------------------------------------------------------------


def openssl_psk(key: Key) -> str:
    """Hex for ``openssl s_server/s_client -psk HEX -psk_identity ID`` (a line)."""
    raw = _raw(key)
    if len(raw) < 16:
        raise ExportError(f"openssl: a PSK of {len(raw)} bytes is too short (at least 16)")
    return raw.hex() + "\n"


def stunnel_psk_secrets(entries: dict[str, Key]) -> str:
    """A stunnel ``PSKsecrets`` file: one ``IDENTITY:KEY`` line per identity.

    stunnel converts hexadecimal keys to binary and requires keys of at least 16 bytes; the
    identity ends at the first ``:``, so it may not contain one.
    """
    if not entries:
        raise ExportError("stunnel: a PSKsecrets file needs at least one identity")
    lines = []
    for identity, key in entries.items():
        _identity(identity, "stunnel")
        raw = _raw(key)
        if len(raw) < 16:
            raise ExportError(
                f"stunnel: the key for {identity!r} is {len(raw)} bytes; stunnel needs 16 or more"
            )
        lines.append(f"{identity}:{raw.hex()}")
    return "\n".join(lines) + "\n"


def wireguard_preshared_key(key: Key) -> str:
    """WireGuard ``PresharedKey``: exactly 32 bytes, base64 (what ``wg genpsk`` prints).

    The file is what ``wg set wg0 peer PUBKEY preshared-key FILE`` reads.
    """
    raw = _raw(key)
    if len(raw) != 32:
        raise ExportError(f"wireguard: a PresharedKey is 32 bytes, not {len(raw)}")
    return base64.b64encode(raw).decode("ascii") + "\n"


def swanctl_ppk_secrets(name: str, key: Key, peer_ids: list[str]) -> str:
    """A ``swanctl.conf`` fragment with one postquantum preshared key (RFC 8784).

    ``secrets { ppk-NAME { secret = 0x...  id = PPK_ID } }``: the subsection name must start
    with ``ppk``; ``id`` is the PPK identity that ``connections.<conn>.ppk_id`` names (several
    peers sharing it get ``id-1``, ``id-2`` ...). The key is written hex with the ``0x``
    prefix swanctl reads.
    """
    if not re.match(r"^[A-Za-z0-9_-]{1,64}$", name):
        raise ExportError(f"strongswan: section name {name!r} must be letters, digits, _ or -")
    if not peer_ids:
        raise ExportError("strongswan: a PPK needs at least one PPK identity (id)")
    for peer in peer_ids:
        _identity(peer, "strongswan")
    raw = _raw(key)
    if len(raw) < 32:
        raise ExportError(
            f"strongswan: a PPK of {len(raw)} bytes is too short (RFC 8784 asks for at least "
            "256 bits of entropy)"
        )
    ids = (
        [f"        id = {peer_ids[0]}"]
        if len(peer_ids) == 1
        else [f"        id-{i} = {peer}" for i, peer in enumerate(peer_ids, start=1)]
    )
    return "\n".join(
        [
            "secrets {",
            f"    ppk-{name} {{",
            f"        secret = 0x{raw.hex()}",
            *ids,
            "    }",
            "}",
            "",
        ]
    )


# -- atomic writing ---------------------------------------------------------------------------


def write_secret_file(path: str | os.PathLike[str], content: str | bytes) -> None:
    """Replace ``path`` atomically with ``content``, mode 0600.

    A temporary file is created beside the target with ``O_CREAT | O_EXCL`` and mode 0600 (so
    the key is never readable by others, even for an instant), written, flushed to disk, renamed
    over the target with :func:`os.replace` (atomic on POSIX), and the directory is flushed so
    the rename survives a crash. A symbolic link at ``path`` is replaced, not followed.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    data = content.encode("utf-8") if isinstance(content, str) else content
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    temp: Path | None = None
    try:
        for _ in range(16):
            candidate = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
            try:
                fd = os.open(candidate, flags, 0o600)
            except FileExistsError:
                continue
            temp = candidate
            break
        else:  # pragma: no cover - sixteen random names taken
            raise ExportError(f"{target}: could not create a temporary file beside it")
        try:
            os.fchmod(fd, 0o600)  # the umask may have removed bits, never added: make it exact
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
        temp = None
        _fsync_directory(directory)
    except OSError as exc:
        raise ExportError(f"{target}: cannot write the key file ({exc.strerror})") from exc
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.unlink()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "DTLS13",
    "TARGETS",
    "TLS13",
    "TLS_HKDF_SHA256",
    "TLS_HKDF_SHA384",
    "ExportError",
    "Exporter",
    "ImportedIdentity",
    "derive_target_key",
    "import_psk",
    "openssl_psk",
    "stunnel_psk_secrets",
    "swanctl_ppk_secrets",
    "wireguard_preshared_key",
    "write_secret_file",
]
