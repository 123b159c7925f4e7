"""Settings of one KME node of a network (``agile kme serve --network FILE --node NAME``).

The network file says what the network is; the state directory says where it runs. ``agile
net up`` writes ``DIR/net.json``; an operator may write it by hand::

    {
      "nodes": {"A": {"etsi014": "127.0.0.1:8443", "kmapi": "127.0.0.1:9443"}, ...},
      "routing_period_s": 1.0,          # how often each node asks the others for their state
      "key_size": 256,                  # default ETSI 014 key size (bits)
      "max_key_per_request": 128,
      "key_max_age_s": 86400,           # relayed keys not fetched by then are deleted
      "pool_bytes": 1048576,            # link key kept ready per link and direction
      "qber_threshold": 0.11,           # a link whose QBER exceeds it is in alarm
      "decoy_rate_fraction": 0.5,       # a fibre link whose decoy bounds certify less than
                                        # this share of its honest secret key rate is in alarm
      "links": {                        # links whose key comes from a vendor's QKD device
        "A-B": {"source": "etsi014",
                "ends": {"A": {"url": "https://127.0.0.1:7443", "sae_id": "node-a",
                               "peer_sae_id": "node-b", "cert": "vendor/node-a.pem",
                               "key": "vendor/node-a.key", "ca": "vendor/ca.pem"},
                         "B": {...}}}
      }
    }

Other links are simulated (:mod:`qkd.network.node`). Certificates come from ``agile kme certs
--network FILE --out DIR`` (or ``agile net up``): ``DIR/ca.pem``, ``DIR/kmes/NAME/cert.pem``
and ``key.pem``. The node's store is ``DIR/nodes/NAME/store.sqlite`` and its audit trail
``DIR/nodes/NAME/audit.jsonl``. Relative paths are resolved against ``DIR``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qkd.delivery.kme.config import ConfigError, parse_listen
from qkd.network.model import Network

__all__ = ["NodeSettings", "VendorEnd", "load_node_settings", "node_directory"]

CONFIG_NAME = "net.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class VendorEnd:
    """This node as an SAE of a vendor's KME pair: the link key comes from its ETSI 014 API."""

    url: str
    sae_id: str
    peer_sae_id: str
    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    network: Network
    node: str
    state: Path
    ca: Path
    cert: Path
    key: Path
    store: Path
    audit: Path
    etsi014: tuple[str, int]
    kmapi: dict[str, tuple[str, int]]
    routing_period_s: float = 1.0
    key_size: int = 256
    max_key_per_request: int = 128
    key_max_age_s: float = 86_400.0
    pool_bytes: int = 1 << 20
    qber_threshold: float = 0.11
    decoy_rate_fraction: float = 0.5
    vendor: dict[str, VendorEnd] = field(default_factory=dict)


def node_directory(state: Path, node: str) -> Path:
    return state / "nodes" / node


def _number(
    doc: Mapping[str, Any],
    name: str,
    default: float,
    where: str,
    *,
    integer: bool,
    at_most: float | None = None,
) -> Any:
    value = doc.get(name, default)
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value) or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{where}: {name} must be {kind}")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{where}: {name} must be at most {at_most:g} (it is {value:g})")
    return value


def load_node_settings(network: Network, node: str, state: str | Path) -> NodeSettings:
    """Read ``STATE/net.json`` for ``node`` of ``network``; errors name the file and field."""
    state = Path(state)
    names = {n.name for n in network.nodes}
    if node not in names:
        raise ConfigError(f"--node {node}: the network has no such node; it has {sorted(names)}")
    seen: dict[str, str] = {}
    for n in network.nodes:
        for sae in n.saes:
            if sae in seen:
                raise ConfigError(
                    f"SAE {sae!r} is listed at nodes {seen[sae]} and {n.name}; an SAE is"
                    " attached to one KME"
                )
            seen[sae] = n.name
    source = state / CONFIG_NAME
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: not found; `agile net up FILE --state {state}` writes it"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source}: cannot read it: {exc}") from exc
    where = str(source)
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: must be a JSON object")
    nodes = doc.get("nodes")
    if not isinstance(nodes, dict):
        raise ConfigError(f"{where}: nodes: missing object of node addresses")
    kmapi: dict[str, tuple[str, int]] = {}
    etsi014: tuple[str, int] | None = None
    for name in sorted(names):
        entry = nodes.get(name)
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: nodes.{name}: missing (every node needs its addresses)")
        for part in ("etsi014", "kmapi"):
            if not isinstance(entry.get(part), str):
                raise ConfigError(f'{where}: nodes.{name}.{part}: must be "HOST:PORT"')
        kmapi[name] = parse_listen(entry["kmapi"], f"{where}: nodes.{name}.kmapi")
        if name == node:
            etsi014 = parse_listen(entry["etsi014"], f"{where}: nodes.{name}.etsi014")
    assert etsi014 is not None
    vendor: dict[str, VendorEnd] = {}
    links = doc.get("links", {})
    if not isinstance(links, dict):
        raise ConfigError(f"{where}: links: must be an object keyed by link id")
    ids = {link.id: link for link in network.links}
    for link_id, entry in links.items():
        at = f"{where}: links.{link_id}"
        if link_id not in ids:
            raise ConfigError(f"{at}: the network has no link {link_id!r}")
        if not isinstance(entry, dict) or entry.get("source") != "etsi014":
            raise ConfigError(f'{at}: source must be "etsi014" (other links are simulated)')
        link = ids[link_id]
        if node not in (link.a, link.b):
            continue
        ends = entry.get("ends")
        mine = ends.get(node) if isinstance(ends, dict) else None
        if not isinstance(mine, dict):
            raise ConfigError(f"{at}.ends.{node}: missing this end's vendor KME settings")
        values = {}
        for part in ("url", "sae_id", "peer_sae_id", "cert", "key", "ca"):
            value = mine.get(part)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{at}.ends.{node}.{part}: must be a non-empty string")
            values[part] = value
        vendor[link_id] = VendorEnd(
            url=values["url"],
            sae_id=values["sae_id"],
            peer_sae_id=values["peer_sae_id"],
            cert=state / values["cert"],
            key=state / values["key"],
            ca=state / values["ca"],
        )
    here = node_directory(state, node)
    return NodeSettings(
        network=network,
        node=node,
        state=state,
        ca=state / "ca.pem",
        cert=state / "kmes" / node / "cert.pem",
        key=state / "kmes" / node / "key.pem",
        store=here / "store.sqlite",
        audit=here / "audit.jsonl",
        etsi014=etsi014,
        kmapi=kmapi,
        routing_period_s=float(_number(doc, "routing_period_s", 1.0, where, integer=False)),
        key_size=int(_number(doc, "key_size", 256, where, integer=True)),
        max_key_per_request=int(_number(doc, "max_key_per_request", 128, where, integer=True)),
        key_max_age_s=float(_number(doc, "key_max_age_s", 86_400.0, where, integer=False)),
        pool_bytes=int(_number(doc, "pool_bytes", 1 << 20, where, integer=True)),
        # A QBER of one half is no correlation at all; a fraction above 1 would put every
        # honest link in alarm.
        qber_threshold=float(
            _number(doc, "qber_threshold", 0.11, where, integer=False, at_most=0.5)
        ),
        decoy_rate_fraction=float(
            _number(doc, "decoy_rate_fraction", 0.5, where, integer=False, at_most=1.0)
        ),
        vendor=vendor,
    )
