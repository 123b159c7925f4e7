"""``agile pqc list``: the JSON document, the table, and liboqs's status line."""

from __future__ import annotations

import json

import pytest

import pqc
from agile.cli import main


def test_pqc_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pqc", "list", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    algorithms = {a["name"]: a for a in document["algorithms"]}
    assert set(pqc.available_kems()) | set(pqc.available_signatures()) == set(algorithms)
    mlkem = algorithms["ML-KEM-768"]
    assert mlkem["kind"] == "kem"
    assert mlkem["providers"][0] == "cryptography"
    assert (mlkem["public_key_size"], mlkem["ciphertext_size"]) == (1184, 1088)
    assert mlkem["secret_keys"]["cryptography"] == {
        "size": 64,
        "format": "fips203-seed",
        "seed_size": 64,
    }
    assert algorithms["ML-DSA-65"]["kind"] == "signature"
    assert algorithms["MLKEM768-X25519"]["nist_level"] == 3
    providers = {p["name"]: p for p in document["providers"]}
    assert set(providers) == {"cryptography", "pqcrypto", "liboqs"}
    for status in providers.values():
        assert set(status) == {"name", "available", "reason", "version"}
    if not providers["liboqs"]["available"]:
        assert "not found" in providers["liboqs"]["reason"]
        assert all("liboqs" not in a["providers"] for a in document["algorithms"])


def test_pqc_list_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pqc", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["NAME", "KIND", "FAMILY"]
    assert "X25519MLKEM768" in out
    liboqs_line = next(line for line in out.splitlines() if line.strip().startswith("liboqs:"))
    status = {s.name: s for s in pqc.providers()}["liboqs"]
    assert ("unavailable" in liboqs_line) == (not status.available)
