"""`agile kme certs --network` and `agile kme serve --network`: output and located errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qkd.delivery.kme.config import ConfigError
from qkd.network.loader import load_network
from qkd.network.nodeconfig import NodeSettings, load_node_settings
from tests.network.netproc import run_agile

ROOT = Path(__file__).resolve().parents[2]
RING = ROOT / "docs" / "networks" / "metro-ring.toml"


def test_kme_certs_for_a_network_issues_every_node_and_sae(tmp_path: Path) -> None:
    result = run_agile("kme", "certs", "--network", str(RING), "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    assert {f"KME:{n}" for n in "ABCDEFG"} <= set(files)
    assert {"SAE:bank-a", "SAE:bank-c", "SAE:hospital-e", "SAE:datacentre-g"} <= set(files)
    for name in ("bank-a", "datacentre-g"):
        assert (tmp_path / "saes" / name / "cert.pem").exists()
        assert (tmp_path / "saes" / name / "key.pem").stat().st_mode & 0o077 == 0
    assert not list(tmp_path.rglob("*ca*.key"))


def test_kme_serve_network_errors_are_located_and_clean(tmp_path: Path) -> None:
    missing = run_agile(
        "kme", "serve", "--network", str(RING), "--node", "A", "--state", str(tmp_path)
    )
    assert missing.returncode != 0
    assert "net.json" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "net.json").write_text("{}")
    unknown = run_agile(
        "kme", "serve", "--network", str(RING), "--node", "Z", "--state", str(tmp_path)
    )
    assert "no such node" in unknown.stderr
    bad = run_agile("kme", "serve", "--network", str(RING), "--node", "A", "--state", str(tmp_path))
    assert "nodes" in bad.stderr
    assert "Traceback" not in bad.stderr
    usage = run_agile("kme", "serve", "--network", str(RING))
    assert usage.returncode != 0
    assert "--node" in usage.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[network]\nname = "x"\n[[nodes]]\nname = "A"\nkind = "nope"\n')
    located = run_agile("kme", "serve", "--network", str(broken), "--node", "A", "--state", "x")
    assert "broken.toml:5" in located.stderr


def _settings(state: Path, extra: dict[str, Any]) -> NodeSettings:
    network = load_network(RING)
    nodes = {n.name: {"etsi014": "127.0.0.1:1", "kmapi": "127.0.0.1:2"} for n in network.nodes}
    (state / "net.json").write_text(json.dumps({"nodes": nodes, **extra}))
    return load_node_settings(network, "A", state)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("decoy_rate_fraction", 1.5, "decoy_rate_fraction must be at most 1 (it is 1.5)"),
        ("qber_threshold", 0.6, "qber_threshold must be at most 0.5"),
        ("routing_period_s", float("nan"), "routing_period_s must be a positive number"),
        ("key_max_age_s", float("inf"), "key_max_age_s must be a positive number"),
        ("pool_bytes", 0, "pool_bytes must be a positive integer"),
    ],
)
def test_node_settings_refuse_figures_out_of_range(
    tmp_path: Path, field: str, value: float, message: str
) -> None:
    """Every number in net.json is positive and finite; the QBER threshold is at most 1/2 and
    the decoy fraction at most 1 (above it every honest link would be in alarm)."""
    assert _settings(tmp_path, {}).decoy_rate_fraction == 0.5
    assert _settings(tmp_path, {"decoy_rate_fraction": 1}).decoy_rate_fraction == 1
    with pytest.raises(ConfigError, match=r"net\.json") as refused:
        _settings(tmp_path, {field: value})
    assert message in str(refused.value)
