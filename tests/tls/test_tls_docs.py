"""The runnable example in docs/tls.md runs and prints what it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import needs_tls

pytestmark = needs_tls
DOC = Path(__file__).resolve().parents[2] / "docs" / "tls.md"


def test_the_application_example_runs() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    group, key_id, data = proc.stdout.split()
    assert group == "X25519MLKEM768"
    assert re.fullmatch(r"[0-9a-f-]{36}", key_id)
    assert data == "b'hi'"
