"""QKD networks: trusted-node networks of links, their model and planner.

Hazmat: figures for planning, no policy. This room may import ``qkd.physics``,
``qkd.postprocessing`` and ``qkd.delivery``; they never import it.

- :mod:`qkd.network.model`: the network file's pydantic model and JSON Schema;
- :mod:`qkd.network.loader`: TOML/JSON/YAML files with located errors
  (``FILE:LINE:COL: field.path: message``), raising :class:`NetworkFileError`;
- :mod:`qkd.network.planner`: link rates, per-demand max-flow and paths, joint feasibility,
  bottlenecks and single failures (needs the ``network`` extra: networkx, scipy);
- :mod:`qkd.network.simulation`: the network over time: key pools per link, demands drawing
  through relay paths, link failures and Eve (:mod:`qkd.network.events` reads event files).
- :mod:`qkd.network.relay`: one hop of trusted-node key relay: the relay message, its
  Wegman-Carter authentication and the link-key ledger that uses every byte once (no I/O).
- :mod:`qkd.network.node`: one KME per node (``agile kme serve --network``): ETSI 014 to its
  SAEs, link key with its neighbours, hop-by-hop relay over live routes, alarms; with
  :mod:`~qkd.network.nodestore` (its durable state), :mod:`~qkd.network.nodeconfig`,
  :mod:`~qkd.network.kmapi` (the inter-KME client), :mod:`~qkd.network.audit`,
  :mod:`~qkd.network.metrics` and :mod:`~qkd.network.launcher` (``agile net up/down/status``);
  a node on PostgreSQL runs as several replicas (:mod:`~qkd.network.replicas` over
  :mod:`~qkd.network.nodestore_postgres`, needing the ``postgres`` extra).

Example::

    >>> from qkd.network import load_network, plan  # doctest: +SKIP
    >>> plan(load_network("docs/networks/metro-ring.toml")).feasible
    True
"""

from __future__ import annotations

from qkd.network.events import LinkEvent, load_events
from qkd.network.loader import (
    NetworkFileError,
    NetworkProblem,
    load_network,
    network_from_dict,
    parse_network,
)
from qkd.network.model import Network, json_schema
from qkd.network.planner import Plan, PlannerUnavailable, plan
from qkd.network.simulation import Simulation, simulate_network

__all__ = [
    "LinkEvent",
    "Network",
    "NetworkFileError",
    "NetworkProblem",
    "Plan",
    "PlannerUnavailable",
    "Simulation",
    "json_schema",
    "load_events",
    "load_network",
    "network_from_dict",
    "parse_network",
    "plan",
    "simulate_network",
]
