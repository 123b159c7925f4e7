"""Fixtures: certificates, a KME pair running in a background thread, ETSI 014 clients."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qkd.delivery.etsi014 import Etsi014Client
from qkd.delivery.kme.certs import write_certificates
from qkd.delivery.kme.config import PairConfig, build_config
from qkd.delivery.kme.service import serve_pair

SAES = ("sae-a", "sae-b", "sae-c", "sae-d", "sae-e", "sae-x")


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local CA with KME certificates and SAE certificates for sae-a ... sae-x."""
    directory = tmp_path_factory.mktemp("certs")
    write_certificates(directory, saes=SAES)
    return directory


@pytest.fixture(scope="session")
def foreign_certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Certificates from another CA, with the same names."""
    directory = tmp_path_factory.mktemp("foreign")
    write_certificates(directory, saes=("sae-a",))
    return directory


def pair_document(certs: Path, state: Path, **link: Any) -> dict[str, Any]:
    """Two links: sae-a <-> {sae-b, sae-e} and sae-c <-> sae-d; sae-x is on none."""
    main_link = {"name": "ab", "saes_a": ["sae-a"], "saes_b": ["sae-b", "sae-e"]}
    main_link.update(link)
    return {
        "ca": str(certs / "ca.pem"),
        "kme": {
            end: {
                "id": f"KME-{end.upper()}",
                "listen": "127.0.0.1:0",
                "cert": str(certs / f"kme-{end}.pem"),
                "key": str(certs / f"kme-{end}.key"),
                "store": str(state / f"kme-{end}.sqlite"),
            }
            for end in ("a", "b")
        },
        "link": [
            main_link,
            {"name": "cd", "saes_a": ["sae-c"], "saes_b": ["sae-d"], "max_key_count": 64},
        ],
    }


@dataclass
class RunningPair:
    config: PairConfig
    url_a: str
    url_b: str
    certs: Path
    stop: Callable[[], None]

    def client(self, sae: str, kme: str, peer: str, **kwargs: Any) -> Etsi014Client:
        url = self.url_a if kme == "a" else self.url_b
        kwargs.setdefault("timeout", 10.0)
        return Etsi014Client(
            url,
            peer_sae_id=peer,
            cert=self.certs / f"{sae}.pem",
            key=self.certs / f"{sae}.key",
            ca=self.certs / "ca.pem",
            **kwargs,
        )


def start_pair(config: PairConfig, certs: Path) -> RunningPair:
    """Run serve_pair in a thread with its own event loop until the returned stop()."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    addresses: dict[str, tuple[str, int]] = {}
    failure: list[BaseException] = []
    stop_event: list[asyncio.Event] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def main() -> None:
            stop_event.append(asyncio.Event())

            def on_ready(bound: dict[str, tuple[str, int]]) -> None:
                addresses.update(bound)
                ready.set()

            await serve_pair(config, on_ready=on_ready, stop=stop_event[0])

        try:
            loop.run_until_complete(main())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(20), "the KME pair did not start"
    if failure:
        raise failure[0]

    def stop() -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop_event[0].set)
        thread.join(20)
        assert not thread.is_alive(), "the KME pair did not stop"

    a, b = addresses["a"], addresses["b"]
    return RunningPair(config, f"https://{a[0]}:{a[1]}", f"https://{b[0]}:{b[1]}", certs, stop)


@pytest.fixture
def make_pair(certs: Path, tmp_path: Path) -> Iterator[Callable[..., RunningPair]]:
    """Start a KME pair with the test's link settings; stopped after the test."""
    running: list[RunningPair] = []

    def make(**link: Any) -> RunningPair:
        document = json.loads(json.dumps(pair_document(certs, tmp_path / "state", **link)))
        config = build_config(document, source="test", base=tmp_path)
        pair = start_pair(config, certs)
        running.append(pair)
        return pair

    yield make
    for pair in running:
        pair.stop()


@pytest.fixture
def pair(make_pair: Callable[..., RunningPair]) -> RunningPair:
    """A KME pair with default link settings (ideal link, 256-bit keys)."""
    return make_pair()


def wait_for_keys(client: Etsi014Client, count: int, timeout: float = 10.0) -> None:
    """Wait until the link has filled at least ``count`` keys for this master."""
    import time

    deadline = time.monotonic() + timeout
    while client.status().stored_key_count < count:
        assert time.monotonic() < deadline, "the link did not fill the pool"
        time.sleep(0.02)
