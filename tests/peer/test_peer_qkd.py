"""QKD keys across two processes: ``agile peer`` on both hosts, each with its own ETSI GS QKD
014 KME (``agile kme serve``, mutual TLS on 127.0.0.1), under a policy that requires QKD.

A simulated link lives inside one process, so this is how two daemons get QKD keys: the
connecting host (master SAE ``sae-a``) asks KME A for keys, the listening host (``sae-b``)
fetches the same keys by ID from KME B.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.peer.conftest import Identities, Processes, Running, poll_until

POLICY = """
extends = "qkd-required-latest"
name = "qkd-host-{side}"
version = "1"

[auth]
signature_algorithms = ["ML-DSA-65"]

[qkd]
source = "etsi014"

[qkd.etsi014]
kme_url = "https://{kme}"
sae_id = "{me}"
peer_sae_id = "{peer}"
cert = "certs/{me}.pem"
key = "certs/{me}.key"
ca = "certs/ca.pem"
"""


def test_two_daemons_rotate_keys_that_include_qkd_keys_from_a_kme_pair(
    processes: Processes, identities: Identities, tmp_path: Path
) -> None:
    certs = processes.agile("kme", "certs", "--out", "certs")
    assert certs.wait() == 0, certs.stderr
    kme = processes.agile(
        "kme", "serve", "--certs", "certs", "--listen-a", "127.0.0.1:0",
        "--listen-b", "127.0.0.1:0", "--json",
    )  # fmt: skip
    addresses = json.loads(kme.wait_for_line(r"^\{.*kme_a.*\}$").group(0))
    for side, me, peer in (("a", "sae-a", "sae-b"), ("b", "sae-b", "sae-a")):
        (tmp_path / f"qkd-{side}.toml").write_text(
            POLICY.format(side=side, kme=addresses[f"kme_{side}"], me=me, peer=peer)
        )
    common = ["--interval", "0.5", "--grace", "0.2", "--json"]
    listener = processes.agile(
        "peer", "--policy", "qkd-b.toml", *identities.args_b(), "--listen", "127.0.0.1:0",
        "--sink", "wireguard:b.psk:wg0", *common,
    )  # fmt: skip
    address = listener.wait_for_line(r'"address": "(127\.0\.0\.1:\d+)"').group(1)
    connector = processes.agile(
        "peer", "--policy", "qkd-a.toml", *identities.args_a(), "--connect", address,
        "--sink", "wireguard:a.psk:wg0", *common,
    )  # fmt: skip

    poll_until(lambda: len(_rotations(listener)) >= 3 and len(_rotations(connector)) >= 3)
    connector.stop()
    listener.stop()
    theirs = _rotations(listener)
    ours = _rotations(connector)[: len(theirs)]
    assert all(e["qkd_used"] and "QKD" in e["suite"] for e in theirs)
    assert [e["qkd_key_ids"] for e in ours] == [e["qkd_key_ids"] for e in theirs]
    key_ids = [tuple(e["qkd_key_ids"]) for e in theirs]
    assert len(set(key_ids)) == len(key_ids), "every rotation consumes fresh QKD keys"
    assert [k["key_id"] for e in ours for k in e["keys"]] == [
        k["key_id"] for e in theirs for k in e["keys"]
    ]
    assert (tmp_path / "a.psk").read_bytes() == (tmp_path / "b.psk").read_bytes()


def _rotations(process: Running) -> list[dict[str, Any]]:
    return [e for e in process.json_lines() if e["event"] == "rotated"]
