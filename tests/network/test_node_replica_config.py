"""Node replicas in net.json and on the command line: the store, the replicas' addresses,
located errors, and `agile net up --store URL --replicas N` with `agile net status`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qkd.delivery.kme.config import ConfigError
from qkd.network.loader import load_network
from qkd.network.nodeconfig import NodeSettings, load_node_settings
from tests.network.netproc import network_toml, run_agile

PAIR = network_toml("pair", {"A": ["sae-a"], "B": ["sae-b"]}, [("A", "B")])
URL = "postgresql://kme@db.example/qkd"


def _settings(
    tmp_path: Path, nodes: dict[str, object], node: str = "A", replica: int = 0
) -> NodeSettings:
    file = tmp_path / "net.toml"
    file.write_text(PAIR)
    (tmp_path / "net.json").write_text(json.dumps({"nodes": nodes}))
    return load_node_settings(load_network(file), node, tmp_path, replica=replica)


def _two(store: object = URL) -> dict[str, object]:
    return {
        "store": store,
        "replicas": [
            {"etsi014": "127.0.0.1:8001", "kmapi": "127.0.0.1:9001"},
            {"etsi014": "127.0.0.1:8002", "kmapi": "127.0.0.1:9002"},
        ],
    }


def test_a_replica_listens_on_its_own_addresses_and_knows_every_replica(tmp_path: Path) -> None:
    b = {"etsi014": "127.0.0.1:8003", "kmapi": "127.0.0.1:9003"}
    settings = _settings(tmp_path, {"A": _two(), "B": b}, replica=1)
    assert settings.store_url == URL
    assert settings.etsi014 == ("127.0.0.1", 8002)
    assert settings.kmapi["A"] == ("127.0.0.1", 9002)
    assert settings.kmapi_replicas == {
        "A": [("127.0.0.1", 9001), ("127.0.0.1", 9002)],
        "B": [("127.0.0.1", 9003)],
    }
    assert settings.audit == tmp_path / "nodes" / "A" / "replica-1" / "audit.jsonl"
    sqlite = _settings(tmp_path, {"A": _two(), "B": b | {"store": "sqlite:b.db"}}, node="B")
    assert sqlite.store == tmp_path / "b.db"
    assert sqlite.store_url is None


@pytest.mark.parametrize(
    ("entry", "replica", "message"),
    [
        (_two(store="sqlite:a.db"), 0, 'nodes.A: 2 replicas need a shared store: "store"'),
        (_two(store="mysql://x"), 0, 'nodes.A.store: must be "sqlite:PATH" or a "postgresql'),
        (_two(), 2, "--replica 2: node A has 2 replica(s)"),
        ({"replicas": []}, 0, "nodes.A.replicas: must be a non-empty list"),
        ({"replicas": [{"etsi014": "127.0.0.1:1"}]}, 0, 'nodes.A.replicas[0].kmapi: must be "HOST'),
    ],
)
def test_replica_settings_errors_are_located(
    tmp_path: Path, entry: dict[str, object], replica: int, message: str
) -> None:
    b = {"etsi014": "127.0.0.1:8003", "kmapi": "127.0.0.1:9003"}
    with pytest.raises(ConfigError, match=re.escape("net.json")) as raised:
        _settings(tmp_path, {"A": entry, "B": b}, replica=replica)
    assert message in str(raised.value)


def test_net_up_with_a_store_and_replicas(tmp_path: Path, postgres_url: str) -> None:
    file = tmp_path / "pair.toml"
    file.write_text(PAIR)
    state = tmp_path / "state"
    refused = run_agile("net", "up", str(file), "--state", str(state), "--replicas", "2")
    assert refused.returncode != 0
    assert "--store" in refused.stderr
    up = run_agile(
        "net", "up", str(file), "--state", str(state), "--store", postgres_url,
        "--replicas", "2", "--routing-period", "0.25", "--json",
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr
        config = json.loads((state / "net.json").read_text())
        assert [len(config["nodes"][n]["replicas"]) for n in "AB"] == [2, 2]
        assert config["nodes"]["A"]["store"] == postgres_url
        leaders: list[object] = []
        for _ in range(100):
            status = json.loads(run_agile("net", "status", "--state", str(state), "--json").stdout)
            replicas = [r for node in status["nodes"] for r in node["replicas"]]
            leaders = [r["leader"] for r in replicas]
            if all(r["up"] for r in replicas) and sorted(map(bool, leaders)) == [0, 0, 1, 1]:
                break
        # Each node has one leader among its replicas.
        assert sorted(map(bool, leaders)) == [False, False, True, True]
        text = run_agile("net", "status", "--state", str(state)).stdout
        assert text.count("replica 1 https://127.0.0.1:") == 2
        assert text.count(", leader)") == 2
    finally:
        down = run_agile("net", "down", "--state", str(state), "--json")
    assert down.returncode == 0, down.stderr
    assert not (state / "nodes" / "A" / "store.sqlite").exists()
