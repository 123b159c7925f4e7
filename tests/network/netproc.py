"""Helpers: a network of KME nodes as real processes on 127.0.0.1 (``qkd.network.launcher``)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from qkd.delivery.etsi014 import Etsi014Client, client_ssl_context
from qkd.network.launcher import network_status, start_nodes, stop_nodes


def run_agile(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m agile.cli ARGS`` in a process of its own, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "agile.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def network_toml(
    name: str,
    nodes: dict[str, Sequence[str]],
    links: Sequence[tuple[str, str]],
    *,
    rate_bps: float = 4e6,
) -> str:
    out = [f'[network]\nname = "{name}"\n']
    for node, saes in nodes.items():
        listed = ", ".join(f'"{s}"' for s in saes)
        out.append(f'[[nodes]]\nname = "{node}"\nkind = "trusted"\nsaes = [{listed}]\n')
    for a, b in links:
        out.append(
            f'[[links]]\nid = "{a}-{b}"\na = "{a}"\nb = "{b}"\nkind = "fixed"\n'
            f"key_rate_bps = {rate_bps}\n"
        )
    return "\n".join(out)


@dataclass
class RunningNetwork:
    state: Path
    file: Path
    config: dict[str, Any] = field(default_factory=dict)
    _clients: list[Any] = field(default_factory=list)

    def url(self, node: str) -> str:
        return f"https://{self.config['nodes'][node]['etsi014']}"

    def kmapi_url(self, node: str) -> str:
        return f"https://{self.config['nodes'][node]['kmapi']}"

    def client(self, sae: str, node: str, peer: str, **kwargs: Any) -> Etsi014Client:
        kwargs.setdefault("timeout", 15.0)
        kwargs.setdefault("retries", 0)
        client = Etsi014Client(
            self.url(node),
            peer_sae_id=peer,
            cert=self.state / "saes" / sae / "cert.pem",
            key=self.state / "saes" / sae / "key.pem",
            ca=self.state / "ca.pem",
            **kwargs,
        )
        self._clients.append(client)
        return client

    def raw(self, role: str, name: str, node: str, *, kmapi: bool = False) -> httpx.Client:
        """An httpx client with the certificate of ``role`` (saes, kmes, operator) ``name``."""
        directory = self.state / role / name if role != "operator" else self.state / "operator"
        context = client_ssl_context(
            directory / "cert.pem", directory / "key.pem", self.state / "ca.pem"
        )
        base = self.kmapi_url(node) if kmapi else self.url(node)
        client = httpx.Client(base_url=base, verify=context, timeout=15)
        self._clients.append(client)
        return client

    def status(self) -> dict[str, Any]:
        return network_status(self.state)

    def link(self, link_id: str) -> dict[str, Any]:
        return next(x for x in self.status()["links"] if x["id"] == link_id)

    def audit(self, node: str) -> list[dict[str, Any]]:
        path = self.state / "nodes" / node / "audit.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def wait_links_up(self, timeout: float = 30.0, min_bits: int = 100_000) -> None:
        deadline = time.monotonic() + timeout
        while True:
            doc = self.status()
            if all(n["up"] for n in doc["nodes"]) and all(
                x["up"] and x["pool_bits"] >= min_bits for x in doc["links"]
            ):
                # Every node's own view catches up within a routing period or two.
                time.sleep(2.5 * float(self.config.get("routing_period_s", 1.0)))
                return
            assert time.monotonic() < deadline, f"links did not come up: {doc}"
            time.sleep(0.1)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        stop_nodes(self.state)


def start_network(
    tmp: Path, toml: str, *, routing_period_s: float = 0.25, **options: Any
) -> RunningNetwork:
    tmp.mkdir(parents=True, exist_ok=True)
    file = tmp / "network.toml"
    file.write_text(toml)
    state = tmp / "state"
    config = start_nodes(file, state, routing_period_s=routing_period_s, **options)
    return RunningNetwork(state=state, file=file, config=config)


def keys_of(response: httpx.Response) -> list[tuple[str, bytes, list[str]]]:
    assert response.status_code == 200, response.text
    return [
        (k["key_ID"], base64.b64decode(k["key"]), k["key_extension"]["relay_path"])
        for k in response.json()["keys"]
    ]


def wait_until(predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
