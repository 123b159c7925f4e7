"""``key_extension.relay_path``: encoded by the KME, parsed and checked by the client.

The extension names the KME nodes a key passed through, from the master SAE's KME to the
slave SAE's KME (docs/kme.md, "The relay path of a key"); the local pair reports its direct
link, two nodes, in both enc_keys and dec_keys answers.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd import InvalidResponse
from qkd.delivery.etsi014 import AsyncEtsi014Client
from qkd.delivery.etsi014.models import encode_key_container, parse_key_container
from qkd.delivery.keysource import QkdKey, SimulatedLink
from tests.kme.conftest import RunningPair, wait_for_keys

KEY_ID = "3f1b6c2a-5d7e-4f80-9a1b-2c3d4e5f6a7b"
KEY = base64.b64encode(bytes(range(32))).decode("ascii")


def _container(extension: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"key_ID": KEY_ID, "key": KEY}
    if extension is not ...:
        entry["key_extension"] = extension
    return {"keys": [entry]}


def test_a_path_is_parsed_into_the_key() -> None:
    [key] = parse_key_container(_container({"relay_path": ["A", "B", "C", "D"]}))
    assert key.relay_path == ("A", "B", "C", "D")
    assert key.trusted_nodes == 2
    assert "relay_path=['A', 'B', 'C', 'D']" in repr(key)
    assert bytes(range(32)).hex() not in repr(key)


@pytest.mark.parametrize("extension", [..., None, {}, {"vendor_field": [1, 2]}])
def test_no_path_is_none(extension: Any) -> None:
    [key] = parse_key_container(_container(extension))
    assert key.relay_path is None
    assert key.trusted_nodes is None


def test_other_extension_fields_are_ignored() -> None:
    extension = {"relay_path": ["KME-A", "KME-B"], "qber": 0.01, "vendor": {"x": 1}}
    [key] = parse_key_container(_container(extension))
    assert key.relay_path == ("KME-A", "KME-B")
    assert key.trusted_nodes == 0


@pytest.mark.parametrize(
    ("extension", "message"),
    [
        ([1], "keys[0].key_extension is not a JSON object"),
        ({"relay_path": "A,B"}, "keys[0].key_extension.relay_path is not an array"),
        ({"relay_path": None}, "keys[0].key_extension.relay_path is not an array"),
        ({"relay_path": ["A"]}, "has 1 node(s); a path names at least its two end KMEs"),
        ({"relay_path": []}, "has 0 node(s)"),
        ({"relay_path": ["A", 2]}, "relay_path[1] is not a string"),
        ({"relay_path": ["A", ""]}, "relay_path[1] is not a node name"),
        ({"relay_path": ["A", " B"]}, "relay_path[1] is not a node name"),
        ({"relay_path": ["A", "B" * 201]}, "relay_path[1] is not a node name"),
        ({"relay_path": ["A", "B", "A"]}, "relay_path[2] repeats node 'A' (first at [0])"),
    ],
)
def test_malformed_paths_are_refused_with_their_place(extension: Any, message: str) -> None:
    with pytest.raises(InvalidResponse) as info:
        parse_key_container(_container(extension))
    assert message in str(info.value)


def test_the_second_key_is_named() -> None:
    document = {
        "keys": [
            {"key_ID": KEY_ID, "key": KEY, "key_extension": {"relay_path": ["A", "B"]}},
            {
                "key_ID": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                "key": KEY,
                "key_extension": {"relay_path": ["A", "A"]},
            },
        ]
    }
    with pytest.raises(InvalidResponse, match=r"keys\[1\]\.key_extension\.relay_path\[1\]"):
        parse_key_container(document)


def test_encode_round_trips_and_checks() -> None:
    document = encode_key_container([(KEY_ID, bytes(32))], relay_path=["A", "B", "C"])
    assert document["keys"][0]["key_extension"] == {"relay_path": ["A", "B", "C"]}
    assert parse_key_container(copy.deepcopy(document))[0].relay_path == ("A", "B", "C")
    assert "key_extension" not in encode_key_container([(KEY_ID, bytes(32))])["keys"][0]
    with pytest.raises(ValueError, match="repeats node"):
        encode_key_container([(KEY_ID, bytes(32))], relay_path=["A", "A"])


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.text(max_size=5),
        st.lists(st.one_of(st.text(max_size=8), st.integers(), st.none()), max_size=5),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    )
)
def test_any_path_value_parses_or_raises_invalid_response(path: Any) -> None:
    try:
        [key] = parse_key_container(_container({"relay_path": path}))
    except InvalidResponse:
        return
    assert key.relay_path is not None
    assert len(key.relay_path) == len(set(key.relay_path)) >= 2


def test_a_key_checks_its_own_path_and_stays_unpicklable() -> None:
    with pytest.raises(InvalidResponse, match="repeats node"):
        QkdKey(key_id=KEY_ID, key=bytes(32), relay_path=("A", "A"))
    key = QkdKey(key_id=KEY_ID, key=bytes(32), relay_path=["A", "B"])  # type: ignore[arg-type]
    assert key.relay_path == ("A", "B")
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_the_simulated_link_reports_its_two_ends() -> None:
    link = SimulatedLink(kme_ids=("KME-1", "KME-2"))
    alice, bob = link.source("sae-a", peer="sae-b"), link.source("sae-b", peer="sae-a")
    keys = alice.get_keys(1)
    assert keys[0].relay_path == ("KME-1", "KME-2")
    assert bob.get_keys_by_id([keys[0].key_id])[0].relay_path == ("KME-1", "KME-2")
    # The other direction: sae-b is master, so its KME comes first.
    reverse = bob.get_keys(1)
    assert reverse[0].relay_path == ("KME-2", "KME-1")
    assert alice.get_keys_by_id([reverse[0].key_id])[0].relay_path == ("KME-2", "KME-1")


@pytest.mark.parametrize("use_post", [True, False], ids=["POST", "GET"])
def test_the_pair_reports_its_direct_link_both_ways(pair: RunningPair, use_post: bool) -> None:
    with (
        pair.client("sae-a", "a", "sae-b", use_post=use_post) as a_master,
        pair.client("sae-b", "b", "sae-a", use_post=use_post) as b_slave,
        pair.client("sae-b", "b", "sae-a", use_post=use_post) as b_master,
        pair.client("sae-a", "a", "sae-b", use_post=use_post) as a_slave,
    ):
        wait_for_keys(a_master, 2)
        keys = a_master.get_keys(2)
        assert [k.relay_path for k in keys] == [("KME-A", "KME-B")] * 2
        fetched = b_slave.get_keys_by_id([k.key_id for k in keys])
        assert fetched == keys
        assert [k.relay_path for k in fetched] == [("KME-A", "KME-B")] * 2
        wait_for_keys(b_master, 1)
        [reverse] = b_master.get_keys(1)
        assert reverse.relay_path == ("KME-B", "KME-A")
        assert a_slave.get_keys_by_id([reverse.key_id])[0].relay_path == ("KME-B", "KME-A")


def test_the_async_client_reads_the_path_too(pair: RunningPair) -> None:
    def make(sae: str, url: str, peer: str) -> AsyncEtsi014Client:
        return AsyncEtsi014Client(
            url,
            peer_sae_id=peer,
            cert=pair.certs / f"{sae}.pem",
            key=pair.certs / f"{sae}.key",
            ca=pair.certs / "ca.pem",
        )

    with pair.client("sae-a", "a", "sae-b") as sync_master:
        wait_for_keys(sync_master, 1)

    async def scenario() -> None:
        async with (
            make("sae-a", pair.url_a, "sae-b") as master,
            make("sae-b", pair.url_b, "sae-a") as slave,
        ):
            [key] = await master.get_keys(1)
            [fetched] = await slave.get_keys_by_id([key.key_id])
            assert key.relay_path == fetched.relay_path == ("KME-A", "KME-B")

    asyncio.run(scenario())
