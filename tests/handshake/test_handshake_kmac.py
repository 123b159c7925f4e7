"""The Keccak sponge and KMAC of agile.kdf._kmac against hashlib and SP 800-185's samples."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agile.kdf._kmac import cshake, kmac

_KEY = bytes(range(0x40, 0x60))


@settings(max_examples=25, deadline=None)
@given(message=st.binary(max_size=400), length=st.integers(min_value=1, max_value=300))
def test_sponge_agrees_with_hashlib_shake(message: bytes, length: int) -> None:
    assert cshake(128, message, length) == hashlib.shake_128(message).digest(length)
    assert cshake(256, message, length) == hashlib.shake_256(message).digest(length)


@pytest.mark.parametrize(
    ("bits", "data", "custom", "length", "expected"),
    [
        # NIST SP 800-185 KMAC samples #1 and #2 (KMAC128, 32-byte output).
        (
            128,
            bytes([0, 1, 2, 3]),
            b"",
            32,
            "E5780B0D3EA6F7D3A429C5706AA43A00FADBD7D49628839E3187243F456EE14E",
        ),
        (
            128,
            bytes([0, 1, 2, 3]),
            b"My Tagged Application",
            32,
            "3B1FBA963CD8B0B59E8C1A6D71888B7143651AF8BA0A7070C0979E2811324AA5",
        ),
    ],
)
def test_kmac_sp800_185_samples(
    bits: int, data: bytes, custom: bytes, length: int, expected: str
) -> None:
    assert kmac(bits, _KEY, data, length, custom).hex().upper() == expected


def test_kmac_output_length_is_bound() -> None:
    # KMAC encodes L: a shorter output is not a prefix of a longer one.
    assert kmac(256, _KEY, b"x", 32) != kmac(256, _KEY, b"x", 64)[:32]
