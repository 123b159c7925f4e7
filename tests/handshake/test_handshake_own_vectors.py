"""Our combiner vectors for suites with a QKD key, checked by an independent implementation.

The file tests/vectors/handshake-combiner.json is made by tests/vectors/make_handshake_vectors.py
with ``agile.kdf``. Here every vector is recomputed from the formulas of ETSI TS 103 744
clauses 7-8 with pyca/cryptography's HKDF and HMAC and :mod:`hashlib` only, without importing
``agile.kdf``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as pyca_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .conftest import REPO_ROOT

VECTORS = REPO_ROOT / "tests" / "vectors" / "handshake-combiner.json"
SCRIPT = REPO_ROOT / "tests" / "vectors" / "make_handshake_vectors.py"
_PYCA: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "SHA-256": hashes.SHA256,
    "SHA-384": hashes.SHA384,
    "SHA-512": hashes.SHA512,
}
_HASHLIB = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _f(*args: bytes) -> bytes:
    return b"".join(len(a).to_bytes(4, "big") + a for a in args)


def _independent(v: dict[str, Any]) -> bytes:
    algorithm = _PYCA[v["hash"]]
    h = _HASHLIB[v["hash"]]
    secrets = [bytes.fromhex(s) for s in v["secrets"]]
    ma, mb = bytes.fromhex(v["MA"]), bytes.fromhex(v["MB"])
    label, info, psk = bytes.fromhex(v["label"]), bytes.fromhex(v["info"]), bytes.fromhex(v["psk"])
    length = v["length"]
    if v["combiner"] == "catkdf":
        context = hashlib.new(h, _f(info, ma, mb)).digest()
        return HKDF(algorithm(), length, salt=label, info=context).derive(psk + b"".join(secrets))
    chain, key = psk, b""
    size = hashlib.new(h).digest_size
    for secret in secrets:
        mac = pyca_hmac.HMAC(chain, algorithm()) if chain else None
        message = hashlib.new(h, _f(secret, ma, mb)).digest()
        if mac is None:
            # pyca refuses an empty HMAC key; HMAC pads any key to the block size with zeros,
            # so an all-zero key of block length is the same function.
            mac = pyca_hmac.HMAC(bytes(hashlib.new(h).block_size), algorithm())
        mac.update(message)
        r = mac.finalize()
        out = HKDF(algorithm(), size + length, salt=label, info=info).derive(r)
        chain, key = out[:size], out[size:]
    return key


def _vectors() -> list[dict[str, Any]]:
    document: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    vectors: list[dict[str, Any]] = document["vectors"]
    return vectors


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_independent_implementation_agrees(vector: dict[str, Any]) -> None:
    assert _independent(vector).hex() == vector["handshake_secret"]


def test_vectors_put_mlkem_first_and_qkd_last() -> None:
    for v in _vectors():
        assert v["components"][-1] == "QKD"
        assert v["components"][0].startswith(("ML-KEM", "MLKEM"))


def test_generator_reproduces_the_file() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
