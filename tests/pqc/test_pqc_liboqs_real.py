"""The liboqs provider against the real liboqs, wherever the environment provides one.

One test per defect found when the provider first met a real liboqs (0.16.0 with
liboqs-python 0.16.0.1), each failing before its fix:

1. re-raising liboqs-python's exception chained the freed liboqs object, whose repr crashed
   the interpreter when the traceback was formatted;
2. the ML-DSA external-mu variants were listed as plain ML-DSA;
3. the SLH-DSA pre-hash variants kept liboqs's spelling, and slow "s" sets ran by default;
4. family names were liboqs spellings ("Kyber512", "cross", "mqom2");
5. liboqs's HQC-1/3/5 were not the HQC-128/192/256 of the other providers;
6. an ML-KEM expanded key with a corrupt H(ek) raised InvalidCiphertext, not InvalidKey.

Every test here skips, with the reason, where liboqs is absent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from pqc_testing import (
    is_slow_signature,
    liboqs_available,
    liboqs_default_subset,
    liboqs_reason,
)

import pqc

pytestmark = pytest.mark.skipif(
    not liboqs_available(), reason=f"liboqs is not available here: {liboqs_reason()}"
)


def _liboqs() -> pqc.Provider:
    return pqc.registry().provider("liboqs")


def _oqs() -> object:
    from pqc._liboqs import load_oqs

    module, _ = load_oqs()
    assert module is not None
    return module


# -- 1. error paths that can be formatted without crashing ---------------------------------

# Runs in a subprocess, since a failure here is a crash. Each error path of the adapter is
# made to fail the way liboqs-python fails: a RuntimeError raised inside a method of the real
# liboqs-python object, which the adapter's ``with`` block then frees. The resulting pqc error
# is formatted by traceback.format_exception and by pytest's long repr with locals; the
# memory of the freed objects is reused in between, as it would be in a long test session.
_FORMAT_EVERY_ERROR_PATH = r"""
import gc, json, sys, traceback
import pytest
import pqc

pqc.providers()  # the provider imports oqs once it has found the library
oqs = sys.modules["oqs"]

def failing(message):
    def method(self, *args, **kwargs):
        raise RuntimeError(message)  # what liboqs-python raises when liboqs fails
    return method

def churn():
    # Allocate and free liboqs objects so that freed memory is reused.
    for _ in range(50):
        with oqs.KeyEncapsulation("ML-KEM-512") as kem:
            kem.generate_keypair()
    gc.collect()

kem = pqc.kem("ML-KEM-768", provider="liboqs")
hqc = pqc.kem("HQC-1", provider="liboqs")
dsa = pqc.signature("ML-DSA-44", provider="liboqs")
pk, sk = kem.generate_keypair()
ct = kem.encapsulate(pk).ciphertext
hpk, hsk = hqc.generate_keypair()
hct = hqc.encapsulate(hpk).ciphertext
spk, ssk = dsa.generate_keypair()
sig = dsa.sign(ssk, b"m", b"ctx")

K, S = oqs.KeyEncapsulation, oqs.Signature
paths = [
    ("keypair", K, "generate_keypair", lambda: kem.generate_keypair()),
    ("keypair_seed", K, "generate_keypair_seed", lambda: kem.generate_keypair(bytes(64))),
    ("encaps", K, "encap_secret", lambda: kem.encapsulate(pk)),
    ("decaps ML-KEM", K, "decap_secret", lambda: kem.decapsulate(sk, ct)),
    ("decaps HQC", K, "decap_secret", lambda: hqc.decapsulate(hsk, hct)),
    ("sig keypair", S, "generate_keypair", lambda: dsa.generate_keypair()),
    ("sign", S, "sign", lambda: dsa.sign(ssk, b"m")),
    ("sign ctx", S, "sign_with_ctx_str", lambda: dsa.sign(ssk, b"m", b"ctx")),
    ("verify", S, "verify", lambda: dsa.verify(spk, b"m", sig)),
    ("verify ctx", S, "verify_with_ctx_str", lambda: dsa.verify(spk, b"m", sig, b"ctx")),
]
if "pqcrypto" in pqc.kem_providers("ML-KEM-512"):
    seeded = pqc.kem("ML-KEM-512", provider="pqcrypto")
    paths.append(("pqcrypto seed", K, "generate_keypair_seed",
                  lambda: seeded.generate_keypair(bytes(64))))

