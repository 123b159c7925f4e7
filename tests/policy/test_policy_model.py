"""The policy model: frozen, strict, canonical, fingerprinted."""

from __future__ import annotations

import json

import pydantic
import pytest

from agile import Policy, PolicyError
from agile.policy import algorithms, json_schema
from agile.policy.loader import policy_from_dict
from tests.policy.conftest import TODAY, problems_of, valid_document


def test_valid_document_builds_a_policy() -> None:
    policy = policy_from_dict(valid_document(), today=TODAY)
    assert [s.name for s in policy.suites] == ["mlkem768-x25519-qkd", "xwing"]
    assert policy.suites[0].uses_qkd
    assert not policy.suites[1].uses_qkd
    assert policy.suites[0].kems == ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)")
    assert policy.suites[0].nist_level == 3
    assert policy.uses_qkd
    assert policy.suite("xwing") is policy.suites[1]
    with pytest.raises(KeyError):
        policy.suite("nope")


def test_policy_is_frozen() -> None:
    policy = policy_from_dict(valid_document(), today=TODAY)
    with pytest.raises(pydantic.ValidationError):
        policy.name = "other"
    with pytest.raises(pydantic.ValidationError):
        policy.session.key_length = 64
    assert isinstance(policy.suites, tuple)
    assert isinstance(policy.suites[0].components, tuple)


def test_alias_is_stored_under_its_canonical_name() -> None:
    policy = policy_from_dict(valid_document(), today=TODAY)
    assert policy.suites[1].components == ("MLKEM768-X25519",)
    spelled_out = valid_document()
    spelled_out["suites"][1]["components"] = ["MLKEM768-X25519"]
    assert policy_from_dict(spelled_out, today=TODAY).fingerprint == policy.fingerprint


def test_fingerprint_is_sha256_of_the_canonical_form() -> None:
    policy = policy_from_dict(valid_document(), today=TODAY)
    canonical = policy.canonical_json()
    assert b" " not in canonical.replace(b"DHKEM(X25519, HKDF", b"")
    assert json.loads(canonical) == json.loads(
        json.dumps(policy.model_dump(mode="json"), sort_keys=True)
    )
    import hashlib

    assert policy.fingerprint == "sha256:" + hashlib.sha256(canonical).hexdigest()


def test_fingerprint_ignores_key_order_and_defaults_written_out() -> None:
    document = valid_document()
    reordered = dict(reversed(list(document.items())))
    reordered["qkd"] = {**document["qkd"], "max_qber": 0.08}  # the default, written out
    assert (
        policy_from_dict(document, today=TODAY).fingerprint
        == policy_from_dict(reordered, today=TODAY).fingerprint
    )


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("session", "key_length", 64),
        ("session", "aead", "ChaCha20-Poly1305"),
        ("kdf", "label", "other"),
        ("kdf", "combiner", "caskdf"),
        ("qkd", "required", True),
        ("rules", "min_nist_level", 1),
    ],
)
def test_fingerprint_changes_with_any_field(section: str, field: str, value: object) -> None:
    base = policy_from_dict(valid_document(), today=TODAY)
    document = valid_document()
    document[section][field] = value
    if (section, field) == ("qkd", "required"):
        document["suites"] = document["suites"][:1]
    assert policy_from_dict(document, today=TODAY).fingerprint != base.fingerprint


def test_suite_order_is_part_of_the_fingerprint() -> None:
    document = valid_document()
    document["suites"].reverse()
    assert (
        policy_from_dict(document, today=TODAY).fingerprint
        != policy_from_dict(valid_document(), today=TODAY).fingerprint
    )


def test_equal_policies_hash_equal() -> None:
    a = policy_from_dict(valid_document(), today=TODAY)
    b = policy_from_dict(valid_document(), today=TODAY)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("session", "key_length"), "32"),
        (("session", "key_length"), 32.0),
        (("session", "key_length"), True),
        (("qkd", "required"), 1),
        (("qkd", "required"), "false"),
        (("schema_version",), True),
        (("name",), 7),
        (("suites",), "xwing"),
    ],
)
def test_types_are_not_coerced(path: tuple[str, ...], value: object) -> None:
    document = valid_document()
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(PolicyError) as exc:
        policy_from_dict(document, today=TODAY)
    assert ".".join(path) in problems_of(exc)


def test_direct_construction_also_checks_the_rules() -> None:
    document = valid_document()
    document["rules"]["forbidden"] = ["ML-KEM-768"]
    with pytest.raises(pydantic.ValidationError, match="forbidden"):
        Policy.model_validate(document, context={"today": TODAY})


def test_providers_for_prefers_the_suite_list() -> None:
    document = valid_document()
    document["suites"][1]["providers"] = ["pqcrypto"]
    policy = policy_from_dict(document, today=TODAY)
    assert policy.providers_for(policy.suites[0]) == ("cryptography", "pqcrypto")
    assert policy.providers_for(policy.suites[1]) == ("pqcrypto",)


def test_json_schema_describes_the_document() -> None:
    schema = json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"schema_version", "name", "version", "suites"}
    assert "extends" in schema["properties"]
    suite = schema["$defs"]["Suite"]
    assert "X-Wing" in suite["properties"]["components"]["items"]["enum"]
    assert "QKD" in suite["properties"]["components"]["items"]["enum"]
    assert schema["properties"]["schema_version"]["const"] == 1


def test_algorithm_table_is_consistent() -> None:
    for name, info in algorithms.ALGORITHMS.items():
        assert info.name == name
        assert 0 <= info.nist_level <= 5
        assert info.post_quantum == (info.nist_level > 0) or info.kind == "qkd"
    for alias, target in algorithms.ALIASES.items():
        assert alias not in algorithms.ALGORITHMS
        assert target in algorithms.ALGORITHMS
    assert algorithms.info("X-Wing").nist_level == 3


def test_fingerprint_of_a_copy_follows_its_fields() -> None:
    policy = policy_from_dict(valid_document(), today=TODAY)
    first = policy.fingerprint
    assert policy.model_copy().fingerprint == first
    assert policy.model_copy(update={"name": "other"}).fingerprint != first


def test_docstring_examples_hold() -> None:
    import doctest

    from agile.policy import loader, model

    for module in (loader, model):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0
