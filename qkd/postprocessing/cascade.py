"""Error correction by Cascade, original and improved, with whole-array binary searches.

Theory of operation
-------------------
Cascade (Brassard and Salvail, EUROCRYPT 1993) corrects Bob's key to Alice's over a public
channel. In pass ``i`` the key is permuted (pass 1 keeps its order) and cut into blocks of
``k_i`` bits; Alice announces each block's parity. A block whose parity differs holds an odd
number of errors, and a binary search (Alice announcing the parity of the left half, each
step) finds one of them. Correcting a bit flips the parity of the blocks that hold it in every
earlier pass, so those blocks are searched again: the *cascade*. Every parity Alice announces
is one leaked bit; the efficiency is ``f = leaked / (n H2(QBER))`` (1 is the Shannon limit).

A parity Alice has announced stays public: Bob keeps, per pass, the blocks a binary search
has split (the parities of both halves of such a block are known: Alice announced the left
one, the right one is the parent's minus it), and a later search through a known parity costs
nothing. Without this, re-searching a block after a cascade pays again for the same parities.

Variants. Martinez-Mateo, Pacher, Peev, Ciurana and Martin, "Demystifying the information
reconciliation protocol Cascade", Quantum Inf. Comput. 15, 453 (2015), arXiv:1407.3257, compare
the original protocol with numbered modified versions; what the paper's figure captions state:
(3) is "the version proposed here using 16 passes" (Figs. 8-10), (4) is "(3) but leveraging in
addition the idea of block reuse" (Fig. 11), (7) is "(4) but optimizing the first and second
block sizes and using 14 passes" and (8) "(7) but also optimizing the third block size and
using a power of two value for the frame length n = 2^14" (Fig. 13). The block sizes below are
the ones the public reimplementations give for these options (B. Rijsman's cascade-python and
cascade-cpp; for (8), the AIT QKD software, co-written by C. Pacher): the text of the
paper's section that lists them could not be consulted for this module.

- ``original`` (Brassard-Salvail): 4 passes, ``k_1 = ceil(0.73 / Q)``, ``k_i = 2 k_(i-1)``.
- ``option3`` (the paper's option 3): 16 passes, ``k_1 = ceil(1 / Q)``, ``k_2 = 2 k_1``,
  ``k_i = ceil(n / 2)`` for ``i >= 3``; no sub-block reuse.
- ``option7`` (the paper's option 7): 14 passes, ``k_1 = 2^ceil(log2(1 / Q))``,
  ``k_2 = 4 k_1``, ``k_i = ceil(n / 2)`` for ``i >= 3``, with sub-block reuse (from option 4):
  a corrected bit flips the parity of every block of known parity holding it, sub-blocks
  included, and each of those that turns odd is searched (the innermost ones first).
- ``improved`` (the default) is not one of the paper's options but this module's own variant:
  option 7's schedule (14 passes, ``k_2 = 4 k_1``, ``ceil(n / 2)`` from pass 3) with the
  original, unrounded first block ``k_1 = ceil(0.73 / Q)`` and without sub-block reuse (which,
  with announced parities kept, measured no gain here and costs twice the time). It leaks
  1.5-2.5 points more than option 7 at Q = 1-5% and needs 2-7 times fewer round trips
  (docs/qkd-simulation.md).

``Q`` is the ``qber`` argument (an estimate), floored at 1e-5; blocks are capped at ``n``.

How it is simulated. Alice's and Bob's parities are only ever compared, so each comparison
is the parity of their difference, i.e. the number of error positions in a range, mod 2.
The simulation keeps the (sparse) error positions of each pass in that pass's order, sorted,
and answers every range-parity query by two binary searches (``numpy.searchsorted``). The
binary searches of all odd blocks, of all passes, run in lock-step as array operations: one
step in which Alice announces at least one parity is one round trip on the classical channel,
counted in ``channel_uses``. The searches of one batch see the same snapshot of the key; a bit
found by two of them is flipped once; of nested odd blocks only the innermost are searched in
a batch, the others are looked at again after it. The transcript (parities, corrections,
leaked bits) is the one the two-party protocol produces.

Permutations are keyed Feistel networks over the index range (4 rounds, cycle walking), so a
pass's permutation is evaluated only at the positions that need it, never materialised; the
keys come from ``rng``: the shuffles are public.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from qkd._errors import QKDError
from qkd.physics.rates import binary_entropy
from qkd.randomness import RngLike, physics_rng

__all__ = ["VARIANTS", "CascadeVariant", "Reconciliation", "block_sizes", "reconcile"]

CascadeVariant = Literal["original", "option3", "option7", "improved"]
VARIANTS: tuple[CascadeVariant, ...] = ("original", "option3", "option7", "improved")

# Sub-block reuse: the paper's option (4), kept in (7) and (8) (Figs. 11 and 13 of arXiv:1407.3257).
_REUSE: dict[str, bool] = {"original": False, "option3": False, "option7": True, "improved": False}

_MIX = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)


class _FeistelPermutation:
    """A keyed permutation of ``range(n)``: a balanced Feistel network with cycle walking."""

    def __init__(self, n: int, rng: np.random.Generator, rounds: int = 4) -> None:
        self.n = n
        self.half = max(1, math.ceil(math.log2(max(n, 2)) / 2))
        self.mask = np.uint64((1 << self.half) - 1)
        self.keys = rng.integers(0, 2**63, size=rounds, dtype=np.uint64)

    def _f(self, r: NDArray[np.uint64], key: np.uint64) -> NDArray[np.uint64]:
        x = (r ^ key) * _MIX
        x ^= x >> np.uint64(31)
        x *= _MIX2
        x ^= x >> np.uint64(29)
        return x & self.mask

    def _encrypt(self, x: NDArray[np.uint64]) -> NDArray[np.uint64]:
        left, right = x >> np.uint64(self.half), x & self.mask
        for key in self.keys:
            left, right = right, left ^ self._f(right, key)
        return (left << np.uint64(self.half)) | right

    def _decrypt(self, y: NDArray[np.uint64]) -> NDArray[np.uint64]:
        left, right = y >> np.uint64(self.half), y & self.mask
        for key in self.keys[::-1]:
            left, right = right ^ self._f(left, key), left
        return (left << np.uint64(self.half)) | right

    def _walk(self, x: NDArray[np.int64], forward: bool) -> NDArray[np.int64]:
        step = self._encrypt if forward else self._decrypt
        y = step(x.astype(np.uint64))
        out = y >= np.uint64(self.n)
        while out.any():
            y[out] = step(y[out])
            out = y >= np.uint64(self.n)
        return y.astype(np.int64)

    def forward(self, x: NDArray[np.int64]) -> NDArray[np.int64]:
        """Position in the permuted order of each key index in ``x``."""
        return self._walk(x, True)

    def inverse(self, y: NDArray[np.int64]) -> NDArray[np.int64]:
        """Key index at each permuted position in ``y``."""
        return self._walk(y, False)


class _Identity:
    def forward(self, x: NDArray[np.int64]) -> NDArray[np.int64]:
        return x

    def inverse(self, y: NDArray[np.int64]) -> NDArray[np.int64]:
        return y


@dataclass(frozen=True, kw_only=True, eq=False)
class Reconciliation:
    """Bob's corrected key and what the correction cost."""

    corrected: NDArray[np.uint8]
    method: str
    leaked_bits: int
    channel_uses: int
    passes: int
    errors_found: int

    def __repr__(self) -> str:
        return (
            f"<Reconciliation {self.method}: {self.corrected.size} bits, "
            f"leaked {self.leaked_bits}, {self.errors_found} corrections>"
        )

    def efficiency(self, qber: float) -> float:
        """``f = leaked / (n H2(qber))``; ``inf`` when ``qber`` is 0 and bits were leaked."""
        h = binary_entropy(qber) * self.corrected.size
        return self.leaked_bits / h if h > 0 else math.inf


