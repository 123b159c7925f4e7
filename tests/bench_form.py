"""The one helper that runs a ``bench/`` script and checks DESIGN.md's output form.

Each script prints ``{"results": [{"name", "value", "unit"}, ...]}`` with unique names. The
tests using this check the names their issue asks for; timings do not belong in tests.
(Imported as a plain module: ``tests/`` is on the path for the tests directly inside it.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_bench(
    script: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Run ``bench/SCRIPT`` with ``args``; its results, after checking the form."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )
    results: list[dict[str, Any]] = json.loads(run.stdout)["results"]
    names = [r["name"] for r in results]
    assert len(names) == len(set(names))
    for result in results:
        assert set(result) == {"name", "value", "unit"}
        assert result["unit"]
    return results
