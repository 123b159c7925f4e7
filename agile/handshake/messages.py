"""The handshake's wire messages: frozen, keyword-only dataclasses and one binary codec.

Every message travels in a frame::

    type (u8) || version (u16) || body length (u32) || body

Inside a body, names are ``u8``-length ASCII strings, lists carry a ``u16`` count, and keys,
ciphertexts and signatures are ``u32``-length byte strings; every length is checked against
what is left and against a per-field maximum, and a body must be consumed exactly.

:func:`decode` either returns one message or raises :class:`~agile.HandshakeError`; it never
lets an ``IndexError``, ``struct.error`` or ``ValueError`` out (a hypothesis fuzz test holds it
to that). Messages validate themselves on construction; the decoder runs the same checks on
every field it reads (building the objects without repeating them), and the machine builds its
own hellos from templates whose fixed fields were checked once, so a decoded message and a
message built in code obey the same rules.

Flow (one round trip and a half; with a PSK, no Auth frames and a binder in the ClientHello)::

    Initiator                                   Responder
    ClientHello  ------------------------------>
                 <------------------------------  ServerHello, [Auth], Finished
    [Auth], Finished -------------------------->
"""

from __future__ import annotations

import functools
import operator
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Generic, NamedTuple, TypeVar

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
_MAX_BLOB = MAX_FRAME_BODY
_NAME = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?")


class MessageType(IntEnum):
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    AUTH = 3
    FINISHED = 4


class AuthMethod(IntEnum):
    SIGNATURE = 1
    PSK = 2


# --------------------------------------------------------------------------------------------
# Validation helpers: every failure is a HandshakeError naming the field.
# --------------------------------------------------------------------------------------------


def _fail(message: str) -> HandshakeError:
    return HandshakeError(message)


# Names already seen to be valid: a handshake repeats the same few algorithm names and
# fingerprints, and a set lookup is cheaper than the pattern. Bounded, so that a peer sending
# fresh names cannot grow it.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 4096


def _check_name(field: str, value: object) -> None:
    if value.__class__ is str and value in _VALID_NAMES:
        return
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise _fail(f"{field}: not a printable ASCII name of 1-128 characters")
    if len(_VALID_NAMES) < _VALID_NAMES_MAX:
        _VALID_NAMES.add(value)


def _check_bytes(field: str, value: object, low: int = 0, high: int = _MAX_BLOB) -> None:
    if value.__class__ is not bytes and not isinstance(value, bytes):
        raise _fail(f"{field}: must be bytes")
    if not low <= len(value) <= high:
        raise _fail(f"{field}: {len(value)} bytes, expected {low}..{high}")


def _check_tuple(field: str, value: object, low: int, high: int) -> tuple[object, ...]:
    if not isinstance(value, tuple):
        raise _fail(f"{field}: must be a tuple")
    if not low <= len(value) <= high:
        raise _fail(f"{field}: {len(value)} entries, expected {low}..{high}")
    return value


def _check_key_ids(field: str, value: object) -> None:
    if value == ():
        return
    ids = _check_tuple(field, value, 0, _MAX_KEY_IDS)
    for key_id in ids:
        if not isinstance(key_id, str):
            raise _fail(f"{field}: key IDs must be strings")
        try:
            canonical = str(uuid.UUID(key_id))
        except ValueError:
            raise _fail(f"{field}: {key_id!r} is not a UUID") from None
        if canonical != key_id:
            raise _fail(f"{field}: {key_id!r} is not in canonical UUID form")
    if len(set(ids)) != len(ids):
        raise _fail(f"{field}: a key ID is listed twice")


def _check_binder(binder: object, method: object) -> None:
    _check_bytes("psk_binder", binder, low=0, high=MAX_BINDER)
    if binder and method is not AuthMethod.PSK:
        raise _fail("psk_binder: only a ClientHello that authenticates by PSK carries one")


# Suites already seen to be valid, for the same reason and with the same bound as names.
_VALID_SUITES: set[tuple[str, ...]] = set()


