"""Many SAE clients in parallel against one KME pair: no key delivered twice."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import httpx
import pytest

from qkd import KeyNotFound
from qkd.delivery.etsi014 import client_ssl_context
from tests.kme.conftest import RunningPair, wait_for_keys

THREADS = 8
ROUNDS = 25


def test_parallel_masters_and_slaves_get_distinct_matching_keys(pair: RunningPair) -> None:
    with pair.client("sae-a", "a", "sae-b") as probe:
        wait_for_keys(probe, 1000)
    master_ids: list[str] = []
    mismatches: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def work(index: int) -> None:
        try:
            with (
                pair.client("sae-a", "a", "sae-b") as master,
                pair.client("sae-b", "b", "sae-a") as slave,
            ):
                start.wait()
                for round_ in range(ROUNDS):
                    keys = master.get_keys(1 + (index + round_) % 3, 256)
                    got = slave.get_keys_by_id([k.key_id for k in keys])
                    with lock:
                        master_ids.extend(k.key_id for k in keys)
                        if got != keys:
                            mismatches.append(keys[0].key_id)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors[:3]
    assert not mismatches
    counts = Counter(master_ids)
    expected = sum(1 + (i + r) % 3 for i in range(THREADS) for r in range(ROUNDS))
    assert len(master_ids) == expected
    assert max(counts.values()) == 1, "a key_ID reached two masters"


def test_racing_slaves_get_a_key_exactly_once(pair: RunningPair) -> None:
    with pair.client("sae-a", "a", "sae-b") as master:
        wait_for_keys(master, 1)
        key = master.get_keys(1)[0]
    context = client_ssl_context(
        pair.certs / "sae-b.pem", pair.certs / "sae-b.key", pair.certs / "ca.pem"
    )
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def race() -> None:
        with httpx.Client(base_url=pair.url_b, verify=context, timeout=10) as client:
            client.get("/api/v1/keys/sae-a/status")  # open the connection first
            start.wait()
            response = client.post(
                "/api/v1/keys/sae-a/dec_keys", json={"key_IDs": [{"key_ID": key.key_id}]}
            )
            with lock:
                statuses.append(response.status_code)

    threads = [threading.Thread(target=race) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200] + [400] * (THREADS - 1)


def test_racing_masters_never_share_a_key(pair: RunningPair) -> None:
    """Masters draining a small pool in parallel: 503s are fine, duplicates are not."""
    with pair.client("sae-c", "a", "sae-d") as probe:
        wait_for_keys(probe, 64)
    taken: list[str] = []
    lock = threading.Lock()

    def drain() -> None:
        with pair.client("sae-c", "a", "sae-d", retries=0) as master:
            for _ in range(20):
                try:
                    keys = master.get_keys(4)
                except Exception:
                    continue
                with lock:
                    taken.extend(k.key_id for k in keys)

    threads = [threading.Thread(target=drain) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(taken) >= 64
    assert len(set(taken)) == len(taken)


def test_unknown_key_ids_are_all_refused(pair: RunningPair) -> None:
    with pair.client("sae-b", "b", "sae-a", retries=0) as slave:
        for _ in range(5):
            with pytest.raises(KeyNotFound) as exc:
                slave.get_keys_by_id([str(uuid.uuid4())])
            assert exc.value.status == 400
