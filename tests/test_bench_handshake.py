"""``bench/handshake.py`` prints DESIGN.md's JSON form with the names that issue 5 asks for.

Only the form and the names are checked: timings do not belong in tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_handshake_bench_prints_its_stable_names() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "handshake.py"), "--quick"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    results = json.loads(run.stdout)["results"]
    names = [r["name"] for r in results]
    assert len(names) == len(set(names))
    assert {
        "handshake.per_s",
        "handshake.psk.per_s",
        "handshake.overhead_ratio.signature",
        "handshake.overhead_ratio.psk",
        "handshake.protocol_overhead_us.psk",
        "handshake.overhead_ratio.psk_blocks",
        "handshake.pqc_layer_ratio.psk",
        "handshake.protocol_ratio.psk",
    } <= set(names)
    for result in results:
        assert set(result) == {"name", "value", "unit"}
        assert isinstance(result["value"], int | float)
        assert math.isfinite(result["value"])
        if not result["name"].startswith("handshake.protocol_overhead_us."):
            assert result["value"] > 0  # a difference of two noisy medians may be negative
        assert result["unit"]
