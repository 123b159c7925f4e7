"""The runnable trust-path example in docs/policy.md runs and prints what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def test_the_trust_path_example_runs() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Trust paths", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (printed,) = re.findall(r"It prints:\n\n```\n(.*?)```", section, re.S)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = printed.splitlines()
    lines = proc.stdout.splitlines()
    assert len(lines) == len(expected) == 3
    key_id = re.search(r"QKD key (\S+) passed", lines[1])
    assert key_id is not None
    assert lines[1].replace(key_id.group(1), "<key_ID>") == expected[1]
    assert [lines[0], lines[2]] == [expected[0], expected[2]]
