"""Trusted-node key relay, one hop: the relay message and its Wegman-Carter authentication.

Hazmat: plain bytes, no I/O, no public-key assumption. A node that relays a key from the
origin of a path to its end sends, over each link of the path, one *relay frame* that
one-time-pads the key with fresh link key and authenticates the frame with link key too.

Theory of operation
-------------------
Link key. The two ends of a link hold the same QKD key; each holds it in a
:class:`LinkKeyLedger`, which hands out every byte at most once (``take`` on the sending
side, ``consume`` on the receiving side, both by offset). One direction of a link uses one
pair of ledgers (a link that relays both ways splits its key by direction).

One hop. For a key ``K`` of ``n`` bytes, the sender takes ``m = 32 + 32 * ceil(n / 32)``
fresh bytes at an offset ``o`` that is a multiple of 32 and splits them
``r_bytes (16) | s_bytes (16) | pad (n) | unused (m - 32 - n)``:

- the relayed key travels as ``C = K XOR pad`` (a one-time pad: ``C`` is independent of
  ``K`` when ``pad`` is uniform and used once);
- the frame is ``M || T`` where ``M`` is the canonical encoding of the message (version,
  key_ID, master and slave SAE IDs, path, hop, link, ``o``, ``m``, ``C``; docs/kme.md lists
  every field) and ``T`` a 16-byte tag. Every field that decides where the key goes, who may
  fetch it at the far node and what it is (its ID, its SAEs, its path, its length) is in
  ``M``, so under the tag: the inter-KME TLS carries the frames, but nothing of the relay's
  integrity rests on it (version 2 of the message; version 1 left the SAE IDs outside).

The tag (Wegman-Carter [WC81], polynomial hash [dB93; Sho96], pad added mod 2^128 as in
Poly1305 [Ber05]). Let ``p = 2^127 - 1`` (prime). Split ``M`` into ``L = ceil(|M| / 15)``
blocks of 15 bytes (the last one zero-padded on the right), read each big-endian as
``c_1..c_L < 2^120 < p``, and append ``c_{L+1} = |M|`` (the byte length). With the hash key
``r = int(r_bytes) mod 2^127`` (taken mod p) and the pad ``s = int(s_bytes)``::

    h_r(M) = sum_{i=1}^{L+1} c_i * r^(L+2-i)  mod p        (Horner, one step per block)
    T      = (h_r(M) + s) mod 2^128                         (16 bytes, big-endian)

The ε bound. For ``M != M'``, ``h_r(M) - h_r(M')`` is a polynomial in ``r`` with no constant
term, of degree at most ``d = max(L, L') + 1``, and it is not the zero polynomial: same
length means some block differs (blocks are < p, so they differ mod p); different lengths
mean the coefficient of ``r^1``, ``|M| - |M'|``, is non-zero mod p. For any target
difference ``δ`` the polynomial ``h_r(M) - h_r(M') - δ`` is thus non-zero of degree <= d
and has at most ``d`` roots mod p. Because ``s`` is uniform on ``[0, 2^128)`` and used once,
the tag ``T`` of a genuine frame tells the adversary nothing about ``r``; a substituted frame
``(M', T')`` is accepted only if ``h_r(M') - h_r(M) ≡ T' - T (mod 2^128)``, and since both
hashes lie in ``[0, p)`` with ``2p - 1 < 2^128`` that fixes one integer ``δ``. Every residue
of ``r`` mod p has probability at most ``2 / 2^127`` (127 uniform bits; 0 and p both map to
0), so

    Pr[forgery] <= d * 2^-126,   d = (number of 15-byte blocks of the longer message) + 1.

A relay of a 32-byte key over a 4-node path (one-letter names, link "A-B", SAEs "sae-a" and
"sae-d") is an 89-byte message, 6 blocks: ε <= 7 * 2^-126 < 2^-123.1. The largest message
this module accepts (two SAE IDs of 255 bytes, 16 names and a link of 64 bytes, a 1,024-byte
key) is 2,674 bytes, 179 blocks: ε <= 180 * 2^-126 < 2^-118.5. A failed verification
consumes nothing (so an injected frame cannot burn the receiver's link key and desynchronise
the ends); an adversary who makes q attempts against one genuine frame's key succeeds with
probability at most ``q * ε`` [WC81; Sho96].
Wegman-Carter with one-time keys is composably secure as a QKD authentication [Por14].

Why 32-byte slots. The frame names its own link key (offset, length), so an adversary who
blocks a genuine frame may send one that names other bytes. Because every frame starts on a
32-byte boundary and its hash key and tag pad fill that first 32-byte slot, the slot a
substituted frame names is either another frame's authentication slot (then the bound above
holds for that frame) or bytes that never entered a tag: a pad, whose only trace is
``K XOR pad`` with ``K`` secret, unused slack, or key not yet handed out. To the adversary
those are uniform, so ``s`` alone makes such a tag right with probability ``2^-128``. Without
the alignment a shifted offset would mix bytes of ``r``, ``s`` and the pad, and the tag's
proof would not cover it.

Order at the receiver (:func:`open_hop`): decode; check the link and that the ledger holds
the named material unused (a peek, nothing consumed); verify the tag in constant time
(``hmac.compare_digest``); only then consume the material (so a replay is refused) and
unpad. Nothing is stored by this module.

Sources
-------
- [WC81] M. N. Wegman, J. L. Carter, "New hash functions and their use in authentication and
  set equality", J. Computer and System Sciences 22 (1981) 265-279.
- [dB93] B. den Boer, "A simple and key-economical unconditional authentication scheme",
  J. Computer Security 2 (1993) 65-71.
- [Sho96] V. Shoup, "On fast and provably secure message authentication based on universal
  hashing", CRYPTO 1996.
- [Ber05] D. J. Bernstein, "The Poly1305-AES message-authentication code", FSE 2005.
- [Por14] C. Portmann, "Key recycling in authentication", IEEE Trans. Inf. Theory 60 (2014).
- ITU-T Y.3803 (2020), QKD networks - key management (hop-by-hop key relay by trusted nodes);
  ETSI GS QKD 020 (draft), the ``keys[{key_ID, value, extension}]`` shape of a relayed key.
"""

