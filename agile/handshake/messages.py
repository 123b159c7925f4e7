"""The handshake's wire messages: frozen, keyword-only dataclasses and one binary codec.

Every message travels in a frame::

    type (u8) || version (u16) || body length (u32) || body

and its body is its fields in order, each in one of these forms:

    fixed(n)    n bytes                      the randoms
    name        u8 length || ASCII           algorithm names, fingerprints, key IDs, PSK id
    bytes8      u8 length || bytes           the PSK binder, Finished MACs
    bytes32     u32 length || bytes          public keys, ciphertexts, signatures
    code        u8                           the authentication method
    list(x)     u16 count || x || x ...      at most a per-field number of entries

The table under "Wire format" below lists each message's fields with their forms, once;
:func:`encode` and :func:`decode` both follow it. Decoding reads the fields (every length
checked against what is left of the body, every count against its limit, and the body
consumed exactly) and then builds the message through its constructor, so a decoded message
has passed every check that a message built in code passes. :func:`decode` either returns
one message or raises :class:`~agile.HandshakeError`, never an ``IndexError``,
``struct.error`` or ``ValueError`` (hypothesis and a mutation fuzzer hold it to that).

Flow (one round trip and a half; with a PSK, no Auth frames and a binder in the ClientHello)::

    Initiator                                   Responder
    ClientHello  ------------------------------>
                 <------------------------------  ServerHello, [Auth], Finished
    [Auth], Finished -------------------------->
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Generic, TypeVar

from agile._errors import HandshakeError

PROTOCOL_VERSION = 2  # 2: PSK binder in the ClientHello, no PSK Auth frames
RANDOM_LENGTH = 32
MAX_FRAME_BODY = 4 * 1024 * 1024  # Classic McEliece public keys reach 1.3 MB
HEADER_LENGTH = 7
_HEADER = struct.Struct(">BHI")  # type, version, body length

_MAX_SUITES = 16
_MAX_COMPONENTS = 6
_MAX_SHARES = 32
_MAX_KEY_IDS = 16
_MAX_SIGNATURES = 4
MAX_BINDER = 64


class MessageType(IntEnum):
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    AUTH = 3
    FINISHED = 4


class AuthMethod(IntEnum):
    SIGNATURE = 1
    PSK = 2


# --------------------------------------------------------------------------------------------
# Validation: every failure is a HandshakeError naming the field.
# --------------------------------------------------------------------------------------------


# A name: printable ASCII (0x20-0x7e), 1-128 characters, no space at either end.
_is_name = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?").fullmatch


def _check_name(field: str, value: object) -> None:
    if not isinstance(value, str) or _is_name(value) is None:
        raise HandshakeError(f"{field}: not a printable ASCII name of 1-128 characters")


def _check_bytes(field: str, value: object, low: int = 0, high: int = MAX_FRAME_BODY) -> None:
    if not isinstance(value, bytes):
        raise HandshakeError(f"{field}: must be bytes")
    if not low <= len(value) <= high:
        raise HandshakeError(f"{field}: {len(value)} bytes, expected {low}..{high}")


def _check_tuple(field: str, value: object, low: int, high: int) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise HandshakeError(f"{field}: must be a tuple")
    if not low <= len(value) <= high:
        raise HandshakeError(f"{field}: {len(value)} entries, expected {low}..{high}")
    return value


def _check_suite(field: str, value: object) -> None:
    """1-6 distinct names."""
    components = _check_tuple(field, value, 1, _MAX_COMPONENTS)
    for i, name in enumerate(components):
        if not isinstance(name, str) or _is_name(name) is None:
            raise HandshakeError(f"{field}[{i}]: not a printable ASCII name of 1-128 characters")
    if len(set(components)) != len(components):
        raise HandshakeError(f"{field}: a component is listed twice")


def _check_key_ids(field: str, value: object) -> None:
    if value == ():
        return
    ids = _check_tuple(field, value, 0, _MAX_KEY_IDS)
    for key_id in ids:
        if not isinstance(key_id, str):
            raise HandshakeError(f"{field}: key IDs must be strings")
        try:
            canonical = str(uuid.UUID(key_id))
        except ValueError:
            raise HandshakeError(f"{field}: {key_id!r} is not a UUID") from None
        if canonical != key_id:
            raise HandshakeError(f"{field}: {key_id!r} is not in canonical UUID form")
    if len(set(ids)) != len(ids):
        raise HandshakeError(f"{field}: a key ID is listed twice")


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyShare:
    """The initiator's public key for one KEM algorithm."""

    algorithm: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name("key_share.algorithm", self.algorithm)
        _check_bytes("key_share.public_key", self.public_key, low=1)

    def __repr__(self) -> str:
        return f"KeyShare(algorithm={self.algorithm!r}, public_key=<{len(self.public_key)} bytes>)"