def _check_suite(field: str, value: object, index: int | None = None) -> None:
    if value.__class__ is tuple:
        try:
            if value in _VALID_SUITES:
                return
        except TypeError:  # an unhashable component: the checks below name it
            pass
    if index is not None:
        field = f"{field}[{index}]"
    components = _check_tuple(field, value, 1, _MAX_COMPONENTS)
    for i, name in enumerate(components):
        if name.__class__ is not str or name not in _VALID_NAMES:
            _check_name(f"{field}[{i}]", name)
    if len(set(components)) != len(components):
        raise _fail(f"{field}: a component is listed twice")
    if len(_VALID_SUITES) < _VALID_NAMES_MAX:
        _VALID_SUITES.add(value)  # type: ignore[arg-type]


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
    """PSK mode: HMAC(binder key, H(this frame up to the binder)); see docs/handshake.md."""

    def __post_init__(self) -> None:
        _check_bytes("random", self.random, low=RANDOM_LENGTH, high=RANDOM_LENGTH)
        _check_name("policy_fingerprint", self.policy_fingerprint)
        _check_name("combiner", self.combiner)
        _check_name("hash_name", self.hash_name)
        suites = _check_tuple("suites", self.suites, 1, _MAX_SUITES)
        for i, suite in enumerate(suites):
            _check_suite("suites", suite, i)
        if len(set(suites)) != len(suites):
            raise _fail("suites: a suite is offered twice")
        shares = _check_tuple("key_shares", self.key_shares, low=0, high=_MAX_SHARES)
        if not all(isinstance(s, KeyShare) for s in shares):
            raise _fail("key_shares: entries must be KeyShare")
        if len({s.algorithm for s in self.key_shares}) != len(shares):
            raise _fail("key_shares: an algorithm has two key shares")
        _check_key_ids("qkd_key_ids", self.qkd_key_ids)
        if not isinstance(self.auth_method, AuthMethod):
            raise _fail("auth_method: unknown authentication method")
        if self.psk_id:
            _check_name("psk_id", self.psk_id)
        _check_binder(self.psk_binder, self.auth_method)

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
        cts = _check_tuple("ciphertexts", self.ciphertexts, low=0, high=_MAX_COMPONENTS)
        for i, ct in enumerate(cts):
            if ct.__class__ is not bytes or not ct:
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
        sigs = _check_tuple("signatures", self.signatures, low=1, high=_MAX_SIGNATURES)
        if not all(isinstance(s, SignatureEntry) for s in sigs):
            raise _fail("signatures: entries must be SignatureEntry")
        if len({s.algorithm for s in self.signatures}) != len(sigs):
            raise _fail("signatures: an algorithm signed twice")


@dataclass(frozen=True, kw_only=True, slots=True)
class Finished:
    """Key confirmation: an HMAC over the whole transcript so far."""

    TYPE: ClassVar[MessageType] = MessageType.FINISHED

    verify_data: bytes

    def __post_init__(self) -> None:
        _check_bytes("verify_data", self.verify_data, low=32, high=64)


Message = ClientHello | ServerHello | Auth | Finished


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")


@functools.lru_cache(maxsize=1024)
def _name(value: str) -> bytes:
    # Names repeat (algorithms, fingerprints, combiners): each is encoded once. Every value
    # reaching here passed _check_name, so it is ASCII of at most 128 characters.
    raw = value.encode("ascii")
    return _U8.pack(len(raw)) + raw


_U8_VALUES = tuple(_U8.pack(n) for n in range(256))
_U16_VALUES = tuple(_U16.pack(n) for n in range(_MAX_COMPONENTS + 1))


def _key_ids(key_ids: tuple[str, ...]) -> bytes:
    """The encoded QKD key ID list of a hello (checked: a caller's IDs, not yet validated)."""
    if not key_ids:
        return b"\x00\x00"
    _check_key_ids("qkd_key_ids", key_ids)
    return _names(key_ids)


def _blob(value: bytes) -> bytes:
    return _U32.pack(len(value)) + value


def _names(values: tuple[str, ...]) -> bytes:
    return _U16.pack(len(values)) + b"".join([_name(v) for v in values])


@functools.lru_cache(maxsize=256)
def _suites(suites: tuple[tuple[str, ...], ...]) -> bytes:
    return _U16.pack(len(suites)) + b"".join([_names(suite) for suite in suites])


