"""The trust-path fields of ``[qkd]``: parsed, located when wrong, checked against each other,
described by the schema, and absent from the fingerprint of a policy that does not use them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agile import PolicyError, load_policy
from agile.cli import main
from agile.policy import json_schema
from agile.policy.loader import policy_from_dict
from tests.policy.conftest import LOCATED, TODAY, VALID_TOML, problems_of, valid_document

Write = Callable[[str, str], Path]


def _with_qkd(**fields: Any) -> dict[str, Any]:
    document = valid_document()
    document["qkd"].update(fields)
    return document


def _toml_with_qkd(lines: str) -> str:
    return VALID_TOML.replace("required = false\n", "required = false\n" + lines)


def test_the_fields_are_read() -> None:
    policy = policy_from_dict(
        _with_qkd(
            max_trusted_nodes=1,
            excluded_nodes=["Eve-City"],
            required_nodes=["A", "D"],
            on_violation="fallback",
        ),
        today=TODAY,
    )
    qkd = policy.qkd
    assert qkd.max_trusted_nodes == 1
    assert qkd.excluded_nodes == ("Eve-City",)
    assert qkd.required_nodes == ("A", "D")
    assert qkd.on_violation == "fallback"
    assert qkd.constrains_path


def test_defaults_bound_nothing_and_fail() -> None:
    qkd = policy_from_dict(valid_document(), today=TODAY).qkd
    assert qkd.max_trusted_nodes is None
    assert qkd.excluded_nodes == qkd.required_nodes == ()
    assert qkd.on_violation == "fail"
    assert not qkd.constrains_path


def test_unused_fields_leave_the_fingerprint_alone() -> None:
    # Written-out defaults hash like omitted ones, so the released policies keep theirs.
    plain = policy_from_dict(valid_document(), today=TODAY)
    spelled = policy_from_dict(
        _with_qkd(excluded_nodes=[], required_nodes=[], on_violation="fail"), today=TODAY
    )
    assert plain.fingerprint == spelled.fingerprint
    assert b"max_trusted_nodes" not in plain.canonical_json()
    bounded = policy_from_dict(_with_qkd(max_trusted_nodes=2), today=TODAY)
    assert bounded.fingerprint != plain.fingerprint
    assert b'"max_trusted_nodes":2' in bounded.canonical_json()
    zero = policy_from_dict(_with_qkd(max_trusted_nodes=0), today=TODAY)
    assert zero.fingerprint not in (plain.fingerprint, bounded.fingerprint)
    fallback = policy_from_dict(_with_qkd(on_violation="fallback"), today=TODAY)
    assert fallback.fingerprint != plain.fingerprint


@pytest.mark.parametrize(
    ("line", "path", "message"),
    [
        ("max_trusted_nodes = -1\n", "qkd.max_trusted_nodes", "greater than or equal to 0"),
        ('max_trusted_nodes = "1"\n', "qkd.max_trusted_nodes", "valid integer"),
        ("max_trusted_nodes = 1.5\n", "qkd.max_trusted_nodes", "valid integer"),
        ('excluded_nodes = "B"\n', "qkd.excluded_nodes", "valid tuple"),
        ('excluded_nodes = ["B", "C", "B"]\n', "qkd.excluded_nodes", "'B' is listed twice"),
        ('required_nodes = [" B"]\n', "qkd.required_nodes.0", "should match pattern"),
        ('required_nodes = [""]\n', "qkd.required_nodes.0", "at least 1 character"),
        ("required_nodes = [3]\n", "qkd.required_nodes.0", "valid string"),
        ('on_violation = "warn"\n', "qkd.on_violation", "'fail' or 'fallback'"),
        ("trusted_nodes = 1\n", "qkd.trusted_nodes", "unknown field"),
    ],
)
def test_bad_values_are_located(write: Write, line: str, path: str, message: str) -> None:
    text = _toml_with_qkd(line)
    file = write("p.toml", text)
    with pytest.raises(PolicyError) as exc:
        load_policy(file, today=TODAY)
    [problem] = exc.value.problems
    assert LOCATED.match(str(problem)), str(problem)
    assert problem.path == path
    assert message in problem.message
    # Located at the line that wrote the field.
    written = text.splitlines()[problem.line - 1]
    assert written.startswith(path.split(".")[1])


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        (
            {"required": True, "on_violation": "fallback"},
            "qkd.on_violation",
            "on_violation 'fallback' needs qkd.required = false",
        ),
        (
            {"excluded_nodes": ["X", "C"], "required_nodes": ["B", "C"]},
            "qkd.required_nodes.1",
            "node 'C' is both required and excluded (qkd.excluded_nodes.1)",
        ),
        (
            {"max_trusted_nodes": 0, "required_nodes": ["A", "B", "C"]},
            "qkd.required_nodes",
            "3 required nodes cannot fit on a path with at most 0 trusted nodes",
        ),
    ],
)
def test_contradictions_are_refused(fields: dict[str, Any], path: str, message: str) -> None:
    document = _with_qkd(**fields)
    if fields.get("required"):
        document["suites"] = [document["suites"][0]]  # required QKD: every suite has QKD
    with pytest.raises(PolicyError) as exc:
        policy_from_dict(document, today=TODAY)
    found = problems_of(exc)
    assert set(found) == {path}
    assert message in found[path]


def test_required_nodes_that_fit_are_accepted() -> None:
    # Required nodes may be the ends: two of them fit a direct link.
    policy = policy_from_dict(
        _with_qkd(max_trusted_nodes=0, required_nodes=["A", "B"]), today=TODAY
    )
    assert policy.qkd.required_nodes == ("A", "B")


def test_schema_describes_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    schema = json_schema()
    qkd = schema["$defs"]["QKD"]["properties"]
    assert set(qkd) >= {"max_trusted_nodes", "excluded_nodes", "required_nodes", "on_violation"}
    assert qkd["on_violation"]["enum"] == ["fail", "fallback"]
    assert qkd["on_violation"]["default"] == "fail"
    assert qkd["excluded_nodes"]["items"]["minLength"] == 1
    bounds = next(v for v in qkd["max_trusted_nodes"]["anyOf"] if v.get("type") == "integer")
    assert bounds["minimum"] == 0
    assert main(["policy", "schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$defs"]["QKD"]["properties"]["max_trusted_nodes"] == qkd["max_trusted_nodes"]


def test_show_prints_the_fields_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "show", "hybrid-default-20261207", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    qkd = shown["policy"]["qkd"]
    assert qkd["max_trusted_nodes"] == 2
    assert qkd["on_violation"] == "fallback"
