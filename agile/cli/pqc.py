"""``agile pqc list``: every KEM and signature algorithm, its providers, and provider status.

Lists every provider, available or not, with the reason (for instance why liboqs cannot be
loaded and how to install it). Sizes are the preferred provider's; secret-key sizes and
formats are given per provider because they differ (seed versus expanded keys).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import pqc
from agile.cli._output import EXIT_OK, emit_json, fail


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("pqc", help="post-quantum algorithms and providers")
    commands = parser.add_subparsers(dest="pqc_command", metavar="SUBCOMMAND", required=True)
    listing = commands.add_parser("list", help="list algorithms, providers and availability")
    listing.add_argument("--json", action="store_true", help="print machine-readable JSON")
    listing.set_defaults(handler=run_list)


def _algorithm(name: str, providers: list[str], infos: list[Any]) -> dict[str, Any]:
    first = infos[0]
    entry: dict[str, Any] = {
        "name": name,
        "kind": first.kind,
        "providers": providers,
        "family": first.family,
        "nist_level": first.nist_level,
        "standard": first.standard,
        "public_key_size": first.public_key_size,
    }
    if first.kind == "kem":
        entry["ciphertext_size"] = first.ciphertext_size
        entry["shared_secret_size"] = first.shared_secret_size
    else:
        entry["signature_size"] = first.signature_size
    entry["secret_keys"] = {
        info.provider: {
            "size": info.secret_key_size,
            "format": info.secret_key_format,
            "seed_size": info.seed_size,
        }
        for info in infos
    }
    return entry


def collect() -> dict[str, Any]:
    """The document ``agile pqc list --json`` prints."""
    algorithms = []
    try:
        for name in pqc.available_kems():
            providers = pqc.kem_providers(name)
            infos: list[Any] = [pqc.kem(name, provider=p).info for p in providers]
            algorithms.append(_algorithm(name, providers, infos))
        for name in pqc.available_signatures():
            providers = pqc.signature_providers(name)
            infos = [pqc.signature(name, provider=p).info for p in providers]
            algorithms.append(_algorithm(name, providers, infos))
    except pqc.PQCError as exc:
        fail(f"pqc: {exc}")
    return {
        "algorithms": algorithms,
        "providers": [dataclasses.asdict(status) for status in pqc.providers()],
        "preference": list(pqc.preference()),
    }


def run_list(args: argparse.Namespace) -> int:
    document = collect()
    if args.json:
        emit_json(document)
        return EXIT_OK
    rows = [("NAME", "KIND", "FAMILY", "LEVEL", "PK", "CT/SIG", "SS", "PROVIDERS")]
    for a in document["algorithms"]:
        level = a["nist_level"]
        rows.append(
            (
                a["name"],
                a["kind"],
                a["family"],
                "-" if level is None else str(level),
                str(a["public_key_size"]),
                str(a.get("ciphertext_size", a.get("signature_size"))),
                str(a.get("shared_secret_size", "-")),
                ",".join(a["providers"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    print()
    print("providers (preference order):")
    for status in document["providers"]:
        state = "available" if status["available"] else "unavailable"
        version = f" {status['version']}" if status["version"] else ""
        print(f"  {status['name']}: {state}{version} - {status['reason']}")
    return EXIT_OK
