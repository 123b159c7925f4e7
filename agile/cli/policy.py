"""``agile policy``: list the built-in policies, check policy files, show one, print the schema."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from agile._errors import PolicyError, PolicyProblem
from agile.cli._output import EXIT_OK, EXIT_REJECTED, emit_json, fail
from agile.policy import _toml, builtin, json_schema
from agile.policy.loader import load_policy_with_warnings
from agile.policy.model import Policy


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("policy", help="list, check and show policies")
    commands = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="the built-in policies and their fingerprints")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    listing.set_defaults(handler=_list)

    check = commands.add_parser("check", help="validate policy files; exit 1 if any is invalid")
    check.add_argument("files", nargs="+", metavar="FILE", help="policy file or built-in name")
    _common(check)
    check.set_defaults(handler=_check)

    show = commands.add_parser("show", help="print a resolved policy (extends applied)")
    show.add_argument("source", metavar="NAME|FILE", help="built-in name or policy file")
    _common(show)
    show.set_defaults(handler=_show)

    schema = commands.add_parser("schema", help="print the JSON Schema of policy documents")
    schema.add_argument("--json", action="store_true", help="accepted for symmetry: always JSON")
    schema.set_defaults(handler=_schema)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--date",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="check sunset rules as of this date instead of today",
    )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def _problem_json(problem: PolicyProblem) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "col": problem.col,
        "path": problem.path,
        "message": problem.message,
    }


def _list(args: argparse.Namespace) -> int:
    aliases = builtin.aliases()
    rows: list[dict[str, Any]] = []
    for name in builtin.versioned_names():
        policy, _ = load_policy_with_warnings(name)
        rows.append(
            {
                "name": name,
                "aliases": [alias for alias, target in aliases.items() if target == name],
                "version": policy.version,
                "description": policy.description,
                "fingerprint": policy.fingerprint,
                "suites": [suite.name for suite in policy.suites],
            }
        )
    if args.json:
        emit_json({"policies": rows})
        return EXIT_OK
    for row in rows:
        alias = f"  (= {', '.join(row['aliases'])})" if row["aliases"] else ""
        print(f"{row['name']}{alias}")
        print(f"    {row['description']}")
        print(f"    version {row['version']}  {row['fingerprint']}")
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    for source in args.files:
        try:
            policy, warnings = load_policy_with_warnings(source, today=args.date)
        except PolicyError as exc:
            results.append({"file": source, "valid": False, "problems": list(exc.problems)})
            continue
        results.append(
            {
                "file": source,
                "valid": True,
                "name": policy.name,
                "fingerprint": policy.fingerprint,
                "warnings": warnings,
            }
        )
    invalid = sum(not r["valid"] for r in results)
    if args.json:
        emit_json(
            {
                "valid": invalid == 0,
                "files": [
                    {
                        **r,
                        "problems": [_problem_json(p) for p in r.get("problems", [])],
                        "warnings": [_problem_json(p) for p in r.get("warnings", [])],
                    }
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            for problem in (*r.get("problems", ()), *r.get("warnings", ())):
                print(problem)
            if r["valid"]:
                print(f"{r['file']}: ok ({r['name']}, {r['fingerprint']})")
        if invalid:
            noun = "file is" if invalid == 1 else "files are"
            print(f"{invalid} of {len(results)} policy {noun} invalid", file=sys.stderr)
    return EXIT_REJECTED if invalid else EXIT_OK


def _show(args: argparse.Namespace) -> int:
    try:
        policy, warnings = load_policy_with_warnings(args.source, today=args.date)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem)
        fail(f"{args.source} is not a valid policy ({len(exc.problems)} problems listed above)")
    for warning in warnings:
        print(warning, file=sys.stderr)
    if args.json:
        emit_json({"fingerprint": policy.fingerprint, "policy": _document(policy)})
    else:
        header = f"{policy.name}: resolved policy\nfingerprint {policy.fingerprint}"
        sys.stdout.write(_toml.dumps(_document(policy, dates=True), header=header))
    return EXIT_OK


def _document(policy: Policy, *, dates: bool = False) -> dict[str, Any]:
    # Fields in the order the model declares them; TOML keeps dates as dates.
    return policy.model_dump(mode="python" if dates else "json")


def _schema(args: argparse.Namespace) -> int:
    emit_json(json_schema())
    return EXIT_OK
