"""Contradictory policies are refused, each problem at the field at fault."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agile import PolicyError
from agile.policy.loader import policy_from_dict
from tests.policy.conftest import TODAY, problems_of, valid_document

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = document
        for key in parents:
            target = target[key]
        target[last] = value

    return edit


CASES: list[tuple[str, list[Edit], str, str]] = [
    (
        "forbidden suite component",
        [_set("rules.forbidden", ["DHKEM(X25519, HKDF-SHA256)"])],
        "suites.0.components.1",
        "is forbidden by rules.forbidden.0",
    ),
    (
        "forbidden aead",
        [_set("rules.forbidden", ["AES-256-GCM"])],
        "session.aead",
        "forbidden",
    ),
    (
        "forbidden hash",
        [_set("rules.forbidden", ["SHA-256"])],
        "kdf.hash",
        "forbidden",
    ),
    (
        "forbidden via alias",
        [_set("rules.forbidden", ["X-Wing"])],
        "suites.1.components.0",
        "'MLKEM768-X25519' is forbidden",
    ),
    (
        "suite below min level",
        [
            _set("suites.1.components", ["ML-KEM-512", "DHKEM(P-256, HKDF-SHA256)"]),
            _set("rules.forbidden", []),
        ],
        "suites.1.components",
        "NIST level 1, below rules.min_nist_level 3",
    ),
    (
        "classical-only suite",
        [
            _set("suites.1.components", ["DHKEM(X25519, HKDF-SHA256)"]),
            _set("rules.min_nist_level", 1),
        ],
        "suites.1.components",
        "NIST level 0",
    ),
    (
        "signatures below min level",
        [_set("auth.signature_algorithms", ["Ed25519"])],
        "auth.signature_algorithms",
        "strongest signature algorithm has NIST level 0",
    ),
    (
        "QKD suite without a source",
        [_set("qkd.source", "none")],
        "suites.0.components.2",
        "the suite uses QKD but qkd.source is 'none'",
    ),
    (
        "QKD required without a source",
        [
            _set("qkd.source", "none"),
            _set("qkd.required", True),
            _set("suites", [{"name": "x", "components": ["X-Wing"]}]),
        ],
        "qkd.required",
        "QKD is required but qkd.source is 'none'",
    ),
    (
        "QKD required but a suite without QKD",
        [_set("qkd.required", True)],
        "suites.1.components",
        "qkd.required is true (fail closed) but this suite has no 'QKD'",
    ),
    (
        "QKD source that no suite uses",
        [_set("suites", [{"name": "x", "components": ["X-Wing"]}])],
        "qkd.source",
        "no suite uses the 'QKD' component",
    ),
    (
        "etsi014 source without its section",
        [_set("qkd.source", "etsi014")],
        "qkd.source",
        "needs a [qkd.etsi014] section",
    ),
    (
        "rekey longer than lifetime",
        [_set("session.rekey_interval_s", 7200)],
        "session.rekey_interval_s",
        "longer than the session lifetime 3600 s",
    ),
    (
        "duplicate suite name",
        [_set("suites.1.name", "mlkem768-x25519-qkd")],
        "suites.1.name",
        "already used by suites.0",
    ),
    (
        "duplicate suite components",
        [_set("suites.1.components", ["DHKEM(X25519, HKDF-SHA256)", "QKD", "ML-KEM-768"])],
        "suites.1.components",
        "same components as suites.0",
    ),
    (
        "duplicate component",
        [_set("suites.1.components", ["X-Wing", "MLKEM768-X25519"])],
        "suites.1.components",
        "listed twice",
    ),
    (
        "psk fields with signature auth",
        [_set("auth.psk_id", "client-1")],
        "auth.psk_id",
        "is for method 'psk'",
    ),
    (
        "signature fields with psk auth",
        [_set("auth.method", "psk")],
        "auth.signature_algorithms",
        "is for method 'signature'",
    ),
    (
        "no signature algorithm",
        [_set("auth.signature_algorithms", [])],
        "auth.signature_algorithms",
        "needs at least one signature algorithm",
    ),
    (
        "pinned key for an unlisted algorithm",
        [_set("auth.peer_public_keys", {"ML-DSA-87": "00ff"})],
        "auth.peer_public_keys.ML-DSA-87",
        "which signature_algorithms does not list",
    ),
    (
        "trust file and pinned keys",
        [_set("auth.trust_file", "trust.toml"), _set("auth.peer_public_keys", {"ML-DSA-65": "00"})],
        "auth.peer_public_keys",
        "either trust_file or peer_public_keys",
    ),
    (
        "pinned key not hex",
        [_set("auth.peer_public_keys", {"ML-DSA-65": "xyz"})],
        "auth.peer_public_keys.ML-DSA-65",
        "not a hexadecimal string",
    ),
    (
        "sunset passed",
        [_set("rules.sunset", [{"algorithm": "ML-DSA-65", "date": "2026-01-01"}])],
        "auth.signature_algorithms.0",
        "'ML-DSA-65' was sunset on 2026-01-01",
    ),
    (
        "two sunsets for one algorithm",
        [
            _set(
                "rules.sunset",
                [
                    {"algorithm": "HQC-128", "date": "2030-01-01"},
                    {"algorithm": "HQC-128", "date": "2031-01-01"},
                ],
            )
        ],
        "rules.sunset.1.algorithm",
        "already has a sunset at rules.sunset.0",
    ),
    (
        "unknown forbidden name",
        [_set("rules.forbidden", ["RSA-2048"])],
        "rules.forbidden.0",
        "unknown algorithm 'RSA-2048'",
    ),
    (
        "unknown signature name",
        [_set("auth.signature_algorithms", ["ML-DSA-66"])],
        "auth.signature_algorithms.0",
        "did you mean 'ML-DSA-65'",
    ),
    (
        "a KEM where a signature belongs",
        [_set("auth.signature_algorithms", ["ML-KEM-768"])],
        "auth.signature_algorithms.0",
        "unknown signature algorithm 'ML-KEM-768'",
    ),
    (
        "max QBER above the BB84 threshold",
        [_set("qkd.max_qber", 0.2)],
        "qkd.max_qber",
        "less than or equal to 0.11",
    ),
    (
        "key size not whole bytes",
        [_set("qkd.key_size_bits", 260)],
        "qkd.key_size_bits",
        "multiple of 8",
    ),
    (
        "sunset date with a time",
        [_set("rules.sunset", [{"algorithm": "HQC-128", "date": "2030-01-01T00:00:00"}])],
        "rules.sunset.0.date",
        "valid date",
    ),
]


@pytest.mark.parametrize(
    ("edits", "path", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_contradiction_is_refused_at_its_field(edits: list[Edit], path: str, message: str) -> None:
    document = valid_document()
    for edit in edits:
        edit(document)
    with pytest.raises(PolicyError) as exc:
        policy_from_dict(document, today=TODAY)
    found = problems_of(exc)
    assert path in found, found
    assert message in found[path]


def test_every_contradiction_at_once() -> None:
    document = valid_document()
    for edits in [
        c[1]
        for c in CASES
        if c[0]
        in {"forbidden hash", "rekey longer than lifetime", "QKD required but a suite without QKD"}
    ]:
        for edit in edits:
            edit(document)
    with pytest.raises(PolicyError) as exc:
        policy_from_dict(document, today=TODAY)
    assert {"kdf.hash", "session.rekey_interval_s", "suites.1.components"} <= set(problems_of(exc))


def test_a_consistent_psk_policy_is_accepted() -> None:
    document = valid_document()
    document["auth"] = {"method": "psk", "psk_id": "site-a", "psk_file": "site-a.psk"}
    policy = policy_from_dict(document, today=TODAY)
    assert policy.auth.method == "psk"


def test_a_consistent_etsi014_policy_is_accepted() -> None:
    document = valid_document()
    document["qkd"] = {
        "source": "etsi014",
        "required": True,
        "etsi014": {
            "kme_url": "https://127.0.0.1:8443",
            "sae_id": "sae-a",
            "peer_sae_id": "sae-b",
            "cert": "certs/sae-a.pem",
            "key": "certs/sae-a.key",
            "ca": "certs/ca.pem",
        },
    }
    document["suites"] = document["suites"][:1]
    policy = policy_from_dict(document, today=TODAY)
    assert policy.qkd.etsi014 is not None
    assert policy.qkd.etsi014.timeout_s == 5.0


def test_pinned_keys_are_normalised_to_lowercase_hex() -> None:
    document = valid_document()
    document["auth"]["peer_public_keys"] = {"ML-DSA-65": "ABCDEF"}
    policy = policy_from_dict(document, today=TODAY)
    assert policy.auth.peer_public_keys == {"ML-DSA-65": "abcdef"}
