"""``agile keys``: signing identities, and one-shot key export to TLS/VPN tools.

``agile keys identity --policy P --out NAME`` makes ``NAME.identity.toml`` (secret signing
keys, mode 0600) and ``NAME.trust.toml`` (the public keys, for the other host's ``--trust``).

``agile keys export`` runs one hybrid handshake with the other host (one side ``--listen``,
the other ``--connect``) and writes each ``--sink TARGET:PATH[:IDENTITY]``: OpenSSL ``-psk``
hex, stunnel ``PSKsecrets``, WireGuard ``PresharedKey``, strongSwan PPK secrets — derived per
target through the session's exporter (RFC 9258 ``ImportedIdentity`` for TLS), atomically,
mode 0600. Both hosts get the same key for the same target and identity. It prints key ids,
paths and identities, never a key. ``agile peer`` does the same on an interval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agile.cli._output import EXIT_OK, EXIT_REJECTED, emit_json, fail
from agile.cli.peer import add_link_arguments, open_link
from agile.peer import KeyRing, PeerError, PeerLink, write_identity
from agile.policy.loader import load_policy


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys", help="make signing identities; export hybrid keys to TLS/VPN tools"
    )
    commands = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)

    identity = commands.add_parser(
        "identity", help="generate signing keys for a policy (NAME.identity/trust.toml)"
    )
    identity.add_argument(
        "--policy", required=True, metavar="NAME|FILE", help="built-in policy name or file"
    )
    identity.add_argument(
        "--out", required=True, type=Path, metavar="NAME", help="path prefix of the two files"
    )
    identity.add_argument("--json", action="store_true", help="print machine-readable JSON")
    identity.set_defaults(handler=run_identity)

    export = commands.add_parser(
        "export",
        help="one handshake with the peer, then write the keys to the sinks",
        description="Run one hybrid handshake and export keys (see `agile peer` to rotate).",
    )
    add_link_arguments(export)
    export.set_defaults(handler=run_export)


def run_identity(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    try:
        identity_path, trust_path = write_identity(policy, args.out)
    except PeerError as exc:
        fail(f"--out {args.out}: {exc}")
    if args.json:
        emit_json(
            {
                "policy": policy.name,
                "algorithms": list(policy.auth.signature_algorithms),
                "identity": str(identity_path),
                "trust": str(trust_path),
            }
        )
    else:
        print(f"{identity_path}  (secret signing keys, mode 0600: keep it on this host)")
        print(f"{trust_path}  (public keys: give it to the peer, for its --trust)")
    return EXIT_OK


def export_once(args: argparse.Namespace, link: PeerLink, ring: KeyRing, qkd_note: str) -> int:
    """One handshake, the sinks written; the report says what was written, by key id."""
    try:
        if link.role == "responder":
            # Port 0 picks a free port: say which, for the other host (stderr keeps stdout
            # for the report).
            print(f"agile: listening on {link.address}", file=sys.stderr, flush=True)
        try:
            session = link.handshake(wait_s=args.timeout)
        except TimeoutError:
            fail(f"--listen {link.address}: no peer connected within {args.timeout:g} s")
        event = ring.install(session)
    finally:
        link.close()
        link.engine.close()
    policy = link.engine.policy
    report = {
        "policy": policy.name,
        "policy_fingerprint": policy.fingerprint,
        "role": link.role,
        "address": link.address,
        "session_key_id": event["session_key_id"],
        "suite": event["suite"],
        "qkd_used": event["qkd_used"],
        "qkd_key_ids": event["qkd_key_ids"],
        "qkd_source": qkd_note,
        "keys": event["keys"],
    }
    errors = event.get("command_errors", [])
    if errors:
        report["command_errors"] = errors
    if args.json:
        emit_json(report)
    else:
        qkd = "with QKD" if report["qkd_used"] else f"without QKD ({qkd_note})"
        print(f"policy   {policy.name} ({link.role}, {link.address})")
        print(f"session  {report['session_key_id']}: {'+'.join(report['suite'])}, {qkd}")
        for key in report["keys"]:
            print(
                f"wrote    {key['path']}  {key['target']}, identity {key['identity']}, "
                f"key id {key['key_id']}"
            )
        for problem in errors:
            print(f"failed   command for {problem['path']}: {problem['reason']}")
    return EXIT_REJECTED if errors else EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    link, ring, qkd_note = open_link(args, grace_s=0.0)
    return export_once(args, link, ring, qkd_note)
