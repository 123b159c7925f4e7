"""``agile net up/down/status/eve/cut``: a network of KMEs on loopback, one process per node.

::

    agile net up docs/networks/metro-ring.toml --state /tmp/ring
    agile net status --state /tmp/ring [--json]
    agile net eve --state /tmp/ring A-B          # simulated eavesdropper: QBER alarm
    agile net eve --state /tmp/ring A-B --in 60  # ... a minute from now
    agile net eve --state /tmp/ring A-B --off
    agile net cut --state /tmp/ring A-B [--off]  # a cut fibre
    agile net down --state /tmp/ring

SAEs connect to a node's ETSI 014 URL (``status`` lists them) with ``STATE/ca.pem`` and
``STATE/saes/NAME/cert.pem`` and ``key.pem``. docs/kme.md, "A network of KMEs".
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agile.cli._output import EXIT_OK, EXIT_REJECTED, emit_json, fail


def register(commands: Any) -> None:
    up = commands.add_parser("up", help="start every node of a network as a local KME process")
    up.add_argument("file", type=Path, metavar="FILE", help="the network file")
    up.add_argument("--state", required=True, type=Path, metavar="DIR", help="state directory")
    up.add_argument(
        "--routing-period",
        type=float,
        default=1.0,
        metavar="S",
        help="how often nodes refresh their view of the network (default 1 s)",
    )
    up.add_argument(
        "--store",
        metavar="URL",
        help="keep every node's state in this PostgreSQL database (postgresql://...; one"
        " schema per node) instead of SQLite files",
    )
    up.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="run every node as N replicas on the --store database (default 1)",
    )
    up.add_argument("--json", action="store_true", help="print machine-readable JSON")
    up.set_defaults(handler=_up)

    down = commands.add_parser("down", help="stop the nodes started by `agile net up`")
    down.add_argument("--state", required=True, type=Path, metavar="DIR", help="state directory")
    down.add_argument("--json", action="store_true", help="print machine-readable JSON")
    down.set_defaults(handler=_down)

    status = commands.add_parser("status", help="nodes, links, pool levels, QBER and alarms")
    status.add_argument("file", nargs="?", type=Path, metavar="FILE", help="(optional) the file")
    status.add_argument("--state", required=True, type=Path, metavar="DIR", help="state directory")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.set_defaults(handler=_status)

    for name, what in (("eve", "a simulated eavesdropper on LINK"), ("cut", "cut LINK")):
        command = commands.add_parser(name, help=f"{what} (--off ends it)")
        command.add_argument("link", metavar="LINK", help="link id")
        command.add_argument("--state", required=True, type=Path, metavar="DIR")
        command.add_argument("--off", action="store_true", help="end it")
        command.add_argument(
            "--in", dest="in_s", type=float, default=0.0, metavar="S",
            help="at a set time: S seconds from now (default: now)",
        )  # fmt: skip
        if name == "eve":
            command.add_argument(
                "--attack",
                choices=("intercept-resend", "pns"),
                default="intercept-resend",
                help="intercept-resend (raises the QBER; default) or pns, photon-number "
                "splitting (QBER unchanged; trips the decoy-bound alarm of a fibre link)",
            )
        command.add_argument("--json", action="store_true", help="print machine-readable JSON")
        command.set_defaults(handler=_set_link, flag=name)


def _up(args: argparse.Namespace) -> int:
    from qkd import QKDError
    from qkd.network.launcher import start_nodes
    from qkd.network.loader import NetworkFileError

    if not args.routing_period > 0:
        fail("--routing-period must be positive")
    if args.replicas < 1:
        fail("--replicas must be at least 1")
    if args.replicas > 1 and not args.store:
        fail("--replicas N > 1 needs --store postgresql://... (the replicas share it)")
    try:
        doc = start_nodes(
            args.file,
            args.state,
            store=args.store,
            replicas=args.replicas,
            routing_period_s=args.routing_period,
        )
    except (NetworkFileError, QKDError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot start the network: {exc}")
    nodes = {name: f"https://{entry['etsi014']}" for name, entry in doc["nodes"].items()}
    if args.json:
        emit_json({"state": str(args.state), "ca": str(args.state / "ca.pem"), "nodes": nodes})
    else:
        for name, url in nodes.items():
            print(f"{name}: {url}")
        print(f"SAE credentials: {args.state}/saes/NAME/cert.pem, key.pem; CA {args.state}/ca.pem")
    return EXIT_OK


def _down(args: argparse.Namespace) -> int:
    from qkd import QKDError
    from qkd.network.launcher import stop_nodes

    try:
        stopped = stop_nodes(args.state)
    except QKDError as exc:
        fail(str(exc))
    if args.json:
        emit_json({"stopped": stopped})
    else:
        print(f"stopped {len(stopped)} node(s): {' '.join(stopped)}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from qkd import QKDError
    from qkd.network.launcher import network_status
    from qkd.network.loader import NetworkFileError

    try:
        doc = network_status(args.state)
    except (NetworkFileError, QKDError) as exc:
        fail(str(exc))
    if args.json:
        emit_json(doc)
        return EXIT_OK
    print(f"network {doc['network']}")
    print(f"{'node':<10} {'up':<4} {'ETSI 014 URL':<28} saes")
    for node in doc["nodes"]:
        up = "yes" if node["up"] else "NO"
        print(f"{node['name']:<10} {up:<4} {node['url']:<28} {' '.join(node['saes'])}")
        for i, replica in enumerate(node.get("replicas", [])):
            state = ("up" if replica["up"] else "DOWN") + (", leader" if replica["leader"] else "")
            print(f"  replica {i} {replica['url']} ({state})")
    print(f"{'link':<10} {'up':<4} {'pool (bits)':>12} {'QBER':>7} {'decoy R_L':>10}  alarm")
    for link in doc["links"]:
        qber = "-" if link["qber"] is None else f"{link['qber']:.4f}"
        bound = link.get("decoy_key_rate_bound")
        decoy = "-" if bound is None else f"{bound:.3g}"
        up = "yes" if link["up"] else "NO"
        alarm = f"ALARM ({link.get('alarm_reason') or '?'})" if link["alarm"] else ""
        print(f"{link['id']:<10} {up:<4} {link['pool_bits']:>12} {qber:>7} {decoy:>10}  {alarm}")
    return EXIT_OK


def _set_link(args: argparse.Namespace) -> int:
    from qkd import QKDError
    from qkd.network.launcher import set_link

    try:
        if not 0 <= args.in_s <= 86_400:
            fail("--in must be 0 to 86400 seconds")
        attack = args.attack if args.flag == "eve" else "intercept-resend"
        answers = set_link(
            args.state, args.link, in_s=args.in_s, attack=attack, **{args.flag: not args.off}
        )
    except QKDError as exc:
        fail(str(exc))
    if args.json:
        emit_json({"link": args.link, "answers": answers})
    else:
        for answer in answers:
            print(f"{answer['node']}: {answer.get('status')} {answer.get('message', '')}".rstrip())
    return EXIT_OK if all(a.get("status") == 200 for a in answers) else EXIT_REJECTED