@dataclass(frozen=True, kw_only=True, slots=True)
class SignatureEntry:
    """One signature over the transcript, by one algorithm."""

    algorithm: str
    signature: bytes

    def __post_init__(self) -> None:
        _check_name("signature.algorithm", self.algorithm)
        _check_bytes("signature.signature", self.signature, low=1, high=64 * 1024)

    def __repr__(self) -> str:
        return f"SignatureEntry(algorithm={self.algorithm!r}, <{len(self.signature)} bytes>)"


@dataclass(frozen=True, kw_only=True, slots=True)
class ClientHello:
    """The initiator's offer: suites in preference order, key shares, QKD key IDs."""

    TYPE: ClassVar[MessageType] = MessageType.CLIENT_HELLO

    random: bytes
    policy_fingerprint: str
    combiner: str
    hash_name: str
    suites: tuple[tuple[str, ...], ...]
    key_shares: tuple[KeyShare, ...]
    qkd_key_ids: tuple[str, ...] = ()
    auth_method: AuthMethod = AuthMethod.SIGNATURE
    psk_id: str = ""
    psk_binder: bytes = b""
    """PSK mode: HMAC(binder key, H(this frame up to the binder)); see docs/handshake.md.
    It is the frame's last field, so "the frame up to the binder" is the frame without its
    last ``len(psk_binder)`` bytes."""

    def __post_init__(self) -> None:
        _check_bytes("random", self.random, low=RANDOM_LENGTH, high=RANDOM_LENGTH)
        _check_name("policy_fingerprint", self.policy_fingerprint)
        _check_name("combiner", self.combiner)
        _check_name("hash_name", self.hash_name)
        suites = _check_tuple("suites", self.suites, 1, _MAX_SUITES)
        for i, suite in enumerate(suites):
            _check_suite(f"suites[{i}]", suite)
        if len(set(suites)) != len(suites):
            raise HandshakeError("suites: a suite is offered twice")
        shares = _check_tuple("key_shares", self.key_shares, 0, _MAX_SHARES)
        algorithms = set()
        for share in shares:
            if not isinstance(share, KeyShare):
                raise HandshakeError("key_shares: entries must be KeyShare")
            algorithms.add(share.algorithm)
        if len(algorithms) != len(shares):
            raise HandshakeError("key_shares: an algorithm has two key shares")
        _check_key_ids("qkd_key_ids", self.qkd_key_ids)
        if not isinstance(self.auth_method, AuthMethod):
            raise HandshakeError("auth_method: unknown authentication method")
        if self.psk_id != "":
            _check_name("psk_id", self.psk_id)
        _check_bytes("psk_binder", self.psk_binder, low=0, high=MAX_BINDER)
        if self.psk_binder and self.auth_method is not AuthMethod.PSK:
            raise HandshakeError(
                "psk_binder: only a ClientHello that authenticates by PSK carries one"
            )

    def share(self, algorithm: str) -> bytes | None:
        """The public key offered for ``algorithm``, or None."""
        for s in self.key_shares:
            if s.algorithm == algorithm:
                return s.public_key
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerHello:
    """The responder's choice: one offered suite and a ciphertext for each of its KEMs."""

    TYPE: ClassVar[MessageType] = MessageType.SERVER_HELLO

    random: bytes
    policy_fingerprint: str
    suite: tuple[str, ...]
    ciphertexts: tuple[bytes, ...]
    qkd_key_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_bytes("random", self.random, low=RANDOM_LENGTH, high=RANDOM_LENGTH)
        _check_name("policy_fingerprint", self.policy_fingerprint)
        _check_suite("suite", self.suite)
        cts = _check_tuple("ciphertexts", self.ciphertexts, 0, _MAX_COMPONENTS)
        for i, ct in enumerate(cts):
            _check_bytes(f"ciphertexts[{i}]", ct, low=1)
        _check_key_ids("qkd_key_ids", self.qkd_key_ids)