def block_sizes(variant: CascadeVariant, n: int, qber: float) -> list[int]:
    """The block size of every pass for a key of ``n`` bits and an estimated ``qber``."""
    e = min(0.5, max(qber, 1e-5))
    half = math.ceil(n / 2)
    if variant == "original":
        first = math.ceil(0.73 / e)
        sizes = [first * 2**i for i in range(4)]
    elif variant == "option3":
        first = math.ceil(1.0 / e)
        sizes = [first, 2 * first] + [half] * 14
    elif variant == "option7":
        first = 2 ** math.ceil(math.log2(1.0 / e))
        sizes = [first, 4 * first] + [half] * 12
    elif variant == "improved":
        first = math.ceil(0.73 / e)
        sizes = [first, 4 * first] + [half] * 12
    else:
        raise QKDError(f"cascade variant {variant!r} is unknown; choose one of {VARIANTS}")
    return [max(1, min(k, n)) for k in sizes]


def _member(table: NDArray[np.int64], keys: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Which of ``keys`` are in the sorted array ``table``."""
    if not table.size or not keys.size:
        return np.zeros(keys.size, dtype=np.bool_)
    idx = np.minimum(np.searchsorted(table, keys), table.size - 1)
    return np.asarray(table[idx] == keys, dtype=np.bool_)


class _KeySet:
    """A growing set of int64 keys: a few sorted chunks, merged now and then."""

    def __init__(self) -> None:
        self.chunks: list[NDArray[np.int64]] = []

    def add(self, keys: NDArray[np.int64]) -> None:
        """Add ``keys``, which must be sorted."""
        if keys.size:
            self.chunks.append(keys)
        if len(self.chunks) > 3:
            # Concatenated sorted runs: the stable sort (a merge sort) takes them in one pass.
            self.chunks = [np.sort(np.concatenate(self.chunks), kind="stable")]

    def contains(self, keys: NDArray[np.int64]) -> NDArray[np.bool_]:
        hit = np.zeros(keys.size, dtype=np.bool_)
        for chunk in self.chunks:
            hit |= _member(chunk, keys)
        return hit


def _odd(
    errors: NDArray[np.int64], lo: NDArray[np.int64], hi: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """Whether ``[lo, hi)`` holds an odd number of the sorted error positions ``errors``."""
    count = np.searchsorted(errors, hi) - np.searchsorted(errors, lo)
    return np.asarray(count & 1, dtype=np.bool_)


def _innermost(
    lo: NDArray[np.int64], hi: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The blocks of a nested-or-disjoint family that contain no other block of it."""
    order = np.lexsort((-hi, lo))
    lo, hi = lo[order], hi[order]
    keep = np.append(lo[1:] >= hi[:-1], True)
    return lo[keep], hi[keep]


def reconcile(
    alice: NDArray[np.uint8],
    bob: NDArray[np.uint8],
    qber: float,
    *,
    variant: CascadeVariant = "improved",
    rng: RngLike = None,
) -> Reconciliation:
    """Correct ``bob`` towards ``alice`` by Cascade with block sizes set from ``qber``.

    Example::

        rec = reconcile(alice_bits, bob_bits, 0.02)
        rec.leaked_bits, rec.efficiency(0.02)
    """
    if alice.shape != bob.shape or alice.ndim != 1:
        raise QKDError("cascade: Alice's and Bob's keys must be 1-D arrays of the same length")
    if variant not in _REUSE:
        raise QKDError(f"cascade variant {variant!r} is unknown; choose one of {VARIANTS}")
    gen = physics_rng(rng)
    n = int(alice.size)
    sizes = block_sizes(variant, n, qber) if n else []
    reuse = _REUSE[variant]
    width = n + 1  # the sub-block [lo, hi) of a pass has the key lo * width + hi
    wrong = alice != bob
    flipped = np.zeros(n, dtype=np.bool_)
    perms: list[_FeistelPermutation | _Identity] = []
    # Per pass, the blocks a binary search went through (split): the parities of both halves
    # of such a block are known (Alice announced the left one, the right one follows). A
    # block's parity is known when it is top-level or its parent was split.
    split: list[_KeySet] = []
    leaked = uses = 0

    def errors_in(q: int) -> NDArray[np.int64]:
        return np.sort(perms[q].forward(np.flatnonzero(wrong)))

    for p, k in enumerate(sizes):
        perms.append(_Identity() if p == 0 else _FeistelPermutation(n, gen))
        split.append(_KeySet())
        blocks = -(-n // k)
        leaked += blocks
        uses += 1
        errors = {p: errors_in(p)}
        lo0 = np.arange(blocks, dtype=np.int64) * k
        hi0 = np.minimum(lo0 + k, n)
        odd0 = _odd(errors[p], lo0, hi0)
        starts = {p: (lo0[odd0], hi0[odd0])} if odd0.any() else {}
        while starts:
            # One batch: the binary searches of all odd blocks, in lock-step, on one snapshot.
            # Their blocks are disjoint (nested ones wait for the next batch), so no two
            # searches of a batch ask for the same parity, and each pass's blocks stay in
            # increasing order, step after step.
            lo = {q: s[0].copy() for q, s in starts.items()}
            hi = {q: s[1].copy() for q, s in starts.items()}
            learned: dict[int, list[NDArray[np.int64]]] = {q: [] for q in starts}
            while True:
                asked = 0
                for q in starts:
                    searching = hi[q] - lo[q] > 1
                    if not searching.any():
                        continue
                    a, b = lo[q][searching], hi[q][searching]
                    mid = (a + b) // 2
                    parent = a * width + b
                    asked += int(np.count_nonzero(~split[q].contains(parent)))
                    learned[q].append(parent)
                    left_odd = _odd(errors[q], a, mid)
                    lo[q][searching] = np.where(left_odd, a, mid)
                    hi[q][searching] = np.where(left_odd, mid, b)
                if not asked:
                    if not any(bool((hi[q] - lo[q] > 1).any()) for q in starts):
                        break
                    continue  # Bob knew every parity this step: no message
                leaked += asked
                uses += 1
            found = np.unique(np.concatenate([perms[q].inverse(lo[q]) for q in starts]))
            wrong[found] = False
            flipped[found] ^= True
            for q, parts in learned.items():
                for part in parts:
                    split[q].add(part)
            # Each correction flips the parity of every block holding the corrected bit, in every
            # pass so far: the top-level block and, with sub-block reuse, each known sub-block.
            starts = {}
            for q in range(p + 1):
                y = perms[q].forward(found)
                c_lo = y // sizes[q] * sizes[q]
                c_hi = np.minimum(c_lo + sizes[q], n)
                chain_lo, chain_hi = [c_lo], [c_hi]
                while reuse and c_lo.size:
                    down = (c_hi - c_lo > 1) & split[q].contains(c_lo * width + c_hi)
                    y, c_lo, c_hi = y[down], c_lo[down], c_hi[down]
                    mid = (c_lo + c_hi) // 2
                    go_left = y < mid
                    c_lo = np.where(go_left, c_lo, mid)
                    c_hi = np.where(go_left, mid, c_hi)
                    chain_lo.append(c_lo)
                    chain_hi.append(c_hi)
                keys = np.unique(np.concatenate(chain_lo) * width + np.concatenate(chain_hi))
                if not keys.size:
                    continue
                errors[q] = errors_in(q)
                s_lo, s_hi = keys // width, keys % width
                odd = _odd(errors[q], s_lo, s_hi)
                if odd.any():
                    starts[q] = _innermost(s_lo[odd], s_hi[odd])
    corrected = (bob ^ flipped.astype(np.uint8)).astype(np.uint8)
    return Reconciliation(
        corrected=corrected,
        method=f"cascade-{variant}",
        leaked_bits=int(leaked),
        channel_uses=int(uses),
        passes=len(sizes),
        errors_found=int(np.count_nonzero(flipped)),
    )
