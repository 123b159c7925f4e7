"""ETSI GS QKD 014 semantics of the local KME pair, over real mutual TLS on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qkd import KeyExhausted, KeyNotFound, KMEError
from qkd.delivery.etsi014 import client_ssl_context
from tests.kme.conftest import RunningPair, wait_for_keys


@pytest.fixture
def raw(pair: RunningPair) -> Iterator[Any]:
    """raw(sae, kme) -> an httpx.Client speaking mutual TLS as ``sae`` to KME ``kme``."""
    clients: list[httpx.Client] = []

    def make(sae: str, kme: str = "a") -> httpx.Client:
        context = client_ssl_context(
            pair.certs / f"{sae}.pem", pair.certs / f"{sae}.key", pair.certs / "ca.pem"
        )
        url = pair.url_a if kme == "a" else pair.url_b
        client = httpx.Client(base_url=url, verify=context, timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _keys(response: httpx.Response) -> list[tuple[str, bytes]]:
    assert response.status_code == 200, response.text
    return [(k["key_ID"], base64.b64decode(k["key"])) for k in response.json()["keys"]]


def test_status_carries_the_standard_fields(pair: RunningPair) -> None:
    with pair.client("sae-a", "a", "sae-b") as master:
        wait_for_keys(master, 1)
        status = master.status()
    assert status.source_kme_id == "KME-A"
    assert status.target_kme_id == "KME-B"
    assert (status.master_sae_id, status.slave_sae_id) == ("sae-a", "sae-b")
    assert status.key_size == 256
    assert 1 <= status.stored_key_count <= status.max_key_count == 10_000
    assert status.max_key_per_request == 128
    assert (status.min_key_size, status.max_key_size) == (64, 8192)
    assert status.max_sae_id_count == 0
    assert set(status.to_json()) >= {
        "source_KME_ID",
        "target_KME_ID",
        "master_SAE_ID",
        "slave_SAE_ID",
        "key_size",
        "stored_key_count",
        "max_key_count",
        "max_key_per_request",
        "max_key_size",
        "min_key_size",
        "max_SAE_ID_count",
    }


@pytest.mark.parametrize("use_post", [True, False])
@pytest.mark.parametrize("size", [None, 64, 256, 264, 1024, 8192])
def test_master_and_slave_get_the_same_bytes(
    pair: RunningPair, use_post: bool, size: int | None
) -> None:
    with (
        pair.client("sae-a", "a", "sae-b", use_post=use_post) as master,
        pair.client("sae-b", "b", "sae-a", use_post=use_post) as slave,
    ):
        wait_for_keys(master, 256)
        number = 3 if use_post else 1
        keys = master.get_keys(number, size)
        assert len(keys) == number
        assert all(k.size_bits == (size or 256) for k in keys)
        assert len({k.key for k in keys}) == number
        assert slave.get_keys_by_id([k.key_id for k in keys]) == keys


def test_either_sae_may_be_master_and_directions_do_not_share_keys(pair: RunningPair) -> None:
    with (
        pair.client("sae-a", "a", "sae-b") as a_master,
        pair.client("sae-b", "b", "sae-a") as b_as_master,
        pair.client("sae-a", "a", "sae-b") as a_as_slave,
    ):
        wait_for_keys(a_master, 16)
        wait_for_keys(b_as_master, 16)
        from_a = a_master.get_keys(16)
        from_b = b_as_master.get_keys(16)
        assert not {k.key_id for k in from_a} & {k.key_id for k in from_b}
        assert a_as_slave.get_keys_by_id([k.key_id for k in from_b]) == from_b


def test_a_key_goes_to_the_named_slave_once_and_to_nobody_else(pair: RunningPair, raw: Any) -> None:
    with pair.client("sae-a", "a", "sae-b") as master:
        wait_for_keys(master, 1)
        key = master.get_keys(1)[0]
    body = {"key_IDs": [{"key_ID": key.key_id}]}
    # sae-e is on the same link, but the master named sae-b.
    intruder = raw("sae-e", "b").post("/api/v1/keys/sae-a/dec_keys", json=body)
    assert intruder.status_code == 400
    assert "keys" not in intruder.json()
    # The master itself cannot fetch the slave's copy, at either KME.
    assert raw("sae-a", "b").post("/api/v1/keys/sae-a/dec_keys", json=body).status_code == 401
    assert raw("sae-a", "a").post("/api/v1/keys/sae-a/dec_keys", json=body).status_code == 401
    # Another pair's SAE is not registered with sae-a at all.
    assert raw("sae-d", "b").post("/api/v1/keys/sae-a/dec_keys", json=body).status_code == 401
    first = raw("sae-b", "b").post("/api/v1/keys/sae-a/dec_keys", json=body)
    assert _keys(first) == [(key.key_id, key.key)]
    second = raw("sae-b", "b").post("/api/v1/keys/sae-a/dec_keys", json=body)
    assert second.status_code == 400
    assert "already delivered" in second.json()["message"]
    assert "keys" not in second.json()


def test_sae_identity_comes_from_the_client_certificate(pair: RunningPair, raw: Any) -> None:
    # sae-b's certificate against KME A: whatever the path says, it is not sae-a.
    response = raw("sae-b", "a").post("/api/v1/keys/sae-b/enc_keys", json={"number": 1})
    assert response.status_code == 401
    assert response.json()["message"]
    # An SAE with a valid certificate but registered on no link.
    assert raw("sae-x", "a").get("/api/v1/keys/sae-b/status").status_code == 401


def test_the_slave_must_name_the_right_master(pair: RunningPair) -> None:
    with (
        pair.client("sae-a", "a", "sae-b") as master,
        pair.client("sae-e", "b", "sae-a") as other_slave,
        pair.client("sae-b", "b", "sae-a") as slave,
    ):
        wait_for_keys(master, 1)
        key = master.get_keys(1)[0]
        with pytest.raises(KeyNotFound) as exc:
            other_slave.get_keys_by_id([key.key_id])
        assert exc.value.status == 400
        assert exc.value.details == [{"key_ID": key.key_id}]
        assert slave.get_keys_by_id([key.key_id]) == [key]


def _assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    document = response.json()
    assert isinstance(document["message"], str)
    assert document["message"]
    assert "keys" not in document
    if "details" in document:
        assert isinstance(document["details"], list)
        assert all(isinstance(d, dict) for d in document["details"])


ENC = "/api/v1/keys/sae-b/enc_keys"
DEC = "/api/v1/keys/sae-a/dec_keys"

MALFORMED_ENC_BODIES: list[Any] = [
    b"{not json",
    b"[" * 60_000,
    b'{"number": 1e999}',
    b'{"number": 1, "number": 2, "size": NaN}',
    b"[1, 2]",
    b'"text"',
    b"\xff\xfe",
    {"number": "1"},
    {"number": 1.5},
    {"number": True},
    {"number": None},
    {"number": 0},
    {"number": -1},
    {"number": 10**30},
    {"number": 129},
    {"size": 0},
    {"size": -256},
    {"size": 255},
    {"size": 100},
    {"size": 56},
    {"size": 8200},
    {"size": 10**30},
    {"size": "256"},
    {"size": [256]},
    {"unknown": 1},
    {"additional_slave_SAE_IDs": ["sae-e"]},
    {"additional_slave_SAE_IDs": "sae-e"},
    {"extension_mandatory": [{"abc_route_type": "direct"}]},
    {"extension_mandatory": "x"},
    {"extension_optional": [1]},
]


@pytest.mark.parametrize("body", MALFORMED_ENC_BODIES, ids=repr)
def test_malformed_enc_keys_requests_get_400(raw: Any, body: Any) -> None:
    client = raw("sae-a", "a")
    if isinstance(body, bytes):
        response = client.post(ENC, content=body, headers={"Content-Type": "application/json"})
    else:
        response = client.post(ENC, json=body)
    _assert_error(response, 400)


def test_unsupported_extension_mandatory_names_it(raw: Any) -> None:
    response = raw("sae-a", "a").post(
        ENC, json={"number": 1, "extension_mandatory": [{"abc_route_type": "direct"}]}
    )
    _assert_error(response, 400)
    assert response.json()["details"] == [{"extension_mandatory_unsupported": ["abc_route_type"]}]


@pytest.mark.parametrize(
    "query",
    [
        "number=abc",
        "number=0",
        "number=-3",
        "number=1e3",
        "size=12",
        "size=",
        "number=99999999999999",
        "bogus=1",
    ],
)
def test_malformed_get_enc_keys_gets_400(raw: Any, query: str) -> None:
    _assert_error(raw("sae-a", "a").get(f"{ENC}?{query}"), 400)


MALFORMED_DEC_BODIES: list[Any] = [
    b"nope",
    {},
    {"key_IDs": []},
    {"key_IDs": "abc"},
    {"key_IDs": [{"key_ID": "not-a-uuid"}]},
    {"key_IDs": [{"key_ID": 12}]},
    {"key_IDs": [{}]},
    {"key_IDs": [{"key_ID": str(uuid.uuid4()), "extra": 1}]},
    {"key_IDs": [{"key_ID": str(uuid.uuid4())}]},
    {"key_IDs": [{"key_ID": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}] * 2},
    {"key_IDs": [{"key_ID": str(uuid.uuid4())}] * 129},
    {"key_ids": []},
]


@pytest.mark.parametrize("body", MALFORMED_DEC_BODIES, ids=lambda b: repr(b)[:60])
def test_malformed_dec_keys_requests_get_400(raw: Any, body: Any) -> None:
    client = raw("sae-b", "b")
    if isinstance(body, bytes):
        response = client.post(DEC, content=body)
    else:
        response = client.post(DEC, json=body)
    _assert_error(response, 400)


def test_get_dec_keys_checks_its_query(raw: Any) -> None:
    client = raw("sae-b", "b")
    _assert_error(client.get(DEC), 400)
    _assert_error(client.get(f"{DEC}?key_ID=zzz"), 400)
    _assert_error(client.get(f"{DEC}?key_ID={uuid.uuid4()}"), 400)
    _assert_error(client.get(f"{DEC}?key_ID={uuid.uuid4()}&other=1"), 400)


@pytest.mark.parametrize(
    ("sae", "kme", "method", "path"),
    [
        ("sae-a", "a", "GET", "/api/v1/keys/nobody/status"),
        ("sae-a", "a", "POST", "/api/v1/keys/nobody/enc_keys"),
        ("sae-a", "a", "POST", "/api/v1/keys/sae-d/enc_keys"),
        ("sae-a", "a", "POST", "/api/v1/keys/sae-a/enc_keys"),
        ("sae-b", "b", "POST", "/api/v1/keys/nobody/dec_keys"),
        ("sae-a", "b", "GET", "/api/v1/keys/sae-b/status"),
        ("sae-x", "b", "POST", "/api/v1/keys/sae-a/dec_keys"),
    ],
)
def test_unknown_saes_get_401(raw: Any, sae: str, kme: str, method: str, path: str) -> None:
    body = {"key_IDs": [{"key_ID": str(uuid.uuid4())}]} if "dec" in path else {"number": 1}
    response = raw(sae, kme).request(method, path, json=None if method == "GET" else body)
    _assert_error(response, 401)


def test_unknown_paths_and_methods(raw: Any) -> None:
    client = raw("sae-a", "a")
    _assert_error(client.get("/"), 404)
    _assert_error(client.get("/api/v1/keys/sae-b/other"), 404)
    _assert_error(client.put(ENC, json={}), 405)
    _assert_error(client.post("/api/v1/keys/sae-b/status", json={}), 405)


def test_oversized_body_is_refused(raw: Any) -> None:
    response = raw("sae-a", "a").post(ENC, content=b"{" + b" " * 70_000 + b"}")
    assert response.status_code in (400, 413)
    assert "keys" not in response.json()


def test_a_pool_that_cannot_serve_answers_503(make_pair: Any) -> None:
    pair = make_pair(max_key_count=4, rate_bps=1.0)
    with pair.client("sae-a", "a", "sae-b", retries=1, timeout=2) as master:
        with pytest.raises(KeyExhausted) as exc:
            master.get_keys(4, 256)
        assert exc.value.status == 503
        assert exc.value.message


def test_keys_expire_after_the_configured_age(make_pair: Any) -> None:
    # A slow link: 8 keys per second arrive, each living 0.3 s. Without expiry the pool
    # would hold 12 or more keys after 1.5 s; with it, those younger than 0.3 s plus the
    # sweep period (0.075 s), and at most one burst of block_units.
    pair = make_pair(rate_bps=2048.0, max_key_count=64, key_max_age_s=0.3, block_units=2)
    with pair.client("sae-a", "a", "sae-b", retries=0) as master:
        wait_for_keys(master, 1)
        time.sleep(1.5)
        status = master.status()
        assert status.stored_key_count <= 6
        keys = master.get_keys(1) if status.stored_key_count else []
        assert all(len(k.key) == 32 for k in keys)


def test_errors_carry_the_kmes_message_and_details(pair: RunningPair) -> None:
    with pair.client("sae-a", "a", "sae-b") as master, pytest.raises(KMEError) as exc:
        master.get_keys(1, 100_000)
    assert exc.value.status == 400
    assert "max_key_size" in exc.value.message
    assert exc.value.details == [{"size": 100_000}]


def test_error_bodies_are_json_objects(raw: Any) -> None:
    response = raw("sae-a", "a").post(ENC, content=b"{")
    assert response.headers["content-type"] == "application/json"
    assert set(json.loads(response.content)) <= {"message", "details"}
