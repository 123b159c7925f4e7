"""Helpers for the replica tests: KME pair replicas as real `agile kme serve` processes on one
PostgreSQL database, SAE load through Etsi014Client, and a ledger of what the SAEs got."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from qkd import KeySourceError
from qkd.delivery.etsi014 import Etsi014Client

UNIT_BYTES = 32


def write_config(certs: Path, url: str, path: Path, **link: Any) -> Path:
    """A pair configuration whose two KMEs keep their pools in the database ``url``."""
    lines = [f'ca = "{certs / "ca.pem"}"']
    for end in ("a", "b"):
        lines += [
            f"[kme.{end}]",
            f'id = "KME-{end.upper()}"',
            'listen = "127.0.0.1:0"',
            f'cert = "{certs / f"kme-{end}.pem"}"',
            f'key = "{certs / f"kme-{end}.key"}"',
            f'store = "{url}"',
        ]
    lines += ["[[link]]", 'name = "ab"', 'saes_a = ["sae-a"]', 'saes_b = ["sae-b"]']
    lines += [f"{name} = {value}" for name, value in link.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    url_a: str
    url_b: str

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.close()

    def close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_replica(config: Path) -> Replica:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agile.cli", "kme", "serve", "--config", str(config), "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(f"agile kme serve exited ({proc.returncode}) before it was ready")
    addresses = json.loads(line)
    return Replica(proc, f"https://{addresses['kme_a']}", f"https://{addresses['kme_b']}")


def feeder_pid(url: str) -> int | None:
    """The process id of the replica that holds the feeder lock (from its application_name)."""
    with psycopg.connect(url) as db:
        row = db.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted"
        ).fetchone()
    if row is None or not str(row[0]).startswith("qkd-kme-"):
        return None
    return int(str(row[0]).removeprefix("qkd-kme-"))


def client(certs: Path, sae: str, url: str, peer: str, **kwargs: Any) -> Etsi014Client:
    kwargs.setdefault("timeout", 5.0)
    kwargs.setdefault("retries", 0)
    return Etsi014Client(
        url,
        peer_sae_id=peer,
        cert=certs / f"{sae}.pem",
        key=certs / f"{sae}.key",
        ca=certs / "ca.pem",
        **kwargs,
    )


@dataclass
class Ledger:
    """What the SAEs received, counted (not asserted) so that a soak can report figures."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    master: dict[str, bytes] = field(default_factory=dict)
    slave: dict[str, bytes] = field(default_factory=dict)
    owed: dict[str, bytes] = field(default_factory=dict)
    delivered_twice: int = 0
    different_keys: int = 0
    lost_in_flight: int = 0

    def got_master(self, key_id: str, key: bytes) -> None:
        with self.lock:
            if key_id in self.master:
                self.delivered_twice += 1
            self.master[key_id] = key
            self.owed[key_id] = key

    def got_slave(self, key_id: str, key: bytes) -> None:
        with self.lock:
            if key_id in self.slave:
                self.delivered_twice += 1
            if self.master.get(key_id) != key:
                self.different_keys += 1
            self.slave[key_id] = key
            self.owed.pop(key_id, None)

    def units_used_twice(self) -> int:
        """Link-key units (32-byte pieces of delivered keys) that appear in two keys."""
        units = Counter(
            key[i : i + UNIT_BYTES]
            for key in self.master.values()
            for i in range(0, len(key), UNIT_BYTES)
        )
        return sum(n - 1 for n in units.values() if n > 1)


def records_used_twice(url: str) -> tuple[int, set[str]]:
    """(units named by two delivery records, the key_IDs of all delivery records)."""
    with psycopg.connect(url) as db:
        rows = db.execute(
            'SELECT key_id, parts FROM "KME-A".deliveries'
            ' UNION ALL SELECT key_id, parts FROM "KME-B".deliveries'
        ).fetchall()
    parts = Counter(p for _, text in rows for p in text.split())
    return sum(n - 1 for n in parts.values() if n > 1), {key_id for key_id, _ in rows}


def load(
    replicas: list[Replica],
    certs: Path,
    ledger: Ledger,
    stop: threading.Event,
    rng: random.Random,
) -> None:
    """One SAE pair: enc_keys at a random replica's KME A, dec_keys at another's KME B."""
    while not stop.is_set():
        master_at, slave_at = rng.choice(replicas), rng.choice(replicas)
        try:
            with client(certs, "sae-a", master_at.url_a, "sae-b") as master:
                keys = master.get_keys(rng.choice((1, 1, 2)), rng.choice((256, 512)))
        except KeySourceError:
            time.sleep(0.01)
            continue
        for key in keys:
            ledger.got_master(key.key_id, key.key)
        try:
            with client(certs, "sae-b", slave_at.url_b, "sae-a") as slave:
                for key in slave.get_keys_by_id([k.key_id for k in keys]):
                    ledger.got_slave(key.key_id, key.key)
        except KeySourceError:
            continue  # owed: fetched from a live replica later


def settle_owed(replica: Replica, certs: Path, ledger: Ledger) -> None:
    """The slave fetches every key its master got and it did not (a live replica)."""
    with client(certs, "sae-b", replica.url_b, "sae-a", retries=3) as slave:
        for key_id in list(ledger.owed):
            try:
                (key,) = slave.get_keys_by_id([key_id])
            except KeySourceError as exc:
                # Committed at the slave's KME, then its replica was killed before the answer.
                if "already delivered" not in str(exc):
                    raise
                with ledger.lock:
                    ledger.lost_in_flight += 1
                    ledger.owed.pop(key_id)
                continue
            ledger.got_slave(key.key_id, key.key)