@dataclass(frozen=True, kw_only=True, slots=True)
class Auth:
    """Proof of identity over the transcript: one signature per algorithm the policy names.

    Only the signature method sends it; with a PSK, the ClientHello's binder and the two
    Finished MACs authenticate (docs/handshake.md, "PSK authentication").
    """

    TYPE: ClassVar[MessageType] = MessageType.AUTH

    signatures: tuple[SignatureEntry, ...]

    def __post_init__(self) -> None:
        sigs = _check_tuple("signatures", self.signatures, 1, _MAX_SIGNATURES)
        algorithms = set()
        for sig in sigs:
            if not isinstance(sig, SignatureEntry):
                raise HandshakeError("signatures: entries must be SignatureEntry")
            algorithms.add(sig.algorithm)
        if len(algorithms) != len(sigs):
            raise HandshakeError("signatures: an algorithm signed twice")


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """Key confirmation: an HMAC over the whole transcript so far."""

    TYPE: ClassVar[MessageType] = MessageType.FINISHED

    verify_data: bytes

    def __post_init__(self) -> None:
        _check_bytes("verify_data", self.verify_data, low=32, high=64)


Message = ClientHello | ServerHello | Auth | Finished


# --------------------------------------------------------------------------------------------
# Reading a body
# --------------------------------------------------------------------------------------------


class _Reader:
    """A position in one frame's body. The forms below read from it in place, each checking
    the bytes left before taking any, so that a short body raises :class:`HandshakeError`
    naming the field, never IndexError or struct.error."""

    __slots__ = ("data", "end", "pos", "what")

    def __init__(self, frame: bytes, what: str) -> None:
        self.data = frame
        self.pos = HEADER_LENGTH
        self.end = len(frame)
        self.what = what

    def short(self, field: str) -> HandshakeError:
        return HandshakeError(f"{self.what}: truncated in {field}")

    def finish(self) -> None:
        if self.pos != self.end:
            raise HandshakeError(f"{self.what}: {self.end - self.pos} trailing bytes")


# --------------------------------------------------------------------------------------------
# The field forms: each writes a value to a list of byte strings and reads one back. They are
# frozen: the tables below are constants, and decoding keeps no state between frames.
# --------------------------------------------------------------------------------------------

_V = TypeVar("_V")


class _Form(Generic[_V]):
    def write(self, value: _V, out: list[bytes]) -> None:
        raise NotImplementedError

    def read(self, r: _Reader, field: str) -> _V:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class _Fixed(_Form[bytes]):
    """``n`` bytes, no length."""

    n: int

    def write(self, value: bytes, out: list[bytes]) -> None:
        out.append(value)

    def read(self, r: _Reader, field: str) -> bytes:
        pos = r.pos
        end = pos + self.n
        if end > r.end:
            raise r.short(field)
        r.pos = end
        return r.data[pos:end]


@dataclass(frozen=True, slots=True)
class _Bytes(_Form[bytes]):
    """A byte string after its length in ``width`` bytes (1: bytes8, 4: bytes32)."""

    width: int

    def write(self, value: bytes, out: list[bytes]) -> None:
        out += (len(value).to_bytes(self.width, "big"), value)

    def read(self, r: _Reader, field: str) -> bytes:
        data, pos = r.data, r.pos
        start = pos + self.width
        if start <= r.end:
            end = start + int.from_bytes(data[pos:start], "big")
            if end <= r.end:
                r.pos = end
                return data[start:end]
        raise r.short(field)


