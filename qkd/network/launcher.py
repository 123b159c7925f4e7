"""Run a whole network of KMEs on loopback as separate processes (``agile net up/down/status``).

``up`` writes into the state directory the network's certificates (``ca.pem``,
``kmes/NAME/``, ``saes/NAME/{cert,key}.pem``, ``operator/``), ``net.json`` (every node's
ETSI 014 and inter-KME addresses on 127.0.0.1; kept across restarts) and starts one
``agile kme serve --network FILE --node NAME --state DIR`` process per node, each in its own
session, its output in ``nodes/NAME/output.log`` and its process id in ``nodes/NAME/pid``.
``status`` asks every node's inter-KME API with the operator's certificate; ``down`` sends
SIGTERM (SIGKILL after a grace period).

Replicas (``up --store postgresql://... --replicas N``): each node's entry in ``net.json``
gets the store and a ``replicas`` list of addresses, and replica I > 0 runs from
``nodes/NAME/replica-I/`` (its ``pid`` and ``output.log``); ``down`` stops them all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from qkd.delivery.etsi014.client import client_ssl_context
from qkd.delivery.kme.certs import write_network_certificates
from qkd.delivery.kme.config import ConfigError
from qkd.network.loader import load_network
from qkd.network.model import Network
from qkd.network.nodeconfig import CONFIG_NAME, node_directory, node_replicas

__all__ = [
    "network_status",
    "prepare_state",
    "set_link",
    "start_node",
    "start_nodes",
    "stop_node",
    "stop_nodes",
]


# The node processes this process started: kept so that they are reaped (and never dropped
# while running, which Python warns about).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _read_config(state: Path) -> dict[str, Any]:
    path = state / CONFIG_NAME
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; start the network with `agile net up`") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), dict):
        raise ConfigError(f"{path}: not a network state file (no nodes)")
    return doc


def prepare_state(
    network_file: str | Path,
    state: str | Path,
    *,
    store: str | dict[str, str] | None = None,
    replicas: int | dict[str, int] = 1,
    **options: Any,
) -> tuple[Network, dict[str, Any]]:
    """Certificates and ``net.json`` for ``network_file`` in ``state`` (kept if present).

    ``store`` (a URL, or one per node name) and ``replicas`` (a count, or one per node name)
    set the nodes' stores and replicas; ``options`` go into ``net.json``
    (``routing_period_s``, ``pool_bytes``, ``links`` ...).
    """
    network_file = Path(network_file).resolve()
    state = Path(state)
    network = load_network(network_file)
    state.mkdir(parents=True, exist_ok=True)
    if not (state / "ca.pem").exists():
        write_network_certificates(
            state,
            network=network.network.name,
            kmes=[n.name for n in network.nodes],
            saes=[s for n in network.nodes for s in n.saes],
        )
    path = state / CONFIG_NAME
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    nodes = doc.get("nodes") if isinstance(doc.get("nodes"), dict) else {}
    assert isinstance(nodes, dict)
    missing = [n.name for n in network.nodes if n.name not in nodes]
    ports = iter(_free_ports(2 * len(missing)))
    for name in missing:
        nodes[name] = {"etsi014": f"127.0.0.1:{next(ports)}", "kmapi": f"127.0.0.1:{next(ports)}"}
    for node in network.nodes:
        entry = nodes[node.name]
        url = store.get(node.name) if isinstance(store, dict) else store
        if url is not None:
            entry["store"] = url
        count = replicas.get(node.name, 1) if isinstance(replicas, dict) else replicas
        have = node_replicas(entry, f"{path}: nodes.{node.name}")
        if count > len(have):
            more = iter(_free_ports(2 * (count - len(have))))
            have += [
                {"etsi014": f"127.0.0.1:{next(more)}", "kmapi": f"127.0.0.1:{next(more)}"}
                for _ in range(count - len(have))
            ]
        if len(have) > 1:
            entry["replicas"] = have  # replicas are only ever added: a running one stays
            entry["etsi014"], entry["kmapi"] = have[0]["etsi014"], have[0]["kmapi"]
    doc.update(options)
    doc["nodes"] = nodes
    doc["network"] = str(network_file)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for node in network.nodes:
        node_directory(state, node.name).mkdir(parents=True, exist_ok=True)
    return network, doc


def replica_directory(state: Path, node: str, replica: int = 0) -> Path:
    """Where replica ``replica`` of ``node`` keeps its pid and output."""
    here = node_directory(state, node)
    return here if replica == 0 else here / f"replica-{replica}"


def replica_count(state: str | Path, node: str) -> int:
    doc = _read_config(Path(state))
    entry = doc["nodes"].get(node)
    return len(entry.get("replicas") or [None]) if isinstance(entry, dict) else 0


def start_node(network_file: str | Path, state: str | Path, node: str, replica: int = 0) -> int:
    """Start one node's process (replica ``replica`` of it); returns its pid (also in
    ``nodes/NAME/pid``, ``nodes/NAME/replica-I/pid`` for replica I > 0)."""
    state = Path(state)
    directory = replica_directory(state, node, replica)
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "agile.cli",
        "kme",
        "serve",
        "--network",
        str(network_file),
        "--node",
        node,
        "--state",
        str(state),
        "--replica",
        str(replica),
        "--json",
    ]
    with open(directory / "output.log", "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    (directory / "pid").write_text(f"{process.pid}\n")
    return process.pid


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child that exited but was not reaped is a zombie: not alive.
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


def wait_listening(state: str | Path, nodes: list[str], timeout: float = 60.0) -> None:
    """Wait until every node in ``nodes`` accepts connections on both its ports."""
    state = Path(state)
    doc = _read_config(state)
    deadline = time.monotonic() + timeout
    for name in nodes:
        for replica, entry in enumerate(node_replicas(doc["nodes"][name], name)):
            while not (_listening(entry["etsi014"]) and _listening(entry["kmapi"])):
                pid = _pid(state, name, replica)
                if pid is None or not _alive(pid):
                    log = replica_directory(state, name, replica) / "output.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise ConfigError(f"node {name} exited during start-up:\n{tail}")
                if time.monotonic() > deadline:
                    raise ConfigError(f"node {name} did not start within {timeout:.0f} s")
                time.sleep(0.05)


def start_nodes(network_file: str | Path, state: str | Path, **options: Any) -> dict[str, Any]:
    """``agile net up``: prepare the state directory and start every node; wait for them."""
    network, doc = prepare_state(network_file, state, **options)
    names = [n.name for n in network.nodes]
    for name in names:
        for replica in range(len(node_replicas(doc["nodes"][name], name))):
            pid = _pid(Path(state), name, replica)
            if pid is not None and _alive(pid):
                continue
            start_node(doc["network"], state, name, replica)
    wait_listening(state, names)
    return doc


def _pid(state: Path, node: str, replica: int = 0) -> int | None:
    try:
        return int((replica_directory(state, node, replica) / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def stop_node(
    state: str | Path, node: str, *, kill: bool = False, grace: float = 10.0, replica: int = 0
) -> bool:
    """Stop one node's process (replica ``replica`` of it; SIGTERM, or SIGKILL at once with
    ``kill``); True if it was running."""
    state = Path(state)
    pid = _pid(state, node, replica)
    if pid is None or not _alive(pid):
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + grace
        time.sleep(0.02)
    return True


def stop_nodes(state: str | Path) -> list[str]:
    """``agile net down``: stop every node of the state directory; returns those stopped."""
    state = Path(state)
    doc = _read_config(state)
    stopped: list[tuple[str, int]] = []
    for name, entry in doc["nodes"].items():
        for replica in range(len(entry.get("replicas") or [None])):
            pid = _pid(state, name, replica)
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGTERM)
                stopped.append((name, replica))
    for name, replica in stopped:
        stop_node(state, name, replica=replica)
    return sorted({name for name, _ in stopped})


def _operator_client(state: Path) -> httpx.Client:
    context = client_ssl_context(
        state / "operator" / "cert.pem", state / "operator" / "key.pem", state / "ca.pem"
    )
    return httpx.Client(verify=context, timeout=2.0)


def network_status(state: str | Path) -> dict[str, Any]:
    """``agile net status``: every node (url, up, saes) and link (pool, QBER, alarm)."""
    state = Path(state)
    doc = _read_config(state)
    network = load_network(doc["network"])
    nodes_out = []
    reports: dict[str, dict[str, Any]] = {}
    with _operator_client(state) as client:
        for node in network.nodes:
            entry = doc["nodes"][node.name]
            report = None
            replicas_out = []
            for replica in node_replicas(entry, node.name):
                answer = _status_of(client, replica["kmapi"])
                replicas_out.append(
                    {
                        "url": f"https://{replica['etsi014']}",
                        "kmapi": f"https://{replica['kmapi']}",
                        "up": answer is not None,
                        "leader": (answer or {}).get("replica", {}).get("leader"),
                    }
                )
                report = report or answer
            if isinstance(report, dict):
                reports[node.name] = report
            nodes_out.append(
                {
                    "name": node.name,
                    "url": f"https://{entry['etsi014']}",
                    "kmapi": f"https://{entry['kmapi']}",
                    "up": report is not None,
                    "saes": list(node.saes),
                    "relayed_keys": report.get("relayed_keys") if report else None,
                }
                | ({"replicas": replicas_out} if len(replicas_out) > 1 else {})
            )
    links_out = []
    for link in network.links:
        lower, higher = sorted((link.a, link.b))
        seen = [
            reports[n]["links"].get(link.id)
            for n in (lower, higher)
            if n in reports and isinstance(reports[n].get("links"), dict)
        ]
        seen = [s for s in seen if isinstance(s, dict)]
        if not seen:
            links_out.append(
                {
                    "id": link.id,
                    "a": link.a,
                    "b": link.b,
                    "up": False,
                    "pool_bits": 0,
                    "qber": None,
                    "alarm": False,
                    "alarm_reason": None,
                    "y1_lower": None,
                    "decoy_key_rate_bound": None,
                }
            )
            continue
        first = seen[0]
        links_out.append(
            {
                "id": link.id,
                "a": link.a,
                "b": link.b,
                "up": all(s["up"] for s in seen) and len(seen) == 2,
                "pool_bits": 8 * (first["send_available_bytes"] + first["receive_available_bytes"]),
                "qber": max(s["qber"] for s in seen),
                "alarm": any(s["alarm"] for s in seen),
                # "qber" before "decoy": a QBER alarm at either end names the cause.
                "alarm_reason": next(
                    (r for r in ("qber", "decoy") if any(s.get("alarm_reason") == r for s in seen)),
                    None,
                ),
                "attack": first.get("attack"),
                "y1_lower": _lowest(s.get("y1_lower") for s in seen),
                "decoy_key_rate_bound": _lowest(s.get("decoy_key_rate_bound") for s in seen),
                "source": first.get("source"),
                "rate_bps": first.get("rate_bps"),
            }
        )
    return {"network": network.network.name, "nodes": nodes_out, "links": links_out}


def _status_of(client: httpx.Client, kmapi: str) -> dict[str, Any] | None:
    try:
        response = client.get(f"https://{kmapi}/kmapi/v1/status")
        report = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _lowest(values: Any) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return min(numbers) if numbers else None


def set_link(
    state: str | Path,
    link: str,
    *,
    in_s: float = 0.0,
    attack: str = "intercept-resend",
    **flags: bool,
) -> list[dict[str, Any]]:
    """Set ``eve`` (with ``attack``: ``intercept-resend`` or ``pns``) or ``cut`` on both ends
    of ``link`` (operator call), now or in ``in_s`` seconds; returns the ends' answers."""
    state = Path(state)
    doc = _read_config(state)
    network = load_network(doc["network"])
    found = [x for x in network.links if x.id == link]
    if not found:
        raise ConfigError(
            f"the network has no link {link!r}; it has {[x.id for x in network.links]}"
        )
    answers = []
    with _operator_client(state) as client:
        for node in (found[0].a, found[0].b):
            # One replica is told; the node's other replicas follow through their store.
            replicas = node_replicas(doc["nodes"][node], node)
            for name, value in flags.items():
                for i, replica in enumerate(replicas):
                    try:
                        response = client.post(
                            f"https://{replica['kmapi']}/kmapi/v1/links/{link}/{name}",
                            json={name: value, "in_s": in_s}
                            | ({"attack": attack} if name == "eve" else {}),
                        )
                        answers.append(
                            {"node": node, "status": response.status_code, **response.json()}
                        )
                        break
                    except (httpx.HTTPError, ValueError) as exc:
                        if i + 1 == len(replicas):
                            answers.append({"node": node, "status": None, "message": str(exc)})
    return answers
