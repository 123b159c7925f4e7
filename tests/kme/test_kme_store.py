"""The durable key store: states, once-only delivery, crash recovery, expiry."""

from __future__ import annotations

import functools
import os
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from qkd.delivery.kme.service import recover_blocks
from qkd.delivery.store import (
    DELIVERED,
    READY,
    KeyStore,
    PoolExhausted,
    Transaction,
    UnitUnavailable,
)


def _units(n: int) -> list[tuple[str, bytes]]:
    return [(str(uuid.uuid4()), os.urandom(32)) for _ in range(n)]


def _write(store: KeyStore, block: int, units: list[tuple[str, bytes]], created: float) -> None:
    store.run(
        lambda tx: tx.insert_block(block=block, link="l", owner="A", created=created, units=units)
    )


def _take(
    store: KeyStore, number: int = 1, size: int = 256, not_before: float = 0.0
) -> list[tuple[str, bytes]]:
    return store.run(
        lambda tx: tx.take_for_master(
            link="l",
            owner="A",
            master="m",
            slave="s",
            number=number,
            size=size,
            unit_bits=256,
            not_before=not_before,
        )
    )


@pytest.fixture
def stores(tmp_path: Path) -> tuple[KeyStore, KeyStore]:
    return KeyStore(tmp_path / "a.sqlite"), KeyStore(tmp_path / "b.sqlite")


def test_the_store_is_wal_with_full_synchronous_commits(stores: tuple[KeyStore, KeyStore]) -> None:
    a, _ = stores
    assert a._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert a._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_pending_units_are_not_served_until_ready(stores: tuple[KeyStore, KeyStore]) -> None:
    a, _ = stores
    _write(a, 1, _units(4), time.time())
    with pytest.raises(PoolExhausted):
        _take(a)
    assert a.run(functools.partial(Transaction.mark_ready, block=1)) == 4
    assert a.ready_count("l", "A") == 4
    assert len(_take(a, 2)) == 2
    assert a.ready_count("l", "A") == 2


def test_a_key_is_handed_out_once_and_its_bytes_erased(stores: tuple[KeyStore, KeyStore]) -> None:
    a, _ = stores
    units = _units(3)
    _write(a, 1, units, time.time())
    a.run(functools.partial(Transaction.mark_ready, block=1))
    taken = [_take(a)[0] for _ in range(3)]
    assert sorted(taken) == sorted(units)
    with pytest.raises(PoolExhausted):
        _take(a)
    rows = a._db.execute("SELECT state, key FROM units").fetchall()
    assert rows == [(DELIVERED, None)] * 3
    record = a.lookup_delivery(taken[0][0])
    assert record is not None
    assert (record.master, record.slave) == ("m", "s")


def test_a_key_larger_than_a_unit_spans_units_at_both_ends(
    stores: tuple[KeyStore, KeyStore],
) -> None:
    a, b = stores
    units = _units(3)
    for store in stores:
        _write(store, 1, units, time.time())
        store.run(functools.partial(Transaction.mark_ready, block=1))
    ((key_id, key),) = _take(a, 1, 520)  # 65 bytes: three 32-byte units, truncated
    assert len(key) == 65
    record = a.lookup_delivery(key_id)
    assert record is not None
    assert len(record.parts) == 3
    ((slave_id, slave_key),) = b.run(
        lambda tx: tx.take_for_slave(link="l", owner="A", deliveries=[record], not_before=0)
    )
    assert (slave_id, slave_key) == (key_id, key)
    with pytest.raises(UnitUnavailable, match="already delivered"):
        b.run(lambda tx: tx.take_for_slave(link="l", owner="A", deliveries=[record], not_before=0))


def test_a_failing_operation_rolls_back_alone(stores: tuple[KeyStore, KeyStore]) -> None:
    a, _ = stores
    _write(a, 1, _units(2), time.time())
    a.run(functools.partial(Transaction.mark_ready, block=1))

    def take_one(tx: Transaction) -> object:
        return tx.take_for_master(
            link="l",
            owner="A",
            master="m",
            slave="s",
            number=1,
            size=256,
            unit_bits=256,
            not_before=0,
        )

    def take_five(tx: Transaction) -> object:
        return tx.take_for_master(
            link="l",
            owner="A",
            master="m",
            slave="s",
            number=5,
            size=256,
            unit_bits=256,
            not_before=0,
        )

    results = a.run_batch([take_one, take_five, take_one])
    assert isinstance(results[1], PoolExhausted)
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert a.ready_count("l", "A") == 0


def test_recovery_finishes_blocks_at_both_ends_and_drops_half_blocks(
    stores: tuple[KeyStore, KeyStore],
) -> None:
    a, b = stores
    both, only_a, ready_a_pending_b = _units(2), _units(2), _units(2)
    now = time.time()
    _write(a, 1, both, now)
    _write(b, 1, both, now)
    _write(a, 2, only_a, now)
    _write(a, 3, ready_a_pending_b, now)
    _write(b, 3, ready_a_pending_b, now)
    a.run(functools.partial(Transaction.mark_ready, block=3))
    assert recover_blocks(a, b) == 3
    states = {
        name: dict(store._db.execute("SELECT key_id, state FROM units").fetchall())
        for name, store in (("a", a), ("b", b))
    }
    for key_id, _ in both + ready_a_pending_b:
        assert states["a"][key_id] == states["b"][key_id] == READY
    for key_id, _ in only_a:
        assert key_id not in states["a"]
    assert not a.pending_blocks()
    assert not b.pending_blocks()
    assert recover_blocks(a, b) == 0


def test_a_restart_keeps_undelivered_keys_and_delivered_keys_stay_delivered(
    tmp_path: Path,
) -> None:
    store = KeyStore(tmp_path / "a.sqlite")
    units = _units(4)
    _write(store, 1, units, time.time())
    store.run(functools.partial(Transaction.mark_ready, block=1))
    given = _take(store, 2)
    store.close()
    reopened = KeyStore(tmp_path / "a.sqlite")
    assert reopened.ready_count("l", "A") == 2
    rest = _take(reopened, 2)
    assert sorted(given + rest) == sorted(units)
    with pytest.raises(PoolExhausted):
        _take(reopened)


def test_expired_keys_are_neither_served_nor_kept(stores: tuple[KeyStore, KeyStore]) -> None:
    a, _ = stores
    now = time.time()
    _write(a, 1, _units(2), now - 100)
    _write(a, 2, _units(1), now)
    for block in (1, 2):
        a.run(functools.partial(Transaction.mark_ready, block=block))
    with pytest.raises(PoolExhausted):
        _take(a, 2, not_before=now - 50)
    assert a.expire(not_before=now - 50, tombstones_before=now - 200) == 2
    assert a.ready_count("l", "A") == 1
    assert a.snapshot() == {"ready": 1}


def test_an_unwritable_store_is_a_typed_error(tmp_path: Path) -> None:
    from qkd import KeyStoreError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(KeyStoreError, match="cannot open the key store"):
        KeyStore(blocker / "sub" / "a.sqlite")


def test_the_database_holds_no_bytes_of_delivered_keys(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "a.sqlite")
    units = _units(8)
    _write(store, 1, units, time.time())
    store.run(functools.partial(Transaction.mark_ready, block=1))
    given = _take(store, 8)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._db.execute("VACUUM")
    store.close()
    data = (tmp_path / "a.sqlite").read_bytes()
    assert not any(key in data for _, key in given)
    assert (
        sqlite3.connect(tmp_path / "a.sqlite").execute("SELECT COUNT(*) FROM units").fetchone()[0]
        == 8
    )
