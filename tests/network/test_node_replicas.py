"""Replicas of a network node on one PostgreSQL database, as real processes.

A - B - C - D, where A, C and D each run 2 replicas on one PostgreSQL server (B is one
process on SQLite): SAEs at both replicas of the master's node and of the slave's node,
concurrently, both ways; every key the slave fetches equals the master's, none is delivered
twice, the replicas hand out disjoint link key, and when a node's leader replica is
SIGKILLed (each of A, C and D in turn) the other one leads and service goes on. An alarm
told to one replica reaches every replica. The store-level guarantees are checked first, on
two store objects (as two replicas would hold) over one schema.
"""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from qkd.delivery.etsi014 import client_ssl_context
from qkd.delivery.postgres_server import TemporaryPostgres
from qkd.network.launcher import set_link, start_node, stop_node, wait_listening
from qkd.network.nodestore import RelayedKey, StoreTx
from qkd.network.relay import LinkKeyError, LinkKeyLedger, seal_hop
from tests.network.netproc import RunningNetwork, keys_of, wait_until
from tests.network.nodereplicas import (
    REPLICATED,
    Ledger,
    leader_of,
    link_checks,
    load,
    operator,
    replica_addresses,
    settle,
    start_replicated_chain,
)

pytest.importorskip("psycopg", reason="psycopg (the postgres extra) is not installed")

from qkd.network.nodestore_postgres import LeaderLost, PgNodeStore


def _alarms(net: RunningNetwork, link: str) -> list[bool]:
    """Whether each replica of both ends of ``link`` reports it in alarm."""
    out = []
    with operator(net) as client:
        for node in link.split("-"):
            for replica in replica_addresses(net, node):
                doc = client.get(f"https://{replica['kmapi']}/kmapi/v1/status").json()
                out.append(bool(doc["links"][link]["alarm"]))
    return out


def _ready_block(store: PgNodeStore, start: int, size: int) -> None:
    def write(tx: StoreTx) -> None:
        tx.add_block(link="A-B", direction="A>B", start=start, data=bytes(size), ready=True)

    assert store.run_batch([write]) == [None]


def test_claims_of_two_replicas_are_disjoint_and_end_at_the_ready_key(postgres_url: str) -> None:
    one = PgNodeStore(postgres_url, schema="qkd_node_A")
    two = PgNodeStore(postgres_url, schema="qkd_node_A")
    try:
        assert one.claim_send(link="A-B", direction="A>B", at_least=0, nbytes=1024) is None
        _ready_block(one, 0, 4096)
        first = one.claim_send(link="A-B", direction="A>B", at_least=0, nbytes=1024)
        second = two.claim_send(link="A-B", direction="A>B", at_least=0, nbytes=1024)
        # A replica that skipped ahead (the receiver's floor) claims above where it is.
        third = two.claim_send(link="A-B", direction="A>B", at_least=2560, nbytes=4096)
        assert (first, second, third) == (range(0, 1024), range(1024, 2048), range(2560, 4096))
        assert one.claim_send(link="A-B", direction="A>B", at_least=0, nbytes=32) is None
        assert one.send_marks() == {("A-B", "A>B"): 4096}
    finally:
        one.close()
        two.close()


