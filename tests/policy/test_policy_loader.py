"""Reading policy files: every problem reported at once, each at its place in the file."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from agile import PolicyError, load_policy
from agile.policy.loader import load_policy_with_warnings, parse_policy, policy_from_dict
from tests.policy.conftest import LOCATED, TODAY, VALID_TOML, problems_of, valid_document

Write = Callable[[str, str], Path]


def located(exc: pytest.ExceptionInfo[PolicyError]) -> dict[str, tuple[int, int, str]]:
    """``{field.path: (line, col, message)}``, checking the one-line format on the way."""
    found: dict[str, tuple[int, int, str]] = {}
    for problem in exc.value.problems:
        match = LOCATED.match(str(problem))
        assert match, str(problem)
        assert "\n" not in str(problem)
        found[problem.path] = (problem.line, problem.col, problem.message)
    return found


def test_the_same_policy_in_three_formats_has_one_fingerprint(write: Write) -> None:
    document = valid_document()
    from_toml = load_policy(write("p.toml", VALID_TOML), today=TODAY)
    from_json = load_policy(write("p.json", json.dumps(document, indent=2)), today=TODAY)
    from_yaml = load_policy(write("p.yaml", yaml.safe_dump(document)), today=TODAY)
    from_yml = load_policy(str(write("p.yml", yaml.safe_dump(document))), today=TODAY)
    assert from_toml.fingerprint == from_json.fingerprint == from_yaml.fingerprint
    assert from_yml == from_toml


def test_toml_problems_are_all_reported_with_positions(write: Write) -> None:
    text = (
        VALID_TOML.replace(
            'providers = ["cryptography", "pqcrypto"]', 'providers = ["cryptography", "pyca"]'
        )
        .replace(
            'components = ["X-Wing"]',
            'components = [\n  "X-Wing",\n  "ML-KEM-76",\n]\ncolour = "blue"',
        )
        .replace("lifetime_s = 3600", 'lifetime_s = "3600"')
    )
    path = write("bad.toml", text)
    with pytest.raises(PolicyError) as exc:
        load_policy(path, today=TODAY)
    found = located(exc)
    lines = text.splitlines()
    assert set(found) == {
        "providers.1",
        "suites.1.components.1",
        "suites.1.colour",
        "session.lifetime_s",
    }
    line, col, message = found["providers.1"]
    assert lines[line - 1][col - 1 :].startswith('"pyca"')
    assert "unknown provider 'pyca'" in message
    line, col, message = found["suites.1.components.1"]
    assert lines[line - 1][col - 1 :].startswith('"ML-KEM-76"')
    assert "did you mean 'ML-KEM-768'" in message
    line, col, message = found["suites.1.colour"]
    assert lines[line - 1][col - 1 :].startswith("colour")
    assert "unknown field 'colour'" in message
    line, col, message = found["session.lifetime_s"]
    assert lines[line - 1].startswith("lifetime_s")
    assert "valid integer" in message
    assert "string '3600'" in message
    assert all(p.file == str(path) for p in exc.value.problems)
    assert str(exc.value).startswith("invalid policy (4 problems): ")


def test_rule_problems_are_all_reported_with_positions(write: Write) -> None:
    text = (
        VALID_TOML.replace(
            'source = "simulated"\nrequired = false', 'source = "none"\nrequired = true'
        )
        .replace("rekey_interval_s = 600", "rekey_interval_s = 7200")
        .replace('forbidden = ["ML-KEM-512"]', 'forbidden = ["Ed25519"]')
    )
    with pytest.raises(PolicyError) as exc:
        load_policy(write("rules.toml", text), today=TODAY)
    found = located(exc)
    lines = text.splitlines()
    assert set(found) == {
        "qkd.required",
        "suites.0.components.2",
        "session.rekey_interval_s",
        "auth.signature_algorithms.1",
    }
    line, col, _ = found["suites.0.components.2"]
    assert lines[line - 1][col - 1 :].startswith('"QKD"')
    line, col, _ = found["auth.signature_algorithms.1"]
    assert lines[line - 1][col - 1 :].startswith('"Ed25519"')
    # Problems come in file order.
    assert [p.line for p in exc.value.problems] == sorted(p.line for p in exc.value.problems)


def test_field_and_rule_problems_come_together(write: Write) -> None:
    text = (
        VALID_TOML.replace('hash = "SHA-256"', 'hash = "SHA-257"')
        .replace("rekey_interval_s = 600", "rekey_interval_s = 7200")
        .replace('signature_algorithms = ["ML-DSA-65", "Ed25519"]', "signature_algorithms = []")
        .replace('preset = "ideal"', "preset = 3")
    )
    with pytest.raises(PolicyError) as exc:
        load_policy(write("both.toml", text), today=TODAY)
    found = located(exc)
    # Field problems, and the rule problems of the sections that are otherwise valid...
    assert {"kdf.hash", "qkd.simulated.preset", "session.rekey_interval_s"} <= set(found)
    assert "auth.signature_algorithms" in found
    # ...but no rule problem that depends on an invalid section (qkd is invalid here).
    assert not any(path.startswith("suites") for path in found)


def test_a_missing_field_points_at_its_table(write: Write) -> None:
    text = VALID_TOML.replace('name = "xwing"\n', "")
    with pytest.raises(PolicyError) as exc:
        load_policy(write("missing.toml", text), today=TODAY)
    line, col, message = located(exc)["suites.1.name"]
    assert text.splitlines()[line - 1] == "[[suites]]"
    assert col == 1
    assert line > text.splitlines().index("[[suites]]") + 1  # the second [[suites]]
    assert message == "required field is missing"


def test_a_missing_top_level_field_points_at_the_start(write: Write) -> None:
    text = VALID_TOML.replace('version = "1"\n', "")
    with pytest.raises(PolicyError) as exc:
        load_policy(write("v.toml", text), today=TODAY)
    assert located(exc)["version"][:2] == (1, 1)


@pytest.mark.parametrize(
    ("name", "text", "line", "col"),
    [
        ("syntax.toml", 'schema_version = 1\nname = "x\n', 2, 10),
        ("dup.toml", "schema_version = 1\nschema_version = 2\n", 2, 19),
        ("syntax.json", '{"schema_version": 1,\n  "name": }', 2, 11),
        ("syntax.yaml", "schema_version: 1\nname: [x\n", 3, 1),
    ],
)
def test_syntax_errors_carry_the_parser_position(
    write: Write, name: str, text: str, line: int, col: int
) -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy(write(name, text), today=TODAY)
    [problem] = exc.value.problems
    assert (problem.line, problem.col, problem.path) == (line, col, "(syntax)")
    assert LOCATED.match(str(problem))


def test_json_problems_are_located(write: Write) -> None:
    document = valid_document()
    document["session"]["aead"] = "AES-128-GCM"
    document["kdf"]["hash"] = "MD5"
    text = json.dumps(document, indent=2)
    with pytest.raises(PolicyError) as exc:
        load_policy(write("p.json", text), today=TODAY)
    found = located(exc)
    lines = text.splitlines()
    for path, key in (("session.aead", '"aead"'), ("kdf.hash", '"hash"')):
        line, col, message = found[path]
        assert lines[line - 1][col - 1 :].startswith(key)
        assert "Input should be" in message


def test_json_duplicate_keys_are_refused(write: Write) -> None:
    text = '{"schema_version": 1,\n "name": "a",\n "name": "b"}'
    with pytest.raises(PolicyError) as exc:
        load_policy(write("dup.json", text), today=TODAY)
    assert located(exc)["name"][:3] == (3, 2, "duplicate key 'name'")


def test_json_nan_is_refused(write: Write) -> None:
    document = valid_document()
    text = json.dumps(document).replace('"required": false', '"max_qber": NaN, "required": false')
    with pytest.raises(PolicyError, match="NaN"):
        load_policy(write("nan.json", text), today=TODAY)


def test_yaml_problems_are_located(write: Write) -> None:
    document = valid_document()
    document["suites"][1]["components"] = ["X-Wing", "NTRU"]
    text = yaml.safe_dump(document, sort_keys=False)
    with pytest.raises(PolicyError) as exc:
        load_policy(write("p.yaml", text), today=TODAY)
    line, col, message = located(exc)["suites.1.components.1"]
    assert text.splitlines()[line - 1][col - 1 :] == "NTRU"
    assert "unknown KEM 'NTRU'" in message


def test_yaml_duplicates_aliases_and_odd_keys_are_refused(write: Write) -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy(write("dup.yaml", "name: a\nname: b\n"), today=TODAY)
    assert located(exc)["name"][2] == "duplicate key 'name'"
    with pytest.raises(PolicyError, match="aliases are not allowed"):
        load_policy(write("alias.yaml", "a: &x [1, 2]\nb: *x\n"), today=TODAY)
    with pytest.raises(PolicyError, match="key must be a string"):
        load_policy(write("key.yaml", "1: x\n"), today=TODAY)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.toml", "", "required field is missing"),
        ("empty.yaml", "", "the document is empty"),
        ("list.json", "[1, 2]", "the document is a list"),
        ("scalar.yaml", "just text", "the document is a str"),
    ],
)
def test_documents_that_are_not_tables(write: Write, name: str, text: str, message: str) -> None:
    with pytest.raises(PolicyError) as exc:
        load_policy(write(name, text), today=TODAY)
    assert any(message in p.message for p in exc.value.problems)


def test_unreadable_and_unknown_sources(write: Write, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file") as exc:
        load_policy(tmp_path / "absent.toml")
    assert exc.value.problems[0].file == str(tmp_path / "absent.toml")
    with pytest.raises(PolicyError, match=r"unknown policy format '\.ini'"):
        load_policy(write("p.ini", "x"))
    with pytest.raises(PolicyError, match="no built-in policy named 'hybrid-defualt'"):
        load_policy("hybrid-defualt")
    (tmp_path / "binary.toml").write_bytes(b'name = "\xff"\n')
    with pytest.raises(PolicyError, match="not UTF-8") as exc:
        load_policy(tmp_path / "binary.toml")
    assert (exc.value.problems[0].line, exc.value.problems[0].col) == (1, 9)


def test_oversized_and_deeply_nested_documents(write: Write) -> None:
    with pytest.raises(PolicyError, match="at most 1 MiB"):
        load_policy(write("big.toml", "# " + "x" * (1 << 20)))
    with pytest.raises(PolicyError, match="nested too deeply"):
        load_policy(write("deep.json", "[" * 100_000 + "]" * 100_000))


def test_extends_a_builtin_and_overrides_fields(write: Write) -> None:
    path = write(
        "child.toml",
        'schema_version = 1\nname = "child"\nversion = "2"\nextends = "hybrid-default-latest"\n'
        "[session]\nlifetime_s = 7200\n",
    )
    child = load_policy(path, today=TODAY)
    base = load_policy("hybrid-default-latest", today=TODAY)
    assert child.name == "child"
    assert child.session.lifetime_s == 7200
    assert child.session.rekey_interval_s == base.session.rekey_interval_s  # tables merge
    assert child.suites == base.suites
    assert child.fingerprint != base.fingerprint


def test_extends_replaces_lists_whole_and_locates_inherited_problems(write: Write) -> None:
    path = write(
        "child.toml",
        'schema_version = 1\nname = "child"\nversion = "2"\nextends = "hybrid-default-latest"\n'
        '[qkd]\nsource = "none"\n',
    )
    with pytest.raises(PolicyError) as exc:
        load_policy(path, today=TODAY)
    found = {p.path: p for p in exc.value.problems}
    # The suite with QKD comes from the built-in file: the problem is located there.
    inherited = found["suites.0.components.2"]
    assert inherited.file == "agile.policies/hybrid-default-20261207.toml"
    assert "qkd.source is 'none'" in inherited.message
    # Replacing the suites (a list) drops every inherited suite.
    fixed = write(
        "fixed.toml",
        path.read_text() + '\n[[suites]]\nname = "x"\ncomponents = ["X-Wing"]\n',
    )
    policy = load_policy(fixed, today=TODAY)
    assert [s.name for s in policy.suites] == ["x"]


def test_extends_a_file_relative_to_the_child(write: Write) -> None:
    write("base.toml", VALID_TOML)
    child = write("child.json", json.dumps({"extends": "base.toml", "name": "child"}))
    policy = load_policy(child, today=TODAY)
    assert policy.name == "child"
    assert policy.version == "1"


def test_extends_cycles_and_bad_targets_are_refused(write: Write) -> None:
    write("a.toml", 'extends = "b.toml"\n')
    b = write("b.toml", 'extends = "a.toml"\n')
    with pytest.raises(PolicyError, match="cycle"):
        load_policy(b, today=TODAY)
    with pytest.raises(PolicyError) as exc:
        load_policy(write("n.toml", "extends = 3\n"), today=TODAY)
    assert problems_of(exc) == {"extends": "must be the name of a policy"}
    with pytest.raises(PolicyError) as exc:
        load_policy(write("c.toml", 'extends = "absent.toml"\n'), today=TODAY)
    assert exc.value.problems[0].path == "extends"
    assert "cannot read the policy file" in exc.value.problems[1].message


def test_sunset_passed_is_refused_and_near_is_a_warning(
    write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        VALID_TOML
        + '\n[[rules.sunset]]\nalgorithm = "X-Wing"\ndate = 2027-06-01\nwarn_days = 365\n'
    )
    path = write("sunset.toml", text)
    with caplog.at_level(logging.WARNING, logger="agile.audit"):
        policy, warnings = load_policy_with_warnings(path, today=TODAY)
    [warning] = warnings
    assert warning.path == "suites.1.components.0"
    assert "reaches its sunset on 2027-06-01" in warning.message
    assert text.splitlines()[warning.line - 1][warning.col - 1 :].startswith('"X-Wing"')
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "policy_warning"]
    assert "reaches its sunset on 2027-06-01" in record.__dict__["reason"]
    assert record.__dict__["policy_fingerprint"] == policy.fingerprint
    assert policy.name == "test-policy"
    # Before the warning window: silent. After the date: refused, at the place of use.
    assert load_policy_with_warnings(path, today=dt.date(2026, 5, 1))[1] == []
    with pytest.raises(PolicyError) as exc:
        load_policy(path, today=dt.date(2027, 6, 2))
    assert "was sunset on 2027-06-01" in problems_of(exc)["suites.1.components.0"]
    # The sunset day itself is still allowed ("refused after this date").
    load_policy(path, today=dt.date(2027, 6, 1))


def test_parse_policy_and_policy_from_dict() -> None:
    assert parse_policy(VALID_TOML, today=TODAY).name == "test-policy"
    text = json.dumps(valid_document())
    assert parse_policy(text, format="json", today=TODAY).name == "test-policy"
    with pytest.raises(PolicyError) as exc:
        policy_from_dict({"schema_version": 2}, today=TODAY)
    assert {p.file for p in exc.value.problems} == {"<dict>"}
    assert "unsupported schema_version 2" in problems_of(exc)["schema_version"]
