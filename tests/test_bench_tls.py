"""``bench/tls.py`` prints DESIGN.md's JSON form with the names that issue 13 asks for."""

from __future__ import annotations

import math

import pytest
from bench_form import run_bench

from agile.tls import unavailable_reason

REASON = unavailable_reason()


@pytest.mark.skipif(REASON is not None, reason=f"agile.tls unavailable: {REASON}")
def test_tls_bench_prints_its_stable_names() -> None:
    results = run_bench("tls.py", "--quick", timeout=300)
    assert {
        "tls.handshakes_per_s",
        "tls.pyopenssl_handshakes_per_s",
        "tls.vs_pyopenssl",
        "tls.bulk_mbit_per_s",
        "tls.agile_handshake_per_s",
    } == {r["name"] for r in results}
    for result in results:
        assert isinstance(result["value"], int | float)
        assert math.isfinite(result["value"])
        assert result["value"] > 0
