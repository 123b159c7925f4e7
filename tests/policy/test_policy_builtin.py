"""The built-in policies: valid, immutable (pinned fingerprints), aliased, shipped."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agile import load_policy
from agile.policy import builtin
from agile.policy.algorithms import QKD_COMPONENT
from tests.policy.conftest import TODAY

# A versioned built-in policy never changes once released (like s2n's security policies).
# If one of these fails, do not update the fingerprint: revert the file, and put the change
# in a new file with a new date.
PINNED = {
    "cnsa2-20261129": "sha256:036ac11bad44052fd62697cf6cf9f78cd67f52244746563a28fc3a78557fc11a",
    "hybrid-default-20261129": (
        "sha256:93efe5e2a2700b22592239167c5c7105443ed6873cddd8d5476ff09d7003fd0a"
    ),
    "pqc-only-20261129": "sha256:e65cb80cdf7e1e2884dad335810c92acf159120f0274593f4dfb1f248ba8c818",
    "qkd-required-20261129": (
        "sha256:8e5fe61bb1d8f01f8acf697555da8560c9afe5cd13cfed109b3b80709df5736c"
    ),
    # The versions that add the trust-path bounds of [qkd].
    "hybrid-default-20261207": (
        "sha256:0ad764c4214defa9da71211c95db99f504db44b634280f1239c34f7a2b684f13"
    ),
    "qkd-required-20261207": (
        "sha256:54df568fcc1327af0b483c15b5338d77f016a493a1de86aada2a81adf24d5e1b"
    ),
}


def test_every_versioned_policy_is_pinned() -> None:
    assert set(builtin.versioned_names()) == set(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_versioned_policy_is_unchanged(name: str) -> None:
    policy = load_policy(name, today=TODAY)
    assert policy.fingerprint == PINNED[name]
    assert policy.name == name
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", policy.version)
    assert policy.version.replace("-", "") == name.rsplit("-", 1)[1]


def test_latest_aliases_point_at_the_newest_version() -> None:
    aliases = builtin.aliases()
    assert set(aliases) == {
        "cnsa2-latest",
        "hybrid-default-latest",
        "pqc-only-latest",
        "qkd-required-latest",
    }
    for alias, target in aliases.items():
        family = alias.removesuffix("-latest")
        versions = [n for n in builtin.versioned_names() if n.rsplit("-", 1)[0] == family]
        assert target == max(versions)
        assert load_policy(alias, today=TODAY) == load_policy(target, today=TODAY)
    assert set(builtin.names()) == set(aliases) | set(PINNED)
    with pytest.raises(KeyError):
        builtin.resolve("nope-latest")


def test_default_hybrid_has_optional_qkd() -> None:
    policy = load_policy("hybrid-default-latest", today=TODAY)
    first = policy.suites[0]
    assert first.components == ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", QKD_COMPONENT)
    assert policy.qkd.source == "simulated"
    assert not policy.qkd.required
    assert any(not s.uses_qkd for s in policy.suites)  # something to fall back to


def test_qkd_required_fails_closed() -> None:
    policy = load_policy("qkd-required-latest", today=TODAY)
    assert policy.qkd.required
    assert all(s.uses_qkd for s in policy.suites)


def test_newer_versions_bound_the_trust_path() -> None:
    hybrid = load_policy("hybrid-default-latest", today=TODAY)
    assert hybrid.name == "hybrid-default-20261207"
    assert (hybrid.qkd.max_trusted_nodes, hybrid.qkd.on_violation) == (2, "fallback")
    required = load_policy("qkd-required-latest", today=TODAY)
    assert required.name == "qkd-required-20261207"
    assert (required.qkd.max_trusted_nodes, required.qkd.on_violation) == (1, "fail")
    # Apart from the new fields (and the name, version, description, comments), nothing changed.
    for family in ("hybrid-default", "qkd-required"):
        old = load_policy(f"{family}-20261129", today=TODAY).model_dump(mode="json")
        new = load_policy(f"{family}-20261207", today=TODAY).model_dump(mode="json")
        for field in ("max_trusted_nodes", "on_violation"):
            new["qkd"].pop(field, None)
        for field in ("name", "version", "description"):
            old.pop(field)
            new.pop(field)
        assert old == new


def test_pqc_only_has_no_qkd() -> None:
    policy = load_policy("pqc-only-latest", today=TODAY)
    assert policy.qkd.source == "none"
    assert not policy.uses_qkd
    assert ("MLKEM768-X25519",) in [s.components for s in policy.suites]


def test_cnsa2_is_conservative() -> None:
    policy = load_policy("cnsa2-latest", today=TODAY)
    assert policy.suites[0].components == ("ML-KEM-1024", "DHKEM(P-384, HKDF-SHA384)")
    assert all(s.nist_level == 5 for s in policy.suites)
    assert policy.auth.signature_algorithms == ("ML-DSA-87",)
    assert (policy.session.aead, policy.kdf.hash) == ("AES-256-GCM", "SHA-384")
    # Its P-384 sunset: a warning a year ahead, refused after the date.
    with pytest.raises(Exception, match="was sunset on 2033-01-01"):
        load_policy("cnsa2-latest", today=dt.date(2033, 1, 2))


@pytest.mark.parametrize("name", sorted(PINNED))
def test_builtin_suites_put_mlkem_first_and_qkd_last(name: str) -> None:
    for suite in load_policy(name, today=TODAY).suites:
        assert "ML" in suite.components[0].upper()
        if suite.uses_qkd:
            assert suite.components[-1] == QKD_COMPONENT


def test_policy_files_are_package_data() -> None:
    # The installed package reads its policies through importlib.resources, from the
    # `agile.policies` package, not from the repository's directory layout.
    from importlib import resources

    files = {p.name for p in resources.files("agile.policies").iterdir()}
    assert {f"{name}.toml" for name in PINNED} <= files


def test_packaging_ships_the_policy_files() -> None:
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert {"agile.policy", "agile.policies"} <= set(setuptools["packages"])
    assert setuptools["package-dir"]["agile.policies"] == "policies"
    assert "*.toml" in setuptools["package-data"]["agile.policies"]


@pytest.mark.slow
def test_policies_are_in_the_built_wheel(tmp_path: Path) -> None:
    # Builds a wheel the way `pip install` does and looks inside it.
    root = Path(__file__).resolve().parents[2]
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(root / "README.md", source / "README.md")
    pyproject = (root / "pyproject.toml").read_text()
    # setuptools before 77 cannot read a PEP 639 license string; this test is about which
    # files the wheel carries, so give an older backend the table form it understands.
    pyproject = pyproject.replace('license = "Apache-2.0"', 'license = {text = "Apache-2.0"}')
    (source / "pyproject.toml").write_text(pyproject)
    for package in ("agile", "qkd", "pqc", "policies"):
        shutil.copytree(
            root / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"agile/policies/{name}.toml" for name in PINNED} <= names
    assert "agile/policy/model.py" in names
    assert "agile/cli/policy.py" in names
