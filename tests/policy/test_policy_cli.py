"""``agile policy list|check|show|schema``."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from agile import load_policy
from agile.cli import main
from agile.policy import builtin
from tests.policy.conftest import LOCATED, VALID_TOML

Write = Callable[[str, str], Path]


def test_check_valid_files_exits_0(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path = write("ok.toml", VALID_TOML)
    assert main(["policy", "check", str(path), "hybrid-default-latest"]) == 0
    out = capsys.readouterr().out
    assert f"{path}: ok (test-policy, sha256:" in out
    assert "hybrid-default-latest: ok (hybrid-default-20261207, sha256:" in out


def test_check_prints_every_problem_located_and_exits_1(
    write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = write("ok.toml", VALID_TOML)
    bad = write(
        "bad.toml",
        VALID_TOML.replace('aead = "AES-256-GCM"', 'aead = "AES-128-GCM"').replace(
            "key_length = 32", "key_length = 16"
        ),
    )
    broken = write("broken.json", '{"name": ')
    assert main(["policy", "check", str(ok), str(bad), str(broken)]) == 1
    captured = capsys.readouterr()
    problems = [line for line in captured.out.splitlines() if ": ok (" not in line]
    assert len(problems) == 3
    for line in problems:
        assert LOCATED.match(line), line
    assert any(line.startswith(f"{bad}:") and ": session.aead: " in line for line in problems)
    assert any(line.startswith(f"{bad}:") and ": session.key_length: " in line for line in problems)
    assert any(line.startswith(f"{broken}:1:10: (syntax): ") for line in problems)
    assert "Traceback" not in captured.out + captured.err
    assert captured.err.strip() == "2 of 3 policy files are invalid"


def test_check_json(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write("bad.toml", VALID_TOML.replace('hash = "SHA-256"', 'hash = "MD5"'))
    assert main(["policy", "check", "--json", str(bad), "pqc-only-latest"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["valid"] is False
    first, second = document["files"]
    assert first["valid"] is False
    [problem] = first["problems"]
    assert problem["path"] == "kdf.hash"
    assert problem["file"] == str(bad)
    assert isinstance(problem["line"], int)
    assert isinstance(problem["col"], int)
    assert second["valid"] is True
    assert second["fingerprint"].startswith("sha256:")


def test_check_date_option_applies_sunsets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", "cnsa2-latest", "--date", "2032-06-01"]) == 0
    out = capsys.readouterr().out
    assert "warning: 'DHKEM(P-384, HKDF-SHA384)' reaches its sunset" in out
    assert main(["policy", "check", "cnsa2-latest", "--date", "2034-01-01"]) == 1
    assert "was sunset on 2033-01-01" in capsys.readouterr().out


def test_check_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["policy", "check", "cnsa2-latest", "--date", "soon"])
    assert exc.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["policies"]
    assert [r["name"] for r in rows] == builtin.versioned_names()
    for row in rows:
        assert row["fingerprint"] == load_policy(row["name"]).fingerprint
        alias = row["name"].rsplit("-", 1)[0] + "-latest"
        # Only the newest version of a family carries its -latest alias.
        newest = builtin.aliases()[alias] == row["name"]
        assert row["aliases"] == ([alias] if newest else [])
        assert row["description"]
        assert row["version"]
    assert main(["policy", "list"]) == 0
    text = capsys.readouterr().out
    assert "hybrid-default-20261207  (= hybrid-default-latest)" in text


@pytest.mark.parametrize("name", ["hybrid-default-latest", "cnsa2-latest", "qkd-required-latest"])
def test_show_toml_round_trips(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "show", name]) == 0
    text = capsys.readouterr().out
    tomllib.loads(text)
    copy = tmp_path / "shown.toml"
    copy.write_text(text)
    assert load_policy(copy).fingerprint == load_policy(name).fingerprint
    assert f"# fingerprint {load_policy(name).fingerprint}" in text


def test_show_resolves_extends(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    child = write(
        "child.toml",
        'schema_version = 1\nname = "child"\nversion = "1"\nextends = "pqc-only-latest"\n'
        'auth.peer_public_keys = {"ML-DSA-65" = "00AB"}\n',
    )
    assert main(["policy", "show", "--json", str(child)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["policy"]["name"] == "child"
    assert document["policy"]["suites"][0]["components"] == ["MLKEM768-X25519"]
    assert document["policy"]["auth"]["peer_public_keys"] == {"ML-DSA-65": "00ab"}
    assert "extends" not in document["policy"]
    assert document["fingerprint"] == load_policy(child).fingerprint
    assert main(["policy", "show", str(child)]) == 0
    assert 'peer_public_keys = {ML-DSA-65 = "00ab"}' in capsys.readouterr().out


def test_show_invalid_policy_exits_1(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write("bad.toml", VALID_TOML.replace("schema_version = 1", "schema_version = 9"))
    assert main(["policy", "show", str(bad)]) == 1
    captured = capsys.readouterr()
    assert LOCATED.match(captured.out.strip())
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"agile: error: {bad} is not a valid policy")


def test_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Policy"
    assert "suites" in schema["properties"]


def test_check_in_a_fresh_interpreter_has_no_traceback(write: Write) -> None:
    bad = write("bad.yaml", "schema_version: 1\nname: [unclosed\n")
    proc = subprocess.run(
        [sys.executable, "-m", "agile.cli", "policy", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    [line] = proc.stdout.splitlines()
    assert LOCATED.match(line)