from __future__ import annotations

import bisect
import hmac
import uuid
from dataclasses import dataclass, field

from qkd._errors import QKDError

__all__ = [
    "AUTH_KEY_BYTES",
    "MAX_KEY_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PATH_NODES",
    "MAX_SAE_ID_BYTES",
    "SLOT_BYTES",
    "TAG_BYTES",
    "VERSION",
    "LinkKeyError",
    "LinkKeyLedger",
    "OpenedHop",
    "RelayAuthenticationError",
    "RelayDecodeError",
    "RelayError",
    "RelayMessage",
    "decode",
    "encode",
    "link_key_bytes",
    "open_hop",
    "seal_hop",
    "wegman_carter_tag",
]

VERSION = 2  # 2: the master and slave SAE IDs are part of the message, under the tag
TAG_BYTES = 16
AUTH_KEY_BYTES = 32  # 16 bytes of hash key r, 16 bytes of tag pad s
SLOT_BYTES = 32  # frames start on, and take whole, 32-byte slots of link key
MAX_PATH_NODES = 16
MAX_NAME_BYTES = 64
MAX_SAE_ID_BYTES = 255
MAX_KEY_BYTES = 1024
_P = (1 << 127) - 1
_BLOCK = 15
_MASK127 = (1 << 127) - 1
_MASK128 = (1 << 128) - 1


