"""``agile kme``: a local KME pair serving ETSI GS QKD 014 over mutual TLS.

Quick start::

    agile kme certs --out certs
    agile kme serve --certs certs --listen-a 127.0.0.1:8443 --listen-b 127.0.0.1:8444

``sae-a`` talks to KME A and ``sae-b`` to KME B; either may be master. ``--config FILE``
(TOML or JSON, see ``docs/kme.md``) sets everything else.

A network of KMEs, one per node of a network file (docs/kme.md, "A network of KMEs")::

    agile kme certs --network net.toml --out state
    agile kme serve --network net.toml --node A --state state
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from pathlib import Path
from typing import Any

from agile.cli._output import EXIT_OK, EXIT_USAGE, emit_json, fail


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kme", help="run a local ETSI GS QKD 014 KME pair (certs, serve)"
    )
    commands = parser.add_subparsers(dest="kme_command", metavar="SUBCOMMAND", required=True)

    certs = commands.add_parser("certs", help="make a local CA and KME/SAE certificates")
    certs.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    certs.add_argument(
        "--network",
        type=Path,
        metavar="FILE",
        help="issue one CA for this network file, a cert per node's KME and per SAE",
    )
    certs.add_argument(
        "--sae",
        action="append",
        default=[],
        metavar="SAE_ID",
        help="an extra SAE certificate to issue (repeatable); sae-a and sae-b are always made",
    )
    certs.add_argument("--json", action="store_true", help="print machine-readable JSON")
    certs.set_defaults(handler=run_certs)

    serve = commands.add_parser("serve", help="start KME A and KME B")
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML or JSON configuration")
    serve.add_argument(
        "--network", type=Path, metavar="FILE", help="run one node of this network file"
    )
    serve.add_argument("--node", metavar="NAME", help="the node to run (with --network)")
    serve.add_argument(
        "--replica",
        type=int,
        default=0,
        metavar="I",
        help="with --network: run replica I of the node (net.json lists its replicas;"
        " they share a PostgreSQL store)",
    )
    serve.add_argument("--certs", type=Path, metavar="DIR", help="output of `agile kme certs`")
    serve.add_argument("--listen-a", metavar="HOST:PORT", help="address of KME A (with --certs)")
    serve.add_argument("--listen-b", metavar="HOST:PORT", help="address of KME B (with --certs)")
    serve.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        help="where the key stores live with --certs (default: the certs directory);"
        " with --network, the network's state directory (net.json, certificates, stores)",
    )
    serve.add_argument(
        "--json", action="store_true", help="print the bound addresses as one JSON line"
    )
    serve.set_defaults(handler=run_serve)


def run_certs(args: argparse.Namespace) -> int:
    from qkd.delivery.kme.certs import write_certificates

    if args.network is not None:
        return _network_certs(args)
    saes = ["sae-a", "sae-b", *[s for s in args.sae if s not in ("sae-a", "sae-b")]]
    try:
        written = write_certificates(args.out, saes=saes)
    except (OSError, ValueError) as exc:
        fail(f"--out {args.out}: cannot write the certificates: {exc}")
    if args.json:
        emit_json({"ca": str(args.out / "ca.pem"), "files": [str(p) for p in written]})
    else:
        for path in written:
            print(path)
    return EXIT_OK


def _network_certs(args: argparse.Namespace) -> int:
    from qkd.delivery.kme.certs import write_network_certificates
    from qkd.network.loader import NetworkFileError, load_network

    try:
        network = load_network(args.network)
    except NetworkFileError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{args.network}: cannot read the network file: {exc}")
    try:
        written = write_network_certificates(
            args.out,
            network=network.network.name,
            kmes=[n.name for n in network.nodes],
            saes=[s for n in network.nodes for s in n.saes],
        )
    except (OSError, ValueError) as exc:
        fail(f"--out {args.out}: cannot write the certificates: {exc}")
    if args.json:
        emit_json({"ca": str(written["ca"]), "files": {k: str(v) for k, v in written.items()}})
    else:
        for role, path in written.items():
            print(f"{role}: {path}")
    return EXIT_OK


def _serve_node(args: argparse.Namespace) -> int:
    import logging

    from qkd import QKDError
    from qkd.network import audit
    from qkd.network.loader import NetworkFileError, load_network
    from qkd.network.node import serve_node
    from qkd.network.nodeconfig import load_node_settings

    if args.config or args.certs or args.listen_a or args.listen_b:
        fail("--network runs one node; it takes --node and --state only", EXIT_USAGE)
    if not (args.node and args.state):
        fail("kme serve --network FILE needs --node NAME and --state DIR", EXIT_USAGE)

    def announce(addresses: dict[str, tuple[str, int]]) -> None:
        etsi, kmapi = addresses["etsi014"], addresses["kmapi"]
        if args.json:
            emit_json(
                {
                    "node": args.node,
                    "replica": args.replica,
                    "url": f"https://{etsi[0]}:{etsi[1]}",
                    "kmapi": f"https://{kmapi[0]}:{kmapi[1]}",
                }
            )
            sys.stdout.flush()
        else:
            print(f"node {args.node}: ETSI 014 on https://{etsi[0]}:{etsi[1]}", flush=True)

    try:
        network = load_network(args.network)
        settings = load_node_settings(network, args.node, args.state, replica=args.replica)
        settings.audit.parent.mkdir(parents=True, exist_ok=True)
        handler = audit.JsonLinesHandler(str(settings.audit))
        audit.logger.addHandler(handler)
        audit.logger.setLevel(logging.INFO)
        try:
            asyncio.run(serve_node(settings, on_ready=announce))
        finally:
            audit.logger.removeHandler(handler)
            handler.close()
    except NetworkFileError as exc:
        fail(str(exc))
    except QKDError as exc:
        fail(str(exc))
    except ssl.SSLError as exc:
        fail(f"cannot load the node's certificates: {exc}; run `agile kme certs --network`")
    except OSError as exc:
        fail(f"cannot start node {args.node}: {exc}")
    return EXIT_OK


def _config(args: argparse.Namespace) -> Any:
    from qkd.delivery.kme.config import load_config, quick_config

    if args.config is not None:
        if args.certs or args.listen_a or args.listen_b or args.state:
            fail("give either --config FILE or --certs DIR --listen-a --listen-b", EXIT_USAGE)
        return load_config(args.config)
    if not (args.certs and args.listen_a and args.listen_b):
        fail(
            "kme serve needs --config FILE, or --certs DIR with --listen-a HOST:PORT and "
            "--listen-b HOST:PORT",
            EXIT_USAGE,
        )
    return quick_config(args.certs, args.listen_a, args.listen_b, args.state)


def run_serve(args: argparse.Namespace) -> int:
    from qkd import QKDError

    if args.network is not None:
        return _serve_node(args)
    from qkd.delivery.kme.service import serve_pair

    def announce(addresses: dict[str, tuple[str, int]]) -> None:
        a, b = addresses["a"], addresses["b"]
        if args.json:
            line = f'{{"kme_a": "{a[0]}:{a[1]}", "kme_b": "{b[0]}:{b[1]}"}}'
            print(line, flush=True)
        else:
            print(f"KME A on https://{a[0]}:{a[1]}  KME B on https://{b[0]}:{b[1]}", flush=True)
            print("press Ctrl-C to stop", file=sys.stderr, flush=True)

    try:
        config = _config(args)
        asyncio.run(serve_pair(config, on_ready=announce))
    except QKDError as exc:
        fail(str(exc))
    except ssl.SSLError as exc:
        fail(f"cannot load the KME certificates or CA: {exc}; run `agile kme certs --out DIR`")
    except OSError as exc:
        fail(f"cannot start the KMEs: {exc}")
    return EXIT_OK
