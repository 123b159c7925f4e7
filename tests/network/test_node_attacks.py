"""Malformed and unauthenticated relay messages are refused, and nothing is consumed or stored.

The test plays KME A towards KME B (real processes): it holds A's certificate and reads A's
link key from A's store, as a node that A's own process has not used yet. A forged or
modified frame is refused and uses nothing, so the genuine frame for the same link key is
still accepted afterwards; replaying it is refused.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkd.network.relay import LinkKeyLedger, seal_hop
from tests.network.netproc import RunningNetwork, keys_of, network_toml, start_network, wait_until


@pytest.fixture(scope="module")
def pair_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNetwork]:
    # sae-a2 and sae-x: other SAEs at the same nodes, whom a modified entry would name
    toml = network_toml("two", {"A": ["sae-a", "sae-a2"], "B": ["sae-b", "sae-x"]}, [("A", "B")])
    net = start_network(tmp_path_factory.mktemp("attacks"), toml)
    try:
        net.wait_links_up()
        yield net
    finally:
        net.close()


_BLOCKS_TAKEN: set[int] = set()


def _last_block(net: RunningNetwork) -> tuple[int, bytes] | None:
    """A's last ready A>B link-key block, if no test of this module took its tail yet."""
    db = sqlite3.connect(net.state / "nodes" / "A" / "store.sqlite")
    try:
        start, data = db.execute(
            "SELECT start, data FROM link_blocks WHERE link = 'A-B' AND dir = 'A>B'"
            " AND ready = 1 ORDER BY start DESC LIMIT 1"
        ).fetchone()
    finally:
        db.close()
    return None if start in _BLOCKS_TAKEN else (start, data)


def _ledger_past_use(net: RunningNetwork) -> LinkKeyLedger:
    """A ledger over A's A>B link key whose next bytes are the tail of A's last ready block.

    Each call waits for a block no earlier call used (the link keeps adding blocks).
    """
    start, data = wait_until(lambda: _last_block(net), what="a fresh link-key block")
    _BLOCKS_TAKEN.add(start)
    ledger = LinkKeyLedger("A-B", bytes(start) + data)
    ledger.consume(0, start + len(data) - 256)
    return ledger


def _seal(
    key_id: uuid.UUID,
    key: bytes,
    ledger: LinkKeyLedger,
    master: str = "sae-a",
    slave: str = "sae-b",
) -> bytes:
    return seal_hop(key_id, key, ("A", "B"), 0, ledger, master_sae_id=master, slave_sae_id=slave)


