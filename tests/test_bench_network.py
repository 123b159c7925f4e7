"""``bench/network.py`` prints DESIGN.md's JSON form with the names that issue 14 asks for.

Only the form and the names are checked (with --quick, on smaller networks): timings do not
belong in tests.
"""

from __future__ import annotations

import math
import os

from bench_form import ROOT, run_bench


def test_network_bench_prints_its_stable_names() -> None:
    results = run_bench("network.py", "--quick")
    names = [r["name"] for r in results]
    assert {
        "net.plan.growth_exponent",
        "net.simulate.sim_seconds_per_s",
        "qkd.repeater.mc_chains_per_s",
        "qkd.repeater.mc_vs_numpy_geometric",
    } <= set(names)
    assert any(name.startswith("net.plan.seconds.") for name in names)
    assert "qkd.repeater.vs_sequence" in names
    for result in results:
        if result["value"] is None:
            # Only a peer that is missing on this machine may be unavailable, with its reason.
            assert result["name"] == "qkd.repeater.vs_sequence"
            assert result["unit"].startswith("unavailable: ")
            continue
        assert isinstance(result["value"], int | float)
        assert math.isfinite(result["value"])


def test_network_bench_reports_sequence_unavailable_without_failing() -> None:
    env = {**os.environ, "QKD_SEQUENCE_PYTHON": str(ROOT / "no-such-venv" / "python")}
    results = {r["name"]: r for r in run_bench("network.py", "--quick", "--repeater-only", env=env)}
    ratio = results["qkd.repeater.vs_sequence"]
    assert ratio["value"] is None
    assert ratio["unit"].startswith("unavailable: SeQUeNCe run failed")
    assert "qkd.repeater.sequence_seconds_to_1pct" not in results