def link_key_bytes(key_bytes: int) -> int:
    """Link key one hop of a ``key_bytes`` key uses: 32 + the key rounded up to 32 bytes."""
    return AUTH_KEY_BYTES + -(-key_bytes // SLOT_BYTES) * SLOT_BYTES


class RelayError(QKDError):
    """Root of the key-relay errors. Messages never contain key bytes."""


class RelayDecodeError(RelayError):
    """A relay frame or message is malformed (truncated, extended, bad field)."""


class RelayAuthenticationError(RelayError):
    """A relay frame's tag does not verify, or it names another link."""


class LinkKeyError(RelayError):
    """Link key is exhausted, not held, or would be used a second time."""


@dataclass(frozen=True, kw_only=True)
class RelayMessage:
    """One hop of a relayed key: from ``path[hop]`` to ``path[hop + 1]`` over ``link``.

    ``master_sae_id`` asked for the key at ``path[0]``; ``slave_sae_id`` at ``path[-1]`` is the
    only SAE the far node lets fetch it.
    ``offset``/``length`` name the link-key bytes the hop consumed (``offset`` a multiple of
    32, ``length`` always :func:`link_key_bytes` of the key length); ``padded_key`` is the key
    XOR the ``len(key)`` bytes that follow the first 32 of them.
    """

    key_id: uuid.UUID
    master_sae_id: str
    slave_sae_id: str
    path: tuple[str, ...]
    hop: int
    link: str
    offset: int
    length: int
    padded_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, uuid.UUID):
            raise RelayDecodeError("key_id: must be a UUID")
        _check_name("master_sae_id", self.master_sae_id, MAX_SAE_ID_BYTES)
        _check_name("slave_sae_id", self.slave_sae_id, MAX_SAE_ID_BYTES)
        if not isinstance(self.path, tuple) or not 2 <= len(self.path) <= MAX_PATH_NODES:
            raise RelayDecodeError(f"path: must be a tuple of 2 to {MAX_PATH_NODES} node names")
        for name in self.path:
            _check_name("path", name)
        if len(set(self.path)) != len(self.path):
            raise RelayDecodeError("path: a node appears twice")
        if not isinstance(self.hop, int) or not 0 <= self.hop < len(self.path) - 1:
            raise RelayDecodeError(f"hop: must be in 0..{len(self.path) - 2} for this path")
        _check_name("link", self.link)
        if not isinstance(self.offset, int) or not 0 <= self.offset < 1 << 64:
            raise RelayDecodeError("offset: must be in 0..2^64-1")
        if self.offset % SLOT_BYTES:
            raise RelayDecodeError(f"offset: must be a multiple of {SLOT_BYTES}")
        if not isinstance(self.padded_key, bytes) or not 1 <= len(self.padded_key) <= (
            MAX_KEY_BYTES
        ):
            raise RelayDecodeError(f"padded_key: must be 1 to {MAX_KEY_BYTES} bytes")
        if self.length != link_key_bytes(len(self.padded_key)):
            raise RelayDecodeError(
                "length: must be 32 (hash key and tag pad) + the key length rounded up to 32"
            )

    def encode(self) -> bytes:
        """The canonical encoding (docs/kme.md, "Key relay between KMEs")."""
        out = bytearray((VERSION,))
        out += self.key_id.bytes
        for sae in (self.master_sae_id, self.slave_sae_id):
            raw = sae.encode("utf-8")
            out.append(len(raw))
            out += raw
        out.append(len(self.path))
        for name in self.path:
            raw = name.encode("utf-8")
            out.append(len(raw))
            out += raw
        out.append(self.hop)
        link = self.link.encode("utf-8")
        out.append(len(link))
        out += link
        out += self.offset.to_bytes(8, "big")
        out += self.length.to_bytes(4, "big")
        out += len(self.padded_key).to_bytes(2, "big")
        out += self.padded_key
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> RelayMessage:
        """Parse an encoding; raise :class:`RelayDecodeError` for anything else."""
        return decode(data)


