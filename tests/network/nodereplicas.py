"""Helpers for the node-replica tests: a chain whose end nodes run as replicas on one
PostgreSQL database, SAE load spread over the replicas, and the checks of what the SAEs got
and of the link key in the stores."""

from __future__ import annotations

import base64
import bisect
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from qkd.delivery.etsi014 import client_ssl_context
from tests.network.netproc import RunningNetwork, network_toml, start_network

# A - B - C - D: the end nodes A and D and the trusted node C run as replicas on PostgreSQL,
# B is one process on SQLite, so relays cross both kinds of store, both ways, and pass an
# intermediate hop on each kind.
CHAIN = network_toml(
    "replica-chain",
    {"A": ["sae-a"], "B": [], "C": [], "D": ["sae-d"]},
    [("A", "B"), ("B", "C"), ("C", "D")],
)
LINKS = {"A-B": ("A", "B"), "B-C": ("B", "C"), "C-D": ("C", "D")}
REPLICATED = ("A", "C", "D")
ENDS = ("A", "D")
SIDES = {"A": ("sae-a", "D", "sae-d"), "D": ("sae-d", "A", "sae-a")}


def start_replicated_chain(tmp: Path, url: str, replicas: int = 2) -> RunningNetwork:
    return start_network(
        tmp,
        CHAIN,
        routing_period_s=0.25,
        store=dict.fromkeys(REPLICATED, url),
        replicas=dict.fromkeys(REPLICATED, replicas),
    )


def replica_addresses(net: RunningNetwork, node: str) -> list[dict[str, str]]:
    entry = net.config["nodes"][node]
    listed: list[dict[str, str]] = entry.get("replicas") or [entry]
    return listed


def operator(net: RunningNetwork) -> httpx.Client:
    state = net.state
    context = client_ssl_context(
        state / "operator" / "cert.pem", state / "operator" / "key.pem", state / "ca.pem"
    )
    return httpx.Client(verify=context, timeout=3.0)


def leader_of(net: RunningNetwork, node: str) -> int | None:
    """The index of the replica of ``node`` that says it leads (None if none answers so)."""
    with operator(net) as client:
        for index, replica in enumerate(replica_addresses(net, node)):
            try:
                doc = client.get(f"https://{replica['kmapi']}/kmapi/v1/status").json()
            except (httpx.HTTPError, ValueError):
                continue
            if doc.get("replica", {}).get("leader"):
                return index
    return None


@dataclass
class Ledger:
    """What the SAEs saw (counted, so that a soak can report figures)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    master: dict[str, bytes] = field(default_factory=dict)
    master_twice: int = 0
    slave: dict[str, bytes] = field(default_factory=dict)
    slave_deliveries: Counter[str] = field(default_factory=Counter)
    owed: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # key_ID -> slave side
    enc_ok: int = 0
    enc_refused: int = 0
    enc_interrupted: int = 0  # the replica was killed under the request
    refused_link_key_used: int = 0
    enc_after: dict[str, int] = field(default_factory=Counter)

    def different_keys(self) -> int:
        return sum(1 for k, v in self.slave.items() if k in self.master and self.master[k] != v)

    def delivered_twice(self) -> int:
        return self.master_twice + sum(1 for n in self.slave_deliveries.values() if n > 1)


class _Clients:
    """httpx clients of one load thread, one per (SAE, replica address)."""

    def __init__(self, net: RunningNetwork) -> None:
        self.net = net
        self.clients: dict[tuple[str, str], httpx.Client] = {}

    def get(self, sae: str, address: str) -> httpx.Client:
        client = self.clients.get((sae, address))
        if client is None:
            directory = self.net.state / "saes" / sae
            context = client_ssl_context(
                directory / "cert.pem", directory / "key.pem", self.net.state / "ca.pem"
            )
            client = httpx.Client(base_url=f"https://{address}", verify=context, timeout=15)
            self.clients[(sae, address)] = client
        return client

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def fetch(clients: _Clients, ledger: Ledger, key_id: str, address: str) -> str:
    """dec_keys for one owed key at one replica: "ok", "gone" (delivered) or "later"."""
    slave, master = ledger.owed[key_id][0], ledger.owed[key_id][2]
    try:
        r = clients.get(slave, address).post(
            f"/api/v1/keys/{master}/dec_keys", json={"key_IDs": [{"key_ID": key_id}]}
        )
    except httpx.HTTPError:
        return "later"
    if r.status_code == 200:
        (got,) = r.json()["keys"]
        with ledger.lock:
            ledger.slave[key_id] = base64.b64decode(got["key"])
            ledger.slave_deliveries[key_id] += 1
            ledger.owed.pop(key_id, None)
        return "ok"
    if r.status_code == 400 and "already delivered" in r.text:
        return "gone"
    return "later"


def load(net: RunningNetwork, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Masters at random replicas of A and D ask for keys for the other end's SAE; the slave
    fetches each at a random replica of its node."""
    rng = random.Random(seed)
    clients = _Clients(net)
    try:
        while not stop.is_set():
            node = rng.choice(ENDS)
            master, slave_node, slave = SIDES[node]
            address = rng.choice(replica_addresses(net, node))["etsi014"]
            try:
                r = clients.get(master, address).post(
                    f"/api/v1/keys/{slave}/enc_keys", json={"number": rng.randint(1, 4)}
                )
            except httpx.HTTPError:  # a replica killed: the next request goes elsewhere
                with ledger.lock:
                    ledger.enc_interrupted += 1
                time.sleep(0.02)
                continue
            if r.status_code != 200:
                with ledger.lock:
                    ledger.enc_refused += 1
                    if "already used" in r.text:
                        ledger.refused_link_key_used += 1
                time.sleep(0.02)
                continue
            keys = [(k["key_ID"], base64.b64decode(k["key"])) for k in r.json()["keys"]]
            with ledger.lock:
                ledger.enc_ok += 1
                for key_id, key in keys:
                    if key_id in ledger.master:
                        ledger.master_twice += 1
                    ledger.master[key_id] = key
                    ledger.owed[key_id] = (slave, slave_node, master)
            for key_id, _ in keys:
                at = rng.choice(replica_addresses(net, slave_node))["etsi014"]
                fetch(clients, ledger, key_id, at)
    finally:
        clients.close()


