"""``bench/handshake.py`` prints DESIGN.md's JSON form with the names that issue 5 asks for.

Only the form and the names are checked: timings do not belong in tests.
"""

from __future__ import annotations

import math

from bench_form import run_bench


def test_handshake_bench_prints_its_stable_names() -> None:
    results = run_bench("handshake.py", "--quick", timeout=300)
    names = [r["name"] for r in results]
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
        assert isinstance(result["value"], int | float)
        assert math.isfinite(result["value"])
        if not result["name"].startswith("handshake.protocol_overhead_us."):
            assert result["value"] > 0  # a difference of two noisy medians may be negative
