"""What a policy means for TLS 1.3: groups, cipher suites, and located refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from agile import PolicyError, load_policy
from agile.tls import tls_settings

from .conftest import HYBRID, X25519, make_policy


def test_default_policy_offers_the_hybrid_group_only() -> None:
    settings = tls_settings("hybrid-default-latest")
    # Three suites (ML-KEM-768 + X25519 with and without QKD, X-Wing): one TLS group.
    assert settings.groups == ("X25519MLKEM768",)
    assert settings.post_quantum_only
    assert [s.name for s in settings.cipher_suites] == [
        "TLS_AES_256_GCM_SHA384",
        "TLS_CHACHA20_POLY1305_SHA256",
    ]


def test_cnsa2_policy_maps_to_p384_hybrid_and_pure_mlkem1024_with_sha384_only() -> None:
    settings = tls_settings(load_policy("cnsa2-latest"))
    assert settings.groups == ("SecP384r1MLKEM1024", "MLKEM1024")
    # SHA-256 and ChaCha20-Poly1305 are forbidden by the policy's rules.
    assert [s.name for s in settings.cipher_suites] == ["TLS_AES_256_GCM_SHA384"]
    assert settings.cipher_suite_for("sha256") is None


@pytest.mark.parametrize(
    ("kems", "group"),
    [
        (HYBRID, "X25519MLKEM768"),
        (["X-Wing"], "X25519MLKEM768"),
        (["ML-KEM-768", "DHKEM(P-256, HKDF-SHA256)"], "SecP256r1MLKEM768"),
        (["MLKEM768-P256"], "SecP256r1MLKEM768"),
        (["ML-KEM-1024", "DHKEM(P-384, HKDF-SHA384)"], "SecP384r1MLKEM1024"),
        (["ML-KEM-768"], "MLKEM768"),
        (["ML-KEM-1024"], "MLKEM1024"),
        (X25519, "X25519"),
        (["DHKEM(P-256, HKDF-SHA256)"], "secp256r1"),
    ],
)
def test_each_suite_maps_to_its_group(kems: list[str], group: str) -> None:
    assert tls_settings(make_policy(kems)).groups == (group,)


def test_classical_group_comes_only_from_a_classical_suite() -> None:
    assert tls_settings(make_policy(HYBRID)).post_quantum_only
    mixed = tls_settings(make_policy(HYBRID, X25519))
    assert mixed.groups == ("X25519MLKEM768", "X25519")
    assert not mixed.post_quantum_only


def test_aes128_only_for_a_low_level_policy() -> None:
    low = tls_settings(make_policy(HYBRID))  # min_nist_level 0
    high = tls_settings(make_policy(HYBRID, rules={"min_nist_level": 3}))
    assert "TLS_AES_128_GCM_SHA256" in [s.name for s in low.cipher_suites]
    assert "TLS_AES_128_GCM_SHA256" not in [s.name for s in high.cipher_suites]


def test_policy_aead_comes_first() -> None:
    chacha = tls_settings(make_policy(HYBRID, session={"aead": "ChaCha20-Poly1305"}))
    assert chacha.cipher_suites[0].name == "TLS_CHACHA20_POLY1305_SHA256"


def test_a_suite_without_a_tls_group_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'schema_version = 1\nname = "bad-tls"\nversion = "1"\n\n'
        '[[suites]]\nname = "ok"\ncomponents = ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]\n\n'
        '[[suites]]\nname = "hqc"\ncomponents = ["HQC-128"]\n\n'
        "[rules]\nmin_nist_level = 1\n",
        encoding="utf-8",
    )
    with pytest.raises(PolicyError) as caught:
        tls_settings(path)
    (problem,) = caught.value.problems
    assert problem.file == str(path)
    assert problem.line == 11  # the components line of the second suite
    assert problem.path == "suites.1.components"
    assert "has no TLS 1.3 group" in problem.message
    assert "X25519MLKEM768" in problem.message  # what would work
