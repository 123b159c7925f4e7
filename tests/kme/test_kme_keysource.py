"""qkd.KeySource: the in-process simulated link, metering, and the simulator seam."""

from __future__ import annotations

import asyncio
import pickle
import time
from pathlib import Path
from typing import Any

import pytest

from qkd import (
    AsyncKeySource,
    Etsi014Client,
    KeyExhausted,
    KeyNotFound,
    KeySource,
    KMEError,
    QkdKey,
    SimulatedLink,
)
from qkd.delivery.kme.config import ConfigError, LinkSettings
from qkd.delivery.kme.link import make_supplier
from tests.kme.conftest import RunningPair, wait_for_keys


def test_both_backends_satisfy_the_key_source_interface(pair: RunningPair) -> None:
    link = SimulatedLink()
    assert isinstance(link.source("a", peer="b"), KeySource)
    assert isinstance(link.async_source("a", peer="b"), AsyncKeySource)
    with pair.client("sae-a", "a", "sae-b") as client:
        assert isinstance(client, KeySource)
        assert isinstance(client, Etsi014Client)


def test_simulated_link_delivers_matching_keys_once() -> None:
    link = SimulatedLink(key_size=256)
    alice, bob = link.source("sae-a", peer="sae-b"), link.source("sae-b", peer="sae-a")
    keys = alice.get_keys(3)
    assert [k.size_bits for k in keys] == [256] * 3
    assert bob.get_keys_by_id([k.key_id for k in keys]) == keys
    with pytest.raises(KeyNotFound):
        bob.get_keys_by_id([keys[0].key_id])
    status = alice.status()
    assert (status.master_sae_id, status.slave_sae_id) == ("sae-a", "sae-b")
    assert status.key_size == 256


def test_simulated_link_checks_requests() -> None:
    link = SimulatedLink()
    alice, bob = link.source("sae-a", peer="sae-b"), link.source("sae-b", peer="sae-a")
    for number, size in ((0, 256), (129, 256), (1, 100), (1, 16), (1, 16384)):
        with pytest.raises(KMEError) as exc:
            alice.get_keys(number, size)
        assert exc.value.status == 400
    keys = alice.get_keys(1)
    with pytest.raises(KeyNotFound):
        bob.get_keys_by_id([keys[0].key_id, keys[0].key_id])
    with pytest.raises(KeyNotFound):
        bob.get_keys_by_id(["not-a-uuid"])
    # The master cannot fetch its own key as a slave, and a third SAE has no place.
    with pytest.raises(KeyNotFound):
        link.source("sae-a", peer="sae-b").get_keys_by_id([keys[0].key_id])
    with pytest.raises(KMEError) as exc:
        link.source("sae-c", peer="sae-a").get_keys(1)
    assert exc.value.status == 401
    assert bob.get_keys_by_id([keys[0].key_id]) == keys


def test_metered_link_yields_no_more_than_its_rate() -> None:
    link = SimulatedLink(key_size=256, rate_bps=2560.0, max_key_count=100)
    alice = link.source("sae-a", peer="sae-b")
    with pytest.raises(KeyExhausted) as exc:
        alice.get_keys(1)
    assert exc.value.status == 503
    time.sleep(0.25)  # about 640 bits: two 256-bit keys
    assert len(alice.get_keys(2)) == 2
    with pytest.raises(KeyExhausted):
        alice.get_keys(2)


def test_metered_link_can_wait_for_key() -> None:
    link = SimulatedLink(key_size=256, rate_bps=25_600.0, wait_s=1.0)
    begin = time.monotonic()
    assert len(link.source("a", peer="b").get_keys(2)) == 2
    elapsed = time.monotonic() - begin
    assert 0.01 < elapsed < 1.0


def test_custom_supplier_feeds_the_link() -> None:
    calls: list[int] = []

    def supplier(nbytes: int) -> tuple[bytes, bytes]:
        calls.append(nbytes)
        return bytes(nbytes), bytes(nbytes)

    link = SimulatedLink(key_size=128, supplier=supplier)
    keys = link.source("a", peer="b").get_keys(2, 256)
    assert calls == [64]
    assert all(k.key == bytes(32) for k in keys)


def test_async_twin() -> None:
    link = SimulatedLink()

    async def scenario() -> list[QkdKey]:
        alice, bob = link.async_source("a", peer="b"), link.async_source("b", peer="a")
        keys = await alice.get_keys(2, 512)
        got = await bob.get_keys_by_id([k.key_id for k in keys])
        assert got == keys
        assert (await alice.status()).stored_key_count > 0
        await alice.aclose()
        return got

    assert len(asyncio.run(scenario())) == 2


def test_qkd_key_hides_its_bytes_and_refuses_pickling() -> None:
    key = QkdKey(key_id="6ba7b810-9dad-11d1-80b4-00c04fd430c8", key=b"\xab" * 32)
    assert "ab" * 4 not in repr(key)
    assert "32 bytes" in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert key == QkdKey(key_id=key.key_id.upper(), key=b"\xab" * 32)
    assert key != QkdKey(key_id=key.key_id, key=b"\xac" * 32)


def _link(**simulation: Any) -> LinkSettings:
    return LinkSettings(
        name="sim", saes_a=("a",), saes_b=("b",), source="simulated", simulation=simulation
    )


def test_simulated_source_pulls_final_keys_from_the_simulator() -> None:
    supplier = make_supplier(_link(pulses=10**7, asymptotic=True, pulse_rate_hz=1e9))
    alice, bob = supplier(256)
    assert len(alice) == 256
    assert alice == bob
    assert alice != supplier(256)[0]
    rate = getattr(supplier, "rate_bps", None)
    assert rate is not None
    assert rate > 0


def test_simulated_source_refuses_unknown_settings_and_dead_links() -> None:
    with pytest.raises(ConfigError, match=r"not a qkd\.simulate argument"):
        make_supplier(_link(no_such_option=1))
    dead = make_supplier(_link(pulses=10**5, distance_km=300.0))
    with pytest.raises(KeyExhausted, match="yields no key"):
        dead(32)


def test_kme_pair_on_a_simulated_link(make_pair: Any, tmp_path: Path) -> None:
    pair = make_pair(
        source="simulated", simulation={"pulses": 10**7, "asymptotic": True}, max_key_count=64
    )
    with (
        pair.client("sae-a", "a", "sae-b") as master,
        pair.client("sae-b", "b", "sae-a") as slave,
    ):
        wait_for_keys(master, 8)
        keys = master.get_keys(4)
        assert slave.get_keys_by_id([k.key_id for k in keys]) == keys
