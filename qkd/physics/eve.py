"""Eavesdroppers on the quantum channel.

Theory of operation
-------------------
Each attack is a rule for what reaches Bob, and what Eve learns, given the photon number
``n`` of a pulse (she is granted a quantum non-demolition measurement of ``n``).

- Intercept-resend on a fraction ``p`` of pulses (Bennett and Brassard 1984): Eve measures
  each non-empty intercepted pulse in a random basis and resends ``n`` photons prepared in the
  state she found. With probability 1/2 her basis differs from Alice's and Bob's result in
  Alice's basis is random, so she adds ``p/4`` to the QBER (25% for ``p = 1``) and learns the
  bit whenever her basis was right.
- Beam splitting with a tap ``p``: at Alice's output a beam splitter sends each photon to Eve
  with probability ``p``. She adds no errors; Bob sees the extra loss ``-10 log10(1 - p)`` dB,
  and Eve learns a bit whenever she kept a photon (she stores it until the bases are
  announced). The decoy analysis counts her share as loss: the key shrinks, it does not leak.
- Photon-number splitting (Brassard, Lütkenhaus, Mor and Sanders, PRL 85, 1330 (2000)): Eve
  keeps one photon of every multi-photon pulse and forwards the rest over a lossless channel;
  she blocks single-photon pulses, forwarding only the fraction needed for Bob's signal gain to
  look like that of the honest link. Without decoys this is invisible; with decoys the
  intensities' gains no longer fit one set of yields, and the vacuum+weak bound on ``Y1``
  collapses (Hwang 2003; Lo, Ma and Chen 2005).
"""

from __future__ import annotations

from dataclasses import dataclass

from qkd._errors import QKDError

__all__ = [
    "BeamSplitting",
    "Eavesdropper",
    "EveConfigError",
    "InterceptResend",
    "PhotonNumberSplitting",
    "parse_eve",
]


class EveConfigError(QKDError, ValueError):
    """An eavesdropper specification is malformed."""


def _fraction(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise EveConfigError(f"eve {name}: fraction {value!r} is outside [0, 1]")
    return value


@dataclass(frozen=True, kw_only=True)
class InterceptResend:
    """Intercept-resend on a random ``fraction`` of pulses."""

    fraction: float = 1.0

    def __post_init__(self) -> None:
        _fraction("intercept-resend", self.fraction)

    def __str__(self) -> str:
        return f"intercept-resend:{self.fraction:g}"


@dataclass(frozen=True, kw_only=True)
class BeamSplitting:
    """A beam splitter that diverts each photon to Eve with probability ``tap``."""

    tap: float = 0.5

    def __post_init__(self) -> None:
        _fraction("beam-splitting", self.tap)
        if self.tap >= 1.0:
            raise EveConfigError("eve beam-splitting: a tap of 1 leaves Bob nothing; use < 1")

    def __str__(self) -> str:
        return f"beam-splitting:{self.tap:g}"


@dataclass(frozen=True, kw_only=True)
class PhotonNumberSplitting:
    """Photon-number splitting that mimics the honest signal gain."""

    def __str__(self) -> str:
        return "pns"


Eavesdropper = InterceptResend | BeamSplitting | PhotonNumberSplitting


def parse_eve(text: str) -> Eavesdropper | None:
    """Parse ``none``, ``intercept-resend[:P]``, ``beam-splitting[:P]`` or ``pns``.

    Example::

        parse_eve("intercept-resend:0.2")   # InterceptResend(fraction=0.2)
    """
    name, _, arg = text.strip().lower().partition(":")
    if name in ("", "none"):
        if arg:
            raise EveConfigError(f"eve {text!r}: 'none' takes no argument")
        return None
    if name == "pns":
        if arg:
            raise EveConfigError(f"eve {text!r}: 'pns' takes no argument")
        return PhotonNumberSplitting()
    value = 1.0 if name == "intercept-resend" else 0.5
    if arg:
        try:
            value = float(arg)
        except ValueError:
            raise EveConfigError(
                f"eve {text!r}: {arg!r} is not a number; write e.g. {name}:0.5"
            ) from None
    if name == "intercept-resend":
        return InterceptResend(fraction=value)
    if name == "beam-splitting":
        return BeamSplitting(tap=value)
    raise EveConfigError(
        f"eve {text!r} is unknown; use none, intercept-resend:P, beam-splitting:P or pns"
    )
