"""Replica soak: SIGKILL replicas of one KME pair at random under load, over and over, while
the others keep serving the shared PostgreSQL pool.

Afterwards, counted over everything the SAEs received and everything the database recorded:
keys delivered twice, key_IDs whose two ends got different bytes, and link-key units used
twice (in two keys' bytes, or named by two delivery records) must all be 0. The figures are
printed as one JSON line (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest

from .replicas import (
    Ledger,
    load,
    records_used_twice,
    settle_owed,
    start_replica,
    write_config,
)

KILLS = int(os.environ.get("QKD_SOAK_KILLS", "100"))
REPLICAS = 3
SAE_PAIRS = 4


@pytest.mark.slow
def test_sigkill_replicas_under_load(postgres_url: str, certs: Path, tmp_path: Path) -> None:
    began = time.monotonic()
    config = write_config(
        certs, postgres_url, tmp_path / "kme.toml", max_key_count=300, block_units=40
    )
    running = [start_replica(config) for _ in range(REPLICAS)]
    ledger = Ledger()
    stop = threading.Event()
    rng = random.Random()
    threads = [
        threading.Thread(target=load, args=(running, certs, ledger, stop, random.Random()))
        for _ in range(SAE_PAIRS)
    ]
    kills = 0
    try:
        for thread in threads:
            thread.start()
        while kills < KILLS:
            time.sleep(rng.uniform(0.05, 0.5))
            index = rng.randrange(len(running))
            running[index].kill()
            kills += 1
            running[index] = start_replica(config)
        stop.set()
        for thread in threads:
            thread.join(30)
        settle_owed(running[0], certs, ledger)
    finally:
        stop.set()
        for replica in running:
            replica.stop()
    records_twice, records = records_used_twice(postgres_url)
    figures = {
        "kills": kills,
        "seconds": round(time.monotonic() - began, 1),
        "keys_to_masters": len(ledger.master),
        "keys_to_slaves": len(ledger.slave),
        "lost_in_flight": ledger.lost_in_flight,
        "delivered_twice": ledger.delivered_twice,
        "different_keys": ledger.different_keys,
        "units_used_twice": ledger.units_used_twice(),
        "units_in_two_records": records_twice,
        "delivery_records": len(records),
    }
    print("replica soak:", json.dumps(figures))
    assert kills == KILLS
    assert ledger.delivered_twice == 0
    assert ledger.different_keys == 0
    assert ledger.units_used_twice() == 0
    assert records_twice == 0
    assert not ledger.owed
    assert set(ledger.master) <= records, "a key reached a master without a delivery record"
    assert len(ledger.slave) + ledger.lost_in_flight == len(ledger.master)
    assert len(ledger.master) > 10 * KILLS, "the load delivered too few keys to test anything"
