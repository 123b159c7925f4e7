"""The ETSI 014 codecs raise only their own errors, whatever JSON they are given."""

from __future__ import annotations

import base64
import contextlib
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd import InvalidResponse, KeyNotFound
from qkd.delivery.etsi014.models import (
    RequestRejected,
    parse_key_container,
    parse_key_ids,
    parse_key_request,
    parse_status,
)
from tests.kme.conftest import RunningPair, wait_for_keys

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
request_like = st.dictionaries(
    st.sampled_from(
        ["number", "size", "additional_slave_SAE_IDs", "extension_mandatory", "key_IDs", "x"]
    ),
    json_values,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, request_like))
def test_request_parsers_raise_only_request_rejected(document: Any) -> None:
    errors: list[RequestRejected] = []
    for parse in (parse_key_request, parse_key_ids):
        try:
            parse(document)
        except RequestRejected as exc:
            errors.append(exc)
    for value in ("1", "-0", "x", "99999999999999999999", ""):
        try:
            parse_key_request({"number": value, "size": value}, from_query=True)
        except RequestRejected as exc:
            errors.append(exc)
    assert all(e.status == 400 and e.body()["message"] for e in errors)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.fixed_dictionaries({"keys": json_values})))
def test_response_parsers_raise_only_invalid_response(document: Any) -> None:
    for check in (
        lambda: parse_status(document),
        lambda: parse_key_container(document, size_bits=256, number=1),
        lambda: parse_key_container(document, key_ids=["6ba7b810-9dad-11d1-80b4-00c04fd430c8"]),
    ):
        with contextlib.suppress(InvalidResponse):
            check()


def test_no_key_material_in_logs_or_errors(
    pair: RunningPair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        pair.client("sae-a", "a", "sae-b") as master,
        pair.client("sae-b", "b", "sae-a") as slave,
    ):
        wait_for_keys(master, 4)
        keys = master.get_keys(4)
        assert slave.get_keys_by_id([k.key_id for k in keys]) == keys
        with pytest.raises(KeyNotFound) as exc:
            slave.get_keys_by_id([keys[0].key_id])
    text = caplog.text + str(exc.value) + repr(keys) + repr(exc.value)
    for key in keys:
        assert key.key.hex() not in text
        assert repr(key.key) not in text
        assert base64.b64encode(key.key).decode() not in text
