"""``agile net``: QKD network files: print their schema, check them, plan them.

A network file (TOML, JSON or YAML; docs/networks.md) lists trusted nodes, links and key
demands. ``check`` validates files and prints every problem as ``FILE:LINE:COL: field.path:
message``; ``plan`` computes link rates, per-demand max-flow and paths, joint feasibility,
bottlenecks and single failures (DESIGN.md, "QKD networks").
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agile.cli._output import EXIT_OK, EXIT_REJECTED, emit_json, fail, print_error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("net", help="QKD network files: schema, check, plan")
    commands = parser.add_subparsers(dest="net_command", metavar="ACTION", required=True)

    schema = commands.add_parser("schema", help="print the JSON Schema of network files")
    schema.add_argument("--json", action="store_true", help="accepted for symmetry: always JSON")
    schema.set_defaults(handler=_schema)

    check = commands.add_parser("check", help="validate network files; exit 1 if any is invalid")
    check.add_argument("files", nargs="+", metavar="FILE", help=".toml, .json or .yaml")
    check.add_argument("--json", action="store_true", help="print machine-readable JSON")
    check.set_defaults(handler=_check)

    plan = commands.add_parser(
        "plan", help="link rates, max-flow per demand, feasibility, bottlenecks, failures"
    )
    plan.add_argument("file", metavar="FILE", help=".toml, .json or .yaml")
    plan.add_argument("--json", action="store_true", help="print machine-readable JSON")
    plan.add_argument("--no-failures", action="store_true", help="skip the single-failure analysis")
    plan.set_defaults(handler=_plan)


def _problem_json(problem: Any) -> dict[str, Any]:
    return {
        "file": problem.file,
        "line": problem.line,
        "col": problem.col,
        "path": problem.path,
        "message": problem.message,
    }


def _schema(args: argparse.Namespace) -> int:
    from qkd.network.model import json_schema

    emit_json(json_schema())
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from qkd.network.loader import NetworkFileError, load_network

    results: list[dict[str, Any]] = []
    for source in args.files:
        try:
            network = load_network(source)
        except NetworkFileError as exc:
            results.append({"file": source, "valid": False, "problems": list(exc.problems)})
            continue
        results.append(
            {
                "file": source,
                "valid": True,
                "name": network.network.name,
                "nodes": len(network.nodes),
                "links": len(network.links),
                "demands": len(network.demands),
            }
        )
    invalid = sum(not r["valid"] for r in results)
    if args.json:
        emit_json(
            {
                "valid": invalid == 0,
                "files": [
                    {**r, "problems": [_problem_json(p) for p in r.get("problems", [])]}
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            for problem in r.get("problems", ()):
                print(problem)
            if r["valid"]:
                print(
                    f"{r['file']}: ok ({r['name']}: {r['nodes']} nodes, {r['links']} links, "
                    f"{r['demands']} demands)"
                )
        if invalid:
            noun = "file is" if invalid == 1 else "files are"
            print(f"{invalid} of {len(results)} network {noun} invalid", file=sys.stderr)
    return EXIT_REJECTED if invalid else EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from qkd import QKDError
    from qkd.network.loader import NetworkFileError, load_network
    from qkd.network.planner import PlannerUnavailable, plan

    try:
        network = load_network(args.file)
    except NetworkFileError as exc:
        for problem in exc.problems:
            print_error(str(problem))
        return EXIT_REJECTED
    try:
        result = plan(network, failures=not args.no_failures)
    except PlannerUnavailable as exc:
        fail(f"net plan: {exc}")
    except QKDError as exc:
        fail(f"net plan: {args.file}: {exc}")
    document = result.to_dict()
    if args.json:
        emit_json(document)
        return EXIT_OK
    _print_plan(document)
    return EXIT_OK


def _print_plan(doc: dict[str, Any]) -> None:
    print(f"network {doc['network']}")
    print("links (secret key rate):")
    for link in doc["links"]:
        print(f"  {link['id']:<20} {link['kind']:<11} {link['key_rate_bps']:>14,.1f} bit/s")
    print("demands (each alone):")
    for d in doc["demands"]:
        path = "-".join(d["path"]) if d["path"] else "(unreachable)"
        trusted = "-" if d["trusted_nodes"] is None else d["trusted_nodes"]
        verdict = "met" if d["met"] else "NOT MET"
        print(
            f"  {d['from']} -> {d['to']}: wants {d['requested_bps']:,.1f}, max "
            f"{d['max_rate_bps']:,.1f} bit/s, {verdict}; path {path} "
            f"({trusted} trusted nodes)"
        )
    scale = doc["common_scale"]
    at_scale = "" if scale is None else f" (common scale {scale:.4g})"
    print(f"all demands at once: {'feasible' if doc['feasible'] else 'NOT feasible'}{at_scale}")
    print(f"bottlenecks: {', '.join(doc['bottlenecks']) or 'none'}")
    if doc["single_failures"]:
        print("single failures:")
        for f in doc["single_failures"]:
            failed = ", ".join(f"{a}->{b}" for a, b in f["failed_demands"]) or "none"
            print(f"  {f['kind']} {f['failed']}: fails {failed}")
