"""The pair's ETSI GS QKD 014 conformance checks, run against two nodes of a network.

The same request bodies and expectations as tests/kme/test_kme_protocol.py, where a network
behaves as the pair does: KME KA serves sae-a, KME KB serves sae-b and sae-e; the keys between
them are relayed over the link KA-KB. What differs, by design: KME IDs are node names, and
``stored_key_count`` is what the current path could carry.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qkd import KeyExhausted, KeyNotFound, KMEError
from tests.kme.test_kme_protocol import MALFORMED_DEC_BODIES, MALFORMED_ENC_BODIES
from tests.network.netproc import RunningNetwork, network_toml, start_network, wait_until

ENC = "/api/v1/keys/sae-b/enc_keys"
DEC = "/api/v1/keys/sae-a/dec_keys"
NODES = {"a": "KA", "b": "KB"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNetwork]:
    toml = network_toml("etsi", {"KA": ["sae-a"], "KB": ["sae-b", "sae-e"]}, [("KA", "KB")])
    running = start_network(tmp_path_factory.mktemp("etsi"), toml)
    try:
        running.wait_links_up()
        yield running
    finally:
        running.close()


def raw(net: RunningNetwork, sae: str, kme: str) -> httpx.Client:
    if sae == "operator":
        return net.raw("operator", "", NODES[kme])
    return net.raw("saes", sae, NODES[kme])


def _assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    document = response.json()
    assert isinstance(document["message"], str)
    assert document["message"]
    assert "keys" not in document
    if "details" in document:
        assert isinstance(document["details"], list)


def test_status_carries_the_standard_fields(net: RunningNetwork) -> None:
    client = net.client("sae-a", "KA", "sae-b")
    # As with the pair, wait for key: here, until KA's view of the network has the link.
    status = wait_until(lambda: (s := client.status()).stored_key_count > 0 and s)
    assert (status.source_kme_id, status.target_kme_id) == ("KA", "KB")
    assert (status.master_sae_id, status.slave_sae_id) == ("sae-a", "sae-b")
    assert status.key_size == 256
    assert 1 <= status.stored_key_count <= status.max_key_count
    assert status.max_key_per_request == 128
    assert (status.min_key_size, status.max_key_size) == (64, 8192)
    assert status.max_sae_id_count == 0


@pytest.mark.parametrize("use_post", [True, False])
@pytest.mark.parametrize("size", [None, 64, 256, 264, 1024, 8192])
def test_master_and_slave_get_the_same_bytes(
    net: RunningNetwork, use_post: bool, size: int | None
) -> None:
    master = net.client("sae-a", "KA", "sae-b", use_post=use_post)
    slave = net.client("sae-b", "KB", "sae-a", use_post=use_post)
    number = 3 if use_post else 1
    keys = master.get_keys(number, size)
    assert len(keys) == number
    assert all(k.size_bits == (size or 256) for k in keys)
    assert len({k.key for k in keys}) == number
    assert slave.get_keys_by_id([k.key_id for k in keys]) == keys


def test_either_sae_may_be_master_and_directions_do_not_share_keys(net: RunningNetwork) -> None:
    from_a = net.client("sae-a", "KA", "sae-b").get_keys(16)
    from_b = net.client("sae-b", "KB", "sae-a").get_keys(16)
    assert not {k.key_id for k in from_a} & {k.key_id for k in from_b}
    assert net.client("sae-a", "KA", "sae-b").get_keys_by_id([k.key_id for k in from_b]) == from_b


def test_a_key_goes_to_the_named_slave_once_and_to_nobody_else(net: RunningNetwork) -> None:
    key = net.client("sae-a", "KA", "sae-b").get_keys(1)[0]
    body = {"key_IDs": [{"key_ID": key.key_id}]}
    intruder = raw(net, "sae-e", "b").post(DEC, json=body)
    assert intruder.status_code == 400
    assert "keys" not in intruder.json()
    assert raw(net, "sae-a", "b").post("/api/v1/keys/sae-a/dec_keys", json=body).status_code == 401
    assert raw(net, "sae-a", "a").post("/api/v1/keys/sae-a/dec_keys", json=body).status_code == 401
    first = raw(net, "sae-b", "b").post(DEC, json=body)
    assert first.status_code == 200
    assert first.json()["keys"][0]["key_ID"] == key.key_id
    second = raw(net, "sae-b", "b").post(DEC, json=body)
    assert second.status_code == 400
    assert "already delivered" in second.json()["message"]


def test_sae_identity_comes_from_the_client_certificate(net: RunningNetwork) -> None:
    response = raw(net, "sae-b", "a").post("/api/v1/keys/sae-b/enc_keys", json={"number": 1})
    assert response.status_code == 401
    assert response.json()["message"]
    # A valid certificate of the network that names no SAE of this node.
    assert raw(net, "operator", "a").get("/api/v1/keys/sae-b/status").status_code == 401


def test_the_slave_must_name_the_right_master(net: RunningNetwork) -> None:
    key = net.client("sae-a", "KA", "sae-b").get_keys(1)[0]
    with pytest.raises(KeyNotFound) as exc:
        net.client("sae-e", "KB", "sae-a").get_keys_by_id([key.key_id])
    assert exc.value.status == 400
    assert exc.value.details == [{"key_ID": key.key_id}]
    assert net.client("sae-b", "KB", "sae-a").get_keys_by_id([key.key_id]) == [key]


@pytest.mark.parametrize("body", MALFORMED_ENC_BODIES, ids=repr)
def test_malformed_enc_keys_requests_get_400(net: RunningNetwork, body: Any) -> None:
    client = raw(net, "sae-a", "a")
    if isinstance(body, bytes):
        response = client.post(ENC, content=body, headers={"Content-Type": "application/json"})
    else:
        response = client.post(ENC, json=body)
    _assert_error(response, 400)


@pytest.mark.parametrize("body", MALFORMED_DEC_BODIES, ids=lambda b: repr(b)[:60])
def test_malformed_dec_keys_requests_get_400(net: RunningNetwork, body: Any) -> None:
    client = raw(net, "sae-b", "b")
    if isinstance(body, bytes):
        response = client.post(DEC, content=body)
    else:
        response = client.post(DEC, json=body)
    _assert_error(response, 400)


@pytest.mark.parametrize(
    ("sae", "kme", "method", "path"),
    [
        ("sae-a", "a", "GET", "/api/v1/keys/nobody/status"),
        ("sae-a", "a", "POST", "/api/v1/keys/nobody/enc_keys"),
        ("sae-a", "a", "POST", "/api/v1/keys/sae-d/enc_keys"),
        ("sae-a", "a", "POST", "/api/v1/keys/sae-a/enc_keys"),
        ("sae-b", "b", "POST", "/api/v1/keys/nobody/dec_keys"),
        ("sae-a", "b", "GET", "/api/v1/keys/sae-b/status"),
        ("operator", "b", "POST", "/api/v1/keys/sae-a/dec_keys"),
    ],
)
def test_unknown_saes_get_401(
    net: RunningNetwork, sae: str, kme: str, method: str, path: str
) -> None:
    body = {"key_IDs": [{"key_ID": str(uuid.uuid4())}]} if "dec" in path else {"number": 1}
    response = raw(net, sae, kme).request(method, path, json=None if method == "GET" else body)
    _assert_error(response, 401)


def test_unknown_paths_methods_and_oversized_bodies(net: RunningNetwork) -> None:
    client = raw(net, "sae-a", "a")
    _assert_error(client.get("/"), 404)
    _assert_error(client.get("/api/v1/keys/sae-b/other"), 404)
    _assert_error(client.put(ENC, json={}), 405)
    _assert_error(client.post("/api/v1/keys/sae-b/status", json={}), 405)
    response = client.post(ENC, content=b"{" + b" " * 70_000 + b"}")
    assert response.status_code in (400, 413)


def test_errors_carry_the_kmes_message_and_details(net: RunningNetwork) -> None:
    with pytest.raises(KMEError) as exc:
        net.client("sae-a", "KA", "sae-b").get_keys(1, 100_000)
    assert exc.value.status == 400
    assert "max_key_size" in exc.value.message
    assert exc.value.details == [{"size": 100_000}]
    response = raw(net, "sae-a", "a").post(ENC, content=b"{")
    assert response.headers["content-type"] == "application/json"
    assert set(json.loads(response.content)) <= {"message", "details"}


def test_a_path_that_cannot_carry_the_request_answers_503(net: RunningNetwork) -> None:
    # The pair answers 503 when its pool cannot serve; a node, when no path can: cut the
    # only link (and mend it afterwards).
    from qkd.network.launcher import set_link

    set_link(net.state, "KA-KB", cut=True)
    try:
        with pytest.raises(KeyExhausted) as exc:
            net.client("sae-a", "KA", "sae-b").get_keys(1)
        assert exc.value.status == 503
        assert "KA-KB" in exc.value.message
    finally:
        set_link(net.state, "KA-KB", cut=False)
