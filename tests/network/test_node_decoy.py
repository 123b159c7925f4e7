"""Decoy-bound alarms: a PNS attack keeps the QBER and trips the decoy bounds (issue 15, 4)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qkd.network.launcher import set_link
from qkd.network.model import FibreLink, FixedLink
from qkd.network.node import EVE_QBER, LinkEnd, SimulatedDevice
from qkd.physics import rates
from qkd.physics.eve import PhotonNumberSplitting
from qkd.physics.link import PRESETS, preset
from qkd.physics.protocols import transmit
from qkd.randomness import KeyRandomness
from tests.network.netproc import RunningNetwork, keys_of, run_agile, start_network, wait_until


def _stats(preset: str, length_km: float, attack: str | None) -> rates.DecoyStatistics:
    p = PRESETS[preset]
    mu, _ = rates.optimal_mu(preset, length_km, method="vacuum+weak", nu=0.1)
    return rates.decoy_statistics(
        eta=rates.transmittance(preset, length_km),
        y0=p.dark_count_probability,
        e_d=p.misalignment,
        mu=mu,
        nu=0.1,
        f=p.ec_efficiency,
        detector_efficiency=p.efficiency,
        attack=attack,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(("preset", "length_km"), [("gys", 50.0), ("snspd", 50.0)])
def test_pns_keeps_qber_and_signal_gain_but_the_decoy_bound_fails(
    preset: str, length_km: float
) -> None:
    honest = _stats(preset, length_km, None)
    pns = _stats(preset, length_km, "pns")
    # The honest statistics give the analytic vacuum+weak rate of rates.py (which drops the
    # Y0 * eta cross term of the gain, hence not to the last digit).
    assert honest.key_rate_bound == pytest.approx(
        rates.vacuum_weak_rate(preset, length_km, honest.mu), rel=1e-4
    )
    assert honest.key_rate_bound > 0
    assert honest.y1_lower > 0
    # Eve matches the signal gain, so the QBER Alice and Bob see does not move ...
    assert pns.q_mu == pytest.approx(honest.q_mu, rel=1e-9)
    assert pns.e_mu == pytest.approx(honest.e_mu, rel=1e-9)
    # ... but the weak decoy's gain falls and the single-photon bound collapses.
    assert pns.q_nu < honest.q_nu
    assert pns.y1_lower == 0.0
    assert pns.key_rate_bound == 0.0


@pytest.mark.parametrize("attack", [None, "pns"])
def test_the_expected_gains_match_the_projects_pulse_simulator(attack: str | None) -> None:
    # The event sampler of qkd.physics.protocols (two detectors, per-detector dark counts,
    # PNS per photon-number class) against the analytic mixtures, at the sampler's mu and nu.
    link = preset("gys", 50.0)
    p = PRESETS["gys"]
    expected = rates.decoy_statistics(
        eta=rates.transmittance("gys", 50.0),
        y0=p.dark_count_probability,
        e_d=p.misalignment,
        mu=link.source.mu,
        nu=link.source.nu,
        f=p.ec_efficiency,
        detector_efficiency=p.efficiency,
        attack=attack,  # type: ignore[arg-type]
    )
    eve = PhotonNumberSplitting() if attack == "pns" else None
    seen = transmit(
        link,
        pulses=200_000_000,
        eve=eve,
        rng=np.random.default_rng(11),
        keyrand=KeyRandomness(seed=11),
    )
    clicks = np.bincount(seen.intensity, minlength=3)
    for k, want in ((0, expected.q_mu), (1, expected.q_nu)):
        sent = seen.sent[k]
        sigma = math.sqrt(want * sent) / sent
        assert abs(clicks[k] / sent - want) < 5 * sigma + 0.03 * want, (k, clicks[k] / sent, want)
    if attack == "pns":
        honest = rates.decoy_statistics(
            eta=rates.transmittance("gys", 50.0),
            y0=p.dark_count_probability,
            e_d=p.misalignment,
            mu=link.source.mu,
            nu=link.source.nu,
            f=p.ec_efficiency,
            detector_efficiency=p.efficiency,
        )
        assert clicks[1] / seen.sent[1] < 0.5 * honest.q_nu


def test_intercept_resend_raises_the_error_rates_not_the_gains() -> None:
    honest = _stats("gys", 25.0, None)
    ir = _stats("gys", 25.0, "intercept-resend")
    assert ir.q_mu == pytest.approx(honest.q_mu)
    assert ir.e_mu - honest.e_mu == pytest.approx(0.25 - PRESETS["gys"].misalignment / 2, 0.01)
    assert ir.key_rate_bound == 0.0


def test_a_short_link_leaves_pns_little_room_and_no_decoy_alarm() -> None:
    # At 5 km Eve cannot block enough single photons to hide behind the loss: the bounds
    # stay near the honest ones, and the alarm (under half the honest rate) stays off.
    link = FibreLink(id="A-B", a="A", b="B", kind="fibre", preset="gys", length_km=5.0,
                     pulse_rate_hz=1e9)  # fmt: skip
    end = LinkEnd(link, "A", 1e6, SimulatedDevice(), 0.11)
    end.attack = "pns"
    assert not end.decoy_alarm
    assert not end.alarm


def test_a_link_end_names_the_cause_of_its_alarm() -> None:
    link = FibreLink(id="A-B", a="A", b="B", kind="fibre", preset="snspd", length_km=50.0,
                     pulse_rate_hz=1e9)  # fmt: skip
    end = LinkEnd(link, "A", 1e6, SimulatedDevice(), 0.11)
    assert not end.alarm
    assert end.alarm_reason is None
    end.attack = "pns"
    status = end.status()
    assert status["alarm"]
    assert status["alarm_reason"] == "decoy"
    assert end.qber == end.nominal_qber
    assert status["y1_lower"] == 0.0
    assert status["decoy_key_rate_bound"] == 0.0
    assert "decoy bounds" in end.alarm_text()
    end.eve = True  # intercept-resend: the QBER names the cause
    assert end.attack == "intercept-resend"
    assert end.alarm_reason == "qber"
    assert end.qber == pytest.approx(end.nominal_qber + EVE_QBER)
    end.eve = False
    assert not end.alarm


def test_a_fixed_link_has_no_decoy_figures() -> None:
    link = FixedLink(id="A-B", a="A", b="B", kind="fixed", key_rate_bps=1e6)
    end = LinkEnd(link, "A", 1e6, SimulatedDevice(), 0.11)
    status = end.status()
    assert status["y1_lower"] is None
    assert status["decoy_key_rate_bound"] is None
    assert end.decoy is None
    assert not end.decoy_alarm


# ------------------------------------------------------------------------ real processes


RING = "\n".join(
    ['[network]\nname = "fibre-ring"\n']
    + [
        f'[[nodes]]\nname = "{n}"\nkind = "trusted"\nsaes = [{s}]\n'
        for n, s in (("A", '"sae-a"'), ("B", ""), ("C", '"sae-c"'), ("D", ""))
    ]
    + [
        f'[[links]]\nid = "{a}-{b}"\na = "{a}"\nb = "{b}"\nkind = "fibre"\npreset = "snspd"\n'
        f"length_km = 50\npulse_rate_hz = 1e9\n"
        for a, b in (("A", "B"), ("B", "C"), ("C", "D"), ("A", "D"))
    ]
    + ['[[links]]\nid = "B-D"\na = "B"\nb = "D"\nkind = "fixed"\nkey_rate_bps = 4e6\n']
)


@pytest.fixture
def ring(tmp_path: Path) -> Iterator[RunningNetwork]:
    net = start_network(tmp_path, RING)
    try:
        net.wait_links_up()
        yield net
    finally:
        net.close()


def _path_or_none(net: RunningNetwork) -> list[str] | None:
    client = net.raw("saes", "sae-a", "A")
    response = client.post("/api/v1/keys/sae-c/enc_keys", json={"number": 1})
    if response.status_code != 200:
        return None
    return keys_of(response)[0][2]


def test_a_pns_attack_on_a_ring_link_trips_a_decoy_alarm_and_reroutes(
    ring: RunningNetwork,
) -> None:
    first = _path_or_none(ring)
    assert first in (["A", "B", "C"], ["A", "D", "C"])
    attacked = f"{min(first[0], first[1])}-{max(first[0], first[1])}"
    before = ring.link(attacked)
    assert before["alarm_reason"] is None
    assert before["decoy_key_rate_bound"] > 0
    # The operator's command line: `agile net eve --state DIR LINK --attack pns`.
    done = run_agile(
        "net", "eve", "--state", str(ring.state), attacked, "--attack", "pns", "--json"
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)["answers"]
    assert [a["status"] for a in answers] == [200, 200], answers
    assert {a["attack"] for a in answers} == {"pns"}
    link = ring.link(attacked)
    assert link["alarm"]
    assert link["alarm_reason"] == "decoy"
    assert link["qber"] == pytest.approx(before["qber"])  # the QBER does not show Eve
    assert link["y1_lower"] == 0.0
    assert link["decoy_key_rate_bound"] == 0.0
    second = wait_until(lambda: (p := _path_or_none(ring)) and p != first and p, what="reroute")
    assert second[1] != first[1]
    alarms = [e for e in ring.audit("A") if e["event"] == "link_alarm"]
    assert alarms
    assert alarms[-1]["cause"] == "decoy"
    assert alarms[-1]["link"] == attacked
    assert "decoy bounds" in alarms[-1]["reason"]
    assert any(e["event"] == "reroute" for e in ring.audit("A"))
    shown = run_agile("net", "status", "--state", str(ring.state))
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if line.startswith(attacked + " "))
    assert "ALARM (decoy)" in row
    # The metrics carry the bound; a bad attack, or PNS on the fixed link (no physics), is
    # refused.
    operator = ring.raw("operator", "", "A", kmapi=True)
    text = operator.get("/kmapi/v1/metrics").text
    assert f'qkd_link_decoy_key_rate_bound{{link="{attacked}"}} 0.0' in text
    bad = operator.post(f"/kmapi/v1/links/{attacked}/eve", json={"eve": True, "attack": "x"})
    assert bad.status_code == 400
    assert "attack must be one of" in bad.json()["message"]
    refused = set_link(ring.state, "B-D", eve=True, attack="pns")
    assert {a["status"] for a in refused} == {400}
    assert "no decoy-state physics" in refused[0]["message"]
    # Eve gone: the alarm clears, and that is audited too.
    set_link(ring.state, attacked, eve=False)
    assert not ring.link(attacked)["alarm"]
    cleared = [e for e in ring.audit("A") if e["event"] == "link_alarm_cleared"]
    assert cleared
    assert cleared[-1]["link"] == attacked