@dataclass(frozen=True, slots=True)
class _Name(_Form[str]):
    """An ASCII string after its length in one byte."""

    def write(self, value: str, out: list[bytes]) -> None:
        out += (len(value).to_bytes(1, "big"), value.encode("ascii"))

    def read(self, r: _Reader, field: str) -> str:
        data, pos = r.data, r.pos
        if pos < r.end:
            end = pos + 1 + data[pos]
            if end <= r.end:
                r.pos = end
                try:
                    return data[pos + 1 : end].decode("ascii")
                except UnicodeDecodeError:
                    raise HandshakeError(f"{r.what}: {field} is not ASCII") from None
        raise r.short(field)


@dataclass(frozen=True, slots=True)
class _Code(_Form[AuthMethod]):
    """One byte, the value of an :class:`AuthMethod`."""

    def write(self, value: AuthMethod, out: list[bytes]) -> None:
        out.append(value.to_bytes(1, "big"))

    def read(self, r: _Reader, field: str) -> AuthMethod:
        pos = r.pos
        if pos >= r.end:
            raise r.short(field)
        r.pos = pos + 1
        code = r.data[pos]
        if code == AuthMethod.SIGNATURE:
            return AuthMethod.SIGNATURE
        if code == AuthMethod.PSK:
            return AuthMethod.PSK
        raise HandshakeError(f"{r.what}: unknown {field} {code}")


@dataclass(frozen=True, slots=True)
class _List(_Form[tuple[Any, ...]]):
    """A u16 count, then that many entries of one form (at most ``limit``)."""

    entry: _Form[Any]
    limit: int

    def write(self, value: tuple[Any, ...], out: list[bytes]) -> None:
        out.append(len(value).to_bytes(2, "big"))
        write = self.entry.write
        for item in value:
            write(item, out)

    def read(self, r: _Reader, field: str) -> tuple[Any, ...]:
        pos = r.pos
        if pos + 2 > r.end:
            raise r.short(field)
        r.pos = pos + 2
        n = int.from_bytes(r.data[pos : pos + 2], "big")
        if n > self.limit:
            raise HandshakeError(f"{r.what}: {field} has {n} entries, at most {self.limit}")
        read = self.entry.read
        entries = []
        for _ in range(n):
            entries.append(read(r, field))
        return tuple(entries)


_R = TypeVar("_R")


@dataclass(frozen=True, slots=True, init=False)
class _Record(_Form[_R]):
    """The fields of a message class in order, each in its form; reading builds the object
    through its constructor (with every check)."""

    cls: type[_R]
    layout: tuple[tuple[str, _Form[Any]], ...]
    _reads: tuple[tuple[str, Callable[[_Reader, str], Any], str], ...]

    def __init__(self, cls: type[_R], prefix: str, *layout: tuple[str, _Form[Any]]) -> None:
        """``prefix``: what errors put before a field's name ("key_share." for a key share)."""
        object.__setattr__(self, "cls", cls)
        object.__setattr__(self, "layout", layout)
        reads = tuple((name, form.read, prefix + name) for name, form in layout)
        object.__setattr__(self, "_reads", reads)

    def write(self, value: _R, out: list[bytes]) -> None:
        for name, form in self.layout:
            form.write(getattr(value, name), out)

    def read(self, r: _Reader, field: str = "") -> _R:
        values = {}
        for name, read, label in self._reads:
            values[name] = read(r, label)
        return self.cls(**values)


# --------------------------------------------------------------------------------------------
# Wire format (docs/handshake.md, "Framing"): each message's fields in wire order.
# --------------------------------------------------------------------------------------------

_RANDOM = _Fixed(RANDOM_LENGTH)
_NAME = _Name()
_BYTES8 = _Bytes(1)
_BYTES32 = _Bytes(4)