def _post(net: RunningNetwork, frames: list[bytes], *, as_kme: str = "A", **doc: Any) -> Any:
    """One relay entry in a relay message as KME ``as_kme``; (HTTP status, entry result)."""
    entry = {
        "initiator_sae_id": "sae-a",
        "target_sae_ids": ["sae-b"],
        "relay_path": ["A", "B"],
        "hop": 0,
        "link": "A-B",
        "frames": [base64.b64encode(f).decode() for f in frames],
    }
    entry.update(doc)
    response = net.raw("kmes", as_kme, "B", kmapi=True).post(
        "/kmapi/v1/ext_keys", json={"relays": [entry]}
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    return _Result(result.get("code", 200), result)


class _Result:
    def __init__(self, status_code: int, document: dict[str, Any]) -> None:
        self.status_code = status_code
        self.document = document
        self.text = json.dumps(document)

    def json(self) -> dict[str, Any]:
        return self.document


def _dec(
    net: RunningNetwork, key_id: str, slave: str = "sae-b", master: str = "sae-a"
) -> httpx.Response:
    return net.raw("saes", slave, "B").post(
        f"/api/v1/keys/{master}/dec_keys", json={"key_IDs": [{"key_ID": key_id}]}
    )


def test_forged_modified_and_replayed_frames_are_refused_and_use_nothing(
    pair_net: RunningNetwork,
) -> None:
    ledger = _ledger_past_use(pair_net)
    key_id, key = uuid.uuid4(), bytes(range(32))
    frame = _seal(key_id, key, ledger)

    forged = frame[:-1] + bytes([frame[-1] ^ 1])
    response = _post(pair_net, [forged])
    assert response.status_code == 401, response.text
    assert "does not authenticate" in response.json()["message"]
    # The padded key sits just before the tag: flip one of its bits.
    modified = bytearray(frame)
    modified[-17] ^= 0x80
    assert _post(pair_net, [bytes(modified)]).status_code == 401
    # A frame whose path disagrees with the message, or sent with another node's cert.
    assert _post(pair_net, [frame], relay_path=["B", "A"]).status_code == 403
    assert _post(pair_net, [frame], as_kme="B").status_code == 403
    # Malformed: not base64, truncated, missing fields.
    response = pair_net.raw("kmes", "A", "B", kmapi=True).post(
        "/kmapi/v1/ext_keys",
        json={"relays": [{"initiator_sae_id": "sae-a", "target_sae_ids": ["sae-b"],
              "relay_path": ["A", "B"], "hop": 0, "link": "A-B", "frames": ["***"]}]},
    )  # fmt: skip
    assert response.json()["results"][0]["code"] == 400
    assert _post(pair_net, [frame[:40]]).status_code == 400
    for body in ({}, {"relays": []}, {"relays": "x"}, []):
        empty = pair_net.raw("kmes", "A", "B", kmapi=True).post("/kmapi/v1/ext_keys", json=body)
        assert empty.status_code == 400
    assert _post(pair_net, [frame], hop="0").status_code == 400
    # Nothing was stored for the key_ID ...
    assert _dec(pair_net, str(key_id)).status_code == 400
    # ... and nothing consumed: the genuine frame over the same link key is accepted.
    accepted = _post(pair_net, [frame])
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"status": "relayed", "key_IDs": [str(key_id)]}
    # The replay is refused, and B still serves the one key it stored.
    replay = _post(pair_net, [frame])
    assert replay.status_code == 409
    assert "already used" in replay.json()["message"]
    assert keys_of(_dec(pair_net, str(key_id))) == [(str(key_id), key, ["A", "B"])]


def test_one_bad_frame_refuses_the_whole_message(pair_net: RunningNetwork) -> None:
    ledger = _ledger_past_use(pair_net)
    # Skip the slots the previous test used.
    ledger.consume(ledger.size - 256, 128)
    good_id, bad_id = uuid.uuid4(), uuid.uuid4()
    good = _seal(good_id, b"k" * 32, ledger)
    bad = _seal(bad_id, b"x" * 32, ledger)
    bad = bad[:-1] + bytes([bad[-1] ^ 0xFF])
    assert _post(pair_net, [good, bad]).status_code == 401
    assert _dec(pair_net, str(good_id)).status_code == 400
    assert _post(pair_net, [good]).status_code == 200
    assert keys_of(_dec(pair_net, str(good_id)))[0][1] == b"k" * 32


