"""`agile migrate tls` over the corpus in tests/data/tls: every quantum-vulnerable setting,
exactly; every unparsed line reported; the written policy loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agile import load_policy
from agile.cli import main
from agile.migrate import audit_files, detect_dialect

CORPUS = Path(__file__).resolve().parents[1] / "data" / "tls"


def corpus_files() -> list[Path]:
    """Every configuration in the corpus (each has a ``.expected.json`` sidecar)."""
    return sorted(p for p in CORPUS.iterdir() if not p.name.endswith(".expected.json"))


def expected(path: Path) -> dict[str, Any]:
    """The sidecar: dialect, quantum-vulnerable (line, setting) pairs, unparsed lines."""
    document: dict[str, Any] = json.loads(
        path.with_name(path.name + ".expected.json").read_text(encoding="utf-8")
    )
    return document


FILES = corpus_files()


def test_corpus_is_large_and_covers_every_dialect() -> None:
    assert len(FILES) >= 12
    dialects = {expected(p)["dialect"] for p in FILES}
    assert dialects == {"openssl", "nginx", "apache", "haproxy", "stunnel"}
    # At least one already-hybrid configuration, one with an unparsable line.
    assert any(not expected(p)["quantum_vulnerable"] for p in FILES)
    assert any(expected(p)["unparsed_lines"] for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_flags_exactly_the_quantum_vulnerable_settings(path: Path) -> None:
    report = audit_files([path])
    found = sorted((f.line, f.setting) for f in report.findings if f.risk == "quantum-vulnerable")
    want = sorted((e["line"], e["setting"]) for e in expected(path)["quantum_vulnerable"])
    assert found == want


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_unparsed_lines_are_reported_with_their_line(path: Path) -> None:
    report = audit_files([path])
    unparsed = sorted(f.line for f in report.findings if f.setting == "(unparsed)")
    assert unparsed == expected(path)["unparsed_lines"]
    for f in report.findings:
        if f.setting == "(unparsed)":
            assert f.risk == "weak"
            assert "not audited" in f.fix


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_dialect_is_told_from_name_and_from_content(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert detect_dialect(str(path), text) == expected(path)["dialect"]
    # Renamed to something uninformative, the content alone must tell.
    assert detect_dialect("/tmp/config", text) == expected(path)["dialect"]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_json_output_and_exit_code(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["migrate", "tls", "--json", str(path)])
    document = json.loads(capsys.readouterr().out)
    assert code == (1 if expected(path)["quantum_vulnerable"] else 0)
    assert document["findings"]
    for finding in document["findings"]:
        assert {"file", "line", "setting", "value", "risk", "fix"} <= set(finding)
        assert finding["risk"] in {"quantum-vulnerable", "weak", "ok"}
        assert finding["file"] == str(path)
    assert document["summary"]["quantum_vulnerable"] == len(expected(path)["quantum_vulnerable"])


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_written_policy_loads(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "policy.toml"
    main(["migrate", "tls", "--json", "--write-policy", str(out), str(path)])
    policy = load_policy(out)
    assert policy.suites
    # Every suite is post-quantum: the migration upgrades classical groups to hybrids.
    assert all(any(c.startswith("ML-KEM") for c in s.components) for s in policy.suites)
    assert out.stat().st_mode & 0o777 == 0o644


def test_policy_from_the_whole_corpus_keeps_preference_order(tmp_path: Path) -> None:
    out = tmp_path / "all.toml"
    code = main(["migrate", "tls", "--write-policy", str(out), *map(str, FILES)])
    assert code == 1
    policy = load_policy(out)
    names = [s.name for s in policy.suites]
    assert names[0] == "mlkem768-x25519"
    assert {"mlkem768-p256", "mlkem1024-p384", "mlkem1024-x448"} <= set(names)
    sunsets = {s.algorithm for s in policy.rules.sunset}
    assert "DHKEM(X25519, HKDF-SHA256)" in sunsets


def test_psk_only_stunnel_gives_a_psk_policy(tmp_path: Path) -> None:
    out = tmp_path / "psk.toml"
    path = next(p for p in FILES if p.name == "stunnel-psk.conf")
    assert main(["migrate", "tls", "--write-policy", str(out), str(path)]) == 0
    assert load_policy(out).auth.method == "psk"
