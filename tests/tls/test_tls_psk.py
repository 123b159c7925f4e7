"""PSK sources: the stunnel PSKsecrets format and the RFC 9258 identity of a QKD key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agile.export import ImportedIdentity
from agile.tls.psk import PskError, PskSecrets, parse_qkd_identity, qkd_identity

KEY_ID = "0b5c9a53-4a5b-4fd3-a1a0-3c2f3e8f0d11"


def test_hex_keys_are_binary_and_other_keys_are_their_bytes() -> None:
    secrets = PskSecrets.parse(
        "# comment\nsite-a:" + "ab" * 32 + "\nsite-b:this is a passphrase key\n", "f.txt"
    )
    assert secrets.identities() == ("site-a", "site-b")
    key_a, key_b = secrets.key_for("site-a"), secrets.key_for("site-b")
    assert key_a is not None
    assert key_a.reveal() == bytes([0xAB]) * 32
    assert key_b is not None
    assert key_b.reveal() == b"this is a passphrase key"


def test_the_line_splits_at_the_first_colon() -> None:
    secrets = PskSecrets.parse("a:key:with:colons:0123456789\n")
    key = secrets.key_for("a")
    assert key is not None
    assert key.reveal() == b"key:with:colons:0123456789"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-colon-here\n", "f:1: expected IDENTITY:KEY"),
        ("a:short\n", "f:1: the key of 'a' is 5 bytes"),
        ("ok:" + "00" * 16 + "\n" + "x" * 128 + ":" + "00" * 16 + "\n", "f:2: the identity"),
        (":" + "00" * 16 + "\n", "f:1: the identity"),
        ("a:" + "00" * 16 + "\na:" + "11" * 16 + "\n", "f:2: identity 'a' is listed twice"),
        ("a:" + "0" * 1026 + "\n", "f:1: the key of 'a' is 513 bytes"),
        ("\n# nothing\n", "f: no IDENTITY:KEY line"),
    ],
)
def test_bad_lines_are_located(text: str, message: str) -> None:
    with pytest.raises(PskError) as caught:
        PskSecrets.parse(text, "f")
    assert str(caught.value).startswith(message)


def test_identity_limits_match_stunnel() -> None:
    key = "00" * 16
    assert PskSecrets.parse("x" * 127 + ":" + key).identities() == ("x" * 127,)
    assert len(PskSecrets.parse("k:" + "0" * 1024).entries) == 1  # 512 bytes


def test_keys_never_show() -> None:
    secrets = PskSecrets.parse("a:" + "ab" * 32)
    assert "abab" not in repr(secrets)
    with pytest.raises(PskError) as caught:
        PskSecrets.parse("a:" + "cd" * 8 + "\n" + "a:" + "ef" * 20)
    assert "cdcd" not in str(caught.value)
    assert "efef" not in str(caught.value)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_qkd_identity_round_trips(hash_name: str) -> None:
    encoded = qkd_identity(KEY_ID, hash_name).encode()
    assert parse_qkd_identity(encoded) == (KEY_ID, hash_name)


@pytest.mark.parametrize(
    "identity",
    [
        ImportedIdentity(external_identity=KEY_ID.encode(), context=b"x").encode(),
        ImportedIdentity(external_identity=KEY_ID.encode(), target_protocol=0xFEFC).encode(),
        ImportedIdentity(external_identity=b"\xff\xfe").encode(),
        ImportedIdentity(external_identity=b"a\nb").encode(),
        b"site-a",  # a static identity is not an ImportedIdentity
        b"",
    ],
)
def test_other_identities_are_refused(identity: bytes) -> None:
    with pytest.raises(PskError):
        parse_qkd_identity(identity)


@given(st.binary(max_size=80))
def test_any_identity_parses_or_raises_psk_error(identity: bytes) -> None:
    try:
        key_id, hash_name = parse_qkd_identity(identity)
    except PskError:
        return
    assert qkd_identity(key_id, hash_name).encode() == identity
