"""``agile net``: QKD network files: print their schema, check them, plan and simulate them.

A network file (TOML, JSON or YAML; docs/networks.md) lists trusted nodes, links and key
demands. ``check`` validates files and prints every problem as ``FILE:LINE:COL: field.path:
message``; ``plan`` computes link rates, per-demand max-flow and paths, joint feasibility,
bottlenecks and single failures (DESIGN.md, "QKD networks"); ``simulate`` steps the key pools
of the links in time, with demands drawing through their relay paths, failures and Eve
(:mod:`qkd.network.simulation`).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from agile.cli._output import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, emit_json, fail, print_error


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("net", help="QKD network files: schema, check, plan, simulate")
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
    plan.add_argument(
        "--plot", metavar="MAP.png", default=None, help="draw nodes, links by key rate, demands"
    )
    plan.set_defaults(handler=_plan)

    simulate = commands.add_parser(
        "simulate", help="key pools over time: demands drawing through relay paths, failures, Eve"
    )
    simulate.add_argument("file", metavar="FILE", help=".toml, .json or .yaml")
    simulate.add_argument("--days", type=_positive, required=True, metavar="D", help="run length")
    simulate.add_argument(
        "--step-s", type=_positive, default=60.0, metavar="S", help="step length (default 60 s)"
    )
    simulate.add_argument(
        "--events", metavar="FILE", default=None, help="link failures and Eve (docs/networks.md)"
    )
    simulate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    simulate.add_argument(
        "--plot", metavar="POOLS.png", default=None, help="draw the pool levels over time"
    )
    simulate.set_defaults(handler=_simulate)

    from agile.cli import netrun

    netrun.register(commands)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: need a positive number")
    return value


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
    if args.plot:
        _plot_map(args.plot, network, document)
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


def _geographic(network: Any) -> dict[str, tuple[float, float]] | None:
    """Every node at (x, y) = (longitude, latitude) in degrees, the longitudes unwrapped
    around their circular mean (a network across the antimeridian stays in one piece); None
    unless every node has a position."""
    import numpy as np

    if not network.nodes or any(node.latitude_deg is None for node in network.nodes):
        return None
    lon = np.radians([node.longitude_deg for node in network.nodes])
    centre = float(np.degrees(np.arctan2(np.sin(lon).mean(), np.cos(lon).mean())))
    return {
        node.name: (
            (node.longitude_deg - centre + 180.0) % 360.0 - 180.0 + centre,
            float(node.latitude_deg),
        )
        for node in network.nodes
    }


def _plot_map(path: str, network: Any, doc: dict[str, Any]) -> None:
    """Nodes (shape by kind), links coloured by key rate, demands as dashed arcs.

    When every node has ``latitude_deg`` and ``longitude_deg`` the map is geographic: an
    equirectangular projection (x = longitude, y = latitude, the x axis shrunk by the cosine
    of the mean latitude so that distances near it are true); otherwise a computed layout.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import LogNorm
        from matplotlib.lines import Line2D
    except ImportError:
        fail("--plot needs matplotlib: pip install 'qkd-agile[plot]'")
    import networkx as nx
    import numpy as np

    graph = nx.Graph()
    graph.add_nodes_from(node.name for node in network.nodes)
    rates = {link["id"]: link["key_rate_bps"] for link in doc["links"]}
    for link in network.links:
        graph.add_edge(link.a, link.b)
    geographic = _geographic(network)
    where: dict[str, Any]
    if geographic is not None:
        where = geographic
    elif len(graph) > 1:
        # A deterministic layout: the same file always gives the same picture.
        where = nx.kamada_kawai_layout(graph)
    else:
        where = dict.fromkeys(graph, (0.0, 0.0))
    figsize = (8.0, 6.5)
    if geographic is not None:
        xs = [x for x, _ in where.values()]
        ys = [y for _, y in where.values()]
        wide = (max(xs) - min(xs) + 2) * math.cos(math.radians(float(np.mean(ys))))
        tall = max(ys) - min(ys) + 2
        figsize = (9.0, min(8.0, max(4.0, 7.5 * tall / max(wide, 1e-9))))
    fig, ax = plt.subplots(figsize=figsize, dpi=100)
    positive = [r for r in rates.values() if r > 0]
    low, high = min(positive, default=1.0), max(positive, default=10.0)
    norm = LogNorm(vmin=low, vmax=high) if high > low else LogNorm(vmin=low / 2, vmax=high * 2)
    cmap = plt.get_cmap("viridis")
    bottlenecks = set(doc["bottlenecks"])
    for link in network.links:
        (xa, ya), (xb, yb) = where[link.a], where[link.b]
        rate = rates[link.id]
        colour = cmap(norm(rate)) if rate > 0 else "lightgrey"
        width = 4.5 if link.id in bottlenecks else 2.5
        style = ":" if link.kind == "satellite" else "-"
        ax.plot([xa, xb], [ya, yb], color=colour, linewidth=width, linestyle=style, zorder=1,
                solid_capstyle="round")  # fmt: skip
    for d in doc["demands"]:
        ax.annotate(
            "",
            xy=tuple(where[d["to"]]),
            xytext=tuple(where[d["from"]]),
            arrowprops={
                "arrowstyle": "->",
                "linestyle": "--",
                "color": "tab:green" if d["met"] else "tab:red",
                "connectionstyle": "arc3,rad=0.25",
                "linewidth": 1.3,
            },
            zorder=2,
        )
    markers = {"trusted": "o", "endpoint": "s", "ground-station": "^"}
    size = 220 if len(graph) <= 12 or geographic is None else 60
    for kind, marker in markers.items():
        names = [node.name for node in network.nodes if node.kind == kind]
        if names:
            xy = np.array([where[n] for n in names])
            ax.scatter(xy[:, 0], xy[:, 1], s=size, marker=marker, color="white",
                       edgecolors="black", linewidths=1.5, zorder=3)  # fmt: skip
    if geographic is None and len(graph) <= 60:
        for name, (x, y) in where.items():
            ax.text(x, y, name, ha="center", va="center", fontsize=7, zorder=4)
    elif geographic is not None:
        # On a map, name the sites that matter: all of a small network, else those with
        # SAEs, endpoints and ground stations.
        named = [
            node.name
            for node in network.nodes
            if len(graph) <= 12 or node.saes or node.kind != "trusted"
        ]
        for name in named:
            x, y = where[name]
            ax.annotate(name, (x, y), xytext=(7, 5), textcoords="offset points", fontsize=8,
                        zorder=4, bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                        "ec": "none", "alpha": 0.8})  # fmt: skip
    scalar = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(scalar, ax=ax, label="link secret key rate (bit/s)", shrink=0.8)
    handles = [
        Line2D([], [], marker=m, color="white", markeredgecolor="black", markersize=10,
               linestyle="none", label=k)
        for k, m in markers.items()
    ] + [
        Line2D([], [], color="tab:green", linestyle="--", label="demand met (alone)"),
        Line2D([], [], color="tab:red", linestyle="--", label="demand not met"),
        Line2D([], [], color="grey", linewidth=4.5, label="bottleneck (thick)"),
    ]  # fmt: skip
    if any(link.kind == "satellite" for link in network.links):
        handles.append(Line2D([], [], color="grey", linestyle=":", label="satellite relay"))
    ax.legend(handles=handles, loc="best", fontsize=7, framealpha=0.9)
    verdict = "feasible" if doc["feasible"] else "NOT feasible"
    ax.set_title(f"{doc['network']}: all demands at once {verdict}")
    if geographic is None:
        ax.set_axis_off()
    else:
        xs = [x for x, _ in where.values()]
        ys = [y for _, y in where.values()]
        pad = max(1.0, 0.08 * max(max(xs) - min(xs), max(ys) - min(ys)))
        ax.set_xlim(min(xs) - pad, max(xs) + pad)
        ax.set_ylim(max(-90.0, min(ys) - pad), min(90.0, max(ys) + pad))
        mean_lat = float(np.mean(ys))
        ax.set_aspect(1.0 / max(0.1, math.cos(math.radians(mean_lat))), adjustable="box")
        ax.set_xlabel("longitude (degrees east; equirectangular)")
        ax.set_ylabel("latitude (degrees north)")
        ax.grid(True, linewidth=0.4, alpha=0.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _simulate(args: argparse.Namespace) -> int:
    from agile.cli.qkd import _ProgressBar
    from qkd import QKDError
    from qkd.network.events import load_events
    from qkd.network.loader import NetworkFileError, load_network
    from qkd.network.planner import PlannerUnavailable
    from qkd.network.simulation import simulate_network

    try:
        network = load_network(args.file)
        events = load_events(args.events, network) if args.events else ()
    except NetworkFileError as exc:
        for problem in exc.problems:
            print_error(str(problem))
        return EXIT_REJECTED
    if args.days * 86_400.0 / args.step_s > 1e8:
        fail("net simulate: more than 10^8 steps; use a longer --step-s", EXIT_USAGE)
    with _ProgressBar(enabled=True) as bar:
        try:
            result = simulate_network(
                network, days=args.days, step_s=args.step_s, events=events, progress=bar.update
            )
        except PlannerUnavailable as exc:
            fail(f"net simulate: {exc}")
        except QKDError as exc:
            fail(f"net simulate: {args.file}: {exc}")
    document = result.to_dict()
    if args.plot:
        _plot_pools(args.plot, document)
    if args.json:
        emit_json(document)
        return EXIT_OK
    _print_simulation(document)
    return EXIT_OK


def _print_simulation(doc: dict[str, Any]) -> None:
    epochs = doc["epochs"]
    print(
        f"network {doc['network']}: {doc['days']:g} day(s) in {doc['steps']:,} steps of "
        f"{doc['step_s']:g} s, {epochs} routing epoch{'s' if epochs != 1 else ''}"
    )
    print("demands:")
    for d in doc["demands"]:
        fraction = d["delivered_fraction"]
        runs = len(d["starved"])
        low, mean = d["pool_min_bits"], d["pool_mean_bits"]
        pools = "no path" if low is None else f"pools on path min {low:,.0f}, mean {mean:,.0f} bits"
        print(
            f"  {d['from']} -> {d['to']}: delivered {d['delivered_bits']:,.0f} of "
            f"{d['requested_bits']:,.0f} bits ({100 * fraction:.1f}%), starved "
            f"{d['starved_s']:,.0f} s in {runs} interval{'s' if runs != 1 else ''}; {pools}"
        )
        if len(d["routes"]) > 1 or any(len(r["paths"]) > 1 for r in d["routes"]):
            for route in d["routes"]:
                paths = ", ".join(
                    f"{'-'.join(p['path'])} ({100 * p['share']:.0f}%)" for p in route["paths"]
                )
                print(f"      from {route['from_s']:,.0f} s: {paths or '(no path)'}")
    print("links (bits):")
    for link in doc["links"]:
        down = f", down {len(link['down'])}x" if link["down"] else ""
        spilt = f", discarded {link['discarded_bits']:,.0f}" if link["discarded_bits"] else ""
        print(
            f"  {link['id']:<20} filled {link['filled_bits']:>18,.0f}  drawn "
            f"{link['drawn_bits']:>18,.0f}  pool {link['final_bits']:>18,.0f} "
            f"(min {link['min_bits']:,.0f}){spilt}{down}"
        )


def _plot_pools(path: str, doc: dict[str, Any]) -> None:
    """Pool level of every link over time; down intervals shaded."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("--plot needs matplotlib: pip install 'qkd-agile[plot]'")
    hours = 3600.0
    long_run = doc["days"] > 3
    unit, label = (86_400.0, "days") if long_run else (hours, "hours")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    shown = doc["links"]
    for link in shown:
        times = [0.0] + [t / unit for t in link["levels"]["times_s"]]
        bits = [0.0, *link["levels"]["bits"]]
        ax.plot(times, bits, linewidth=1.2, label=link["id"])
        for span in link["down"]:
            colour = "tab:red" if span["kind"] == "eve" else "grey"
            ax.axvspan(span["start_s"] / unit, span["end_s"] / unit, color=colour, alpha=0.15)
    ax.set_xlabel(f"time ({label}); shaded: link down (grey: failure, red: Eve)")
    ax.set_ylabel("key in pool (bits)")
    ax.set_xlim(0, doc["steps"] * doc["step_s"] / unit)
    ax.set_ylim(bottom=0)
    if len(shown) <= 12:
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    starved = sum(1 for d in doc["demands"] if d["starved"])
    ax.set_title(
        f"{doc['network']}: pool levels ({len(shown)} links; {starved} of "
        f"{len(doc['demands'])} demands starved at times)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