def _body(message: Message) -> bytes:
    kind = message.__class__
    if kind is ClientHello:
        assert isinstance(message, ClientHello)
        shares = message.key_shares
        return b"".join(
            [
                message.random,
                _name(message.policy_fingerprint),
                _name(message.combiner),
                _name(message.hash_name),
                _suites(message.suites),
                _U16.pack(len(shares)),
                *[_name(s.algorithm) + _blob(s.public_key) for s in shares],
                _names(message.qkd_key_ids),
                _U8.pack(message.auth_method),
                _name(message.psk_id),
                _U8.pack(len(message.psk_binder)),
                message.psk_binder,
            ]
        )
    if kind is ServerHello:
        assert isinstance(message, ServerHello)
        cts = message.ciphertexts
        return b"".join(
            [
                message.random,
                _name(message.policy_fingerprint),
                _names(message.suite),
                _U16.pack(len(cts)),
                *[_blob(ct) for ct in cts],
                _names(message.qkd_key_ids),
            ]
        )
    if kind is Auth:
        assert isinstance(message, Auth)
        sigs = message.signatures
        return b"".join(
            [_U16.pack(len(sigs)), *[_name(s.algorithm) + _blob(s.signature) for s in sigs]]
        )
    assert isinstance(message, Finished)
    return _U8.pack(len(message.verify_data)) + message.verify_data


_FINISHED_HEADERS = {
    n: _HEADER.pack(MessageType.FINISHED, PROTOCOL_VERSION, 1 + n) + _U8.pack(n)
    for n in (32, 48, 64)
}


def encode_finished(verify_data: bytes) -> bytes:
    """``encode(Finished(verify_data=verify_data))`` without building the message object: for
    a MAC this side has just computed (a digest of 32, 48 or 64 bytes), checked all the same."""
    header = _FINISHED_HEADERS.get(len(verify_data)) if verify_data.__class__ is bytes else None
    if header is None:
        return encode(Finished(verify_data=verify_data))  # validates, and raises
    return header + verify_data


