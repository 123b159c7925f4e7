"""``bench/network.py`` prints DESIGN.md's JSON form with the names that issue 14 asks for.

Only the form and the names are checked (with --quick, on smaller networks): timings do not
belong in tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_network_bench_prints_its_stable_names() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "network.py"), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=600,
    )
    results = json.loads(run.stdout)["results"]
    names = [r["name"] for r in results]
    assert len(names) == len(set(names))
    assert {
        "net.plan.growth_exponent",
        "net.simulate.sim_seconds_per_s",
        "qkd.repeater.mc_chains_per_s",
        "qkd.repeater.mc_vs_numpy_geometric",
    } <= set(names)
    assert any(name.startswith("net.plan.seconds.") for name in names)
    for result in results:
        assert set(result) == {"name", "value", "unit"}
        assert isinstance(result["value"], int | float)
        assert math.isfinite(result["value"])
