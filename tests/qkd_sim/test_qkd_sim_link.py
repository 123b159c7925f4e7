"""Link configuration: presets, validation, eavesdropper parsing."""

from __future__ import annotations

import pytest

from qkd import (
    BeamSplitting,
    DecoySource,
    Detector,
    EveConfigError,
    FreeSpaceChannel,
    InterceptResend,
    LinkConfigError,
    PhotonNumberSplitting,
    preset,
)
from qkd.physics.eve import parse_eve


def test_presets_carry_design_values() -> None:
    link = preset("ingaas", 10.0)
    assert link.detector.efficiency == 0.10
    assert link.detector.dark_count_probability == 1e-6
    assert link.detector.misalignment == 0.015
    assert link.transmittances()[0] == pytest.approx(0.10 * 10 ** (-0.2))


def test_dark_count_split_over_two_detectors() -> None:
    det = Detector(efficiency=0.5, dark_count_probability=1.7e-6, misalignment=0.0)
    p_d = det.dark_count_per_detector
    assert 1 - (1 - p_d) ** 2 == pytest.approx(1.7e-6, rel=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [{"mu": 0.1, "nu": 0.2}, {"p_signal": 0.5, "p_decoy": 0.2, "p_vacuum": 0.2}, {"nu": 0.0}],
)
def test_source_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(LinkConfigError, match="source"):
        DecoySource(**kwargs)


def test_free_space_pass_has_one_transmittance_per_step() -> None:
    link = preset("snspd").__class__(
        name="sat",
        channel=FreeSpaceChannel(loss_db=(40.0, 30.0, 40.0)),
        detector=preset("snspd").detector,
    )
    assert len(link.transmittances()) == 3
    with pytest.raises(LinkConfigError):
        FreeSpaceChannel(loss_db=(-1.0,))


def test_parse_eve() -> None:
    assert parse_eve("none") is None
    assert parse_eve("intercept-resend") == InterceptResend(fraction=1.0)
    assert parse_eve("intercept-resend:0.25") == InterceptResend(fraction=0.25)
    assert parse_eve("beam-splitting:0.3") == BeamSplitting(tap=0.3)
    assert parse_eve("PNS") == PhotonNumberSplitting()
    for bad in ("intercept-resend:x", "intercept-resend:2", "martian", "pns:1"):
        with pytest.raises(EveConfigError):
            parse_eve(bad)


def test_horizontal_free_space_loss_and_its_rate() -> None:
    import math as _math

    from qkd.physics import rates
    from qkd.physics.link import FreeSpaceChannel, Link, LinkConfigError, detector_preset, preset

    channel = FreeSpaceChannel.horizontal(
        length_km=10.0, transmitter_m=0.1, receiver_m=0.5, divergence_rad=50e-6,
        attenuation_db_per_km=0.1, extra_loss_db=2.0,
    )  # fmt: skip
    spot = 0.1 + 10e3 * 50e-6
    assert channel.losses_db()[0] == pytest.approx(-20 * _math.log10(0.5 / spot) + 1.0 + 2.0)
    # A receiver larger than the spot collects it all: only air and extra remain.
    near = FreeSpaceChannel.horizontal(
        length_km=0.1, transmitter_m=0.1, receiver_m=1.0, divergence_rad=50e-6
    )
    assert near.losses_db()[0] == 0.0
    with pytest.raises(LinkConfigError, match="receiver_m"):
        FreeSpaceChannel.horizontal(
            length_km=1.0, transmitter_m=0.1, receiver_m=0.0, divergence_rad=1e-5
        )
    # rates.link_rate of a fibre preset is optimal_mu's; a free-space link with the same loss
    # and detector gets the same.
    fibre = preset("ingaas", 40.0)
    assert rates.link_rate(fibre) == pytest.approx(
        rates.optimal_mu("ingaas", 40.0, method="vacuum+weak"), rel=1e-12
    )
    detector, f = detector_preset("ingaas")
    air = Link(
        name="air", channel=FreeSpaceChannel(loss_db=0.2 * 40.0), detector=detector,
        ec_efficiency=f,
    )  # fmt: skip
    assert rates.link_rate(air)[1] == pytest.approx(rates.link_rate(fibre)[1], rel=1e-12)
    steps = Link(name="pass", channel=FreeSpaceChannel(loss_db=(30.0, 35.0)), detector=detector)
    with pytest.raises(LinkConfigError, match="one loss"):
        rates.link_rate(steps)
    with pytest.raises(LinkConfigError, match="unknown"):
        detector_preset("nope")
