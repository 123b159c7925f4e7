"""``agile peer``: rotate keys with a remote peer on an interval, into the tools they run.

One host listens, the other connects; both name the same policy and the same sinks::

    agile peer --policy pqc-only-latest --identity b.identity.toml --trust a.trust.toml \\
        --listen 0.0.0.0:7443 --sink wireguard:/run/agile/wg0.psk:wg0 \\
        --sink-command 'wg set wg0 peer PUBKEY preshared-key {key_file}'
    agile peer --policy pqc-only-latest --identity a.identity.toml --trust b.trust.toml \\
        --connect host-b:7443 --sink wireguard:/run/agile/wg0.psk:wg0 \\
        --sink-command 'wg set wg0 peer PUBKEY preshared-key {key_file}'

Every interval (default 120 s) the connecting side runs a hybrid handshake; both sides write
the fresh key of every sink atomically (mode 0600), keep the previous one as ``PATH.previous``
for ``--grace`` seconds, and run the sink's command. What happens on failure is in
:mod:`agile.peer`. With ``--json`` each event is one JSON line on stdout. Never prints keys:
only key ids (public identifiers), paths and identities.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agile.cli._output import EXIT_OK, EXIT_USAGE, fail
from agile.peer import (
    Event,
    KeyRing,
    PeerError,
    PeerLink,
    Sink,
    build_engine,
    install_stop_signals,
    parse_address,
    parse_sink,
    run_daemon,
)
from agile.policy.loader import load_policy

DEFAULT_INTERVAL_S = 120.0
_EPILOG = """\
after each handshake, on both hosts: every sink's key is written to PATH (atomically, mode
0600), the key it replaces to PATH.previous (deleted after --grace seconds), then the sink's
command runs. A failed handshake changes nothing: the current key stays while it is younger
than the policy's session.lifetime_s; then every key file is deleted (fail closed; a sink
with a command gets a random key no peer has), and the daemon keeps trying. SIGTERM/SIGINT:
stop, delete the PATH.previous files, keep the current keys; on start, key files found
expire session.lifetime_s after they were written. See docs/migration.md.
"""


class _SinkAction(argparse.Action):
    """``--sink`` appends a sink; ``--sink-command`` attaches a command to the last one."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        sinks: list[list[str | None]] = list(getattr(namespace, "sinks", None) or [])
        if option_string == "--sink":
            sinks.append([str(values), None])
        else:
            if not sinks:
                parser.error("--sink-command must follow the --sink it installs")
            if sinks[-1][1] is not None:
                parser.error("a --sink takes at most one --sink-command")
            sinks[-1][1] = str(values)
        namespace.sinks = sinks


