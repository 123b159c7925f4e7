"""Acceptance: `agile net up docs/networks/metro-ring.toml`, keys between non-adjacent nodes
with their path, an eavesdropping alarm that reroutes, and the audit trail that shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.network.netproc import RunningNetwork, keys_of, run_agile, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_metro_ring_shares_keys_with_path_and_reroutes_on_an_alarm(tmp_path: Path) -> None:
    state = tmp_path / "ring"
    file = ROOT / "docs" / "networks" / "metro-ring.toml"
    up = run_agile("net", "up", str(file), "--state", str(state), "--json")
    assert up.returncode == 0, up.stderr
    net = RunningNetwork(
        state=state, file=file, config=json.loads((state / "net.json").read_text())
    )
    try:
        assert set(json.loads(up.stdout)["nodes"]) == set("ABCDEFG")
        assert (state / "ca.pem").exists()
        assert (state / "saes" / "bank-a" / "cert.pem").exists()
        net.wait_links_up(timeout=60)
        status = json.loads(run_agile("net", "status", "--state", str(state), "--json").stdout)
        node_a = next(n for n in status["nodes"] if n["name"] == "A")
        assert node_a["up"]
        assert node_a["saes"] == ["bank-a"]
        assert node_a["url"].startswith("https://127.0.0.1:")
        assert {x["id"] for x in status["links"]} >= {"A-B", "G-D"}
        assert all({"id", "pool_bits", "qber", "alarm"} <= set(x) for x in status["links"])

        def share() -> list[str] | None:
            response = net.raw("saes", "bank-a", "A").post(
                "/api/v1/keys/bank-c/enc_keys", json={"number": 2}
            )
            if response.status_code != 200:
                return None
            sent = keys_of(response)
            got = net.raw("saes", "bank-c", "C").post(
                "/api/v1/keys/bank-a/dec_keys",
                json={"key_IDs": [{"key_ID": k} for k, _, _ in sent]},
            )
            assert keys_of(got) == sent
            return sent[0][2]

        assert share() == ["A", "B", "C"]
        eve = run_agile("net", "eve", "--state", str(state), "A-B")
        assert eve.returncode == 0, eve.stdout + eve.stderr
        assert wait_until(lambda: (p := share()) and p != ["A", "B", "C"] and p) == [
            "A", "F", "E", "D", "C",
        ]  # fmt: skip
        events = net.audit("A")
        alarm = next(e for e in events if e["event"] == "link_alarm")
        assert alarm["link"] == "A-B"
        assert alarm["qber"] > 0.11
        reroute = next(e for e in events if e["event"] == "reroute")
        assert reroute["previous"] == ["A", "B", "C"]
        assert reroute["path"] == ["A", "F", "E", "D", "C"]
        table = run_agile("net", "status", "--state", str(state)).stdout
        assert "ALARM" in table
    finally:
        down = run_agile("net", "down", "--state", str(state))
        assert down.returncode == 0, down.stderr
        net.close()


@pytest.mark.parametrize("args", [["net", "status", "--state", "/nonexistent/x"]])
def test_net_commands_without_a_network_say_so(args: list[str]) -> None:
    result = run_agile(*args)
    assert result.returncode != 0
    assert "net.json" in result.stderr
    assert "Traceback" not in result.stderr