_KEY_SHARE = _Record(KeyShare, "key_share.", ("algorithm", _NAME), ("public_key", _BYTES32))
_SIGNATURE = _Record(SignatureEntry, "signature.", ("algorithm", _NAME), ("signature", _BYTES32))

_WIRE: dict[int, _Record[Any]] = {
    MessageType.CLIENT_HELLO: _Record(
        ClientHello,
        "",
        ("random", _RANDOM),
        ("policy_fingerprint", _NAME),
        ("combiner", _NAME),
        ("hash_name", _NAME),
        ("suites", _List(_List(_NAME, _MAX_COMPONENTS), _MAX_SUITES)),
        ("key_shares", _List(_KEY_SHARE, _MAX_SHARES)),
        ("qkd_key_ids", _List(_NAME, _MAX_KEY_IDS)),
        ("auth_method", _Code()),
        ("psk_id", _NAME),  # empty without a PSK
        ("psk_binder", _BYTES8),  # empty without a PSK; the last field
    ),
    MessageType.SERVER_HELLO: _Record(
        ServerHello,
        "",
        ("random", _RANDOM),
        ("policy_fingerprint", _NAME),
        ("suite", _List(_NAME, _MAX_COMPONENTS)),
        ("ciphertexts", _List(_BYTES32, _MAX_COMPONENTS)),
        ("qkd_key_ids", _List(_NAME, _MAX_KEY_IDS)),
    ),
    MessageType.AUTH: _Record(Auth, "", ("signatures", _List(_SIGNATURE, _MAX_SIGNATURES))),
    MessageType.FINISHED: _Record(Finished, "", ("verify_data", _BYTES8)),
}
_MESSAGE_TYPES = frozenset(_WIRE)


# --------------------------------------------------------------------------------------------
# Encoding and decoding
# --------------------------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    """The framed wire form of ``message``."""
    out = [b""]  # the header, once the body's length is known
    _WIRE[message.TYPE].write(message, out)
    body_length = sum(map(len, out))
    if body_length > MAX_FRAME_BODY:
        raise HandshakeError(f"{type(message).__name__} of {body_length} bytes exceeds the limit")
    out[0] = _HEADER.pack(message.TYPE, PROTOCOL_VERSION, body_length)
    return b"".join(out)


def frame_length(buffer: bytes | bytearray, offset: int = 0) -> int | None:
    """Total length of the frame at ``offset`` in ``buffer``, or None while its header is partial.

    Raises :class:`HandshakeError` for a header that no valid frame has.
    """
    if len(buffer) - offset < HEADER_LENGTH:
        return None
    kind, version, body = _HEADER.unpack_from(buffer, offset)
    if kind not in _MESSAGE_TYPES:
        raise HandshakeError(f"unknown message type {kind}")
    if version != PROTOCOL_VERSION:
        raise HandshakeError(
            f"protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})"
        )
    if body > MAX_FRAME_BODY:
        raise HandshakeError(f"frame body of {body} bytes exceeds the {MAX_FRAME_BODY} limit")
    return HEADER_LENGTH + int(body)


def decode_frame(frame: bytes) -> Message:
    """Decode one frame whose header :func:`frame_length` has accepted and whose length it
    gave; raise :class:`HandshakeError` for anything wrong in the body."""
    record = _WIRE[frame[0]]
    r = _Reader(frame, record.cls.__name__)
    message: Message = record.read(r)
    r.finish()
    return message


def decode(frame: bytes) -> Message:
    """Decode exactly one framed message; raise :class:`HandshakeError` for anything else."""
    if not isinstance(frame, bytes | bytearray):
        raise HandshakeError("a frame must be bytes")
    frame = bytes(frame)
    total = frame_length(frame)
    if total is None:
        raise HandshakeError(f"frame truncated: {len(frame)} bytes, header is {HEADER_LENGTH}")
    if total != len(frame):
        raise HandshakeError(f"frame length mismatch: header says {total}, got {len(frame)}")
    return decode_frame(frame)
