"""Refresh the lock files that `make` installs the project's own environments from.

Run through `make lock`, which supplies a pinned `uv`. Two files come out, both with hashes,
resolved for every platform and Python >= 3.11 (`--universal`):

- `requirements/dev.lock`: every package of `.[all,test,test-vectors]`, plus the build backend
  named in pyproject's `[build-system]` (the editable install runs without build isolation,
  so that nothing it uses is "newest on the day").
- `requirements/demo.lock`: only the base dependencies and the build backend, at the same
  versions as dev.lock, so that `make demo` never depends on a test-only package.

`cryptography` and `cryptography-vectors` are pinned as a matching pair: the newest version
that the registry holds for both. The vectors package is released beside cryptography and
sometimes later; pinning the pair keeps the known-answer tests on the files that were made
for that release.

The distribution's own dependencies in pyproject.toml stay ranges: these locks serve the
project's environments, not its users' installs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON_FLOOR = "3.11"
DEV_EXTRAS = ("all", "test", "test-vectors")


def _compile(uv: str, sources: list[Path], output: Path | None, *options: str) -> str:
    command = [
        uv,
        "pip",
        "compile",
        *map(str, sources),
        "--universal",
        "--python-version",
        PYTHON_FLOOR,
        "--upgrade",
        "--quiet",
        *options,
    ]
    if output is not None:
        command += ["--output-file", str(output), "--custom-compile-command", "make lock"]
    # An argument vector of our own (uv's path from the Makefile), no shell.
    result = subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        sys.exit(f"lock: uv pip compile failed:\n{result.stderr}")
    return result.stdout


def newest_vectors_version(uv: str, workdir: Path) -> str:
    """The newest cryptography-vectors release; cryptography's own releases come first."""
    source = workdir / "vectors.in"
    source.write_text("cryptography-vectors\n", encoding="utf-8")
    text = _compile(uv, [source], None, "--no-header", "--no-annotate")
    match = re.search(r"^cryptography-vectors==(\S+)$", text, re.MULTILINE)
    if match is None:
        sys.exit(f"lock: could not read the newest cryptography-vectors from:\n{text}")
    return match.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", required=True, help="path of the uv executable")
    args = parser.parse_args()

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    build_requires: list[str] = pyproject["build-system"]["requires"]

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        version = newest_vectors_version(args.uv, workdir)
        pair = workdir / "pair.txt"
        pair.write_text(
            f"cryptography=={version}\ncryptography-vectors=={version}\n", encoding="utf-8"
        )
        build = workdir / "build-system.in"
        build.write_text("".join(f"{req}\n" for req in build_requires), encoding="utf-8")

        dev = HERE / "dev.lock"
        extras = [option for extra in DEV_EXTRAS for option in ("--extra", extra)]
        _compile(
            args.uv,
            [Path("pyproject.toml"), build],
            dev,
            *extras,
            "--constraint",
            str(pair),
            "--generate-hashes",
        )
        _compile(
            args.uv,
            [Path("pyproject.toml"), build],
            HERE / "demo.lock",
            "--constraint",
            str(dev),
            "--generate-hashes",
        )
    print(f"lock: cryptography and cryptography-vectors pinned at {version}")
    print(f"lock: wrote {dev.relative_to(ROOT)} and requirements/demo.lock")


if __name__ == "__main__":
    main()
