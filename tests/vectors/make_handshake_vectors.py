"""Make tests/vectors/handshake-combiner.json: combiner vectors for our suites with a QKD key.

ETSI TS 103 744's own vectors cover two secrets (ECDH, ML-KEM) in the standard's order. These
cover the order our built-in suites use (ML-KEM first, the QKD key last; SP 800-56C r2
Z' = Z || T) with three secrets, both combiners, SHA-256 and SHA-384, with and without a PSK,
and MA/MB/info built the way the handshake builds them (info = f(label, fp_I, fp_R)).

Inputs are derived deterministically from SHAKE256 of a name, so anyone can regenerate the
file: ``python tests/vectors/make_handshake_vectors.py`` (``--check`` compares instead of
writing). The outputs come from ``agile.kdf``; tests/handshake/test_handshake_own_vectors.py
checks them against an independent implementation written from the standard.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from agile.kdf import CascadeRound, caskdf, catkdf, concat_format, digest_size

OUTPUT = Path(__file__).with_name("handshake-combiner.json")

# (name, components, combiner, hash, secret sizes, psk length)
CASES: tuple[tuple[str, tuple[str, ...], str, str, tuple[int, ...], int], ...] = (
    (
        "mlkem768-x25519-qkd catkdf",
        ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"),
        "catkdf",
        "SHA-256",
        (32, 32, 32),
        0,
    ),
    (
        "mlkem768-x25519-qkd caskdf",
        ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"),
        "caskdf",
        "SHA-384",
        (32, 32, 32),
        0,
    ),
    ("xwing-qkd caskdf", ("MLKEM768-X25519", "QKD"), "caskdf", "SHA-384", (32, 32), 0),
    (
        "mlkem1024-p384-qkd catkdf",
        ("ML-KEM-1024", "DHKEM(P-384, HKDF-SHA384)", "QKD"),
        "catkdf",
        "SHA-384",
        (32, 48, 64),
        0,
    ),
    (
        "mlkem768-x25519-qkd catkdf psk",
        ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"),
        "catkdf",
        "SHA-256",
        (32, 32, 32),
        32,
    ),
    (
        "mlkem768-x25519-qkd caskdf psk",
        ("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"),
        "caskdf",
        "SHA-256",
        (32, 32, 32),
        32,
    ),
)


def _bytes(name: str, n: int) -> bytes:
    return hashlib.shake_256(name.encode()).digest(n) if n else b""


def make() -> dict[str, Any]:
    vectors = []
    for name, components, combiner, hash_name, sizes, psk_len in CASES:
        secrets = [_bytes(f"{name}/secret/{c}", n) for c, n in zip(components, sizes, strict=True)]
        ma = _bytes(f"{name}/MA", 1300)
        mb = _bytes(f"{name}/MB", 1200)
        label = b"qkd-agile v1"
        fp_i = "sha256:" + _bytes(f"{name}/fp_I", 32).hex()
        fp_r = "sha256:" + _bytes(f"{name}/fp_R", 32).hex()
        info = concat_format(label, fp_i.encode(), fp_r.encode())
        psk = _bytes(f"{name}/psk", psk_len)
        length = digest_size(hash_name)
        if combiner == "catkdf":
            key = catkdf(
                secrets,
                ma=ma,
                mb=mb,
                info=info,
                label=label,
                length=length,
                hash_name=hash_name,
                psk=psk,
            )
        else:
            rounds = [CascadeRound(ma=ma, mb=mb, label=label, info=info)] * len(secrets)
            key = caskdf(secrets, rounds, length=length, hash_name=hash_name, psk=psk)
        vectors.append(
            {
                "name": name,
                "components": list(components),
                "combiner": combiner,
                "hash": hash_name,
                "secrets": [s.hex() for s in secrets],
                "psk": psk.hex(),
                "MA": ma.hex(),
                "MB": mb.hex(),
                "label": label.hex(),
                "fingerprint_initiator": fp_i,
                "fingerprint_responder": fp_r,
                "info": info.hex(),
                "length": length,
                "handshake_secret": key.hex(),
            }
        )
    return {
        "source": "qkd-agile tests/vectors/make_handshake_vectors.py (deterministic; "
        "inputs from SHAKE256 of each vector's name)",
        "standard": "ETSI TS 103 744 V1.2.1 CatKDF (8.2) / CasKDF (8.3), HKDF; secrets in "
        "suite order, ML-KEM first and the QKD key last",
        "vectors": vectors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the file; exit 1 if it differs"
    )
    args = parser.parse_args()
    text = json.dumps(make(), indent=1) + "\n"
    if args.check:
        same = OUTPUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUTPUT} differs: regenerate it")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