def add_link_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``agile peer`` and ``agile keys export`` share."""
    parser.add_argument(
        "--policy", required=True, metavar="NAME|FILE", help="built-in policy name or file"
    )
    side = parser.add_mutually_exclusive_group(required=True)
    side.add_argument(
        "--listen", metavar="HOST:PORT", help="wait for the peer here (port 0: pick one)"
    )
    side.add_argument("--connect", metavar="HOST:PORT", help="connect to the listening peer")
    parser.add_argument(
        "--sink",
        action=_SinkAction,
        dest="sinks",
        required=True,
        metavar="TARGET:PATH[:IDENTITY]",
        help="write a key for TARGET (openssl, stunnel, wireguard, strongswan) to PATH, "
        "bound to IDENTITY (default: agile); repeatable",
    )
    parser.add_argument(
        "--sink-command",
        action=_SinkAction,
        dest="sinks",
        metavar="CMD",
        help="run CMD (no shell) after the preceding --sink is written; {key_file}, "
        "{identity}, {target} and {key_id} are replaced",
    )
    parser.add_argument(
        "--identity",
        type=Path,
        metavar="FILE",
        help="our signing keys (from `agile keys identity`), for signature policies",
    )
    parser.add_argument(
        "--trust",
        type=Path,
        metavar="FILE",
        help="the peer's public keys (its NAME.trust.toml), unless the policy pins them",
    )
    parser.add_argument(
        "--psk-file", type=Path, metavar="FILE", help="the shared key, for PSK policies"
    )
    parser.add_argument(
        "--no-qkd",
        action="store_true",
        help="run without a QKD key source; the policy's qkd.required rule decides",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the peer in a handshake (default 30)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "peer",
        help="rotate exported keys with a remote peer on an interval (a small daemon)",
        description="Rotate hybrid keys with a remote peer on an interval, into the tools "
        "they run (OpenSSL, stunnel, WireGuard, strongSwan).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_link_arguments(parser)
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        metavar="S",
        help=f"seconds between handshakes (default {DEFAULT_INTERVAL_S:.0f})",
    )
    parser.add_argument(
        "--grace",
        type=float,
        metavar="S",
        help="seconds the previous key stays in PATH.previous (default: the interval)",
    )
    parser.add_argument(
        "--once", action="store_true", help="one rotation, then exit (as `agile keys export`)"
    )
    parser.set_defaults(handler=run)


def open_link(args: argparse.Namespace, *, grace_s: float) -> tuple[PeerLink, KeyRing, str]:
    """Policy, engine, sinks and connection from the shared options; usage errors exit 2."""
    try:
        sinks: list[Sink] = [parse_sink(spec, command) for spec, command in args.sinks]
        listen = parse_address(args.listen, "--listen") if args.listen else None
        connect = parse_address(args.connect, "--connect") if args.connect else None
        ring = KeyRing(sinks, grace_s=grace_s)
    except PeerError as exc:
        fail(str(exc), EXIT_USAGE)
    if args.timeout <= 0:
        fail(f"--timeout {args.timeout}: must be more than 0 seconds", EXIT_USAGE)
    policy = load_policy(args.policy)
    engine, qkd_note = build_engine(
        policy,
        identity=args.identity,
        trust=args.trust,
        psk=args.psk_file,
        no_qkd=args.no_qkd,
    )
    try:
        link = PeerLink(engine, listen=listen, connect=connect, timeout_s=args.timeout)
    except PeerError:
        engine.close()
        raise
    return link, ring, qkd_note


def print_event(event: Event, *, as_json: bool) -> None:
    """One event: a JSON line, or a line for people. Failing closed is also an alarm on
    stderr, whatever the format."""
    if event["event"] == "fail_closed":
        sys.stderr.write(
            f"agile: warning: fail closed, keys withdrawn ({', '.join(event['removed'])}): "
            f"{event['reason']}\n"
        )
        sys.stderr.flush()
    if as_json:
        import json

        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()
        return
    kind = event["event"]
    if kind == "rotated":
        qkd = "with QKD" if event["qkd_used"] else "without QKD"
        print(
            f"rotation {event['rotation']}: session {event['session_key_id']} "
            f"({'+'.join(event['suite'])}, {qkd})"
        )
        for key in event["keys"]:
            print(
                f"  {key['target']:<10} {key['path']}  identity {key['identity']}  "
                f"key id {key['key_id']}"
            )
        for problem in event.get("command_errors", []):
            print(f"  command for {problem['path']} failed: {problem['reason']}")
    elif kind == "handshake_failed":
        state = "keys withdrawn" if event["closed"] else "keeping the current key"
        print(f"handshake failed ({state}): {event['reason']}")
    elif kind == "fail_closed":
        print(f"FAIL CLOSED: {event['reason']}; removed {', '.join(event['removed'])}")
    elif kind == "previous_removed":
        print(f"previous keys removed after the {event['grace_s']:g} s grace period")
    elif kind == "adopted":
        print(
            f"key files from an earlier run ({', '.join(event['paths'])}) stay until the next "
            f"rotation, at most {event['expires_in_s']:g} s more"
        )
    elif kind == "started":
        print(
            f"{event['role']} on {event['address']}, policy {event['policy']}, every "
            f"{event['interval_s']:g} s, grace {event['grace_s']:g} s; QKD: {event['qkd']}"
        )
    else:
        print(kind)
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    if args.interval <= 0:
        fail(f"--interval {args.interval}: must be more than 0 seconds", EXIT_USAGE)
    grace = args.interval if args.grace is None else args.grace
    if grace < 0:
        fail(f"--grace {grace}: must be 0 or more seconds", EXIT_USAGE)
    link, ring, qkd_note = open_link(args, grace_s=grace)
    policy = link.engine.policy
    if args.interval >= policy.session.lifetime_s:
        link.close()
        link.engine.close()
        fail(
            f"--interval {args.interval:g} s is not shorter than policy {policy.name}'s "
            f"session.lifetime_s ({policy.session.lifetime_s} s): keys would expire between "
            "rotations; shorten the interval",
            EXIT_USAGE,
        )
    if args.once:
        from agile.cli.keys import export_once

        return export_once(args, link, ring, qkd_note)
    stop = threading.Event()
    restore = install_stop_signals(stop)
    try:
        print_event(
            {
                "event": "started",
                "role": link.role,
                "address": link.address,
                "policy": policy.name,
                "policy_fingerprint": policy.fingerprint,
                "interval_s": args.interval,
                "grace_s": grace,
                "qkd": qkd_note,
                "sinks": [s.describe() for s in ring.sinks],
            },
            as_json=args.json,
        )
        run_daemon(
            link,
            ring,
            interval_s=args.interval,
            report=lambda event: print_event(event, as_json=args.json),
            stop=stop,
        )
    finally:
        restore()
        link.close()
        link.engine.close()
    print_event({"event": "stopped", "rotations": ring.rotations}, as_json=args.json)
    return EXIT_OK
