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
