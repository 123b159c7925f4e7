"""Fuzzed policy documents and texts raise only PolicyError (or load)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agile import Policy, PolicyError
from agile.policy.loader import parse_policy, policy_from_dict
from tests.policy.conftest import TODAY, VALID_TOML, valid_document

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_KEYS = sorted(
    {
        "schema_version",
        "name",
        "version",
        "description",
        "providers",
        "suites",
        "qkd",
        "kdf",
        "auth",
        "session",
        "rules",
        "extends",
        "components",
        "source",
        "required",
        "max_qber",
        "key_size_bits",
        "simulated",
        "etsi014",
        "combiner",
        "hash",
        "label",
        "method",
        "signature_algorithms",
        "peer_public_keys",
        "psk_id",
        "key_length",
        "lifetime_s",
        "rekey_interval_s",
        "aead",
        "min_nist_level",
        "forbidden",
        "sunset",
        "algorithm",
        "date",
        "warn_days",
        "preset",
        "distance_km",
        "kme_url",
        "X-Wing",
        "ML-KEM-768",
        "QKD",
    }
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*_KEYS, "hybrid-default-latest", "2035-01-01", "none", "catkdf"]),
    st.text(max_size=20),
    st.dates(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=25,
)


def _only_policy_error(load: Any) -> None:
    try:
        result = load()
    except PolicyError as exc:
        error = exc
    else:
        assert isinstance(result, Policy)
        return
    assert error.problems
    for problem in error.problems:
        assert problem.line >= 1
        assert problem.col >= 1
        assert "\n" not in problem.message


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with a few fields replaced, added or removed at random."""
    document = valid_document()
    for _ in range(draw(st.integers(1, 4))):
        target: Any = document
        for _depth in range(draw(st.integers(0, 3))):
            if isinstance(target, dict) and target:
                child = target[draw(st.sampled_from(sorted(target)))]
            elif isinstance(target, list) and target:
                child = target[draw(st.integers(0, len(target) - 1))]
            else:
                break
            if not isinstance(child, dict | list):
                break
            target = child
        action = draw(st.sampled_from(["set", "delete", "add"]))
        if isinstance(target, dict) and target:
            key = draw(st.sampled_from(sorted(target)))
            if action == "delete":
                del target[key]
            else:
                new_key = key if action == "set" else draw(st.sampled_from(_KEYS))
                target[new_key] = draw(_VALUES)
        elif isinstance(target, list) and target:
            index = draw(st.integers(0, len(target) - 1))
            if action == "delete":
                del target[index]
            else:
                target[index] = draw(_VALUES)
    return document


@FAST
@given(mutated_documents())
def test_mutated_documents(document: dict[str, Any]) -> None:
    _only_policy_error(lambda: policy_from_dict(copy.deepcopy(document), today=TODAY))


@FAST
@given(st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), _VALUES, max_size=8))
def test_random_documents(document: dict[str, Any]) -> None:
    _only_policy_error(lambda: policy_from_dict(document, today=TODAY))


@st.composite
def mutated_texts(draw: st.DrawFn, text: str) -> str:
    chars = list(text)
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(chars)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from([*list("[]{}\"'=,.:#\n -01\\"), "\x00", "é", "*a", "&a"]))
        if edit == "insert":
            chars.insert(position, piece)
        elif chars and position < len(chars):
            if edit == "delete":
                del chars[position]
            else:
                chars[position] = piece
    return "".join(chars)


_JSON_TEXT = json.dumps(valid_document(), indent=1)
_YAML_TEXT = yaml.safe_dump(valid_document(), sort_keys=False)


@FAST
@given(mutated_texts(VALID_TOML))
def test_mutated_toml_text(text: str) -> None:
    _only_policy_error(lambda: parse_policy(text, format="toml", today=TODAY))


@FAST
@given(mutated_texts(_JSON_TEXT))
def test_mutated_json_text(text: str) -> None:
    _only_policy_error(lambda: parse_policy(text, format="json", today=TODAY))


@FAST
@given(mutated_texts(_YAML_TEXT))
def test_mutated_yaml_text(text: str) -> None:
    _only_policy_error(lambda: parse_policy(text, format="yaml", today=TODAY))


@FAST
@given(st.text(max_size=200), st.sampled_from(["toml", "json", "yaml"]))
def test_random_text(text: str, fmt: Any) -> None:
    _only_policy_error(lambda: parse_policy(text, format=fmt, today=TODAY))


@pytest.mark.slow
@SLOW
@given(mutated_documents())
def test_mutated_documents_soak(document: dict[str, Any]) -> None:
    _only_policy_error(lambda: policy_from_dict(copy.deepcopy(document), today=TODAY))


@pytest.mark.slow
@SLOW
@given(mutated_texts(VALID_TOML), st.sampled_from(["toml", "json", "yaml"]))
def test_mutated_text_soak(text: str, fmt: Any) -> None:
    source = {"toml": text, "json": _JSON_TEXT, "yaml": _YAML_TEXT}[fmt]
    _only_policy_error(
        lambda: parse_policy(source if fmt != "toml" else text, format=fmt, today=TODAY)
    )