def test_modified_sae_ids_are_refused_and_use_nothing(pair_net: RunningNetwork) -> None:
    """The SAE IDs that decide who fetches the key at B are under the tag, not only TLS's.

    An adversary inside the inter-KME channel (TLS broken or a bad certificate) who names
    another SAE at B, in the entry, in the frame or in both, gets the entry refused; no link
    key is used and nothing is stored, for the real or the named SAE.
    """
    ledger = _ledger_past_use(pair_net)
    key_id, key = uuid.uuid4(), bytes(range(100, 132))
    frame = _seal(key_id, key, ledger)
    body, tag = frame[:-16], frame[-16:]
    assert body[17:29] == b"\x05sae-a\x05sae-b"  # version, key_ID, then the two SAE IDs

    # The entry names other SAEs, the frame the genuine ones.
    for doc in (
        {"target_sae_ids": ["sae-x"]},
        {"initiator_sae_id": "sae-a2"},
        {"initiator_sae_id": "sae-a2", "target_sae_ids": ["sae-x"]},
    ):
        response = _post(pair_net, [frame], **doc)
        assert response.status_code == 401, response.text
        assert "SAE ID differs" in response.json()["message"]
    # The frame's SAE IDs rewritten (same lengths), with the entry matching them or not.
    for master, slave in (("sae-a", "sae-x"), ("sae-a2", "sae-b")):
        raw_master, raw_slave = master.encode(), slave.encode()
        changed = (
            body[:17]
            + bytes([len(raw_master)])
            + raw_master
            + bytes([len(raw_slave)])
            + raw_slave
            + body[29:]
        )
        for doc in ({}, {"initiator_sae_id": master, "target_sae_ids": [slave]}):
            response = _post(pair_net, [changed + tag], **doc)
            assert response.status_code == 401, response.text
    # Nothing stored: neither the SAE named by the attacker nor the genuine one has the key.
    assert _dec(pair_net, str(key_id), slave="sae-x").status_code == 400
    assert _dec(pair_net, str(key_id), master="sae-a2").status_code == 400
    assert _dec(pair_net, str(key_id)).status_code == 400
    # Nothing consumed: the genuine frame is accepted and only sae-b gets the key, from sae-a.
    accepted = _post(pair_net, [frame])
    assert accepted.json() == {"status": "relayed", "key_IDs": [str(key_id)]}
    assert _dec(pair_net, str(key_id), slave="sae-x").status_code != 200
    assert keys_of(_dec(pair_net, str(key_id))) == [(str(key_id), key, ["A", "B"])]


# ------------------------------------------------------------------------ vendor link


def test_link_key_from_a_vendor_kme_pair_over_etsi014(tmp_path: Path) -> None:
    """The link A-B takes its key from a real `agile kme serve` pair process ("the vendor")."""
    vendor = tmp_path / "vendor"
    agile = [sys.executable, "-m", "agile.cli", "kme"]
    subprocess.run([*agile, "certs", "--out", str(vendor)], check=True, capture_output=True)
    process = subprocess.Popen(
        [
            *agile,
            "serve",
            "--certs",
            str(vendor),
            "--listen-a",
            "127.0.0.1:0",
            "--listen-b",
            "127.0.0.1:0",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        addresses = json.loads(line)
        ends = {
            node: {
                "url": f"https://{addresses[f'kme_{end}']}",
                "sae_id": f"sae-{end}",
                "peer_sae_id": f"sae-{other}",
                "cert": str(vendor / f"sae-{end}.pem"),
                "key": str(vendor / f"sae-{end}.key"),
                "ca": str(vendor / "ca.pem"),
            }
            for node, end, other in (("A", "a", "b"), ("B", "b", "a"))
        }
        toml = network_toml("vendor", {"A": ["app-a"], "B": ["app-b"]}, [("A", "B")])
        net = start_network(
            tmp_path / "net", toml, links={"A-B": {"source": "etsi014", "ends": ends}}
        )
        try:
            net.wait_links_up(min_bits=40_000)
            link = net.link("A-B")
            assert link["source"] == "etsi014"
            response = wait_until(
                lambda: (
                    (
                        r := net.raw("saes", "app-a", "A").post(
                            "/api/v1/keys/app-b/enc_keys", json={"number": 4}
                        )
                    ).status_code
                    == 200
                    and r
                ),
                what="keys over the vendor link",
            )
            sent = keys_of(response)
            got = net.raw("saes", "app-b", "B").post(
                "/api/v1/keys/app-a/dec_keys",
                json={"key_IDs": [{"key_ID": k} for k, _, _ in sent]},
            )
            assert keys_of(got) == sent
            assert all(path == ["A", "B"] for _, _, path in sent)
        finally:
            net.close()
    finally:
        process.terminate()
        process.wait(20)
        if process.stdout is not None:
            process.stdout.close()
