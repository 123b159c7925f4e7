"""Properties of the combiners: every input matters, and HKDF is RFC 5869's."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from agile.kdf import CascadeRound, KdfError, caskdf, catkdf, concat_format, hkdf

secret = st.binary(min_size=16, max_size=64)
message = st.binary(min_size=0, max_size=200)


def _combine(combiner: str, inputs: dict[str, Any]) -> bytes:
    info = concat_format(b"label", inputs["fp_i"], inputs["fp_r"])
    if combiner == "catkdf":
        return catkdf(
            inputs["secrets"],
            ma=inputs["ma"],
            mb=inputs["mb"],
            info=info,
            label=b"label",
            length=32,
            psk=inputs["psk"],
        )
    rounds = [CascadeRound(ma=inputs["ma"], mb=inputs["mb"], label=b"label", info=info)]
    return caskdf(inputs["secrets"], rounds * len(inputs["secrets"]), length=32, psk=inputs["psk"])


def _flip(data: bytes, position: int) -> bytes:
    if not data:
        return b"\x01"
    i = position % len(data)
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


@pytest.mark.parametrize("combiner", ["catkdf", "caskdf"])
@settings(max_examples=40, deadline=None)
@given(
    secrets=st.lists(secret, min_size=1, max_size=3),
    ma=message,
    mb=message,
    fp_i=st.binary(min_size=8, max_size=40),
    fp_r=st.binary(min_size=8, max_size=40),
    psk=st.one_of(st.just(b""), secret),
    which=st.sampled_from(["secret", "ma", "mb", "fp_i", "fp_r", "psk"]),
    position=st.integers(min_value=0, max_value=10_000),
)
def test_changing_any_one_input_changes_the_key(
    combiner: str,
    secrets: list[bytes],
    ma: bytes,
    mb: bytes,
    fp_i: bytes,
    fp_r: bytes,
    psk: bytes,
    which: str,
    position: int,
) -> None:
    inputs: dict[str, Any] = {
        "secrets": secrets,
        "ma": ma,
        "mb": mb,
        "fp_i": fp_i,
        "fp_r": fp_r,
        "psk": psk,
    }
    changed = dict(inputs)
    if which == "secret":
        index = position % len(secrets)
        changed["secrets"] = [
            *secrets[:index],
            _flip(secrets[index], position),
            *secrets[index + 1 :],
        ]
    else:
        changed[which] = _flip(inputs[which], position)
    assert _combine(combiner, inputs) != _combine(combiner, changed)


@pytest.mark.parametrize("combiner", ["catkdf", "caskdf"])
def test_secret_order_matters(combiner: str) -> None:
    a, b = b"a" * 32, b"b" * 32
    base = {"ma": b"MA", "mb": b"MB", "fp_i": b"fi", "fp_r": b"fr", "psk": b""}
    assert _combine(combiner, {**base, "secrets": [a, b]}) != _combine(
        combiner, {**base, "secrets": [b, a]}
    )


@settings(max_examples=50, deadline=None)
@given(
    ikm=st.binary(max_size=100),
    salt=st.binary(max_size=80),
    info=st.binary(max_size=100),
    length=st.integers(min_value=1, max_value=255),
    hash_name=st.sampled_from(["SHA-256", "SHA-384", "SHA-512", "SHA3-256"]),
)
def test_hkdf_agrees_with_pyca(
    ikm: bytes, salt: bytes, info: bytes, length: int, hash_name: str
) -> None:
    algorithm = {
        "SHA-256": hashes.SHA256(),
        "SHA-384": hashes.SHA384(),
        "SHA-512": hashes.SHA512(),
        "SHA3-256": hashes.SHA3_256(),
    }[hash_name]
    expected = HKDF(algorithm, length, salt=salt or None, info=info).derive(ikm)
    assert hkdf(hash_name, secret=ikm, salt=salt, info=info, length=length) == expected


def test_bad_parameters_raise_kdf_error() -> None:
    with pytest.raises(KdfError, match="unknown hash"):
        catkdf([b"x" * 32], ma=b"", mb=b"", info=b"", label=b"", length=32, hash_name="MD5")
    with pytest.raises(KdfError, match="at least one secret"):
        catkdf([], ma=b"", mb=b"", info=b"", label=b"", length=32)
    with pytest.raises(KdfError, match="2 secrets but 1 rounds"):
        caskdf(
            [b"x" * 32, b"y" * 32], [CascadeRound(ma=b"", mb=b"", label=b"", info=b"")], length=32
        )
    with pytest.raises(KdfError, match="cannot produce"):
        hkdf("SHA-256", secret=b"x", salt=b"", info=b"", length=255 * 32 + 1)
    with pytest.raises(KdfError, match="unknown KDF"):
        catkdf([b"x" * 32], ma=b"", mb=b"", info=b"", label=b"", length=32, kdf="kmac")
