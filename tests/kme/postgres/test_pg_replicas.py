"""Replicas: several `agile kme serve` processes of one KME pair on one PostgreSQL pool serve
concurrent SAEs, and no key is delivered twice; the feeder moves when its leader dies."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from .replicas import (
    Ledger,
    Replica,
    client,
    feeder_pid,
    load,
    records_used_twice,
    settle_owed,
    start_replica,
    write_config,
)


@pytest.fixture
def replicas(
    postgres_url: str, certs: Path, tmp_path: Path
) -> Iterator[tuple[list[Replica], Path]]:
    config = write_config(
        certs, postgres_url, tmp_path / "kme.toml", max_key_count=200, block_units=50
    )
    running = [start_replica(config) for _ in range(3)]
    yield running, config
    for replica in running:
        replica.stop()


def test_replicas_share_one_pool_and_deliver_every_key_once(
    replicas: tuple[list[Replica], Path], certs: Path, postgres_url: str
) -> None:
    running, _ = replicas
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(running, certs, ledger, stop, random.Random(i)))
        for i in range(6)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(ledger.slave) < 400 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join(30)
    settle_owed(running[0], certs, ledger)
    assert len(ledger.slave) >= 400, "the replicas delivered too few keys to test anything"
    assert ledger.delivered_twice == 0
    assert ledger.different_keys == 0
    assert ledger.lost_in_flight == 0
    assert not ledger.owed
    assert ledger.units_used_twice() == 0
    twice, records = records_used_twice(postgres_url)
    assert twice == 0
    assert records == set(ledger.master)
    # Exactly one replica runs the feeder.
    assert feeder_pid(postgres_url) in {r.proc.pid for r in running}


def test_the_feeder_moves_to_another_replica_when_its_leader_dies(
    replicas: tuple[list[Replica], Path], certs: Path, postgres_url: str
) -> None:
    running, _ = replicas
    leader = feeder_pid(postgres_url)
    assert leader is not None
    (dead,) = [r for r in running if r.proc.pid == leader]
    dead.kill()
    running.remove(dead)
    deadline = time.monotonic() + 10
    while feeder_pid(postgres_url) in (None, leader):
        assert time.monotonic() < deadline, "no replica took over the feeder"
        time.sleep(0.1)
    assert feeder_pid(postgres_url) in {r.proc.pid for r in running}
    # The new leader refills the pool: more keys than max_key_count come out.
    served = 0
    with client(certs, "sae-a", running[0].url_a, "sae-b", retries=20) as master:
        while served < 500:
            served += len(master.get_keys(10, 256))
            assert time.monotonic() < deadline + 30, "the pool was not refilled"


def test_a_leader_that_loses_its_lock_session_stops_and_the_feed_goes_on(
    replicas: tuple[list[Replica], Path], certs: Path, postgres_url: str
) -> None:
    running, _ = replicas
    with psycopg.connect(postgres_url) as db:
        (before,) = db.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
        ).fetchone() or (None,)
        assert before is not None
        db.execute("SELECT pg_terminate_backend(%s)", (before,))
    deadline = time.monotonic() + 15
    while True:
        with psycopg.connect(postgres_url) as db:
            row = db.execute(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            ).fetchone()
        if row is not None and row[0] != before:
            break
        assert time.monotonic() < deadline, "no replica took the feeder lock again"
        time.sleep(0.1)
    assert feeder_pid(postgres_url) in {r.proc.pid for r in running}
    ledger = Ledger()
    with (
        client(certs, "sae-a", running[1].url_a, "sae-b", retries=20) as master,
        client(certs, "sae-b", running[2].url_b, "sae-a") as slave,
    ):
        while len(ledger.slave) < 500:
            keys = master.get_keys(10, 256)
            for key in keys:
                ledger.got_master(key.key_id, key.key)
            for key in slave.get_keys_by_id([k.key_id for k in keys]):
                ledger.got_slave(key.key_id, key.key)
            assert time.monotonic() < deadline + 30, "the pool was not refilled"
    assert ledger.delivered_twice == 0
    assert ledger.different_keys == 0
    assert ledger.units_used_twice() == 0