def test_shared_streams_hand_out_disjoint_key_and_load_blocks_on_demand(
    postgres_url: str,
) -> None:
    from qkd.network.relay import open_hop, seal_hop
    from qkd.network.replicas import CLAIM_BYTES, SharedStream

    one = PgNodeStore(postgres_url, schema="qkd_node_A")
    two = PgNodeStore(postgres_url, schema="qkd_node_A")
    far = PgNodeStore(postgres_url, schema="qkd_node_B")
    try:
        data = bytes(range(256)) * (3 * CLAIM_BYTES // 256)
        senders = [SharedStream("A-B", "A>B", sending=True, store=s) for s in (one, two)]
        with pytest.raises(LinkKeyError, match="exhausted"):
            senders[0].take(64, align=32)

        def write(tx: StoreTx) -> None:
            tx.add_block(link="A-B", direction="A>B", start=1024, data=data, ready=True)

        assert one.run_batch([write]) == [None]
        assert far.run_batch([write]) == [None]
        saes = {"master_sae_id": "sae-a", "slave_sae_id": "sae-b"}
        frames = [
            seal_hop(uuid.uuid4(), b"k" * 32, ("A", "B"), 0, senders[i % 2], **saes)
            for i in range(40)
        ]
        # Each replica claimed its own range, loaded the block on claiming, and took from it.
        assert [s.claims for s in senders] == [1, 1]
        with psycopg.connect(postgres_url) as db:
            claims = db.execute(
                'SELECT low, high FROM "qkd_node_A".send_claims ORDER BY low'
            ).fetchall()
        # Claims start at the stored mark (0); the first block starts at 1,024.
        assert claims == [(0, CLAIM_BYTES), (CLAIM_BYTES, 2 * CLAIM_BYTES)]
        assert sorted(s.next for s in senders) == [1024 + 20 * 64, CLAIM_BYTES + 20 * 64]
        receiver = SharedStream("A-B", "A>B", sending=False, store=far)
        for frame in frames:  # the receiver holds no block: it loads it from its store
            assert open_hop(frame, receiver).key == b"k" * 32
        assert receiver.has_block(1024) is not None
    finally:
        for store in (one, two, far):
            store.close()


def test_only_the_leader_feeds_and_a_key_goes_to_one_replica(postgres_url: str) -> None:
    from qkd.delivery.store_postgres import AdvisoryLock

    one = PgNodeStore(postgres_url, schema="qkd_node_C")
    two = PgNodeStore(postgres_url, schema="qkd_node_C")
    lock = AdvisoryLock(postgres_url, "qkd-node-leader:qkd_node_C")
    try:

        def feed(tx: StoreTx) -> None:
            tx.add_block(link="B-C", direction="B>C", start=0, data=bytes(64), ready=False)
            tx.set_feed_mark(link="B-C", next_start=64)

        (refused,) = one.run_batch([feed])
        assert isinstance(refused, LeaderLost)
        assert one.blocks() == []
        assert lock.try_acquire()
        one.fence = lock.fence()
        assert one.run_batch([feed]) == [None]
        assert one.feed_marks() == {"B-C": 64}
        lock.release()  # a leader that lost its lock writes nothing more
        (late,) = one.run_batch([lambda tx: tx.mark_ready(link="B-C", start=0)])
        assert isinstance(late, LeaderLost)

        key = RelayedKey("k1", "sae-a", "sae-c", ("A", "B", "C"), b"k" * 32)
        assert one.run_batch([lambda tx: tx.store_keys([key])]) == [None]

        def take(tx: StoreTx) -> object:
            return tx.take_keys(key_ids=["k1"], master="sae-a", slave="sae-c", not_before=0)

        results: list[object] = []
        threads = [
            threading.Thread(target=lambda s=s: results.extend(s.run_batch([take])))
            for s in (one, two)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        delivered = [r for r in results if isinstance(r, list)]
        assert delivered == [[("k1", b"k" * 32, ("A", "B", "C"))]]
        assert sum("already delivered" in str(r) for r in results) == 1
    finally:
        lock.release()
        one.close()
        two.close()


@pytest.fixture(scope="module")
def chain_url(postgres_server: TemporaryPostgres) -> str:
    return postgres_server.create_database(f"chain_{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, chain_url: str) -> Iterator[RunningNetwork]:
    net = start_replicated_chain(tmp_path_factory.mktemp("replica-chain"), chain_url)
    try:
        net.wait_links_up()
        yield net
    finally:
        net.close()


def _b_to_c_ledger(net: RunningNetwork) -> LinkKeyLedger:
    """B's B>C link key past what B's process uses: the tail of its last ready block (no
    relay runs meanwhile, and B hands its key out from the front)."""
    db = sqlite3.connect(net.state / "nodes" / "B" / "store.sqlite")
    try:
        start, data = db.execute(
            "SELECT start, data FROM link_blocks WHERE link = 'B-C' AND dir = 'B>C'"
            " AND ready = 1 ORDER BY start DESC LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    ledger = LinkKeyLedger("B-C", bytes(start) + data)
    ledger.consume(0, start + len(data) - 256)
    return ledger


# Connections to a replica killed mid-request are closed by the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_replicas_of_the_end_nodes_serve_concurrent_saes_exactly_once(
    chain: RunningNetwork, chain_url: str
) -> None:
    net, postgres_url = chain, chain_url
    ledger = Ledger()
    stop = threading.Event()
    try:
        workers = [
            threading.Thread(target=load, args=(net, ledger, stop, seed), daemon=True)
            for seed in range(4)
        ]
        for worker in workers:
            worker.start()
        wait_until(lambda: ledger.enc_ok >= 20, 30, "keys through both replicas")
        for node in REPLICATED:
            leader = wait_until(lambda n=node: leader_of(net, n) is not None, 10, "a leader")
            index = leader_of(net, node)
            assert leader
            assert index is not None
            stop_node(net.state, node, kill=True, replica=index)
            other = 1 - index
            wait_until(lambda n=node, o=other: leader_of(net, n) == o, 10, "the other leads")
            served = ledger.enc_ok
            wait_until(lambda s=served: ledger.enc_ok >= s + 10, 30, "service after the kill")
            start_node(net.file, net.state, node, index)
            wait_listening(net.state, [node])
        # Eve told to one replica of each end: every replica sees the link in alarm.
        set_link(net.state, "A-B", eve=True)
        wait_until(lambda: all(_alarms(net, "A-B")), 10, "every replica's alarm")
        set_link(net.state, "A-B", eve=False)
        wait_until(lambda: not any(_alarms(net, "A-B")), 10, "the alarm cleared everywhere")
        time.sleep(1.0)
        stop.set()
        for worker in workers:
            worker.join(30)
        lost, unserved = settle(net, ledger)
        checks = link_checks(net, postgres_url)
        print(
            "\nreplica figures:",
            {
                "enc_keys_ok": ledger.enc_ok,
                "enc_keys_refused": ledger.enc_refused,
                "keys_to_masters": len(ledger.master),
                "keys_to_slaves": len(ledger.slave),
                "slave_answers_lost_in_crash": lost,
                **checks,
            },
        )
        assert ledger.delivered_twice() == 0
        assert ledger.different_keys() == 0
        assert unserved == 0
        assert len(ledger.slave) + lost == len(ledger.master)
        assert checks == {
            "claims_overlapping": 0,
            "slots_used_outside_the_senders_claims": 0,
            "blocks_differing": 0,
        }
    finally:
        stop.set()


def test_a_relay_replayed_to_the_other_replica_is_refused_and_goes_no_further(
    chain: RunningNetwork, chain_url: str
) -> None:
    """(After the load: it uses B's key beyond B's own mark.) The test plays KME B towards
    C's replicas: a genuine relay frame accepted by one
    replica (C forwards it to D, which stores the key) is refused by the other (409), and
    nothing more is used or stored anywhere."""
    path = ["A", "B", "C", "D"]
    key_id, key = uuid.uuid4(), bytes(range(32, 64))
    frame = seal_hop(
        key_id, key, tuple(path), 1, _b_to_c_ledger(chain),
        master_sae_id="sae-a", slave_sae_id="sae-d",
    )  # fmt: skip
    entry = {
        "initiator_sae_id": "sae-a",
        "target_sae_ids": ["sae-d"],
        "relay_path": path,
        "hop": 1,
        "link": "B-C",
        "frames": [base64.b64encode(frame).decode()],
    }
    directory = chain.state / "kmes" / "B"
    context = client_ssl_context(
        directory / "cert.pem", directory / "key.pem", chain.state / "ca.pem"
    )

    def used() -> tuple[int, ...]:
        with psycopg.connect(chain_url) as db:
            return tuple(
                db.execute(f'SELECT count(*) FROM "qkd_node_{n}".{table}').fetchone()[0]
                for n, table in (("C", "recv_slots"), ("D", "recv_slots"), ("D", "relayed"))
            )

    answers = []
    with httpx.Client(verify=context, timeout=15) as b:
        for replica in replica_addresses(chain, "C"):
            response = b.post(
                f"https://{replica['kmapi']}/kmapi/v1/ext_keys", json={"relays": [entry]}
            )
            assert response.status_code == 200, response.text
            answers.append(response.json()["results"][0])
            if len(answers) == 1:
                before = used()
    assert answers[0] == {"status": "relayed", "key_IDs": [str(key_id)]}
    assert answers[1]["code"] == 409
    assert "already used" in answers[1]["message"]
    assert used() == before
    # D serves the key that went through, once.
    slave = chain.raw("saes", "sae-d", "D")
    fetched = slave.post("/api/v1/keys/sae-a/dec_keys", json={"key_IDs": [{"key_ID": str(key_id)}]})
    assert keys_of(fetched) == [(str(key_id), key, path)]
