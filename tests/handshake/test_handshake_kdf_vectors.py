"""ETSI TS 103 744 V1.2.1 reference vectors for CatKDF and CasKDF, in the standard's order.

The vectors are kept in the repository, ``tests/vectors/etsi-ts-103744.json`` (the README
beside it gives their provenance and how the reference builds MA/MB). A missing file fails
the test: the combiner must never ship unchecked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agile.kdf import CascadeRound, caskdf, catkdf

from .conftest import REPO_ROOT

VECTORS = REPO_ROOT / "tests" / "vectors" / "etsi-ts-103744.json"
KDFS = ("hkdf", "hmac", "kmac")


def _load() -> dict[str, Any]:
    if not VECTORS.is_file():
        pytest.fail(f"ETSI TS 103 744 vectors missing: expected {VECTORS}")
    document: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return document


def _message(cid: str, *fields: str) -> bytes:
    # The reference harness's test-only format: bytes(cid), then for each field the length of
    # its *hex string* as be32 and the field's bytes.
    out = bytes.fromhex(cid)
    for hex_field in fields:
        out += len(hex_field).to_bytes(4, "big") + bytes.fromhex(hex_field)
    return out


def _label(a: str, b: str) -> bytes:
    return bytes(x ^ y for x, y in zip(bytes.fromhex(a), bytes.fromhex(b), strict=True))


def _vector_ids() -> list[int]:
    # Parametrise over the 12 indices the standard defines; a missing file fails in the test.
    return list(range(12))


@pytest.mark.parametrize("kdf", KDFS)
@pytest.mark.parametrize("index", _vector_ids())
def test_catkdf_matches_reference_vector(index: int, kdf: str) -> None:
    document = _load()
    v = document["vectors"][index]
    cid = v["cid"][f"catkdf_{kdf}"]
    variant = v["kmac"].lower() if kdf == "kmac" else kdf
    key = catkdf(
        [bytes.fromhex(v["k1"]), bytes.fromhex(v["k2"])],  # the standard's order: ECDH, ML-KEM
        ma=_message(cid, v["LA1"], v["PA1"], v["PA2"]),
        mb=_message(cid, v["LB1"], v["PB1"], v["PB2"]),
        info=document["info"].encode("ascii"),
        label=_label(v["LA1"], v["LB1"]),
        length=v["key_length"],
        hash_name=v["hash"],
        kdf=variant,
    )
    assert key.hex().upper() == v["expected"][f"catkdf_{kdf}"]


@pytest.mark.parametrize("kdf", KDFS)
@pytest.mark.parametrize("index", _vector_ids())
def test_caskdf_matches_reference_vector(index: int, kdf: str) -> None:
    document = _load()
    v = document["vectors"][index]
    cid = v["cid"][f"caskdf_{kdf}"]
    variant = v["kmac"].lower() if kdf == "kmac" else kdf
    info = document["info"].encode("ascii")
    rounds = [
        CascadeRound(
            ma=_message(cid, v[f"LA{i}"], v[f"PA{i}"]),
            mb=_message(cid, v[f"LB{i}"], v[f"PB{i}"]),
            label=_label(v[f"LA{i}"], v[f"LB{i}"]),
            info=info,
        )
        for i in (1, 2)
    ]
    key = caskdf(
        [bytes.fromhex(v["k1"]), bytes.fromhex(v["k2"])],
        rounds,
        length=v["key_length"],
        hash_name=v["hash"],
        kdf=variant,
    )
    assert key.hex().upper() == v["expected"][f"caskdf_{kdf}"]


def test_all_twelve_vectors_are_present() -> None:
    document = _load()
    assert [v["index"] for v in document["vectors"]] == _vector_ids()


def test_swapping_the_secret_order_breaks_the_vector() -> None:
    # The component order is part of the algorithm: our ML-KEM-first order gives another key.
    document = _load()
    v = document["vectors"][4]
    cid = v["cid"]["catkdf_hkdf"]
    key = catkdf(
        [bytes.fromhex(v["k2"]), bytes.fromhex(v["k1"])],
        ma=_message(cid, v["LA1"], v["PA1"], v["PA2"]),
        mb=_message(cid, v["LB1"], v["PB1"], v["PB2"]),
        info=document["info"].encode("ascii"),
        label=_label(v["LA1"], v["LB1"]),
        length=v["key_length"],
        hash_name=v["hash"],
    )
    assert key.hex().upper() != v["expected"]["catkdf_hkdf"]


def test_vectors_are_inside_the_repository() -> None:
    assert VECTORS.resolve().is_relative_to(REPO_ROOT.resolve())
    assert VECTORS.is_file()
