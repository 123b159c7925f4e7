"""A handshake whose QKD keys come from a real ETSI GS QKD 014 KME pair over mutual TLS.

The KME pair (``qkd.delivery.kme``) runs on 127.0.0.1 in a background thread; each engine builds its
own ``Etsi014Client`` from the policy's ``[qkd.etsi014]`` section (certificates made by
``qkd.delivery.kme.certs``), so this also covers the engine's resolution of an ``etsi014`` source.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agile import AgileError
from agile.engine import Engine, Identity
from agile.policy.model import Policy
from qkd.delivery.kme.certs import write_certificates
from qkd.delivery.kme.config import quick_config
from qkd.delivery.kme.service import serve_pair

from .conftest import make_policy, run_in_memory


@pytest.fixture
def kme_pair(tmp_path: Path) -> Iterator[tuple[Path, dict[str, tuple[str, int]]]]:
    certs = tmp_path / "certs"
    write_certificates(certs)
    config = quick_config(certs, "127.0.0.1:0", "127.0.0.1:0", state=tmp_path)
    ready = threading.Event()
    addresses: dict[str, tuple[str, int]] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    def on_ready(bound: dict[str, tuple[str, int]]) -> None:
        addresses.update(bound)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve_pair(config, on_ready=on_ready, stop=stop))
        except BaseException as exc:
            failure.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="kme-pair", daemon=True)
    thread.start()
    assert ready.wait(20), "the KME pair did not start"
    if failure:
        raise failure[0]
    try:
        yield certs, addresses
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)


def _policy(certs: Path, me: str, peer: str, address: tuple[str, int], required: bool) -> Policy:
    return make_policy(
        suites=[
            {
                "name": "mlkem768-x25519-qkd",
                "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"],
            }
        ],
        qkd={
            "source": "etsi014",
            "required": required,
            "key_size_bits": 256,
            "etsi014": {
                "kme_url": f"https://{address[0]}:{address[1]}",
                "sae_id": me,
                "peer_sae_id": peer,
                "cert": str(certs / f"{me}.pem"),
                "key": str(certs / f"{me}.key"),
                "ca": str(certs / "ca.pem"),
                "timeout_s": 10,
            },
        },
    )


def _engines(certs: Path, addresses: dict[str, Any], required: bool) -> tuple[Engine, Engine]:
    policy_a = _policy(certs, "sae-a", "sae-b", addresses["a"], required)
    policy_b = _policy(certs, "sae-b", "sae-a", addresses["b"], required)
    ida, idb = Identity.generate(policy_a), Identity.generate(policy_b)
    return (
        Engine(policy_a, signing_keys=ida.signing_keys, peer_public_keys=idb.public_keys),
        Engine(policy_b, signing_keys=idb.signing_keys, peer_public_keys=ida.public_keys),
    )


@pytest.mark.parametrize("required", [True, False], ids=["required", "optional"])
def test_handshake_with_keys_from_an_etsi014_kme(
    kme_pair: tuple[Path, dict[str, tuple[str, int]]], required: bool
) -> None:
    certs, addresses = kme_pair
    initiator_engine, responder_engine = _engines(certs, addresses, required)
    with initiator_engine, responder_engine:
        ours, theirs = run_in_memory(initiator_engine.initiator(), responder_engine.responder())
    assert ours is not None
    assert theirs is not None
    assert ours.key == theirs.key
    assert ours.qkd_used
    assert theirs.qkd_used
    assert ours.qkd_key_ids == theirs.qkd_key_ids
    assert len(ours.qkd_key_ids) == 1


def test_a_kme_key_cannot_be_fetched_twice(
    kme_pair: tuple[Path, dict[str, tuple[str, int]]],
) -> None:
    certs, addresses = kme_pair
    initiator_engine, responder_engine = _engines(certs, addresses, True)
    recorded: list[bytes] = []

    def record(n: int, data: bytes) -> bytes:
        recorded.append(data)
        return data

    with initiator_engine, responder_engine:
        run_in_memory(initiator_engine.initiator(), responder_engine.responder(), tamper=record)
        # Replaying the ClientHello: the KME has delivered that key already, so the
        # responder, whose policy requires QKD, fails closed instead of reusing a key.
        with pytest.raises(AgileError, match="requires a QKD key"):
            responder_engine.responder().receive_data(recorded[0])
