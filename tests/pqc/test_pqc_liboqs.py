"""The liboqs provider: safe detection without liboqs, and the adapter's mapping.

Where liboqs is installed, the contract, KAT, interop and agreement suites run on it
automatically (their fixtures take every available provider), and ``test_pqc_liboqs_real.py``
pins the defects found against the real library. Where it is not, these tests show that it
is reported unavailable without the process dying; everywhere, they check the adapter against
the ``fake_oqs`` stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys

import fake_oqs
import pytest

import pqc
from pqc._liboqs import LiboqsProvider, canonical_name, locate_library


def _standin() -> LiboqsProvider:
    return LiboqsProvider(module_loader=lambda: fake_oqs)


_PROBE = """
import dataclasses, json, sys, pqc
print(json.dumps([dataclasses.asdict(s) for s in pqc.providers()]))
print("oqs imported" if "oqs" in sys.modules else "oqs not imported", file=sys.stderr)
"""


@pytest.mark.skipif(locate_library()[0] is not None, reason="liboqs is installed here")
def test_providers_in_a_subprocess_report_liboqs_unavailable_and_exit_normally() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    statuses = {s["name"]: s for s in json.loads(proc.stdout)}
    liboqs = statuses["liboqs"]
    assert liboqs["available"] is False
    assert "liboqs shared library not found" in liboqs["reason"]
    assert "OQS_INSTALL_PATH" in liboqs["reason"]  # says how to fix it
    assert statuses["cryptography"]["available"] is True
    assert "oqs not imported" in proc.stderr  # importing it would have tried to build liboqs


def test_unavailable_liboqs_raises_unsupported_with_the_reason() -> None:
    status = {s.name: s for s in pqc.providers()}["liboqs"]
    if status.available:
        pytest.skip("liboqs is installed here")
    with pytest.raises(pqc.UnsupportedAlgorithm, match="liboqs shared library not found"):
        pqc.kem("ML-KEM-768", provider="liboqs")
    assert "oqs" not in sys.modules


def test_adapter_normalises_return_order_and_interoperates() -> None:
    provider = _standin()
    kem = provider.kem("ML-KEM-768")
    assert kem.info.secret_key_format == "fips203-expanded"
    assert kem.info.secret_key_size == 2400
    public_key, secret_key = kem.generate_keypair()
    enc = kem.encapsulate(public_key)
    assert (len(enc.ciphertext), len(enc.shared_secret)) == (1088, 32)  # not swapped
    assert kem.decapsulate(secret_key, enc.ciphertext) == enc.shared_secret
    # Cross-provider: pyca encapsulates to the stand-in's key, the stand-in decapsulates.
    other = pqc.kem("ML-KEM-768", provider="cryptography").encapsulate(public_key)
    assert kem.decapsulate(secret_key, other.ciphertext) == other.shared_secret
    # And the reverse: the stand-in encapsulates to a pyca key.
    pyca = pqc.kem("ML-KEM-768", provider="cryptography")
    pyca_public, pyca_secret = pyca.generate_keypair()
    enc = kem.encapsulate(pyca_public)
    assert pyca.decapsulate(pyca_secret, enc.ciphertext) == enc.shared_secret


def test_adapter_checks_lengths_that_liboqs_would_pad() -> None:
    kem = _standin().kem("HQC-128")
    public_key, secret_key = kem.generate_keypair()
    ciphertext = kem.encapsulate(public_key).ciphertext
    with pytest.raises(pqc.InvalidKey, match=r"HQC-128 \(liboqs\).*2241"):
        kem.encapsulate(public_key[:-1])  # the stand-in, like liboqs, would zero-pad it
    with pytest.raises(pqc.InvalidKey, match="2321"):
        kem.decapsulate(secret_key[:-1], ciphertext)
    with pytest.raises(pqc.InvalidCiphertext, match="4433"):
        kem.decapsulate(secret_key, ciphertext[:-1])
    with pytest.raises(pqc.InvalidCiphertext, match="4433"):
        kem.decapsulate(secret_key, ciphertext + b"\x00")


def test_adapter_runs_the_mlkem_modulus_check() -> None:
    kem = _standin().kem("ML-KEM-768")
    public_key, _ = kem.generate_keypair()
    bad = bytearray(public_key)
    bad[0], bad[1] = 0xFF, bad[1] | 0x0F
    fake_oqs.calls.clear()
    with pytest.raises(pqc.InvalidKey, match="ML-KEM-768"):
        kem.encapsulate(bytes(bad))
    assert fake_oqs.calls == []  # rejected before liboqs saw it


def test_adapter_reports_missing_seed_support() -> None:
    kem = _standin().kem("ML-KEM-768")
    assert kem.info.seed_size is None
    with pytest.raises(pqc.UnsupportedAlgorithm, match="seed"):
        kem.generate_keypair(b"\x00" * 64)
    with pytest.raises(pqc.UnsupportedAlgorithm, match="seed"):
        pqc.Registry([_standin()]).kem("X-Wing")  # X-Wing needs seeded ML-KEM


def test_adapter_signatures_raise_on_failure_and_map_names() -> None:
    provider = _standin()
    assert "SLH-DSA-SHA2-128s" in provider.signature_names()
    assert canonical_name("SLH_DSA_PURE_SHAKE_256F") == "SLH-DSA-SHAKE-256f"
    assert canonical_name("SLH_DSA_SHA3_384_PREHASH_SHAKE_192S") == (
        "HashSLH-DSA-SHAKE-192s-with-SHA3-384"
    )
    assert "HQC-128" in provider.kem_names()  # the stand-in says HQC-1, as liboqs 0.16 does
    assert provider.kem("HQC-1") is provider.kem("HQC-128")
    scheme = provider.signature("ML-DSA-44")
    public_key, secret_key = scheme.generate_keypair()
    signature = scheme.sign(secret_key, b"m", context=b"c")
    scheme.verify(public_key, b"m", signature, context=b"c")
    pqc.signature("ML-DSA-44", provider="cryptography").verify(
        public_key, b"m", signature, context=b"c"
    )
    with pytest.raises(pqc.InvalidSignature):
        scheme.verify(public_key, b"m", signature)  # liboqs returns False; we raise
    with pytest.raises(pqc.InvalidKey, match="1312"):
        scheme.verify(public_key + b"\x00", b"m", signature)


def test_standin_provider_registers_beside_the_others() -> None:
    registry = pqc.Registry(
        [pqc.registry().provider("cryptography"), _standin()],
        preference=["liboqs", "cryptography"],
    )
    assert registry.kem("ML-KEM-768").info.provider == "liboqs"
    assert registry.kem("X25519MLKEM768").info.provider == "liboqs"
    assert registry.kem("X-Wing").info.provider == "cryptography"  # falls back: no seeds
    assert registry.providers()[0].version == "liboqs 0.0.0-stand-in, liboqs-python 0.0.0-stand-in"
