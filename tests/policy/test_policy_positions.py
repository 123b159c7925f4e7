"""The position scanners find each field where the file wrote it."""

from __future__ import annotations

import json

import pytest

from qkd import _positions


def _at(text: str, line: int, col: int) -> str:
    return text.splitlines()[line - 1][col - 1 :]


TOML = """\
# comment with [brackets] and "quotes"
name = "a # not a comment"
auth.peer_public_keys = {"ML-DSA-65" = "00", 'Ed25519' = "11"}
suites = [
  {name = "one", components = ["X-Wing", # trailing comment
     "QKD"]},
  { name = "two", components = [] },
]
description = \"\"\"
multi "line" with ] and }
\"\"\"

[[rules.sunset]]
algorithm = "HQC-128"

[[rules.sunset]]
"algorithm" = 'HQC-192'
date = 2030-01-01

[qkd]
simulated.preset = "gys"
"""


@pytest.mark.parametrize(
    ("path", "starts"),
    [
        (("name",), 'name = "a'),
        (("auth", "peer_public_keys"), "peer_public_keys"),
        (("auth", "peer_public_keys", "ML-DSA-65"), '"ML-DSA-65"'),
        (("auth", "peer_public_keys", "Ed25519"), "'Ed25519'"),
        (("suites", 0), "{name"),
        (("suites", 0, "components", 1), '"QKD"'),
        (("suites", 1, "name"), 'name = "two"'),
        (("description",), "description"),
        (("rules", "sunset", 0), "[[rules.sunset]]"),
        (("rules",), "rules.sunset"),
        (("rules", "sunset", 1, "algorithm"), '"algorithm"'),
        (("rules", "sunset", 1, "date"), "date"),
        (("qkd", "simulated", "preset"), 'preset = "gys"'),
    ],
)
def test_toml_positions(path: tuple[str | int, ...], starts: str) -> None:
    found = _positions.toml_positions(TOML).at
    assert path in found, sorted(found, key=str)
    assert _at(TOML, *found[path]).startswith(starts)


def test_json_positions() -> None:
    text = json.dumps({"a": [1, {"b": "x\\"}], "c": {"d": None}}, indent=2)
    found = _positions.json_positions(text).at
    assert _at(text, *found[("a", 1, "b")]).startswith('"b"')
    assert _at(text, *found[("c", "d")]).startswith('"d"')
    assert _at(text, *found[("a", 0)]).startswith("1")


def test_yaml_positions() -> None:
    text = "a:\n  - 1\n  - b: x\nc: {d: 2}\n"
    found = _positions.yaml_positions(text).at
    assert _at(text, *found[("a", 1, "b")]).startswith("b: x")
    assert _at(text, *found[("c", "d")]).startswith("d: 2")


def test_scanners_never_fail_on_text_they_cannot_follow() -> None:
    for text in ("[[", "a = [1,", "{", '"\\', "= = ="):
        _positions.toml_positions(text)
        _positions.json_positions(text)
