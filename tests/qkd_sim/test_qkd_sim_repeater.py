"""Repeater chains (qkd.physics.repeater): closed forms, Monte Carlo against them, the CLI.

The Monte Carlo runs are seeded; every stochastic comparison allows ``Z`` standard errors of
the run's own sample (stderr = sample standard deviation / sqrt(chains)), so the tolerance
shrinks as the sample grows and a wrong model is caught.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agile.cli import main
from qkd.physics.rates import binary_entropy
from qkd.physics.repeater import (
    ChainParameters,
    RepeaterConfigError,
    bbm92_key_fraction,
    cutoff_round,
    elementary_link_success,
    expected_rounds_slots,
    expected_slots,
    key_per_slot,
    mean_fidelity,
    mean_storage_factor,
    simulate_chains,
    stored_fidelity,
    two_link_cutoff_slots,
    werner_parameter,
)

# Standard errors allowed between a Monte Carlo mean and its closed form (two-sided p ~ 7e-6).
Z = 4.5


def _exact_max_of_geometrics(n: int, p: Fraction) -> Fraction:
    # Inclusion-exclusion in exact rational arithmetic: no cancellation error at any N.
    q = 1 - p
    return sum(
        (Fraction((-1) ** (k + 1) * math.comb(n, k)) / (1 - q**k) for k in range(1, n + 1)),
        Fraction(0),
    )


@pytest.mark.parametrize("p", [0.01, 0.1, 0.37, 0.5, 0.9, 1.0])
def test_two_links_wait_3_minus_2p_over_p_2_minus_p(p: float) -> None:
    assert expected_rounds_slots(2, p) == pytest.approx((3 - 2 * p) / (p * (2 - p)), rel=1e-12)
    assert expected_rounds_slots(1, p) == pytest.approx(1 / p, rel=1e-12)


@pytest.mark.parametrize("n", [3, 4, 8, 20, 21, 40])
@pytest.mark.parametrize("p", [Fraction(1, 100), Fraction(1, 10), Fraction(3, 4)])
def test_n_links_wait_is_the_expected_maximum(n: int, p: Fraction) -> None:
    assert expected_rounds_slots(n, float(p)) == pytest.approx(
        float(_exact_max_of_geometrics(n, p)), rel=1e-9
    )


def test_swaps_divide_by_q_to_the_n_minus_1() -> None:
    p, q = 0.2, 0.7
    assert expected_slots(2, p, q) == pytest.approx((3 - 2 * p) / (p * (2 - p) * q), rel=1e-12)
    assert expected_slots(5, p, q) == pytest.approx(expected_rounds_slots(5, p) / q**4)


@pytest.mark.parametrize(
    ("n", "p", "q"), [(2, 0.5, 1.0), (2, 0.05, 0.9), (4, 0.1, 0.8), (8, 0.3, 0.95), (8, 0.02, 1.0)]
)
def test_monte_carlo_slots_agree_with_the_closed_form(n: int, p: float, q: float) -> None:
    chain = ChainParameters(segments=n, link_success=p, swap_success=q)
    result = simulate_chains(chain, chains=20_000, rng=12345 + n)
    assert result.stderr_slots > 0
    assert abs(result.mean_slots - chain.mean_slots) < Z * result.stderr_slots
    # The sample's own error is that of the model: sd/sqrt(M) within a loose factor of the
    # truth, so a run that repeated one chain M times would not pass.
    assert result.stderr_slots * math.sqrt(result.chains) > 0.5 * chain.mean_slots * math.sqrt(
        1 - p
    ) / math.sqrt(n)


def test_monte_carlo_sees_a_wrong_swap_probability() -> None:
    # The same comparison fails when the closed form is given another Q: the test can fail.
    chain = ChainParameters(segments=4, link_success=0.2, swap_success=0.8)
    result = simulate_chains(chain, chains=20_000, rng=7)
    wrong = expected_slots(4, 0.2, 0.85)
    assert abs(result.mean_slots - wrong) > Z * result.stderr_slots


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5])
def test_a_stored_pair_decays_as_exp_minus_t_over_t2(t: float) -> None:
    f0, t2 = 0.97, 1.3
    w_after = werner_parameter(stored_fidelity(f0, t, t2))
    assert w_after == pytest.approx(werner_parameter(f0) * math.exp(-t / t2), rel=1e-12)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.8])
@pytest.mark.parametrize("x", [0.5, 0.9, 0.999])
def test_two_link_storage_factor_closed_form(p: float, x: float) -> None:
    # E[x^|s1 - s2|] for two independent Geom(p): P/(2-P) (1 + 2 (1-P) x / (1 - (1-P) x)).
    expected = p / (2 - p) * (1 + 2 * (1 - p) * x / (1 - (1 - p) * x))
    assert mean_storage_factor(2, p, x) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("n", "p"), [(2, 0.1), (4, 0.2), (8, 0.3)])
def test_monte_carlo_fidelity_agrees_with_the_closed_form(n: int, p: float) -> None:
    chain = ChainParameters(
        segments=n, link_success=p, swap_success=0.9, fidelity=0.99, t2_s=0.02, slot_s=1e-3
    )
    result = simulate_chains(chain, chains=20_000, rng=99 + n)
    assert result.stderr_fidelity > 0
    assert abs(result.mean_fidelity - mean_fidelity(chain)) < Z * result.stderr_fidelity
    # Storage costs fidelity: the mean lies below the no-memory-loss value.
    perfect = (1 + 3 * werner_parameter(0.99) ** n) / 4
    assert mean_fidelity(chain) < perfect - 10 * result.stderr_fidelity


def test_without_t2_the_fidelity_is_the_swapped_werner_product() -> None:
    chain = ChainParameters(segments=3, link_success=0.4, fidelity=0.95)
    result = simulate_chains(chain, chains=100, rng=1)
    w = werner_parameter(0.95) ** 3
    assert result.mean_fidelity == pytest.approx((1 + 3 * w) / 4, rel=1e-12)
    assert result.stderr_fidelity < 1e-12


@pytest.mark.parametrize("f", [0.84, 0.9, 0.95, 0.99, 1.0])
def test_bbm92_fraction_of_a_werner_state(f: float) -> None:
    assert bbm92_key_fraction(f) == pytest.approx(1 - 2 * binary_entropy((1 - f) * 2 / 3))


def test_bbm92_reference_figures() -> None:
    assert bbm92_key_fraction(0.95) == pytest.approx(0.578, abs=5e-4)
    assert bbm92_key_fraction(0.83) == 0.0
    assert bbm92_key_fraction(0.84) > 0.0


def test_seeded_runs_repeat_and_differ_by_seed() -> None:
    chain = ChainParameters(segments=3, link_success=0.3)
    a = simulate_chains(chain, chains=1000, rng=5)
    b = simulate_chains(chain, chains=1000, rng=np.random.default_rng(5))
    c = simulate_chains(chain, chains=1000, rng=6)
    assert a == b
    assert a.mean_slots != c.mean_slots


@pytest.mark.parametrize(
    "kwargs",
    [
        {"segments": 0, "link_success": 0.5},
        {"segments": 2, "link_success": 0.0},
        {"segments": 2, "link_success": 1.5},
        {"segments": 2, "link_success": 0.5, "swap_success": 0.0},
        {"segments": 2, "link_success": 0.5, "fidelity": 0.2},
        {"segments": 2, "link_success": 0.5, "t2_s": 1.0},
        {"segments": 2, "link_success": 0.5, "t2_s": -1.0, "slot_s": 1.0},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(RepeaterConfigError):
        ChainParameters(**kwargs)  # type: ignore[arg-type]


def test_cli_json_has_the_design_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["qkd", "repeater", "--segments", "4", "--link-success", "0.2", "--swap-success", "0.9",
         "--fidelity", "0.98", "--t2-s", "0.05", "--slot-s", "1e-3", "--chains", "5000",
         "--seed", "3", "--json"]
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {
        "segments", "mean_slots", "mc_mean_slots", "mc_stderr", "fidelity", "secret_key_fraction"
    } <= set(data)  # fmt: skip
    assert data["segments"] == 4
    assert data["mean_slots"] == pytest.approx(expected_slots(4, 0.2, 0.9))
    assert abs(data["mc_mean_slots"] - data["mean_slots"]) < Z * data["mc_stderr"]
    assert data["secret_key_fraction"] == pytest.approx(bbm92_key_fraction(data["fidelity"]))


@pytest.mark.parametrize(
    "argv",
    [
        ["qkd", "repeater", "--segments", "2", "--link-success", "0.1", "--t2-s", "1"],
        ["qkd", "repeater", "--segments", "2", "--link-success", "2"],
        ["qkd", "repeater", "--segments", "0", "--link-success", "0.5"],
        ["qkd", "repeater", "--segments", "2", "--link-success", "0.1", "--cutoff-s", "1"],
        [
            "qkd",
            "repeater",
            "--segments",
            "2",
            "--link-success",
            "0.1",
            "--slot-s",
            "1",
            "--cutoff-s",
            "-1",
        ],
    ],
)
def test_cli_usage_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert err.strip()


@pytest.mark.parametrize("km", [0.0, 10.0, 55.5])
def test_barrett_kok_link_success(km: float) -> None:
    p = elementary_link_success(
        km, attenuation_db_per_km=0.2, memory_efficiency=0.8, detector_efficiency=0.6
    )
    assert p == pytest.approx(0.5 * (0.8 * 0.6) ** 2 * 10 ** (-0.02 * km), rel=1e-12)
    with pytest.raises(RepeaterConfigError):
        elementary_link_success(km, memory_efficiency=0.0)


def test_key_per_slot_is_sifted_bbm92_over_the_mean_wait() -> None:
    chain = ChainParameters(segments=4, link_success=0.2, swap_success=0.9, fidelity=0.97)
    expected = 0.5 * bbm92_key_fraction(chain.mean_fidelity) / chain.mean_slots
    assert key_per_slot(chain) == pytest.approx(expected, rel=1e-12)
    assert key_per_slot(ChainParameters(segments=8, link_success=0.2, fidelity=0.95)) == 0.0


def test_rate_cli_draws_repeater_and_twin_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "rate.png"
    code = main(
        ["qkd", "rate", "--preset", "snspd", "--distance-km", "0:400:100", "--json",
         "--repeater-segments", "8", "--twin-field-coefficient", "1e-3", "--plot", str(png)]
    )  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert code == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    for row in rows:
        assert row["twin_field"] == pytest.approx(1e-3 * math.sqrt(row["eta"]), rel=1e-12)
        p = elementary_link_success(
            row["distance_km"] / 8,
            attenuation_db_per_km=0.2,
            memory_efficiency=0.9,
            detector_efficiency=0.9,
        )
        chain = ChainParameters(segments=8, link_success=p, swap_success=0.9, fidelity=0.99)
        assert row["repeater"] == pytest.approx(key_per_slot(chain), rel=1e-12)
    # Past a few hundred km the chain beats the repeaterless bound: the crossing is visible.
    assert rows[-1]["repeater"] > rows[-1]["plob"]
    assert rows[0]["repeater"] < rows[0]["plob"]


# ----------------------------------------------------------------------------- memory cutoff


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 0.99), st.integers(0, 60))
def test_two_link_cutoff_closed_form_is_the_exact_recursion(p: float, m: int) -> None:
    rounds, factor = cutoff_round(2, p, m)
    assert rounds == pytest.approx(two_link_cutoff_slots(p, m), rel=1e-9)
    assert factor == pytest.approx(1.0, rel=1e-12)
    # A cutoff can only make the wait longer than without one.
    assert rounds >= expected_rounds_slots(2, p) * (1 - 1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("p", [0.2, 0.7])
def test_a_zero_cutoff_needs_every_link_in_one_slot(n: int, p: float) -> None:
    assert cutoff_round(n, p, 0)[0] == pytest.approx(1 / p**n, rel=1e-9)


def test_a_long_cutoff_is_no_cutoff() -> None:
    # The chance that any pair of 3 links waits past 40 slots at P = 0.5 is below 1e-11.
    rounds, factor = cutoff_round(3, 0.5, 40, 0.9)
    assert rounds == pytest.approx(expected_rounds_slots(3, 0.5), rel=1e-9)
    assert factor == pytest.approx(mean_storage_factor(3, 0.5, 0.9), rel=1e-9)
    assert two_link_cutoff_slots(0.3, 200) == pytest.approx(expected_rounds_slots(2, 0.3))


def test_the_recursion_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(RepeaterConfigError, match="Monte Carlo"):
        cutoff_round(8, 0.1, 14)


@pytest.mark.parametrize(("p", "m"), [(0.05, 150), (0.3, 120)])
def test_the_iterative_solve_of_large_recursions_is_exact(p: float, m: int) -> None:
    # Over 3,000 states the visits come from a Krylov solve: it must still give the closed form.
    assert math.comb(2 + m + 1, 2) > 3000
    assert cutoff_round(2, p, m)[0] == pytest.approx(two_link_cutoff_slots(p, m), rel=1e-9)


@pytest.mark.parametrize(
    ("n", "p", "q", "m"),
    [(2, 0.1, 1.0, 3), (2, 0.3, 0.9, 5), (4, 0.3, 0.9, 5), (4, 0.1, 1.0, 10), (8, 0.3, 0.9, 5)],
)
def test_cutoff_monte_carlo_agrees_with_the_recursion(n: int, p: float, q: float, m: int) -> None:
    chain = ChainParameters(
        segments=n, link_success=p, swap_success=q, fidelity=0.99,
        t2_s=0.05, slot_s=1e-3, cutoff_s=m * 1e-3,
    )  # fmt: skip
    assert chain.cutoff_slots == m
    result = simulate_chains(chain, chains=20_000, rng=777 + n + m)
    assert abs(result.mean_slots - chain.mean_slots) < Z * result.stderr_slots
    assert abs(result.mean_fidelity - chain.mean_fidelity) < Z * result.stderr_fidelity
    # The cutoff costs slots and buys fidelity, against the same chain without it.
    free = ChainParameters(
        segments=n, link_success=p, swap_success=q, fidelity=0.99, t2_s=0.05, slot_s=1e-3
    )
    assert chain.mean_slots > free.mean_slots
    assert chain.mean_fidelity > free.mean_fidelity


def test_without_a_cutoff_nothing_changes() -> None:
    free = ChainParameters(segments=4, link_success=0.2, swap_success=0.9, t2_s=0.1, slot_s=1e-3)
    assert free.cutoff_slots is None
    assert free.mean_slots == expected_slots(4, 0.2, 0.9)
    assert free.mean_fidelity == mean_fidelity(free)
    # The no-cutoff path draws the same numbers as before (seeded), and a cutoff far longer
    # than any wait of the run gives the same figures within their errors.
    a = simulate_chains(free, chains=5000, rng=42)
    b = simulate_chains(free, chains=5000, rng=42)
    assert a == b
    long = ChainParameters(
        segments=4, link_success=0.2, swap_success=0.9, t2_s=0.1, slot_s=1e-3, cutoff_s=1e3
    )
    c = simulate_chains(long, chains=5000, rng=43)
    se = math.hypot(a.stderr_slots, c.stderr_slots)
    assert abs(a.mean_slots - c.mean_slots) < Z * se
    assert abs(a.mean_fidelity - c.mean_fidelity) < Z * math.hypot(
        a.stderr_fidelity, c.stderr_fidelity
    )


def test_cutoff_needs_a_slot_and_a_sensible_time() -> None:
    with pytest.raises(RepeaterConfigError, match="slot_s"):
        ChainParameters(segments=2, link_success=0.5, cutoff_s=1.0)
    with pytest.raises(RepeaterConfigError):
        ChainParameters(segments=2, link_success=0.5, slot_s=1.0, cutoff_s=-1.0)
    assert ChainParameters(segments=2, link_success=0.5, slot_s=0.1, cutoff_s=0.3).cutoff_slots == 3


def test_cli_cutoff(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["qkd", "repeater", "--segments", "2", "--link-success", "0.3", "--slot-s", "1e-3",
         "--cutoff-s", "4e-3", "--chains", "5000", "--seed", "9", "--json"]
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["cutoff_slots"] == 4
    assert data["mean_slots"] == pytest.approx(two_link_cutoff_slots(0.3, 4), rel=1e-9)
    assert abs(data["mc_mean_slots"] - data["mean_slots"]) < Z * data["mc_stderr"]
    code = main(
        ["qkd", "repeater", "--segments", "8", "--link-success", "0.1", "--slot-s", "1e-3",
         "--cutoff-s", "0.02", "--chains", "200", "--seed", "9", "--json"]
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["mean_slots"] is None
    assert "Monte Carlo" in data["analytic_unavailable"]
    assert data["mc_mean_slots"] > 0