report = []
for label, cls, attribute, call in paths:
    original = getattr(cls, attribute)
    setattr(cls, attribute, failing(f"injected failure of {attribute}"))
    try:
        call()
    except pqc.PQCError as exc:
        error = exc
    else:
        raise SystemExit(f"{label}: no error")
    finally:
        setattr(cls, attribute, original)
    churn()
    text = "".join(traceback.format_exception(error))
    text += str(pytest.ExceptionInfo.from_exception(error).getrepr(
        style="long", showlocals=True, chain=True))
    text += repr(error) + repr(error.__cause__) + repr(error.__context__)
    # No frame of the error's traceback holds a liboqs-python object.
    held = []
    tb = error.__traceback__
    while tb is not None:
        held += [type(v).__module__ for v in tb.tb_frame.f_locals.values()
                 if type(v).__module__.startswith("oqs")]
        tb = tb.tb_next
    cause = error.__cause__
    report.append({
        "path": label, "error": type(error).__name__, "held": held,
        "cause": type(cause).__name__, "cause_traceback": cause.__traceback__ is not None,
        "context": error.__context__ is not None and error.__context__ is not cause,
        "algorithm": error.algorithm, "operation": error.operation, "status": error.status,
        "formatted": len(text),
    })
print(json.dumps(report))
"""


def test_every_error_path_formats_its_traceback_without_crashing() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _FORMAT_EVERY_ERROR_PATH],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = {entry["path"]: entry for entry in json.loads(proc.stdout)}
    assert len(report) >= 10
    for path, entry in report.items():
        assert entry["held"] == [], path
        assert entry["cause"] == "LibraryFailure", path
        assert entry["cause_traceback"] is False, path
        assert entry["context"] is False, path
        assert entry["status"] == "OQS_ERROR", path
        assert entry["algorithm"] in ("ML-KEM-768", "ML-KEM-512", "HQC-128", "ML-DSA-44"), path
        assert entry["operation"], path
    assert report["decaps ML-KEM"]["error"] == "InvalidKey"
    assert report["decaps HQC"]["error"] == "InvalidCiphertext"
    assert report["verify"]["error"] == "InvalidSignature"
    assert report["sign"]["error"] == "InvalidKey"


def test_library_failure_is_plain_data() -> None:
    from pqc._errors import LibraryFailure, library_error

    error = library_error(
        pqc.InvalidKey,
        "ML-KEM-768 (liboqs): failed",
        provider="liboqs",
        algorithm="ML-KEM-768",
        operation="decaps",
        status="OQS_ERROR",
        detail="RuntimeError: Can not decapsulate secret",
    )
    cause = error.__cause__
    assert isinstance(cause, LibraryFailure)
    assert all(isinstance(v, str) for v in vars(cause).values())
    assert "OQS_ERROR" in repr(cause)
    assert (error.algorithm, error.operation, error.status) == ("ML-KEM-768", "decaps", "OQS_ERROR")


# -- 2. ML-DSA external mu -----------------------------------------------------------------


def test_extmu_variants_are_not_offered_as_ml_dsa() -> None:
    oqs_names = _oqs().get_enabled_sig_mechanisms()  # type: ignore[attr-defined]
    extmu = [n for n in oqs_names if n.endswith("-extmu")]
    assert extmu, "this liboqs has no external-mu variants to check"
    offered = _liboqs().signature_names()
    assert not [n for n in offered if "extmu" in n.lower()]
    for name in extmu:
        with pytest.raises(pqc.UnsupportedAlgorithm, match=r"message representative mu"):
            pqc.signature(name, provider="liboqs")
    for name in offered:
        if pqc.signature(name, provider="liboqs").info.family == "ML-DSA":
            assert re.fullmatch(r"ML-DSA-(44|65|87)", name)


# -- 3. SLH-DSA names ----------------------------------------------------------------------


def test_every_slh_dsa_variant_has_a_standard_name_and_s_sets_are_slow() -> None:
    oqs_names = _oqs().get_enabled_sig_mechanisms()  # type: ignore[attr-defined]
    assert len([n for n in oqs_names if "_PREHASH_" in n]) == 144
    offered = _liboqs().signature_names()
    assert not [n for n in offered if n.startswith("SLH_") or "SLH_DSA" in n]
    pure = [n for n in offered if n.startswith("SLH-DSA-")]
    prehash = [n for n in offered if n.startswith("HashSLH-DSA-")]
    assert len(pure) == 12
    assert len(prehash) == 144
    assert "HashSLH-DSA-SHA2-128s-with-SHA256" in prehash
    assert "HashSLH-DSA-SHAKE-256f-with-SHAKE256" in prehash
    for name in pure + prehash:
        info = pqc.signature(name, provider="liboqs").info
        assert info.family == ("SLH-DSA" if name in pure else "HashSLH-DSA")
        assert info.standard.startswith("FIPS 205")
        if re.search(r"-(192|256)s\b", name):
            assert is_slow_signature(name)
            assert is_slow_signature(name, "liboqs")
    defaults = liboqs_default_subset()
    assert not [n for n in defaults if is_slow_signature(n)]


def test_prehash_signature_round_trip_and_differs_from_pure() -> None:
    pure = pqc.signature("SLH-DSA-SHA2-128f", provider="liboqs")
    hashed = pqc.signature("HashSLH-DSA-SHA2-128f-with-SHA256", provider="liboqs")
    public_key, secret_key = hashed.generate_keypair()
    signature = hashed.sign(secret_key, b"message", context=b"ctx")
    hashed.verify(public_key, b"message", signature, context=b"ctx")
    with pytest.raises(pqc.InvalidSignature):
        pure.verify(public_key, b"message", signature, context=b"ctx")  # not a pure signature


# -- 4. families ---------------------------------------------------------------------------

STANDARD_FAMILIES = {
    "ML-KEM": "FIPS 203",
    "ML-DSA": "FIPS 204",
    "SLH-DSA": "FIPS 205",
    "HashSLH-DSA": "FIPS 205",
    "HQC": "HQC",
    "Classic-McEliece": "Classic McEliece",
    "FrodoKEM": "FrodoKEM",
    "BIKE": "not standardised",
    "NTRU": "not standardised",
    "NTRU-Prime": "Streamlined NTRU Prime (not standardised",
    "Kyber": "withdrawn",
    "Falcon": "not yet standardised",
    "MAYO": "not standardised",
    "CROSS": "not standardised",
    "UOV": "not standardised",
    "SNOVA": "not standardised",
    "MQOM": "not standardised",
}


def test_families_are_standard_names_and_say_what_is_not_standard() -> None:
    provider = _liboqs()
    infos = [provider.kem(n).info for n in provider.kem_names()]
    infos += [provider.signature(n).info for n in provider.signature_names()]
    families = {info.family for info in infos}
    assert families <= set(STANDARD_FAMILIES), families - set(STANDARD_FAMILIES)
    for info in infos:
        assert info.standard.startswith(STANDARD_FAMILIES[info.family]), info
    by_name = {info.name: info for info in infos}
    assert by_name["Kyber512"].family == "Kyber"
    assert by_name["sntrup761"].family == "NTRU-Prime"
    assert by_name["cross-rsdp-128-fast"].family == "CROSS"
    assert by_name["mqom2_cat1_gf16_fast_r3"].family == "MQOM"


# -- 5. HQC names --------------------------------------------------------------------------


def test_hqc_names_map_to_one_canonical_spelling_on_the_real_library() -> None:
    oqs_names = _oqs().get_enabled_kem_mechanisms()  # type: ignore[attr-defined]
    provider = _liboqs()
    for liboqs_name, canonical in (
        ("HQC-1", "HQC-128"),
        ("HQC-3", "HQC-192"),
        ("HQC-5", "HQC-256"),
    ):
        assert liboqs_name in oqs_names  # what this liboqs calls it
        assert canonical in provider.kem_names()
        assert liboqs_name not in provider.kem_names()
        assert provider.kem(liboqs_name) is provider.kem(canonical)
        assert pqc.kem(liboqs_name, provider="liboqs") is pqc.kem(canonical, provider="liboqs")
        assert pqc.kem(liboqs_name).info.name == canonical
        assert "liboqs" in pqc.kem_providers(liboqs_name)
    # pqcrypto's HQC has the same sizes, but the two do not interoperate (test_pqc_interop.py
    # pins that as a known disagreement).
    if "pqcrypto" in pqc.kem_providers("HQC-128"):
        theirs = pqc.kem("HQC-128", provider="pqcrypto").info
        ours = pqc.kem("HQC-1", provider="liboqs").info
        assert (ours.public_key_size, ours.ciphertext_size) == (
            theirs.public_key_size,
            theirs.ciphertext_size,
        )


# -- 6. ML-KEM key errors ------------------------------------------------------------------


@pytest.mark.parametrize("size", ["512", "768", "1024"])
def test_corrupt_h_ek_in_an_expanded_key_is_a_key_error(size: str) -> None:
    kem = pqc.kem(f"ML-KEM-{size}", provider="liboqs")
    public_key, secret_key = kem.generate_keypair()
    ciphertext = kem.encapsulate(public_key).ciphertext
    index = kem.info.secret_key_size - 64  # the first byte of H(ek)
    corrupt = secret_key[:index] + bytes([secret_key[index] ^ 1]) + secret_key[index + 1 :]
    with pytest.raises(pqc.InvalidKey, match="hash check"):
        kem.decapsulate(corrupt, ciphertext)
    with pytest.raises(pqc.InvalidKey):
        kem.load_private_key(corrupt).decapsulate(ciphertext)


# -- agile pqc list ------------------------------------------------------------------------


def test_pqc_list_json_shows_only_standard_names_on_the_real_library() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agile.cli", "pqc", "list", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    liboqs = [a for a in document["algorithms"] if "liboqs" in a["providers"]]
    assert liboqs
    assert {a["family"] for a in liboqs} <= set(STANDARD_FAMILIES) | {"hybrid"}
    assert not [a["name"] for a in liboqs if "SLH_DSA" in a["name"]]
    assert not [a["name"] for a in liboqs if a["family"] == "ML-DSA" and "extmu" in a["name"]]