def _check_name(what: str, name: object, max_bytes: int = MAX_NAME_BYTES) -> None:
    if not isinstance(name, str):
        raise RelayDecodeError(f"{what}: names must be strings")
    if not 1 <= len(name.encode("utf-8", "surrogatepass")) <= max_bytes:
        raise RelayDecodeError(f"{what}: a name must be 1 to {max_bytes} UTF-8 bytes")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise RelayDecodeError(f"{what}: a name is not valid Unicode") from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise RelayDecodeError(f"relay message truncated in {what}")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def uint(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "big")

    def name(self, what: str) -> str:
        raw = self.take(self.uint(1, what), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RelayDecodeError(f"{what}: not valid UTF-8") from None

    def end(self) -> None:
        if self._pos != len(self._data):
            raise RelayDecodeError("relay message has trailing bytes")


def encode(message: RelayMessage) -> bytes:
    """The canonical encoding of ``message``."""
    return message.encode()


def decode(data: bytes) -> RelayMessage:
    """Parse one encoded relay message, or raise :class:`RelayDecodeError`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise RelayDecodeError("relay message must be bytes")
    r = _Reader(bytes(data))
    version = r.uint(1, "version")
    if version != VERSION:
        raise RelayDecodeError(f"relay message version {version} is not supported (only {VERSION})")
    key_id = uuid.UUID(bytes=r.take(16, "key_id"))
    master_sae_id = r.name("master_sae_id")
    slave_sae_id = r.name("slave_sae_id")
    count = r.uint(1, "path")
    path = tuple(r.name("path") for _ in range(count))
    hop = r.uint(1, "hop")
    link = r.name("link")
    offset = r.uint(8, "offset")
    length = r.uint(4, "length")
    padded_key = r.take(r.uint(2, "padded_key"), "padded_key")
    r.end()
    return RelayMessage(
        key_id=key_id,
        master_sae_id=master_sae_id,
        slave_sae_id=slave_sae_id,
        path=path,
        hop=hop,
        link=link,
        offset=offset,
        length=length,
        padded_key=padded_key,
    )


def wegman_carter_tag(message: bytes, auth_key: bytes) -> bytes:
    """``(h_r(message) + s) mod 2^128`` with ``r, s`` from the 32-byte one-time ``auth_key``.

    ``h_r`` is the polynomial hash over GF(2^127 - 1) of the module docstring; forging a tag
    for another message succeeds with probability at most ``(blocks + 1) * 2^-126``.
    """
    if len(auth_key) != AUTH_KEY_BYTES:
        raise RelayError(f"the authentication key must be {AUTH_KEY_BYTES} bytes")
    r = (int.from_bytes(auth_key[:16], "big") & _MASK127) % _P
    s = int.from_bytes(auth_key[16:], "big")
    h = 0
    for i in range(0, len(message), _BLOCK):
        block = message[i : i + _BLOCK].ljust(_BLOCK, b"\0")
        h = (h + int.from_bytes(block, "big")) * r % _P
    h = (h + len(message)) * r % _P
    return ((h + s) & _MASK128).to_bytes(TAG_BYTES, "big")


class LinkKeyLedger:
    """One end's link key for one direction of a link, each byte handed out at most once.

    The sender calls :meth:`take` (the next unused bytes and their offset); the receiver
    calls :meth:`consume` with the offset the message names. Either refuses a byte that was
    already used or that the ledger does not hold, with :class:`LinkKeyError`.
    """

    def __init__(self, link_id: str, key: bytes) -> None:
        _check_name("link", link_id)
        if not isinstance(key, bytes):
            raise LinkKeyError("the link key must be bytes")
        self.link_id = link_id
        self._key = key
        self._starts: list[int] = []  # sorted, disjoint [start, end) ranges already used
        self._ends: list[int] = []
        self._high = 0  # every byte from here on is unused

    def __repr__(self) -> str:
        return f"<LinkKeyLedger {self.link_id!r} {len(self._key)} bytes, {self.used_bytes} used>"

    @property
    def size(self) -> int:
        """Bytes of link key the ledger holds, used or not."""
        return len(self._key)

    @property
    def used_bytes(self) -> int:
        """Bytes handed out or consumed so far."""
        return sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    @property
    def used_ranges(self) -> tuple[tuple[int, int], ...]:
        """The used ``[start, end)`` byte ranges, sorted and disjoint."""
        return tuple(zip(self._starts, self._ends, strict=True))

    def _check_free(self, offset: int, nbytes: int) -> None:
        if nbytes <= 0:
            raise LinkKeyError("a link-key request must be at least 1 byte")
        if offset < 0 or offset + nbytes > len(self._key):
            raise LinkKeyError(
                f"link {self.link_id!r} does not hold bytes {offset}..{offset + nbytes} "
                f"(it holds {len(self._key)})"
            )
        i = bisect.bisect_right(self._starts, offset)
        overlaps_before = i > 0 and self._ends[i - 1] > offset
        overlaps_after = i < len(self._starts) and self._starts[i] < offset + nbytes
        if overlaps_before or overlaps_after:
            raise LinkKeyError(
                f"link {self.link_id!r}: bytes {offset}..{offset + nbytes} were already used"
            )

    def _mark(self, offset: int, nbytes: int) -> None:
        i = bisect.bisect_right(self._starts, offset)
        self._starts.insert(i, offset)
        self._ends.insert(i, offset + nbytes)
        self._high = max(self._high, offset + nbytes)

    def peek(self, offset: int, nbytes: int) -> bytes:
        """The unused bytes at ``offset`` without using them (for verification first)."""
        self._check_free(offset, nbytes)
        return self._key[offset : offset + nbytes]

    def take(self, nbytes: int, *, align: int = 1) -> tuple[int, bytes]:
        """Hand out ``nbytes`` fresh bytes: ``(offset, bytes)``; they are used from now on.

        The offset is the first multiple of ``align`` after every byte used so far.
        """
        if nbytes <= 0 or align <= 0:
            raise LinkKeyError("a link-key request must be at least 1 byte, align at least 1")
        offset = -(-self._high // align) * align
        if offset + nbytes > len(self._key):
            raise LinkKeyError(
                f"link {self.link_id!r} is exhausted: {nbytes} bytes asked, "
                f"{max(0, len(self._key) - offset)} left"
            )
        self._check_free(offset, nbytes)
        self._mark(offset, nbytes)
        return offset, self._key[offset : offset + nbytes]

    def consume(self, offset: int, nbytes: int) -> bytes:
        """Use the bytes a received message names; refuse reuse and bytes not held."""
        material = self.peek(offset, nbytes)
        self._mark(offset, nbytes)
        return material


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


@dataclass(frozen=True)
class OpenedHop:
    """What :func:`open_hop` returns: the verified fields of a relay frame and the key."""

    key_id: uuid.UUID
    key: bytes = field(repr=False)
    path: tuple[str, ...]
    hop: int
    master_sae_id: str
    slave_sae_id: str


def seal_hop(
    key_id: uuid.UUID,
    key: bytes,
    path: tuple[str, ...],
    hop: int,
    ledger: LinkKeyLedger,
    *,
    master_sae_id: str,
    slave_sae_id: str,
) -> bytes:
    """The relay frame for hop ``hop`` of ``path``: ``message || tag``, with fresh link key.

    The SAE IDs go under the tag with the rest. The arguments are checked before any link
    key is taken, so a refused call uses none.
    """
    if not isinstance(key, bytes):
        raise RelayError("the relayed key must be bytes")
    length = link_key_bytes(len(key))

    def build(offset: int, padded_key: bytes) -> RelayMessage:
        return RelayMessage(
            key_id=key_id,
            master_sae_id=master_sae_id,
            slave_sae_id=slave_sae_id,
            path=tuple(path),
            hop=hop,
            link=ledger.link_id,
            offset=offset,
            length=length,
            padded_key=padded_key,
        )

    build(0, bytes(len(key)))  # validate first: an invalid request must not burn link key
    offset, material = ledger.take(length, align=SLOT_BYTES)
    message = build(
        offset, _xor(key, material[AUTH_KEY_BYTES : AUTH_KEY_BYTES + len(key)])
    ).encode()
    return message + wegman_carter_tag(message, material[:AUTH_KEY_BYTES])


def open_hop(frame: bytes, ledger: LinkKeyLedger) -> OpenedHop:
    """Verify a relay frame, then consume its link key and return what it carries.

    Raises a :class:`RelayError` (and consumes nothing) for a malformed frame, another
    link, link key not held or already used (a replay), or a tag that does not verify.
    """
    if not isinstance(frame, bytes):
        raise RelayDecodeError("a relay frame must be bytes")
    if len(frame) <= TAG_BYTES:
        raise RelayDecodeError("relay frame too short")
    body, tag = frame[:-TAG_BYTES], frame[-TAG_BYTES:]
    message = decode(body)
    if message.link != ledger.link_id:
        raise RelayAuthenticationError(
            f"relay frame is for link {message.link!r}, this ledger is {ledger.link_id!r}"
        )
    material = ledger.peek(message.offset, message.length)
    expected = wegman_carter_tag(body, material[:AUTH_KEY_BYTES])
    if not hmac.compare_digest(expected, tag):
        raise RelayAuthenticationError(
            f"relay frame on link {ledger.link_id!r} does not authenticate; nothing consumed"
        )
    ledger.consume(message.offset, message.length)
    pad = material[AUTH_KEY_BYTES : AUTH_KEY_BYTES + len(message.padded_key)]
    return OpenedHop(
        key_id=message.key_id,
        key=_xor(message.padded_key, pad),
        path=message.path,
        hop=message.hop,
        master_sae_id=message.master_sae_id,
        slave_sae_id=message.slave_sae_id,
    )
