"""Sifting: keep the clicks where Alice's and Bob's bases agree.

Theory of operation
-------------------
Bob announces which gates clicked and in which basis he measured; Alice announces her basis
and, in decoy-state BB84, the intensity of each of those pulses. Pulses measured in the other
basis are discarded (with both bases equally likely, the sifting factor is ``q = 1/2``,
Bennett and Brassard 1984). Decoy and vacuum pulses are not key: their sifted bits are
announced in full, which gives their error counts for the decoy analysis (:mod:`qkd.physics.decoy`).
The signal pulses' sifted bits, in their order of arrival, are the raw key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from qkd.physics.protocols import Detections

__all__ = ["SiftedKey", "sift"]


@dataclass(frozen=True, kw_only=True, eq=False)
class SiftedKey:
    """The raw key (signal pulses, matching bases) and the announced decoy statistics."""

    alice: NDArray[np.uint8]
    bob: NDArray[np.uint8]
    eve_knows: NDArray[np.bool_]
    detections: tuple[int, int, int]
    sifted: tuple[int, int, int]
    errors_announced: tuple[int, int]

    @property
    def sifted_bits(self) -> int:
        """Sifted bits of all intensities."""
        return sum(self.sifted)

    def __repr__(self) -> str:
        return f"<SiftedKey {self.alice.size} raw key bits>"


def sift(det: Detections) -> SiftedKey:
    """Sift ``det``: the raw key from signal pulses, error counts of decoy and vacuum pulses."""
    match = det.alice_basis == det.bob_basis
    wrong = det.alice_bit != det.bob_bit
    detections = np.bincount(det.intensity, minlength=3)[:3]
    sifted = np.bincount(det.intensity[match], minlength=3)[:3]
    errors = np.bincount(det.intensity[match & wrong], minlength=3)[:3]
    key = match & (det.intensity == 0)
    return SiftedKey(
        alice=det.alice_bit[key],
        bob=det.bob_bit[key],
        eve_knows=det.eve_knows[key],
        detections=(int(detections[0]), int(detections[1]), int(detections[2])),
        sifted=(int(sifted[0]), int(sifted[1]), int(sifted[2])),
        errors_announced=(int(errors[1]), int(errors[2])),
    )