class HelloTemplate:
    """The frames of this side's hellos, with everything that stays the same between
    handshakes (fingerprint, combiner, hash, suites, algorithm names, PSK id) checked and
    encoded once; only the random, the public keys or ciphertexts and the QKD key IDs change.

    ``client(...)`` and ``server(...)`` return exactly what ``encode(ClientHello(...))`` and
    ``encode(ServerHello(...))`` would (a test holds them to that), without building the
    message objects.
    """

    __slots__ = ("_fixed_size", "_heads", "_prefix", "_psk", "_suffix", "_type", "_type_byte")

    def __init__(
        self,
        kind: MessageType,
        prefix: bytes,
        heads: tuple[bytes, ...],
        suffix: bytes,
        psk: bool = False,
    ) -> None:
        self._type = kind
        self._type_byte = int(kind)
        self._prefix = prefix
        self._heads = heads
        self._suffix = suffix
        self._psk = psk
        # The body bytes that do not vary: random, prefix, and for a ClientHello the names
        # and length fields of the key shares, the suffix and the binder's length byte.
        self._fixed_size = RANDOM_LENGTH + len(prefix)
        if kind is MessageType.CLIENT_HELLO:
            self._fixed_size += sum(len(head) + 4 for head in heads) + len(suffix) + 1

    @classmethod
    def client_hello(
        cls,
        *,
        policy_fingerprint: str,
        combiner: str,
        hash_name: str,
        suites: tuple[tuple[str, ...], ...],
        algorithms: tuple[str, ...],
        auth_method: AuthMethod,
        psk_id: str,
    ) -> HelloTemplate:
        """The ClientHello that offers ``suites`` with one key share per ``algorithms``."""
        # A ClientHello with placeholder random and keys runs every check on the fixed fields.
        ClientHello(
            random=bytes(RANDOM_LENGTH),
            policy_fingerprint=policy_fingerprint,
            combiner=combiner,
            hash_name=hash_name,
            suites=suites,
            key_shares=tuple(KeyShare(algorithm=a, public_key=b"\x00") for a in algorithms),
            auth_method=auth_method,
            psk_id=psk_id,
        )
        prefix = b"".join(
            [
                _name(policy_fingerprint),
                _name(combiner),
                _name(hash_name),
                _suites(suites),
                _U16.pack(len(algorithms)),
            ]
        )
        suffix = _U8.pack(auth_method) + _name(psk_id)
        heads = tuple(_name(a) for a in algorithms)
        psk = auth_method is AuthMethod.PSK
        return cls(MessageType.CLIENT_HELLO, prefix, heads, suffix, psk)

    @classmethod
    def server_hello(cls, *, policy_fingerprint: str, suite: tuple[str, ...]) -> HelloTemplate:
        """The ServerHello that chooses ``suite``; one ciphertext per KEM goes in it."""
        _check_name("policy_fingerprint", policy_fingerprint)
        _check_suite("suite", suite)
        prefix = _name(policy_fingerprint) + _names(suite)
        return cls(MessageType.SERVER_HELLO, prefix, (), b"")

    def client(
        self,
        random: bytes,
        public_keys: list[bytes],
        qkd_key_ids: tuple[str, ...] = (),
        binder_length: int = 0,
    ) -> bytes:
        """The ClientHello frame with these key shares (in the template's algorithm order).

        With ``binder_length``, the frame stops short of its PSK binder: its header and the
        binder's length byte already count the ``binder_length`` bytes that the caller
        computes over these bytes and appends (as a TLS 1.3 PSK binder covers a truncated
        ClientHello). Without, the frame is whole.
        """
        heads = self._heads
        if len(random) != RANDOM_LENGTH or len(public_keys) != len(heads):
            raise _fail("ClientHello: a random of 32 bytes and one key share per algorithm")
        if binder_length and (not self._psk or not 0 < binder_length <= MAX_BINDER):
            raise _fail("psk_binder: only a ClientHello that authenticates by PSK carries one")
        ids = _key_ids(qkd_key_ids) if qkd_key_ids else b"\x00\x00"
        # The body: the random, the fixed prefix, each key share (name, u32 length, key), the
        # key IDs, the fixed suffix, the binder's length byte (and then the binder itself).
        parts = [b"", random, self._prefix]  # parts[0]: the header, once the length is known
        size = self._fixed_size + len(ids) + binder_length
        for head, public_key in zip(heads, public_keys, strict=False):  # lengths checked
            n = len(public_key)
            if not n:
                raise _fail("key_share.public_key: 0 bytes, expected at least 1")
            size += n
            parts += (head, _U32.pack(n), public_key)
        parts += (ids, self._suffix, _U8_VALUES[binder_length])
        return self._frame(parts, size)

    def server(
        self, random: bytes, ciphertexts: list[bytes], qkd_key_ids: tuple[str, ...] = ()
    ) -> bytes:
        """The ServerHello frame with these ciphertexts (in the suite's KEM order)."""
        if len(random) != RANDOM_LENGTH or len(ciphertexts) > _MAX_COMPONENTS:
            raise _fail("ServerHello: a random of 32 bytes and at most one ciphertext per KEM")
        ids = _key_ids(qkd_key_ids) if qkd_key_ids else b"\x00\x00"
        parts = [b"", random, self._prefix, _U16_VALUES[len(ciphertexts)]]
        size = self._fixed_size + 2 + len(ids)
        for ciphertext in ciphertexts:
            n = len(ciphertext)
            if not n:
                raise _fail("ciphertexts: 0 bytes, expected at least 1")
            size += 4 + n
            parts += (_U32.pack(n), ciphertext)
        parts.append(ids)
        return self._frame(parts, size)

    def _frame(self, parts: list[bytes], body_length: int) -> bytes:
        """Join ``parts`` (whose first, empty entry becomes the header) into one frame."""
        if body_length > MAX_FRAME_BODY:
            raise HandshakeError(f"{self._type.name} of {body_length} bytes exceeds the limit")
        parts[0] = _HEADER.pack(self._type_byte, PROTOCOL_VERSION, body_length)
        return b"".join(parts)


def encode(message: Message) -> bytes:
    """The framed wire form of ``message``."""
    body = _body(message)
    if len(body) > MAX_FRAME_BODY:
        raise HandshakeError(f"{type(message).__name__} of {len(body)} bytes exceeds the limit")
    return _HEADER.pack(message.TYPE, PROTOCOL_VERSION, len(body)) + body


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


