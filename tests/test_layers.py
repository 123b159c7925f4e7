"""The shape of the code base.

- The direction of imports: agile -> (pqc, qkd); pqc and qkd never import agile or each other.
- Nothing under agile/, pqc/, qkd/, tests/ or bench/ reads a path outside the repository.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"pqc": {"agile", "qkd"}, "qkd": {"agile", "pqc"}}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_low_layer_does_not_import_upwards_or_sideways(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & FORBIDDEN[package])
        for path in files
        if _imported_top_levels(path) & FORBIDDEN[package]
    }
    assert offenders == {}


# qkd's rooms: physics, post-processing and delivery are the concerns of one link; the
# network room builds on them and they never import it.
_ROOMS_BELOW_NETWORK = ("physics", "postprocessing", "delivery")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_qkd_rooms_never_import_the_network_room() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imported_modules(path) if name.startswith("qkd.network")
        )
        for room in _ROOMS_BELOW_NETWORK
        for path in sorted((ROOT / "qkd" / room).rglob("*.py"))
        if any(name.startswith("qkd.network") for name in _imported_modules(path))
    }
    assert (ROOT / "qkd" / "network" / "__init__.py").is_file()
    assert offenders == {}


def test_the_room_checker_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from qkd import network\nimport qkd.network.planner\n", encoding="utf-8")
    assert {"qkd.network", "qkd.network.planner"} <= _imported_modules(module)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import agile.policy\nfrom qkd import simulate\n", encoding="utf-8")
    assert _imported_top_levels(module) == {"agile", "qkd"}


def test_importing_the_packages_loads_no_optional_dependency() -> None:
    optional = ["oqs", "pqcrypto", "yaml", "matplotlib", "httpx", "networkx", "scipy"]
    code = (
        f"import sys, agile, pqc, qkd\nprint(sorted(m for m in {optional!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_package_directory_is_listed_for_distribution() -> None:
    # A package missing from pyproject's explicit list works in an editable install and is
    # silently absent from a wheel; this keeps the list complete.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("agile", "pqc", "qkd")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found - listed == set()
    assert "agile.policies" in listed


# Everything the code, tests and benchmarks read lives in the repository: a user's clone has no
# sibling folders. The pattern is assembled from pieces so that this file does not match itself.
_SHARED = "shared"
# The three alternatives: a relative path string, a pathlib join, an os.path.join.
_OUTSIDE = re.compile(
    rf"\.\.[/\\]{_SHARED}\b"
    rf"|[/]\s*[\"']{_SHARED}[\"']"
    rf"|[\"']\.\.[\"']\s*,\s*[\"']{_SHARED}[\"']"
)
_SCANNED = ("agile", "pqc", "qkd", "tests", "bench")


def _names_outside(text: str) -> list[str]:
    return [match.group(0) for match in _OUTSIDE.finditer(text)]


def test_nothing_reads_outside_the_repository() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}:{number}": line.strip()
        for top in _SCANNED
        for path in sorted((ROOT / top).rglob("*"))
        if path.is_file() and path.suffix not in {".pyc", ".png"}
        for number, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1
        )
        if _names_outside(line)
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "line",
    [
        f'VECTORS = ROOT.parent / "{_SHARED}" / "vectors"',
        f"path = '../{_SHARED}/vectors/x.json'",
        f'os.path.join("..", "{_SHARED}", "liboqs")',
    ],
)
def test_the_outside_check_sees_a_violation(line: str) -> None:
    assert _names_outside(line)


def test_the_outside_check_allows_the_word_in_prose() -> None:
    assert _names_outside("the KDF's shared secret; a shared:SSL:10m cache") == []
