"""Replica soak (slow): SIGKILL random replicas of a network's nodes under load.

A - B - C - D with A, C and D as 2 replicas each on one PostgreSQL server (B on SQLite).
Masters at random replicas of A and D ask for keys for the other end's SAE, slaves fetch
them at random replicas; a random replica of A, C or D (the leader or not) is SIGKILLed and
restarted, again and again. Afterwards: no key delivered twice, no key_ID with different
keys at the two ends, every key a master got served by the slave's node (or delivered once,
its answer lost in a kill), and in the stores: no two claims of link key overlap, every slot
a receiver used lies inside one claim of the sender (or below the SQLite sender's mark), so
no link key was used twice (the receivers' slot tables have a primary key), and every link
block is the same at both ends. ``QKD_SOAK_KILLS`` sets the number of kills (default 100).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from qkd.network.launcher import start_node, stop_node, wait_listening
from tests.network.nodereplicas import (
    REPLICATED,
    Ledger,
    leader_of,
    link_checks,
    load,
    settle,
    start_replicated_chain,
)


@pytest.mark.slow
# Connections to a replica killed mid-request are closed by the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_sigkill_random_replicas_under_load(tmp_path: Path, postgres_url: str) -> None:
    kills = int(os.environ.get("QKD_SOAK_KILLS", "100"))
    net = start_replicated_chain(tmp_path, postgres_url)
    ledger = Ledger()
    stop = threading.Event()
    rng = random.Random()
    leader_kills = 0
    try:
        net.wait_links_up()
        workers = [
            threading.Thread(target=load, args=(net, ledger, stop, seed), daemon=True)
            for seed in range(4)
        ]
        for worker in workers:
            worker.start()
        started = time.monotonic()
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 0.8))
            node, replica = rng.choice(REPLICATED), rng.randrange(2)
            leader_kills += leader_of(net, node) == replica
            stop_node(net.state, node, kill=True, replica=replica)
            time.sleep(rng.uniform(0.0, 0.3))
            start_node(net.file, net.state, node, replica)
            wait_listening(net.state, [node])
        stop.set()
        for worker in workers:
            worker.join(30)
        soak_s = time.monotonic() - started
        net.wait_links_up(timeout=60, min_bits=0)
        lost, unserved = settle(net, ledger)
        figures: dict[str, Any] = {
            "kills": kills,
            "leader_kills": leader_kills,
            "seconds": round(soak_s, 1),
            "enc_keys_answered": ledger.enc_ok,
            "enc_keys_refused": ledger.enc_refused,
            "enc_keys_interrupted_by_a_kill": ledger.enc_interrupted,
            "relays_refused_link_key_used": ledger.refused_link_key_used,
            "keys_to_masters": len(ledger.master),
            "keys_to_slaves": len(ledger.slave),
            "slave_answers_lost_in_crash": lost,
            "keys_delivered_twice": ledger.delivered_twice(),
            "key_ids_with_different_keys": ledger.different_keys(),
            "keys_the_slave_node_cannot_serve": unserved,
            **link_checks(net, postgres_url),
        }
        print("\nreplica soak figures:", json.dumps(figures))
        assert len(ledger.master) > kills
        assert figures["keys_delivered_twice"] == 0
        assert figures["key_ids_with_different_keys"] == 0
        assert unserved == 0
        assert figures["claims_overlapping"] == 0
        assert figures["slots_used_outside_the_senders_claims"] == 0
        assert figures["blocks_differing"] == 0
    finally:
        stop.set()
        net.close()
