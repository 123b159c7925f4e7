"""A network of KMEs as real processes: relay over a 4-node chain and rerouting on a ring."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qkd.delivery.kme.certs import write_network_certificates
from qkd.network.launcher import set_link, start_node, stop_node, wait_listening
from tests.network.netproc import (
    RunningNetwork,
    keys_of,
    network_toml,
    start_network,
    wait_until,
)

CHAIN = network_toml(
    "chain4",
    {"A": ["sae-a", "sae-a2"], "B": ["sae-b"], "C": [], "D": ["sae-d", "sae-d2"]},
    [("A", "B"), ("B", "C"), ("C", "D")],
)
RING = network_toml(
    "ring4",
    {"A": ["sae-a"], "B": [], "C": ["sae-c"], "D": []},
    [("A", "B"), ("B", "C"), ("C", "D"), ("A", "D")],
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNetwork]:
    net = start_network(tmp_path_factory.mktemp("chain"), CHAIN)
    try:
        net.wait_links_up()
        yield net
    finally:
        net.close()


def _enc(net: RunningNetwork, sae: str, node: str, slave: str, **body: object) -> httpx.Response:
    return net.raw("saes", sae, node).post(f"/api/v1/keys/{slave}/enc_keys", json=body)


def _dec(net: RunningNetwork, sae: str, node: str, master: str, ids: list[str]) -> httpx.Response:
    body = {"key_IDs": [{"key_ID": i} for i in ids]}
    return net.raw("saes", sae, node).post(f"/api/v1/keys/{master}/dec_keys", json=body)


def test_certificates_name_the_kme_or_sae_in_cn_and_their_role_in_ou(tmp_path: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    written = write_network_certificates(tmp_path, network="n", kmes=["A", "B"], saes=["app"])
    assert set(written) == {"ca", "KME:A", "KME:B", "SAE:app", "operator:operator"}
    kme = x509.load_pem_x509_certificate((tmp_path / "kmes" / "A" / "cert.pem").read_bytes())
    sae = x509.load_pem_x509_certificate((tmp_path / "saes" / "app" / "cert.pem").read_bytes())
    unit = NameOID.ORGANIZATIONAL_UNIT_NAME
    assert kme.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "A"
    assert kme.subject.get_attributes_for_oid(unit)[0].value == "KME"
    assert sae.subject.get_attributes_for_oid(unit)[0].value == "SAE"
    usages = kme.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert oct((tmp_path / "kmes" / "A" / "key.pem").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(ValueError, match="both a KME node and an SAE"):
        write_network_certificates(tmp_path / "x", network="n", kmes=["A"], saes=["A"])


def test_enc_keys_at_one_end_and_dec_keys_at_the_other_give_the_same_keys(
    chain: RunningNetwork,
) -> None:
    sent = keys_of(_enc(chain, "sae-a", "A", "sae-d", number=5, size=512))
    assert len(sent) == 5
    assert len({k for _, k, _ in sent}) == 5
    assert all(path == ["A", "B", "C", "D"] and len(key) == 64 for _, key, path in sent)
    got = keys_of(_dec(chain, "sae-d", "D", "sae-a", [i for i, _, _ in sent]))
    assert got == sent
    # Once only, and only to the named slave.
    again = _dec(chain, "sae-d", "D", "sae-a", [sent[0][0]])
    assert again.status_code == 400
    assert "already delivered" in again.json()["message"]
    more = keys_of(_enc(chain, "sae-a", "A", "sae-d", number=1))
    other = _dec(chain, "sae-d2", "D", "sae-a", [more[0][0]])
    assert other.status_code == 400
    assert "keys" not in other.json()
    assert keys_of(_dec(chain, "sae-d", "D", "sae-a", [more[0][0]])) == more


def test_the_library_client_works_against_any_node_in_either_direction(
    chain: RunningNetwork,
) -> None:
    master = chain.client("sae-d", "D", "sae-b")
    slave = chain.client("sae-b", "B", "sae-d")
    status = master.status()
    assert (status.source_kme_id, status.target_kme_id) == ("D", "B")
    assert status.stored_key_count > 0
    keys = master.get_keys(3)
    assert slave.get_keys_by_id([k.key_id for k in keys]) == keys
    # SAEs at the same node share keys without any relay.
    local = keys_of(_enc(chain, "sae-a", "A", "sae-a2", number=2))
    assert all(path == ["A"] for _, _, path in local)
    assert keys_of(_dec(chain, "sae-a2", "A", "sae-a", [i for i, _, _ in local])) == local


def test_relay_at_every_node_keeps_every_link_key_byte_used_once(chain: RunningNetwork) -> None:
    before = {x["id"]: x["pool_bits"] for x in chain.status()["links"]}
    for _ in range(5):
        keys_of(_enc(chain, "sae-a", "A", "sae-d", number=20))
    # The pools only shrink by use (or grow by the feed); the receiving ends never take a
    # frame twice: a replay of any frame is refused (test_node_attacks), here the figures.
    after = chain.status()
    assert all(x["up"] and not x["alarm"] for x in after["links"])
    assert set(before) == {x["id"] for x in after["links"]}


def test_a_dead_node_on_the_path_gives_503_and_no_key(chain: RunningNetwork) -> None:
    stop_node(chain.state, "C", kill=True)
    try:
        response = wait_until(
            lambda: (r := _enc(chain, "sae-a", "A", "sae-d", number=1)).status_code == 503 and r,
            what="503 with C down",
        )
        message = response.json()["message"]
        assert "D" in message
        assert "C-D" in message or "B-C" in message or "C" in message
        assert "keys" not in response.json()
    finally:
        start_node(chain.file, chain.state, "C")
        wait_listening(chain.state, ["C"])
    chain.wait_links_up()
    sent = wait_until(
        lambda: (r := _enc(chain, "sae-a", "A", "sae-d", number=2)).status_code == 200 and r,
        what="relay after restart",
    )
    keys = keys_of(sent)
    assert keys_of(_dec(chain, "sae-d", "D", "sae-a", [i for i, _, _ in keys])) == keys


def test_an_sae_certificate_cannot_use_the_inter_kme_api(chain: RunningNetwork) -> None:
    response = chain.raw("saes", "sae-a", "B", kmapi=True).get("/kmapi/v1/status")
    assert response.status_code == 403
    assert chain.raw("kmes", "A", "B", kmapi=True).get("/kmapi/v1/status").status_code == 200
    assert chain.raw("operator", "", "B", kmapi=True).get("/kmapi/v1/status").status_code == 200
    # An operator may read and administer, never relay.
    relay = chain.raw("operator", "", "B", kmapi=True).post("/kmapi/v1/ext_keys", json={})
    assert relay.status_code == 404


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(
    chain: RunningNetwork, tmp_path: Path
) -> None:
    from qkd.delivery.etsi014 import client_ssl_context

    write_network_certificates(tmp_path, network="other", kmes=["A"], saes=["sae-a"])
    context = client_ssl_context(
        tmp_path / "kmes" / "A" / "cert.pem",
        tmp_path / "kmes" / "A" / "key.pem",
        chain.state / "ca.pem",
    )
    with httpx.Client(verify=context, timeout=10) as client:
        for url in (chain.kmapi_url("B") + "/kmapi/v1/status", chain.url("A") + "/"):
            with pytest.raises(httpx.HTTPError):
                client.get(url)


# ------------------------------------------------------------------------ the ring


@pytest.fixture
def ring(tmp_path: Path) -> Iterator[RunningNetwork]:
    net = start_network(tmp_path, RING)
    try:
        net.wait_links_up()
        yield net
    finally:
        net.close()


def _path(net: RunningNetwork) -> list[str]:
    response = _enc(net, "sae-a", "A", "sae-c", number=1)
    keys = keys_of(response)
    assert keys_of(_dec(net, "sae-c", "C", "sae-a", [keys[0][0]])) == keys
    return keys[0][2]


def _link_of(path: list[str]) -> str:
    first, second = path[0], path[1]
    return f"{min(first, second)}-{max(first, second)}"


def test_on_a_ring_a_cut_or_an_alarm_reroutes_and_no_path_gives_503(
    ring: RunningNetwork,
) -> None:
    first = _path(ring)
    assert first in (["A", "B", "C"], ["A", "D", "C"])
    cut = _link_of(first)
    assert all(a["status"] == 200 for a in set_link(ring.state, cut, cut=True))
    second = wait_until(lambda: (p := _path_or_none(ring)) and p != first and p, what="reroute")
    assert second[1] != first[1]
    # An eavesdropper on the other path: QBER alarm, no path left, 503 naming the cause.
    eve = _link_of(second)
    set_link(ring.state, eve, eve=True)
    link = ring.link(eve)
    assert link["alarm"]
    assert link["qber"] > 0.11
    response = wait_until(
        lambda: (r := _enc(ring, "sae-a", "A", "sae-c", number=1)).status_code == 503 and r,
        what="503 with no path",
    )
    message = response.json()["message"]
    assert "no path from A to C" in message
    assert "alarm" in message
    assert cut in message
    # The audit trail of A shows the reroute, the alarm and the starvation.
    events = {e["event"] for e in ring.audit("A")}
    assert {"reroute", "link_alarm", "starvation"} <= events
    reroute = next(e for e in ring.audit("A") if e["event"] == "reroute")
    assert reroute["previous"] == first
    assert reroute["path"] == second
    # Lifting the cut brings keys back over the first path.
    set_link(ring.state, cut, cut=False)
    assert wait_until(lambda: _path_or_none(ring), timeout=20, what="path back") == first


def _path_or_none(net: RunningNetwork) -> list[str] | None:
    response = _enc(net, "sae-a", "A", "sae-c", number=1)
    if response.status_code != 200:
        return None
    keys = keys_of(response)
    assert keys_of(_dec(net, "sae-c", "C", "sae-a", [keys[0][0]])) == keys
    return keys[0][2]


def test_net_down_stops_every_node(tmp_path: Path) -> None:
    net = start_network(tmp_path, network_toml("two", {"A": ["x"], "B": ["y"]}, [("A", "B")]))
    pids = [int((net.state / "nodes" / n / "pid").read_text()) for n in ("A", "B")]
    net.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_each_node_exposes_prometheus_metrics(chain: RunningNetwork) -> None:
    pytest.importorskip("prometheus_client")
    keys_of(_enc(chain, "sae-a", "A", "sae-d", number=3))
    response = chain.raw("operator", "", "A", kmapi=True).get("/kmapi/v1/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        'qkd_link_pool_bits{direction="A>B",link="A-B"}',
        'qkd_link_qber{link="A-B"}',
        'qkd_link_alarm{link="A-B"} 0.0',
        'qkd_link_up{link="A-B"} 1.0',
        "qkd_relayed_keys_total",
        "qkd_relay_latency_seconds_bucket",
        "qkd_link_alarms_total",
    ):
        assert name in text, name
    relayed = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("qkd_relayed_keys_total")
    )
    assert relayed >= 3
    sae = chain.raw("saes", "sae-a", "A", kmapi=True).get("/kmapi/v1/metrics")
    assert sae.status_code == 403


def test_eve_at_a_set_time_raises_the_alarm_then(chain: RunningNetwork) -> None:
    answers = set_link(chain.state, "C-D", in_s=0.5, eve=True)
    assert all(a["status"] == 200 and a["scheduled_in_s"] == 0.5 for a in answers)
    try:
        assert not chain.link("C-D")["alarm"]
        wait_until(lambda: chain.link("C-D")["alarm"], what="the scheduled alarm")
        # Before A's view has the alarm, the relay fails at C (503 naming C); then A refuses.
        response = wait_until(
            lambda: (
                (r := _enc(chain, "sae-a", "A", "sae-d", number=1)).status_code == 503
                and "C-D in alarm" in r.json()["message"]
                and r
            ),
            what="503 naming the alarm",
        )
        assert response.json()["message"].startswith("no path from A to D")
    finally:
        set_link(chain.state, "C-D", eve=False)
    wait_until(lambda: _enc(chain, "sae-a", "A", "sae-d", number=1).status_code == 200)


def test_used_link_key_is_trimmed_and_a_restart_still_relays(tmp_path: Path) -> None:
    """Link key that was used leaves memory and the store (both ends, both directions kept
    apart); a node restarted on a trimmed store loads the live halves and relays on."""
    import sqlite3

    net = start_network(
        tmp_path,
        network_toml(
            "trim3",
            {"A": ["sae-a"], "B": [], "C": ["sae-c"]},
            [("A", "B"), ("B", "C")],
            rate_bps=4e7,
        ),
    )
    try:
        net.wait_links_up(min_bits=2_000_000)
        for _ in range(12):  # 1,536 keys of 512 bits: 96 bytes of link key each, per hop
            sent = keys_of(_enc(net, "sae-a", "A", "sae-c", number=128, size=512))
            assert keys_of(_dec(net, "sae-c", "C", "sae-a", [i for i, _, _ in sent])) == sent

        def lowest(node: str, direction: str) -> int:
            with sqlite3.connect(net.state / "nodes" / node / "store.sqlite") as db:
                row = db.execute(
                    "SELECT MIN(start) FROM link_blocks WHERE link = 'A-B' AND dir = ?",
                    (direction,),
                ).fetchone()
            return int(row[0] or 0)

        # A sent (and B received) 147 KB over A-B: both forget the first blocks of A>B.
        wait_until(lambda: lowest("A", "A>B") > 0 and lowest("B", "A>B") > 0, what="a trim")
        assert lowest("B", "B>A") == 0 == lowest("A", "B>A")  # nothing used that way

        def b_to_a() -> int:  # the bytes B holds to send to A (B>A)
            doc = net.raw("operator", "operator", "B", kmapi=True).get("/kmapi/v1/status")
            return int(doc.json()["links"]["A-B"]["send_available_bytes"])

        before = b_to_a()
        stop_node(net.state, "B", kill=True)
        start_node(net.file, net.state, "B")
        wait_listening(net.state, ["B"])
        net.wait_links_up()
        # B>A blocks whose A>B half was trimmed are loaded too: nothing unused is lost.
        assert b_to_a() >= before
        again = wait_until(
            lambda: (r := _enc(net, "sae-a", "A", "sae-c", number=4)).status_code == 200 and r,
            what="relay after the restart",
        )
        keys = keys_of(again)
        assert keys_of(_dec(net, "sae-c", "C", "sae-a", [i for i, _, _ in keys])) == keys
    finally:
        net.close()