class _Reader:
    """Reads length-checked fields from one message body.

    Every read checks the bytes left before taking them, so a short body raises
    :class:`HandshakeError` naming the field, never IndexError or struct.error.
    """

    __slots__ = ("_data", "_pos", "_size", "_what")

    def __init__(self, data: bytes, start: int, what: str) -> None:
        # Reads in place from ``start`` (a frame's body follows its header): no copy of the body.
        self._data = data
        self._pos = start
        self._size = len(data)
        self._what = what

    def _truncated(self, field: str) -> HandshakeError:
        return HandshakeError(f"{self._what}: truncated in {field}")

    def take(self, n: int, field: str) -> bytes:
        pos = self._pos
        end = pos + n
        if end > self._size:
            raise self._truncated(field)
        self._pos = end
        return self._data[pos:end]

    def u8(self, field: str) -> int:
        pos = self._pos
        if pos >= self._size:
            raise self._truncated(field)
        self._pos = pos + 1
        return self._data[pos]

    def count(self, field: str, limit: int) -> int:
        pos = self._pos
        if pos + 2 > self._size:
            raise self._truncated(field)
        self._pos = pos + 2
        n: int = _U16.unpack_from(self._data, pos)[0]
        if n > limit:
            raise HandshakeError(f"{self._what}: {field} has {n} entries, at most {limit}")
        return n

    def name(self, field: str) -> str:
        # One call per field on the hot path: length byte, bounds check, ASCII decode.
        data, pos = self._data, self._pos
        if pos >= self._size:
            raise self._truncated(field)
        end = pos + 1 + data[pos]
        if end > self._size:
            raise self._truncated(field)
        self._pos = end
        try:
            return data[pos + 1 : end].decode("ascii")
        except UnicodeDecodeError:
            raise HandshakeError(f"{self._what}: {field} is not ASCII") from None

    def blob(self, field: str) -> bytes:
        data, pos = self._data, self._pos
        start = pos + 4
        if start > self._size:
            raise self._truncated(field)
        end = start + _U32.unpack_from(data, pos)[0]
        if end > self._size:
            raise self._truncated(field)
        self._pos = end
        return data[start:end]

    def names(self, field: str, limit: int) -> tuple[str, ...]:
        n = self.count(field, limit)
        if n == 0:
            return ()
        name = self.name
        return tuple([name(field) for _ in range(n)])

    def finish(self) -> None:
        if self._pos != self._size:
            raise HandshakeError(f"{self._what}: {self._size - self._pos} trailing bytes")


# Messages whose fields a decoder (or a template) has just checked field by field are built
# without running __post_init__ again: the checks are the same ones, made once.
_new = object.__new__
_set = object.__setattr__
_M = TypeVar("_M", KeyShare, ClientHello, ServerHello, Finished)


def _trusted(cls: type[_M], **fields: object) -> _M:
    """A ``cls`` with ``fields``, which the caller has checked, set as they are."""
    message = _new(cls)
    for name, value in fields.items():
        _set(message, name, value)
    return message


# A hello whose fixed bytes all equal those of a hello accepted before, and whose variable
# fields (random, key shares or ciphertexts, PSK binder) have the same lengths, decodes to the
# same fields with the new variable bytes: decoding is deterministic, and those fields are
# checked by their length alone. Such a hello is the common case (every handshake with the same
# peer), so each accepted hello leaves its layout: the frame cut into (fixed bytes, length of the
# variable field after them) pairs, with the fields that the fixed bytes decode to. Matching a
# layout costs one comparison and one slice per field. Bounded; hellos with QKD key IDs, which
# change every handshake, take the full path and are not remembered.
_LAYOUT_CACHE_SIZE = 16
_T = TypeVar("_T")


class _Layout(Generic[_T]):
    """One accepted frame's fixed bytes and variable-field lengths, and what it decoded to.

    A frame of the same total length has every field at the same offset, so matching is a
    comparison at each fixed offset and taking the variable fields is one ``itemgetter`` of
    precomputed slices (at least two: the random, and the field after the last fixed part).
    """

    __slots__ = ("_cut", "_fixed", "_offsets", "cuts", "fields", "size")

    def __init__(self, cuts: tuple[tuple[bytes, int], ...], fields: _T) -> None:
        self.cuts = cuts
        self.fields = fields
        offsets: list[int] = []
        slices: list[slice] = []
        pos = 0
        for fixed, n in cuts:
            offsets.append(pos)
            pos += len(fixed)
            slices.append(slice(pos, pos + n))
            pos += n
        self.size = pos
        self._fixed = tuple(fixed for fixed, _ in cuts)
        self._offsets = tuple(offsets)
        self._cut = operator.itemgetter(*slices)

    def match(self, frame: bytes) -> tuple[bytes, ...] | None:
        """The variable fields of ``frame`` if it has this layout, else None."""
        if len(frame) == self.size and all(map(frame.startswith, self._fixed, self._offsets)):
            parts: tuple[bytes, ...] = self._cut(frame)
            return parts
        return None


