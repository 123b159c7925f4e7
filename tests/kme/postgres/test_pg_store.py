"""The PostgreSQL key store: the SQLite store's semantics (run over both backends), row locks
between concurrent stores on one pool, the async API, the feeder lock and open_store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from qkd.delivery.kme.config import ConfigError, build_config
from qkd.delivery.kme.service import recover_blocks
from qkd.delivery.store import (
    KeyPool,
    KeyStore,
    KeyStoreError,
    PoolExhausted,
    Transaction,
    UnitUnavailable,
    open_store,
)
from qkd.delivery.store_postgres import (
    AdvisoryLock,
    AsyncPostgresKeyStore,
    LockLost,
    PostgresKeyStore,
    PostgresTransaction,
    describe_conninfo,
)

from .replicas import write_config


def _units(n: int) -> list[tuple[str, bytes]]:
    return [(str(uuid.uuid4()), os.urandom(32)) for _ in range(n)]


def _write(
    store: KeyPool, block: int, units: list[tuple[str, bytes]], created: float, owner: str = "A"
) -> None:
    store.run(
        lambda tx: tx.insert_block(block=block, link="l", owner=owner, created=created, units=units)
    )


def _ready(store: KeyPool, block: int) -> int:
    return store.run(lambda tx: tx.mark_ready(block))


def _take(
    store: KeyPool, number: int = 1, size: int = 256, not_before: float = 0.0
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


def _slave(store: KeyPool, owner_store: KeyPool, key_ids: list[str]) -> list[tuple[str, bytes]]:
    deliveries = [owner_store.lookup_delivery(k) for k in key_ids]
    assert all(d is not None for d in deliveries)
    return store.run(
        lambda tx: tx.take_for_slave(
            link="l",
            owner="A",
            deliveries=[d for d in deliveries if d is not None],
            not_before=0.0,
        )
    )


def _raw(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as db:
        return db.execute(query, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], KeyPool]]:
    """Opens the store of KME ``name`` on the backend under test (closed after the test)."""
    opened: list[KeyPool] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""

    def make(name: str) -> KeyPool:
        spec = url or f"sqlite:{tmp_path / f'{name}.sqlite'}"
        store = open_store(spec, schema=name)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


# ---------------------------------------------------------------- semantics, both backends


def test_open_store_picks_the_backend(make_store: Callable[[str], KeyPool]) -> None:
    store = make_store("A")
    assert isinstance(store, KeyStore | PostgresKeyStore)
    assert store.snapshot() == {}


def test_pending_units_are_served_once_when_ready(make_store: Callable[[str], KeyPool]) -> None:
    a = make_store("A")
    units = _units(4)
    _write(a, 1, units, time.time())
    assert a.pending_blocks() == [1]
    with pytest.raises(PoolExhausted):
        _take(a)
    assert _ready(a, 1) == 4
    assert a.ready_count("l", "A") == 4
    taken = _take(a, 2) + _take(a, 2)
    assert sorted(taken) == sorted(units)
    assert a.ready_count("l", "A") == 0
    with pytest.raises(PoolExhausted, match="0 ready units"):
        _take(a)
    assert a.snapshot() == {"delivered": 4}


def test_a_key_spans_units_and_the_slave_gets_the_same_bytes_once(
    make_store: Callable[[str], KeyPool],
) -> None:
    a, b = make_store("A"), make_store("B")
    units = _units(6)
    for store in (a, b):
        _write(store, 9, units, time.time())
        _ready(store, 9)
    keys = _take(a, 2, 512)
    assert [len(k) for _, k in keys] == [64, 64]
    record = a.lookup_delivery(keys[0][0])
    assert record is not None
    assert len(record.parts) == 2
    assert record.master == "m"
    assert a.lookup_delivery("no-such-key") is None
    assert _slave(b, a, [k for k, _ in keys]) == keys
    with pytest.raises(UnitUnavailable, match="already delivered"):
        _slave(b, a, [keys[0][0]])


def test_a_failing_operation_rolls_back_alone(make_store: Callable[[str], KeyPool]) -> None:
    a = make_store("A")
    _write(a, 1, _units(3), time.time())
    _ready(a, 1)

    def take_one(tx: Transaction) -> list[tuple[str, bytes]]:
        return tx.take_for_master(
            link="l",
            owner="A",
            master="m",
            slave="s",
            number=1,
            size=256,
            unit_bits=256,
            not_before=0.0,
        )

    def take_then_fail(tx: Transaction) -> None:
        take_one(tx)
        raise RuntimeError("the request failed after its take")

    results = a.run_batch([take_one, take_then_fail, take_one])
    assert isinstance(results[1], RuntimeError)
    assert len(results[0]) == 1
    assert len(results[2]) == 1
    assert a.ready_count("l", "A") == 1
    assert a.snapshot() == {"delivered": 2, "ready": 1}


def test_recovery_finishes_blocks_at_both_ends_and_drops_half_blocks(
    make_store: Callable[[str], KeyPool],
) -> None:
    a, b = make_store("A"), make_store("B")
    both, half = _units(3), _units(2)
    for store in (a, b):
        _write(store, 1, both, time.time())
    _write(a, 2, half, time.time())
    assert recover_blocks(a, b) == 2
    assert a.snapshot() == {"ready": 3}
    assert b.snapshot() == {"ready": 3}
    assert not a.has_block(2)
    assert a.has_block(1)


def test_expired_keys_go_and_tombstones_outlive_them(
    make_store: Callable[[str], KeyPool],
) -> None:
    a = make_store("A")
    now = time.time()
    _write(a, 1, _units(2), now - 100)
    _write(a, 2, _units(2), now)
    _ready(a, 1), _ready(a, 2)
    with pytest.raises(PoolExhausted):
        _take(a, 3, not_before=now - 50)
    _take(a, 1, not_before=now - 50)
    assert a.expire(not_before=now - 50, tombstones_before=now - 200) == 2
    assert a.snapshot() == {"ready": 1, "delivered": 1}
    assert a.ready_count("l", "A") == 1
    a.expire(not_before=now - 50, tombstones_before=now + 1)
    assert a.snapshot() == {"ready": 1}


# ---------------------------------------------------------------- PostgreSQL only


def test_the_postgres_store_erases_delivered_bytes(postgres_url: str) -> None:
    with _closing(PostgresKeyStore(postgres_url, schema="KME-A")) as a:
        units = _units(3)
        _write(a, 1, units, time.time())
        _ready(a, 1)
        (key_id, _), *_ = _take(a)
    rows = _raw(postgres_url, 'SELECT key_id, state, key FROM "KME-A".units ORDER BY seq')
    assert [(r[0], r[1], r[2] is None) for r in rows] == [
        (units[0][0], 2, True),
        (units[1][0], 1, False),
        (units[2][0], 1, False),
    ]
    assert key_id == units[0][0]


def test_concurrent_stores_on_one_pool_never_take_a_unit_twice(postgres_url: str) -> None:
    """Six stores (six connections, as six replicas would have) drain one pool at once."""
    stores = [PostgresKeyStore(postgres_url, schema="KME-A") for _ in range(6)]
    try:
        units = _units(600)
        _write(stores[0], 1, units, time.time())
        _ready(stores[0], 1)
        got: list[list[tuple[str, bytes]]] = [[] for _ in stores]
        start = threading.Barrier(len(stores))
        first_taken = threading.Barrier(len(stores))

        def drain(i: int) -> None:
            start.wait()
            # Every store takes once before any drains on: on a loaded machine a thread
            # scheduled late would otherwise find the pool empty and take nothing.
            try:
                got[i].extend(_take(stores[i], number=1 + i % 3, size=256 * (1 + i % 2)))
            finally:
                first_taken.wait()
            while True:
                try:
                    got[i].extend(_take(stores[i], number=1 + i % 3, size=256 * (1 + i % 2)))
                except PoolExhausted:
                    return

        threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert all(got), "every store should have taken keys"
        parts = [
            p
            for row in _raw(postgres_url, 'SELECT parts FROM "KME-A".deliveries')
            for p in row[0].split()
        ]
        assert len(parts) == len(set(parts)), "a unit went into two keys"
        by_id = dict(units)
        taken = [k for keys in got for k in keys]
        assert len({k for k, _ in taken}) == len(taken)
        assert len(parts) >= 600 - 3  # at most a request's worth left over
        for key_id, key in taken:
            assert key[:32] == by_id[key_id]
    finally:
        for store in stores:
            store.close()


def test_two_slaves_asking_for_one_key_at_once_get_it_once(postgres_url: str) -> None:
    owner = PostgresKeyStore(postgres_url, schema="A")
    slaves = [PostgresKeyStore(postgres_url, schema="B") for _ in range(4)]
    try:
        units = _units(40)
        _write(owner, 1, units, time.time())
        _write(slaves[0], 1, units, time.time())
        _ready(owner, 1), _ready(slaves[0], 1)
        keys = _take(owner, 40)
        outcome: dict[str, list[str]] = {k: [] for k, _ in keys}
        start = threading.Barrier(len(slaves))

        def fetch(store: PostgresKeyStore) -> None:
            start.wait()
            for key_id, _ in keys:
                try:
                    _slave(store, owner, [key_id])
                    outcome[key_id].append("ok")
                except UnitUnavailable as exc:
                    outcome[key_id].append(
                        "refused" if "already delivered" in str(exc) else str(exc)
                    )

        threads = [threading.Thread(target=fetch, args=(s,)) for s in slaves]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert all(sorted(o) == ["ok", "refused", "refused", "refused"] for o in outcome.values())
    finally:
        owner.close()
        for store in slaves:
            store.close()


def test_ready_counts_follow_the_other_replicas(postgres_url: str) -> None:
    mine = PostgresKeyStore(postgres_url, schema="A", refresh_s=0.05)
    other = PostgresKeyStore(postgres_url, schema="A")
    try:
        _write(other, 1, _units(5), time.time())
        _ready(other, 1)
        deadline = time.monotonic() + 5
        while mine.ready_count("l", "A") != 5:
            assert time.monotonic() < deadline, "the count never caught up"
            time.sleep(0.02)
    finally:
        mine.close()
        other.close()


def test_a_lost_connection_fails_the_batch_and_the_next_one_reconnects(postgres_url: str) -> None:
    with _closing(PostgresKeyStore(postgres_url, schema="A")) as a:
        _write(a, 1, _units(2), time.time())
        _ready(a, 1)
        (killed,) = _raw(postgres_url, "SELECT pg_terminate_backend(%s)", a._db.info.backend_pid)
        assert killed[0]
        results = [_try_take(a) for _ in range(3)]
        assert isinstance(results[0], KeyStoreError)
        assert "transaction failed" in str(results[0])
        assert isinstance(results[1], list)


def _try_take(store: KeyPool) -> list[tuple[str, bytes]] | KeyStoreError:
    try:
        return _take(store)
    except KeyStoreError as exc:
        if isinstance(exc, PoolExhausted):
            raise
        return exc


def test_the_feeder_lock_has_one_holder_and_frees_with_its_session(postgres_url: str) -> None:
    first, second = AdvisoryLock(postgres_url, "feeder"), AdvisoryLock(postgres_url, "feeder")
    other = AdvisoryLock(postgres_url, "another pair")
    try:
        assert first.try_acquire()
        assert first.held()
        assert not second.try_acquire()
        assert not second.held()
        assert other.try_acquire()
        first.release()
        assert not first.held()
        assert second.try_acquire()
    finally:
        for lock in (first, second, other):
            lock.release()


def test_a_fenced_write_fails_once_its_lock_is_gone(postgres_url: str) -> None:
    lock = AdvisoryLock(postgres_url, "feeder")
    store = PostgresKeyStore(postgres_url, schema="A")
    try:
        assert lock.try_acquire()
        token = lock.fence()

        def fenced(block: int) -> Callable[[Transaction], None]:
            def write(tx: Transaction) -> None:
                assert isinstance(tx, PostgresTransaction)
                tx.require_lock(token)
                tx.insert_block(block=block, link="l", owner="A", created=0.0, units=_units(2))

            return write

        store.run(fenced(1))
        lock.release()
        with pytest.raises(LockLost, match="no longer held"):
            store.run(fenced(2))
        with pytest.raises(LockLost, match="not held"):
            lock.fence()
        assert store.pending_blocks() == [1]
    finally:
        lock.release()
        store.close()


def test_the_async_store_has_the_same_semantics(postgres_url: str) -> None:
    async def main() -> None:
        a = await AsyncPostgresKeyStore.open(postgres_url, schema="A")
        b = await AsyncPostgresKeyStore.open(postgres_url, schema="B")
        try:
            units = _units(8)
            for store in (a, b):
                await store.run(
                    lambda tx: tx.insert_block(
                        block=5, link="l", owner="A", created=time.time(), units=units
                    )
                )
            assert await a.pending_blocks() == [5]
            assert await b.has_block(5)
            for store in (a, b):
                assert await store.run(lambda tx: tx.mark_ready(5)) == 8
            assert await a.ready_count("l", "A") == 8

            async def take(tx: Any) -> list[tuple[str, bytes]]:
                result: list[tuple[str, bytes]] = await tx.take_for_master(
                    link="l",
                    owner="A",
                    master="m",
                    slave="s",
                    number=1,
                    size=512,
                    unit_bits=256,
                    not_before=0.0,
                )
                return result

            # Five concurrent requests share group transactions; four can be served.
            results = await asyncio.gather(*(a.run(take) for _ in range(5)), return_exceptions=True)
            served = [r for r in results if isinstance(r, list)]
            assert len(served) == 4
            assert sum(isinstance(r, PoolExhausted) for r in results) == 1
            keys = [k for r in served for k in r]
            record = await a.lookup_delivery(keys[0][0])
            assert record is not None
            assert len(record.parts) == 2
            got = await b.run(
                lambda tx: tx.take_for_slave(
                    link="l", owner="A", deliveries=[record], not_before=0.0
                )
            )
            assert got == [keys[0]]
            with pytest.raises(UnitUnavailable, match="already delivered"):
                await b.run(
                    lambda tx: tx.take_for_slave(
                        link="l", owner="A", deliveries=[record], not_before=0.0
                    )
                )
            assert await a.snapshot() == {"delivered": 8}
            assert await b.expire(not_before=time.time() + 1, tombstones_before=0.0) == 6
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(main())


def test_the_sync_and_async_stores_share_one_pool(postgres_url: str) -> None:
    sync = PostgresKeyStore(postgres_url, schema="A")
    try:
        units = _units(4)
        _write(sync, 1, units, time.time())
        _ready(sync, 1)
        taken = _take(sync, 2)

        async def rest() -> list[tuple[str, bytes]]:
            store = await AsyncPostgresKeyStore.open(postgres_url, schema="A")
            try:
                result: list[tuple[str, bytes]] = await store.run(
                    lambda tx: tx.take_for_master(
                        link="l",
                        owner="A",
                        master="m",
                        slave="s",
                        number=2,
                        size=256,
                        unit_bits=256,
                        not_before=0.0,
                    )
                )
                return result
            finally:
                await store.aclose()

        assert sorted(taken + asyncio.run(rest())) == sorted(units)
    finally:
        sync.close()


# ---------------------------------------------------------------- specs and configuration


def test_store_specs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="sqlite:PATH or a postgresql:// URL"):
        open_store("mysql://nowhere/db")
    with pytest.raises(KeyStoreError, match="cannot open the key store postgresql"):
        open_store(f"postgresql://nobody@/db?host={tmp_path}&port=1&connect_timeout=2")
    store = open_store(Path(tmp_path / "x.sqlite"))
    assert isinstance(store, KeyStore)
    store.close()


def test_a_password_never_appears_in_messages() -> None:
    text = describe_conninfo("postgresql://kme:hunter2@db.example:6543/qkd")
    assert text == "postgresql kme@db.example:6543/qkd"
    assert "hunter2" not in text


def _config(tmp_path: Path, store_a: str, store_b: str) -> Any:
    doc = {
        "ca": "ca.pem",
        "kme": {
            end: {"id": f"KME-{end.upper()}", "listen": "127.0.0.1:0", "cert": "c", "key": "k"}
            for end in ("a", "b")
        },
        "link": [{"name": "ab", "saes_a": ["sae-a"], "saes_b": ["sae-b"]}],
    }
    doc["kme"]["a"]["store"] = store_a
    doc["kme"]["b"]["store"] = store_b
    return build_config(doc, source="kme.toml", base=tmp_path)


def test_the_config_takes_sqlite_and_postgres_stores(tmp_path: Path) -> None:
    config = _config(tmp_path, "sqlite:s/a.sqlite", "s/b.sqlite")
    assert config.a.store_spec == f"sqlite:{tmp_path / 's/a.sqlite'}"
    assert config.b.store_spec == f"sqlite:{tmp_path / 's/b.sqlite'}"
    url = "postgresql://kme@db.example/qkd"
    config = _config(tmp_path, url, url)
    assert config.a.store_url == config.b.store_url == url
    assert config.a.store_spec == url
    with pytest.raises(ConfigError, match=r"kme\.toml: kme\.b\.store: both KMEs"):
        _config(tmp_path, url, "sqlite:b.sqlite")
    with pytest.raises(ConfigError, match=r"kme\.a\.store: unknown store kind 'mysql'"):
        _config(tmp_path, "mysql://x/y", url)
    with pytest.raises(ConfigError, match=r"kme\.a\.store: sqlite: needs a path"):
        _config(tmp_path, "sqlite:", "b.sqlite")


class _closing:
    def __init__(self, store: PostgresKeyStore) -> None:
        self.store = store

    def __enter__(self) -> PostgresKeyStore:
        return self.store

    def __exit__(self, *exc: object) -> None:
        self.store.close()


def test_serve_with_an_unreachable_database_says_so_without_the_password(
    tmp_path: Path, certs: Path
) -> None:
    url = f"postgresql://kme:hunter2@/qkd?host={tmp_path / 'nowhere'}&connect_timeout=2"
    config = write_config(certs, url, tmp_path / "kme.toml")
    run = subprocess.run(
        [sys.executable, "-m", "agile.cli", "kme", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "cannot open the key store postgresql kme@" in run.stderr
    assert "Traceback" not in run.stderr
    assert "hunter2" not in run.stderr + run.stdout
