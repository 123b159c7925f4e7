"""Settings of one KME node of a network (``agile kme serve --network FILE --node NAME``).

The network file says what the network is; the state directory says where it runs. ``agile
net up`` writes ``DIR/net.json``; an operator may write it by hand::

    {
      "nodes": {"A": {"etsi014": "127.0.0.1:8443", "kmapi": "127.0.0.1:9443"},
                "D": {"store": "postgresql://kme@db.example/qkd",   # replicas share it
                      "replicas": [{"etsi014": "127.0.0.1:8446", "kmapi": "127.0.0.1:9446"},
                                   {"etsi014": "127.0.0.1:8447", "kmapi": "127.0.0.1:9447"}]},
                ...},
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
and ``key.pem``. The node's store is ``DIR/nodes/NAME/store.sqlite`` (or ``"store":
"sqlite:PATH"``) and its audit trail ``DIR/nodes/NAME/audit.jsonl``. Relative paths are
resolved against ``DIR``.

Replicas. A node whose ``store`` is a ``postgresql://`` URL may run as several processes
that share it (:mod:`qkd.network.replicas`); ``replicas`` lists every replica's addresses
(replica 0 first; ``etsi014`` and ``kmapi`` alone mean one replica), and ``agile kme serve
--replica I`` runs replica I. The other KMEs try a node's replicas in turn. Replica I > 0
writes its audit trail to ``DIR/nodes/NAME/replica-I/audit.jsonl``.
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

__all__ = ["NodeSettings", "VendorEnd", "load_node_settings", "node_directory", "node_replicas"]

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
    # A postgresql:// URL: the store the node's replicas share (None: SQLite at ``store``).
    store_url: str | None = None
    replica: int = 0
    # Every node's replicas' inter-KME addresses (``kmapi`` holds one per node: this
    # replica's own for this node, the first replica's for the others).
    kmapi_replicas: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


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


def node_replicas(entry: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    """A node entry's replicas: each one's ``etsi014`` and ``kmapi`` (one replica when the
    entry has no ``replicas`` list)."""
    listed = entry.get("replicas")
    if listed is None:
        listed = [{"etsi014": entry.get("etsi014"), "kmapi": entry.get("kmapi")}]
        spots = [where]
    else:
        if not isinstance(listed, list) or not listed:
            raise ConfigError(f"{where}.replicas: must be a non-empty list of addresses")
        spots = [f"{where}.replicas[{i}]" for i in range(len(listed))]
    out = []
    for replica, spot in zip(listed, spots, strict=True):
        if not isinstance(replica, dict):
            raise ConfigError(f'{spot}: must be {{"etsi014": "HOST:PORT", "kmapi": "HOST:PORT"}}')
        for part in ("etsi014", "kmapi"):
            if not isinstance(replica.get(part), str):
                raise ConfigError(f'{spot}.{part}: must be "HOST:PORT"')
        out.append({"etsi014": replica["etsi014"], "kmapi": replica["kmapi"]})
    return out


def _store(
    entry: Mapping[str, Any], where: str, state: Path, default: Path
) -> tuple[Path, str | None]:
    """(SQLite path, PostgreSQL URL or None) from a node entry's ``store``."""
    value = entry.get("store")
    if value is None:
        return default, None
    if isinstance(value, str) and value.startswith(("postgresql://", "postgres://")):
        return default, value
    if isinstance(value, str) and value.startswith("sqlite:") and len(value) > len("sqlite:"):
        return state / value[len("sqlite:") :], None
    raise ConfigError(f'{where}.store: must be "sqlite:PATH" or a "postgresql://..." URL')


def load_node_settings(
    network: Network, node: str, state: str | Path, *, replica: int = 0
) -> NodeSettings:
    """Read ``STATE/net.json`` for ``node`` of ``network`` (its replica ``replica``); errors
    name the file and field."""
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
    kmapi_replicas: dict[str, list[tuple[str, int]]] = {}
    etsi014: tuple[str, int] | None = None
    here = node_directory(state, node)
    store, store_url = here / "store.sqlite", None
    for name in sorted(names):
        entry = nodes.get(name)
        at = f"{where}: nodes.{name}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{at}: missing (every node needs its addresses)")
        replicas = node_replicas(entry, at)
        kmapi_replicas[name] = [parse_listen(r["kmapi"], f"{at}.kmapi") for r in replicas]
        kmapi[name] = kmapi_replicas[name][0]
        if name == node:
            store, store_url = _store(entry, at, state, store)
            if not 0 <= replica < len(replicas):
                raise ConfigError(
                    f"--replica {replica}: node {name} has {len(replicas)} replica(s) in {where}"
                )
            if len(replicas) > 1 and store_url is None:
                raise ConfigError(
                    f'{at}: {len(replicas)} replicas need a shared store: "store":'
                    ' "postgresql://..."'
                )
            etsi014 = parse_listen(replicas[replica]["etsi014"], f"{at}.etsi014")
            kmapi[name] = kmapi_replicas[name][replica]
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
    audit_dir = here if replica == 0 else here / f"replica-{replica}"
    return NodeSettings(
        network=network,
        node=node,
        state=state,
        ca=state / "ca.pem",
        cert=state / "kmes" / node / "cert.pem",
        key=state / "kmes" / node / "key.pem",
        store=store,
        audit=audit_dir / "audit.jsonl",
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
        store_url=store_url,
        replica=replica,
        kmapi_replicas=kmapi_replicas,
    )
