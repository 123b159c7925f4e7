"""``agile qkd simulate`` and ``agile qkd rate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agile.cli import main


def test_simulate_json_exit_0_with_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["qkd", "simulate", "--preset", "gys", "--distance-km", "25", "--pulses", "1e8",
         "--seed", "1", "--json"]
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["final_key_bits"] > 0
    assert data["secure_randomness"] is False


def test_simulate_intercept_resend_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["qkd", "simulate", "--pulses", "1e7", "--eve", "intercept-resend:1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "ABORTED" in out
    assert "QBER" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["qkd", "simulate", "--eve", "martian"],
        ["qkd", "rate", "--preset", "gys", "--distance-km", "10:0:1"],
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_pulses_must_be_a_whole_number(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["qkd", "simulate", "--pulses", "1.5"])
    assert exc.value.code == 2
    assert "--pulses" in capsys.readouterr().err


def test_rate_json_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "rate.png"
    code = main(
        ["qkd", "rate", "--preset", "gys", "--distance-km", "0:150:25", "--json",
         "--plot", str(png)]
    )  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [r["distance_km"] for r in data["rows"]] == [0, 25, 50, 75, 100, 125, 150]
    assert abs(data["max_distance_km"]["infinite"] - 142) < 1
    assert all(r["rate_infinite"] < r["plob"] for r in data["rows"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rate_plot_to_unwritable_path_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["qkd", "rate", "--preset", "gys", "--distance-km", "0:10:5", "--plot",
         "/nonexistent-dir/x.png"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert "--plot" in err


def test_progress_bar_draws_on_a_terminal_after_the_delay(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys
    import time

    from agile.cli import qkd as cli_qkd

    monkeypatch.setattr(cli_qkd, "_PROGRESS_AFTER", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with cli_qkd._ProgressBar(enabled=True) as bar:
        bar.update("reconciliation", 0.5)
        time.sleep(0.6)
    err = capsys.readouterr().err
    assert "reconciliation" in err
    assert "#" * 15 + "-" * 15 in err


def test_progress_bar_stays_silent_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from agile.cli import qkd as cli_qkd

    with cli_qkd._ProgressBar(enabled=False) as bar:
        bar.update("quantum", 0.1)
        time.sleep(0.3)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "extra",
    [
        ["--protocol", "bb84-single-photon", "--mu", "0.3"],
        ["--mu", "0.05"],  # below the default weak decoy nu = 0.1
        ["--protocol", "bbm92", "--nu", "0.1"],
    ],
)
def test_parameters_the_simulator_rejects_exit_2(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["qkd", "simulate", "--pulses", "1e5", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("agile: error: qkd simulate:")
