"""Benchmark: full hybrid handshakes against the raw primitive calls they are made of.

A "full handshake" is both sides in this process, no sockets: create an initiator and a
responder from their engines, ClientHello -> ServerHello + Auth + Finished -> Auth + Finished,
both sessions derived. Its "raw primitive calls" are the same algorithms called directly
through pyca/cryptography, with no protocol around them:

- ML-KEM-768 key generation, encapsulation, decapsulation;
- DHKEM(X25519, HKDF-SHA256) as RFC 9180 defines it: two X25519 key generations, two
  exchanges, and the labeled HKDF extract/expand on each side;
- signature case only: ML-DSA-65 and Ed25519, each signing twice and verifying twice.

Both are timed in interleaved batches in the same run and the medians compared, since the
machine is shared and noisy. Results (DESIGN.md form, stable names)::

    handshake.per_s                      full handshakes per second (signature auth)
    handshake.psk.per_s                  full handshakes per second (PSK auth)
    handshake.overhead_ratio.signature   full handshake / raw calls (acceptance: <= 1.25)
    handshake.overhead_ratio.psk         full handshake / raw calls (acceptance: <= 1.15)
    handshake.pqc_layer_ratio.*          the same calls through ``pqc`` / raw calls
    handshake.protocol_ratio.*           full handshake / the same calls through ``pqc``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this file's directory comes first on sys.path, and bench/pqc.py (the pqc
# benchmark) would shadow the pqc package that agile imports. Drop that entry.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from cryptography.hazmat.primitives import hashes, hmac, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa, mlkem, x25519  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand  # noqa: E402

from agile.engine import Engine, peer_engines  # noqa: E402
from agile.policy.loader import policy_from_dict  # noqa: E402
from agile.policy.model import Policy  # noqa: E402

_SUITE = ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]
_SUITE_ID = b"KEM" + (0x0020).to_bytes(2, "big")
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _policy(method: str) -> Policy:
    auth: dict[str, Any] = (
        {"method": "signature", "signature_algorithms": ["ML-DSA-65", "Ed25519"]}
        if method == "signature"
        else {"method": "psk", "psk_id": "bench"}
    )
    return policy_from_dict(
        {
            "schema_version": 1,
            "name": f"bench-{method}",
            "version": "1",
            "providers": ["cryptography"],
            "suites": [{"name": "mlkem768-x25519", "components": _SUITE}],
            "qkd": {"source": "none"},
            "kdf": {"combiner": "catkdf", "hash": "SHA-256", "label": "qkd-agile v1"},
            "auth": auth,
            "session": {"key_length": 32, "aead": "AES-256-GCM"},
            "rules": {"min_nist_level": 3},
        },
        source="bench/handshake.py",
    )


def _handshake(initiator_engine: Engine, responder_engine: Engine) -> None:
    initiator = initiator_engine.initiator()
    responder = responder_engine.responder()
    responder.receive_data(initiator.start())
    initiator.receive_data(responder.data_to_send())
    responder.receive_data(initiator.data_to_send())
    assert initiator.session is not None
    assert responder.session is not None


# -- raw primitives, straight through pyca/cryptography ------------------------------------


def _labeled_extract(ikm: bytes) -> bytes:
    h = hmac.HMAC(b"\x00" * 32, hashes.SHA256())
    h.update(b"HPKE-v1" + _SUITE_ID + b"eae_prk" + ikm)
    return h.finalize()


def _labeled_expand(prk: bytes, info: bytes) -> bytes:
    label = (32).to_bytes(2, "big") + b"HPKE-v1" + _SUITE_ID + b"shared_secret" + info
    return HKDFExpand(hashes.SHA256(), 32, label).derive(prk)


def _raw_calls(signers: list[tuple[Any, Any, bytes]] | None) -> Callable[[], None]:
    message = os.urandom(32)

    def run() -> None:
        # Initiator key shares.
        kem_sk = mlkem.MLKEM768PrivateKey.generate()
        kem_pk = kem_sk.public_key().public_bytes(*_RAW)
        dh_sk = x25519.X25519PrivateKey.generate()
        dh_pk = dh_sk.public_key().public_bytes_raw()
        # Responder: encapsulate to both.
        shared, ct = mlkem.MLKEM768PublicKey.from_public_bytes(kem_pk).encapsulate()
        eph = x25519.X25519PrivateKey.generate()
        enc = eph.public_key().public_bytes_raw()
        dh = eph.exchange(x25519.X25519PublicKey.from_public_bytes(dh_pk))
        ss_r = _labeled_expand(_labeled_extract(dh), enc + dh_pk)
        # Initiator: decapsulate both.
        assert kem_sk.decapsulate(ct) == shared
        dh_i = dh_sk.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
        assert _labeled_expand(_labeled_extract(dh_i), enc + dh_pk) == ss_r
        if signers is not None:
            for _ in range(2):  # the responder's and the initiator's Auth
                for private, public_cls, public in signers:
                    signature = private.sign(message)
                    public_cls.from_public_bytes(public).verify(signature, message)

    return run


def _pqc_calls(engine: Engine) -> Callable[[], None]:
    """The same primitive calls through ``pqc`` (the layer the engine uses), no protocol."""
    kems = list(engine.config.kems.values())
    keyed = []
    for signer in engine.config.signers:
        pk, sk = signer.scheme.generate_keypair()
        keyed.append((signer.scheme, sk, pk))
    message = os.urandom(32)

    def run() -> None:
        for kem in kems:
            pk, sk = kem.generate_keypair()
            kem.decapsulate(sk, kem.encapsulate(pk).ciphertext)
        for _ in range(2):  # the responder's and the initiator's Auth
            for scheme, sk, pk in keyed:
                scheme.verify(pk, message, scheme.sign(sk, message))

    return run


def _signers() -> list[tuple[Any, Any, bytes]]:
    ml = mldsa.MLDSA65PrivateKey.generate()
    ed = ed25519.Ed25519PrivateKey.generate()
    return [
        (ml, mldsa.MLDSA65PublicKey, ml.public_key().public_bytes(*_RAW)),
        (ed, ed25519.Ed25519PublicKey, ed.public_key().public_bytes(*_RAW)),
    ]


def _batch(fn: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def _compare(
    functions: dict[str, Callable[[], None]], *, batch: int, repeats: int
) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved batches."""
    for fn in functions.values():  # warm up caches and lazy imports
        _batch(fn, max(2, batch // 4))
    times: dict[str, list[float]] = {name: [] for name in functions}
    # Small batches, many rounds, interleaved, garbage collector off (as timeit does): the
    # machine is shared, and a median over many short rounds shrugs off the time slices that
    # other processes take.
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in functions.items():
                times[name].append(_batch(fn, batch))
    finally:
        gc.enable()
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    batch, repeats = (5, 9) if args.quick else (8, 75)

    results: list[dict[str, Any]] = []
    for method in ("signature", "psk"):
        initiator_engine, responder_engine = peer_engines(_policy(method), _policy(method))
        median = _compare(
            {
                "full": lambda a=initiator_engine, b=responder_engine: _handshake(a, b),  # type: ignore[misc]
                "pqc": _pqc_calls(initiator_engine),
                "raw": _raw_calls(_signers() if method == "signature" else None),
            },
            batch=batch,
            repeats=repeats,
        )
        prefix = "handshake" if method == "signature" else "handshake.psk"
        results += [
            {
                "name": f"{prefix}.per_s",
                "value": round(1.0 / median["full"], 2),
                "unit": "handshakes/s",
            },
            {
                "name": f"{prefix}.raw_primitives.per_s",
                "value": round(1.0 / median["raw"], 2),
                "unit": "calls/s",
            },
            {
                "name": f"handshake.overhead_ratio.{method}",
                "value": round(median["full"] / median["raw"], 4),
                "unit": "ratio",
            },
            # Where the overhead is: the pqc layer (bytes-in/bytes-out providers) over the raw
            # pyca calls, and the protocol (agile) over the same calls made through pqc.
            {
                "name": f"handshake.pqc_layer_ratio.{method}",
                "value": round(median["pqc"] / median["raw"], 4),
                "unit": "ratio",
            },
            {
                "name": f"handshake.protocol_ratio.{method}",
                "value": round(median["full"] / median["pqc"], 4),
                "unit": "ratio",
            },
        ]
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