def settle(net: RunningNetwork, ledger: Ledger) -> tuple[int, int]:
    """Fetch every owed key at any replica that answers: (answers lost in a crash, keys
    no replica serves)."""
    clients = _Clients(net)
    lost = unserved = 0
    try:
        for key_id in list(ledger.owed):
            slave_node = ledger.owed[key_id][1]
            outcome = "later"
            for replica in replica_addresses(net, slave_node):
                outcome = fetch(clients, ledger, key_id, replica["etsi014"])
                if outcome != "later":
                    break
            if outcome == "gone":
                lost += 1
                ledger.owed.pop(key_id, None)
            elif outcome == "later":
                unserved += 1
    finally:
        clients.close()
    return lost, unserved


# ---------------------------------------------------------------------- the stores


def _pg_rows(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(query, params).fetchall()  # type: ignore[arg-type]


def link_checks(net: RunningNetwork, url: str) -> dict[str, int]:
    """Link key in the stores: claims of one direction that overlap (two replicas handed out
    the same bytes), slots a receiver used outside every claim (or above the sender's mark,
    for the SQLite node), and blocks that differ between the two ends of a link."""
    sqlite_b = sqlite3.connect(net.state / "nodes" / "B" / "store.sqlite")
    try:

        def slots(node: str, link: str, direction: str) -> list[int]:
            if node == "B":
                rows = sqlite_b.execute(
                    "SELECT slot FROM recv_slots WHERE link = ? AND dir = ?", (link, direction)
                ).fetchall()
            else:
                rows = _pg_rows(
                    url,
                    f'SELECT slot FROM "qkd_node_{node}".recv_slots WHERE link = %s AND dir = %s',
                    (link, direction),
                )
            return [int(r[0]) for r in rows]

        def blocks(node: str, link: str) -> dict[tuple[str, int], bytes]:
            if node == "B":
                rows = sqlite_b.execute(
                    "SELECT dir, start, data FROM link_blocks WHERE link = ? AND ready = 1",
                    (link,),
                ).fetchall()
            else:
                rows = _pg_rows(
                    url,
                    f'SELECT dir, start, data FROM "qkd_node_{node}".link_blocks'
                    " WHERE link = %s AND ready",
                    (link,),
                )
            return {(r[0], int(r[1])): bytes(r[2]) for r in rows}

        overlapping = outside = differing = 0
        for link, (a, b) in LINKS.items():
            for sender, receiver in ((a, b), (b, a)):
                direction = f"{sender}>{receiver}"
                used = slots(receiver, link, direction)
                if sender == "B":
                    row = sqlite_b.execute(
                        "SELECT next FROM send_marks WHERE link = ? AND dir = ?", (link, direction)
                    ).fetchone()
                    mark = row[0] if row else 0
                    outside += sum(1 for s in used if (s + 1) * 32 > mark)
                    continue
                claims = sorted(
                    _pg_rows(
                        url,
                        f'SELECT low, high FROM "qkd_node_{sender}".send_claims'
                        " WHERE link = %s AND dir = %s",
                        (link, direction),
                    )
                )
                reach = 0  # the highest byte claimed so far, in the order of the claims' starts
                for low, high in claims:
                    overlapping += low < reach
                    reach = max(reach, high)
                lows = [c[0] for c in claims]
                for s in used:
                    i = bisect.bisect_right(lows, s * 32) - 1
                    if i < 0 or (s + 1) * 32 > claims[i][1]:
                        outside += 1
            ends = blocks(a, link), blocks(b, link)
            differing += sum(1 for k in ends[0].keys() & ends[1].keys() if ends[0][k] != ends[1][k])
    finally:
        sqlite_b.close()
    return {
        "claims_overlapping": overlapping,
        "slots_used_outside_the_senders_claims": outside,
        "blocks_differing": differing,
    }
