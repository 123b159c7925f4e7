"""``agile migrate tls FILE...``: audit TLS configurations for quantum risk.

Exit 0 when no setting is quantum-vulnerable, 1 when one is (a failed check) or a file cannot
be read, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from pathlib import Path
from typing import Any

from agile import AgileError
from agile.cli._output import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, emit_json, fail
from agile.migrate import DIALECTS, MigrationError, Stack, audit_files
from agile.migrate.writer import equivalent_policy, policy_name, to_toml


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate", help="audit existing deployments for quantum risk and migrate them"
    )
    kinds = parser.add_subparsers(dest="migrate_kind", metavar="KIND", required=True)
    tls = kinds.add_parser(
        "tls",
        help="audit OpenSSL, nginx, Apache, HAProxy and stunnel TLS configurations",
        description="Report each TLS setting with its quantum risk (quantum-vulnerable, weak, "
        "ok) and the fix. Exit 1 when any setting is quantum-vulnerable.",
    )
    tls.add_argument("files", nargs="+", metavar="FILE", help="configuration files to audit")
    tls.add_argument(
        "--format",
        choices=DIALECTS,
        default=None,
        help="configuration dialect (default: told from the file name, else its content)",
    )
    tls.add_argument(
        "--openssl",
        default="3.0",
        metavar="X.Y",
        help="OpenSSL version the audited service runs, for its defaults (default: 3.0)",
    )
    tls.add_argument(
        "--write-policy", metavar="OUT", default=None, help="write the equivalent agile policy"
    )
    tls.add_argument("--policy-name", default=None, help="name of the written policy")
    tls.add_argument("--json", action="store_true", help="print machine-readable JSON")
    tls.set_defaults(handler=run_tls)


def _stack(text: str) -> Stack:
    match = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)?", text.strip())
    if match is None:
        fail(f"--openssl: {text!r} is not a version like 3.0 or 3.5", EXIT_USAGE)
    return Stack(openssl=(int(match.group(1)), int(match.group(2))))


def run_tls(args: argparse.Namespace) -> int:
    stack = _stack(args.openssl)
    try:
        report = audit_files(args.files, dialect=args.format, stack=stack)
    except MigrationError as exc:
        fail(str(exc))
    written = None
    if args.write_policy:
        written = _write_policy(args, report.parsed, stack)
    summary = report.summary()
    if written:
        summary["policy_written"] = written
    if args.json:
        emit_json({"findings": [f.as_dict() for f in report.findings], "summary": summary})
    else:
        _print_text(report.findings, summary)
    return EXIT_REJECTED if report.quantum_vulnerable else EXIT_OK


def _write_policy(args: argparse.Namespace, parsed: list[Any], stack: Stack) -> str:
    from agile.export import ExportError, write_secret_file
    from agile.policy.loader import parse_policy

    out = Path(args.write_policy)
    name = args.policy_name or policy_name(Path(args.files[0]).stem)
    document = equivalent_policy(parsed, stack=stack, name=name, today=dt.date.today())
    text = to_toml(document)
    try:
        # Check the policy loads before it is written: a policy the loader refuses is a bug
        # here, not something to hand to an operator.
        parse_policy(text, filename=str(out))
    except AgileError as exc:
        fail(f"--write-policy: the derived policy does not validate ({exc}); please report this")
    try:
        # A policy is not secret, but the atomic writer keeps readers from a half-written one.
        write_secret_file(out, text)
        out.chmod(0o644)
    except (ExportError, OSError) as exc:
        fail(f"--write-policy {out}: {exc}")
    return str(out)


def _print_text(findings: list[Any], summary: dict[str, Any]) -> None:
    for f in findings:
        where = f"{f.file}:{f.line}"
        print(f"{where}: [{f.risk}] {f.setting} = {f.value}")
        if f.note:
            print(f"    why: {f.note}")
        if f.fix != "none":
            print(f"    fix: {f.fix}")
    counts = summary["counts"]
    print(
        f"{len(findings)} findings: {counts['quantum-vulnerable']} quantum-vulnerable, "
        f"{counts['weak']} weak, {counts['ok']} ok (defaults assume OpenSSL "
        f"{summary['assumed_openssl']})"
    )
    if summary.get("policy_written"):
        print(f"policy written to {summary['policy_written']}")