class _LayoutCache(Generic[_T]):
    """Accepted layouts, oldest first. ``entries`` is a tuple replaced whole when it changes,
    so threads decoding at the same time each iterate over a consistent one."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: tuple[_Layout[_T], ...] = ()

    def remember(self, frame: bytes, layout: _Layout[_T], variable: tuple[bytes, ...]) -> None:
        # The layout was rebuilt from the decoded fields: keep it only if it gives back this
        # very frame's variable fields (so it can never decode a frame differently).
        if layout.match(frame) != variable:
            return
        kept = tuple(entry for entry in self.entries if entry.cuts != layout.cuts)
        self.entries = (*kept[-(_LAYOUT_CACHE_SIZE - 1) :], layout)


# ClientHello: (fingerprint, combiner, hash_name, suites, share algorithms, method, psk_id)
_ChFields = tuple[str, str, str, tuple[tuple[str, ...], ...], tuple[str, ...], AuthMethod, str]
_CH_LAYOUTS: _LayoutCache[_ChFields] = _LayoutCache()
# ServerHello: (fingerprint, suite)
_SH_LAYOUTS: _LayoutCache[tuple[str, tuple[str, ...]]] = _LayoutCache()


class ClientHelloFields(NamedTuple):
    """A received ClientHello as the state machine reads it: the fields of
    :class:`ClientHello`, with the key shares as two parallel tuples.

    A tuple rather than the message class, because the machine reads one per handshake and a
    hello matching a remembered layout needs no per-field object set-up; every field has had
    exactly the checks that decoding a :class:`ClientHello` runs.
    """

    random: bytes
    policy_fingerprint: str
    combiner: str
    hash_name: str
    suites: tuple[tuple[str, ...], ...]
    algorithms: tuple[str, ...]  # of the key shares, in order
    public_keys: tuple[bytes, ...]
    qkd_key_ids: tuple[str, ...]
    auth_method: AuthMethod
    psk_id: str
    psk_binder: bytes

    def share(self, algorithm: str) -> bytes | None:
        """The public key offered for ``algorithm``, or None."""
        algorithms = self.algorithms
        return self.public_keys[algorithms.index(algorithm)] if algorithm in algorithms else None


class ServerHelloFields(NamedTuple):
    """A received ServerHello as the state machine reads it (see :class:`ClientHelloFields`)."""

    random: bytes
    policy_fingerprint: str
    suite: tuple[str, ...]
    ciphertexts: tuple[bytes, ...]
    qkd_key_ids: tuple[str, ...]


_new_tuple = tuple.__new__
# The type bytes as plain ints (an IntEnum member is looked up on its class at every use).
_CLIENT_HELLO = int(MessageType.CLIENT_HELLO)
_SERVER_HELLO = int(MessageType.SERVER_HELLO)
_FINISHED = int(MessageType.FINISHED)


def _layout_client_hello(frame: bytes) -> ClientHelloFields | None:
    """The ClientHello in ``frame`` if a remembered layout matches it, else None."""
    for layout in _CH_LAYOUTS.entries:
        parts = layout.match(frame)
        if parts is not None:
            fingerprint, combiner, hash_name, suites, algorithms, method, psk_id = layout.fields
            return _new_tuple(
                ClientHelloFields,
                (
                    parts[0],
                    fingerprint,
                    combiner,
                    hash_name,
                    suites,
                    algorithms,
                    parts[1:-1],
                    (),
                    method,
                    psk_id,
                    parts[-1],
                ),
            )
    return None


def _layout_server_hello(frame: bytes) -> ServerHelloFields | None:
    """The ServerHello in ``frame`` if a remembered layout matches it, else None."""
    for layout in _SH_LAYOUTS.entries:
        parts = layout.match(frame)
        if parts is not None:
            fingerprint, suite = layout.fields
            return _new_tuple(ServerHelloFields, (parts[0], fingerprint, suite, parts[1:-1], ()))
    return None


def _client_hello_message(hello: ClientHelloFields) -> ClientHello:
    shares = zip(hello.algorithms, hello.public_keys, strict=True)
    return _trusted(
        ClientHello,
        random=hello.random,
        policy_fingerprint=hello.policy_fingerprint,
        combiner=hello.combiner,
        hash_name=hello.hash_name,
        suites=hello.suites,
        key_shares=tuple([_trusted(KeyShare, algorithm=a, public_key=k) for a, k in shares]),
        qkd_key_ids=hello.qkd_key_ids,
        auth_method=hello.auth_method,
        psk_id=hello.psk_id,
        psk_binder=hello.psk_binder,
    )


def _server_hello_message(hello: ServerHelloFields) -> ServerHello:
    return _trusted(ServerHello, **hello._asdict())


def _decode_client_hello(r: _Reader) -> ClientHelloFields:
    header = r._data[: r._pos]
    random = r.take(RANDOM_LENGTH, "random")
    fingerprint = r.name("policy_fingerprint")
    combiner = r.name("combiner")
    hash_name = r.name("hash_name")
    names = r.names
    n_suites = r.count("suites", _MAX_SUITES)
    suites = tuple([names("suite", _MAX_COMPONENTS) for _ in range(n_suites)])
    n_shares = r.count("key_shares", _MAX_SHARES)
    _check_name("policy_fingerprint", fingerprint)
    _check_name("combiner", combiner)
    _check_name("hash_name", hash_name)
    _check_tuple("suites", suites, 1, _MAX_SUITES)
    for i, suite in enumerate(suites):
        _check_suite("suites", suite, i)
    if len(set(suites)) != len(suites):
        raise _fail("suites: a suite is offered twice")
    name, blob = r.name, r.blob
    algorithm_list, public_key_list = [], []
    for _ in range(n_shares):
        algorithm = name("key_share.algorithm")
        public_key = blob("key_share")
        _check_name("key_share.algorithm", algorithm)
        if not public_key:
            raise _fail("key_share.public_key: 0 bytes, expected at least 1")
        algorithm_list.append(algorithm)
        public_key_list.append(public_key)
    algorithms, public_keys = tuple(algorithm_list), tuple(public_key_list)
    if len(set(algorithms)) != n_shares:
        raise _fail("key_shares: an algorithm has two key shares")
    key_ids = r.names("qkd_key_ids", _MAX_KEY_IDS)
    if key_ids:
        _check_key_ids("qkd_key_ids", key_ids)
    method = _AUTH_METHODS.get(r.u8("auth_method"))
    if method is None:
        raise HandshakeError("ClientHello: unknown auth method")
    psk_id = name("psk_id")
    if psk_id:
        _check_name("psk_id", psk_id)
    binder = r.take(r.u8("psk_binder"), "psk_binder")
    if binder:
        _check_binder(binder, method)
    r.finish()
    hello = ClientHelloFields(
        random,
        fingerprint,
        combiner,
        hash_name,
        suites,
        algorithms,
        public_keys,
        key_ids,
        method,
        psk_id,
        binder,
    )
    if not key_ids:
        fields: _ChFields = (fingerprint, combiner, hash_name, suites, algorithms, method, psk_id)
        heads = [_name(a) + _U32.pack(len(k)) for a, k in zip(algorithms, public_keys, strict=True)]
        heads[0:1] = [
            _name(fingerprint)
            + _name(combiner)
            + _name(hash_name)
            + _suites(suites)
            + _U16.pack(n_shares)
            + (heads[0] if heads else b"")
        ]
        trailer = b"\x00\x00" + _U8.pack(method) + _name(psk_id) + _U8.pack(len(binder))
        cuts = [(header, RANDOM_LENGTH)]
        if public_keys:
            cuts += list(zip(heads, map(len, public_keys), strict=True))
            cuts.append((trailer, len(binder)))
        else:
            cuts.append((heads[0] + trailer, len(binder)))
        variable = (random, *public_keys, binder)
        _CH_LAYOUTS.remember(r._data, _Layout(tuple(cuts), fields), variable)
    return hello


def _decode_server_hello(r: _Reader) -> ServerHelloFields:
    header = r._data[: r._pos]
    random = r.take(RANDOM_LENGTH, "random")
    fingerprint = r.name("policy_fingerprint")
    suite = r.names("suite", _MAX_COMPONENTS)
    n_cts = r.count("ciphertexts", _MAX_COMPONENTS)
    _check_name("policy_fingerprint", fingerprint)
    _check_suite("suite", suite)
    blob = r.blob
    cts = tuple([blob("ciphertext") for _ in range(n_cts)])
    for i, ct in enumerate(cts):
        if not ct:
            raise _fail(f"ciphertexts[{i}]: 0 bytes, expected at least 1")
    key_ids = r.names("qkd_key_ids", _MAX_KEY_IDS)
    if key_ids:
        _check_key_ids("qkd_key_ids", key_ids)
    r.finish()
    hello = ServerHelloFields(random, fingerprint, suite, cts, key_ids)
    if not key_ids:
        heads = [_U32.pack(len(ct)) for ct in cts]
        prefix = _name(fingerprint) + _names(suite) + _U16.pack(n_cts)
        cuts = [(header, RANDOM_LENGTH)]
        if cts:
            heads[0] = prefix + heads[0]
            cuts += list(zip(heads, map(len, cts), strict=True))
            cuts.append((b"\x00\x00", 0))
        else:
            cuts.append((prefix + b"\x00\x00", 0))
        variable = (random, *cts, b"")
        _SH_LAYOUTS.remember(r._data, _Layout(tuple(cuts), (fingerprint, suite)), variable)
    return hello


def _decode_auth(r: _Reader) -> Auth:
    name, blob = r.name, r.blob
    sigs = tuple(
        [
            SignatureEntry(algorithm=name("signature.algorithm"), signature=blob("signature"))
            for _ in range(r.count("signatures", _MAX_SIGNATURES))
        ]
    )
    r.finish()
    return Auth(signatures=sigs)


def _decode_finished(r: _Reader) -> Finished:
    verify_data = r.take(r.u8("verify_data"), "verify_data")
    r.finish()
    return Finished(verify_data=verify_data)


_AUTH_METHODS = {int(m): m for m in AuthMethod}
# type byte -> (name used in errors, decoder)
# type byte -> (name used in errors, decoder) of the messages the machine reads as objects; the
# hellos are read as tuples (read_client_hello, read_server_hello).
_DECODERS: dict[int, tuple[str, Callable[[_Reader], Auth | Finished]]] = {
    MessageType.AUTH: ("AUTH", _decode_auth),
    MessageType.FINISHED: ("FINISHED", _decode_finished),
}
_MESSAGE_TYPES = frozenset(int(kind) for kind in MessageType)


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
    kind = frame[0]
    if kind == MessageType.FINISHED and 40 <= len(frame) <= 72 and frame[7] == len(frame) - 8:
        # A length byte and a MAC of 32-64 bytes, exactly: what Finished checks, checked here.
        return _trusted(Finished, verify_data=frame[8:])
    if kind == MessageType.CLIENT_HELLO:
        return _client_hello_message(read_client_hello(frame))
    if kind == MessageType.SERVER_HELLO:
        return _server_hello_message(read_server_hello(frame))
    what, decoder = _DECODERS[kind]
    return decoder(_Reader(frame, HEADER_LENGTH, what))


# --------------------------------------------------------------------------------------------
# Reading: what the state machine takes from a frame, as plain tuples
# --------------------------------------------------------------------------------------------


def read_client_hello(frame: bytes) -> ClientHelloFields:
    """The ClientHello in ``frame`` (a whole frame, as :func:`decode_frame` takes), as the state
    machine reads it; raises :class:`HandshakeError` as decoding does."""
    if frame[0] != _CLIENT_HELLO:
        raise HandshakeError(f"expected a ClientHello, got message type {frame[0]}")
    hello = _layout_client_hello(frame)
    if hello is None:
        hello = _decode_client_hello(_Reader(frame, HEADER_LENGTH, "CLIENT_HELLO"))
    return hello


def read_server_hello(frame: bytes) -> ServerHelloFields:
    """The ServerHello in ``frame`` (see :func:`read_client_hello`)."""
    if frame[0] != _SERVER_HELLO:
        raise HandshakeError(f"expected a ServerHello, got message type {frame[0]}")
    hello = _layout_server_hello(frame)
    if hello is None:
        hello = _decode_server_hello(_Reader(frame, HEADER_LENGTH, "SERVER_HELLO"))
    return hello


def read_finished(frame: bytes) -> bytes:
    """The verify_data of the Finished in ``frame`` (see :func:`read_client_hello`)."""
    if frame[0] == _FINISHED and 40 <= len(frame) <= 72 and frame[7] == len(frame) - 8:
        return frame[8:]  # a length byte and a MAC of 32-64 bytes: what Finished checks
    finished = decode_frame(frame)
    if not isinstance(finished, Finished):
        raise HandshakeError(f"expected a Finished, got {type(finished).__name__}")
    return finished.verify_data


def read_auth(frame: bytes) -> Auth:
    """The Auth in ``frame`` (see :func:`read_client_hello`)."""
    auth = decode_frame(frame)
    if not isinstance(auth, Auth):
        raise HandshakeError(f"expected an Auth, got {type(auth).__name__}")
    return auth


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
