"""The conventions every ``agile`` command keeps: --version, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

import agile
from agile.cli import main


def test_version_prints_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"agile {agile.__version__}"


def test_unknown_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bench_unknown_area_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "no-such-area"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no benchmark named no-such-area" in err


def test_console_script_runs_in_a_fresh_interpreter() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agile.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("agile ")


def test_a_reader_that_goes_away_is_no_error() -> None:
    # `agile qkd rate ... | head -1`: the pipe closes after the first line, while the command
    # still has more than a pipe buffer (64 KiB) of table to write.
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "agile.cli", "qkd", "rate", "--preset", "gys"),
            "--distance-km",
            "0:100:0.05",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert first.strip()
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err
