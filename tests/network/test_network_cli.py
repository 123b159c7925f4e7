"""``agile net schema|check|plan``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agile.cli import main

ROOT = Path(__file__).resolve().parents[2]
METRO = str(ROOT / "docs" / "networks" / "metro-ring.toml")
LOCATED = re.compile(r"^.+:\d+:\d+: .+: .+$")


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_plan_json_has_the_design_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["net", "plan", METRO, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"links", "demands", "feasible", "bottlenecks", "single_failures"} <= set(doc)
    assert {"id", "kind", "key_rate_bps"} <= set(doc["links"][0])
    assert {
        "from", "to", "requested_bps", "max_rate_bps", "path", "trusted_nodes", "met"
    } <= set(doc["demands"][0])  # fmt: skip
    assert {"failed", "kind", "failed_demands"} <= set(doc["single_failures"][0])
    for demand in doc["demands"]:
        assert demand["trusted_nodes"] == len(demand["path"]) - 2
        assert demand["met"] == (demand["max_rate_bps"] >= demand["requested_bps"] * (1 - 1e-9))
    # One entry per link, and per trusted or ground-station node: the endpoint G has none.
    nodes = [f["failed"] for f in doc["single_failures"] if f["kind"] == "node"]
    assert nodes == ["A", "B", "C", "D", "E", "F"]
    # And one eavesdropping alarm per link, failing what the link's failure fails.
    links = {
        f["failed"]: f["failed_demands"] for f in doc["single_failures"] if f["kind"] == "link"
    }
    alarms = {
        f["failed"]: f["failed_demands"] for f in doc["single_failures"] if f["kind"] == "alarm"
    }
    assert alarms == links
    assert list(alarms) == [link["id"] for link in doc["links"]]


def test_plan_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["net", "plan", METRO, "--no-failures"]) == 0
    out = capsys.readouterr().out
    assert "A -> C" in out
    assert "single failures" not in out


def test_check_valid_and_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[network]\nname = "x"\n[[nodes]]\nname = "A"\nkind = "hub"\n', encoding="utf-8")
    assert _run(["net", "check", METRO]) == 0
    assert "ok (metro-ring" in capsys.readouterr().out
    assert _run(["net", "check", METRO, str(bad)]) == 1
    captured = capsys.readouterr()
    problems = [line for line in captured.out.splitlines() if "bad.toml" in line]
    assert problems == [
        f"{bad}:5:1: nodes.0.kind: Input should be 'trusted', 'endpoint' or 'ground-station' "
        "(got string 'hub')"
    ]
    assert "1 of 2 network file is invalid" in captured.err
    assert _run(["net", "check", str(bad), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False
    assert doc["files"][0]["problems"][0]["path"] == "nodes.0.kind"


def test_plan_of_a_bad_file_exits_1_with_located_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"network": {"name": "x"}, "nodes": []}', encoding="utf-8")
    assert _run(["net", "plan", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err
    assert all(line.startswith("agile: error: ") for line in err)
    assert all(LOCATED.match(line.removeprefix("agile: error: ")) for line in err)
    assert "Traceback" not in "\n".join(err)


def test_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["net", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema")


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["net", "plan"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_plan_draws_a_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "map.png"
    assert _run(["net", "plan", METRO, "--no-failures", "--json", "--plot", str(png)]) == 0
    assert json.loads(capsys.readouterr().out)["feasible"] is True
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SATELLITE = str(ROOT / "docs" / "networks" / "satellite-relay.toml")


def test_simulate_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["net", "simulate", METRO, "--days", "0.5", "--step-s", "300", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"network", "days", "step_s", "steps", "epochs", "demands", "links"} <= set(doc)
    assert doc["steps"] == 144
    demand = doc["demands"][0]
    assert {
        "from", "to", "requested_bps", "requested_bits", "delivered_bits", "delivered_fraction",
        "starved_s", "starved", "pool_min_bits", "pool_mean_bits", "routes",
    } <= set(demand)  # fmt: skip
    assert demand["routes"][0] == {
        "from_s": 0.0,
        "path": ["A", "B", "C"],
        "paths": [{"path": ["A", "B", "C"], "share": 1.0}],
    }
    link = doc["links"][0]
    assert {
        "id", "kind", "filled_bits", "drawn_bits", "discarded_bits", "capacity_bits",
        "final_bits", "down", "levels",
    } <= set(link)  # fmt: skip
    assert len(link["levels"]["times_s"]) == len(link["levels"]["bits"]) == 144
    for link in doc["links"]:
        assert link["final_bits"] == pytest.approx(
            link["filled_bits"] - link["drawn_bits"] - link["discarded_bits"]
        )


def test_simulate_with_events_prints_the_reroute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "cut.toml"
    events.write_text(
        '[[events]]\nlink = "B-C"\nkind = "failure"\nstart_s = 3600\nend_s = 7200\n',
        encoding="utf-8",
    )
    argv = ["net", "simulate", METRO, "--days", "0.25", "--events", str(events)]
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert "3 routing epochs" in out
    assert "from 3,600 s: A-F-E-D-C (100%)" in out


def test_simulate_bad_event_file_gives_a_located_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "bad.toml"
    events.write_text(
        '[[events]]\nlink = "B-C"\nkind = "failure"\nstart_s = 10\nend_s = 7200\n\n'
        '[[events]]\nlink = "X-Y"\nkind = "flood"\nstart_s = 10\nend_s = 5\n\n'
        '[[events]]\nlink = "A-B"\nkind = "eve"\nstart_s = 10\nend_s = 5\n',
        encoding="utf-8",
    )
    argv = ["net", "simulate", METRO, "--days", "0.1", "--events", str(events)]
    assert _run(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"agile: error: {events}:9:1: events.1.kind: Input should be 'failure' or 'eve' "
        "(got string 'flood')",
        f"agile: error: {events}:13:1: events.2: end_s (5) must be after start_s (10)",
    ]
    events.write_text('[[events]]\nlink = "X-Y"\nkind = "eve"\nstart_s = 1\nend_s = 5\n')
    assert _run(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"agile: error: {events}:2:1: events.0.link: no link 'X-Y' in network 'metro-ring'; "
        "use one of its link ids"
    ]


def test_simulate_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["net", "simulate", METRO]) == 2  # --days is required
    assert _run(["net", "simulate", METRO, "--days", "-1"]) == 2
    assert _run(["net", "simulate", METRO, "--days", "1", "--step-s", "nan"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"network": {"name": "x"}, "nodes": []}', encoding="utf-8")
    assert _run(["net", "simulate", str(bad), "--days", "1"]) == 1
    assert (
        _run(["net", "simulate", METRO, "--days", "1", "--events", str(tmp_path / "no.toml")]) == 1
    )
    err = capsys.readouterr().err
    assert "cannot read the event file" in err
    assert "Traceback" not in err


def test_simulate_draws_pools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "pools.png"
    assert _run(["net", "simulate", SATELLITE, "--days", "1", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Xinglong -> Graz" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_positions_give_a_geographic_map(tmp_path: Path) -> None:
    from agile.cli.net import _geographic
    from qkd.network.loader import load_network, network_from_dict

    backbone = load_network(ROOT / "docs" / "networks" / "backbone.toml")
    where = _geographic(backbone)
    assert where is not None
    # x = longitude, y = latitude, in degrees.
    assert where["Beijing"] == pytest.approx((116.407, 39.904))
    assert where["Shanghai"] == pytest.approx((121.474, 31.230))
    # Without a position for every node, no map projection (a computed layout instead).
    assert _geographic(load_network(METRO)) is None
    # Across the antimeridian the longitudes are unwrapped: Fiji (178 E) and Samoa
    # (172 W = 188 E) are 10 degrees apart, not 350.
    pacific = network_from_dict(
        {
            "network": {"name": "pacific"},
            "nodes": [
                {"name": "Suva", "kind": "trusted", "latitude_deg": -18.1, "longitude_deg": 178.4},
                {"name": "Apia", "kind": "trusted", "latitude_deg": -13.8, "longitude_deg": -171.8},
            ],
        }
    )
    unwrapped = _geographic(pacific)
    assert unwrapped is not None
    assert abs(unwrapped["Apia"][0] - unwrapped["Suva"][0]) == pytest.approx(9.8)
    png = tmp_path / "backbone.png"
    assert _run(["net", "plan", str(ROOT / "docs/networks/backbone.toml"), "--no-failures",
                 "--plot", str(png)]) == 0  # fmt: skip
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
