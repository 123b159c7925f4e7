"""`agile kme certs --network` and `agile kme serve --network`: output and located errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RING = ROOT / "docs" / "networks" / "metro-ring.toml"


def _agile(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agile.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_kme_certs_for_a_network_issues_every_node_and_sae(tmp_path: Path) -> None:
    result = _agile("kme", "certs", "--network", str(RING), "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["files"]
    assert {f"KME:{n}" for n in "ABCDEFG"} <= set(files)
    assert {"SAE:bank-a", "SAE:bank-c", "SAE:hospital-e", "SAE:datacentre-g"} <= set(files)
    for name in ("bank-a", "datacentre-g"):
        assert (tmp_path / "saes" / name / "cert.pem").exists()
        assert (tmp_path / "saes" / name / "key.pem").stat().st_mode & 0o077 == 0
    assert not list(tmp_path.rglob("*ca*.key"))


def test_kme_serve_network_errors_are_located_and_clean(tmp_path: Path) -> None:
    missing = _agile(
        "kme", "serve", "--network", str(RING), "--node", "A", "--state", str(tmp_path)
    )
    assert missing.returncode != 0
    assert "net.json" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "net.json").write_text("{}")
    unknown = _agile(
        "kme", "serve", "--network", str(RING), "--node", "Z", "--state", str(tmp_path)
    )
    assert "no such node" in unknown.stderr
    bad = _agile("kme", "serve", "--network", str(RING), "--node", "A", "--state", str(tmp_path))
    assert "nodes" in bad.stderr
    assert "Traceback" not in bad.stderr
    usage = _agile("kme", "serve", "--network", str(RING))
    assert usage.returncode != 0
    assert "--node" in usage.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text('[network]\nname = "x"\n[[nodes]]\nname = "A"\nkind = "nope"\n')
    located = _agile("kme", "serve", "--network", str(broken), "--node", "A", "--state", "x")
    assert "broken.toml:5" in located.stderr
