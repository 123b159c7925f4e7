"""``agile bench``: run every benchmark script in ``bench/`` and merge their JSON results."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agile.cli._output import EXIT_OK, emit_json, fail

# The benchmark scripts live beside the packages in a source checkout (`bench/`), not inside
# the installed distribution: they measure the library, they are not part of it.
_BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="run the benchmarks in bench/ and print results")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (for smoke runs)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="AREA",
        help="run only bench/AREA.py (repeatable), e.g. --only pqc",
    )
    parser.set_defaults(handler=run)


def _scripts(only: list[str]) -> list[Path]:
    if not _BENCH_DIR.is_dir():
        fail(f"no bench/ directory beside the package ({_BENCH_DIR}); run from a source checkout")
    scripts = sorted(p for p in _BENCH_DIR.glob("*.py") if not p.name.startswith("_"))
    if only:
        wanted = set(only)
        missing = wanted - {p.stem for p in scripts}
        if missing:
            known = ", ".join(p.stem for p in scripts)
            fail(f"--only: no benchmark named {', '.join(sorted(missing))}; known: {known}", 2)
        scripts = [p for p in scripts if p.stem in wanted]
    return scripts


def run(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    for script in _scripts(args.only):
        command = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        if not args.json:
            print(f"running {script.name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            fail(f"{script.name} exited {proc.returncode}: {tail[0]}")
        try:
            document = json.loads(proc.stdout)
            results.extend(document["results"])
        except (ValueError, KeyError, TypeError) as exc:
            fail(f"{script.name} printed no {{'results': [...]}} JSON document ({exc})")
    if args.json:
        emit_json({"results": results})
    else:
        width = max((len(r["name"]) for r in results), default=0)
        for r in results:
            # A figure that could not be measured here (a peer not installed) has a null value
            # and says why in its unit.
            value = "n/a" if r["value"] is None else format(r["value"], ">14.6g")
            print(f"{r['name']:<{width}}  {value:>14} {r.get('unit', '')}")
    return EXIT_OK
