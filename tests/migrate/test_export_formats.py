"""Key-export formats, RFC 9258 imported PSKs, domain separation and atomic 0600 writing."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from hypothesis import given, settings
from hypothesis import strategies as st

from agile.export import (
    TLS_HKDF_SHA384,
    ExportError,
    ImportedIdentity,
    derive_target_key,
    import_psk,
    openssl_psk,
    stunnel_psk_secrets,
    swanctl_ppk_secrets,
    wireguard_preshared_key,
    write_secret_file,
)
from agile.secret import SecretBytes
from agile.session import HybridSession

KEY = SecretBytes(bytes(range(32)))


def test_openssl_psk_is_hex_line() -> None:
    assert openssl_psk(KEY) == bytes(range(32)).hex() + "\n"
    with pytest.raises(ExportError, match="too short"):
        openssl_psk(b"short")


def test_stunnel_psk_secrets_lines_and_rules() -> None:
    text = stunnel_psk_secrets({"site-a": KEY, "site-b": bytes(16)})
    assert text == f"site-a:{bytes(range(32)).hex()}\nsite-b:{bytes(16).hex()}\n"
    with pytest.raises(ExportError, match="16 or more"):
        stunnel_psk_secrets({"x": bytes(15)})
    with pytest.raises(ExportError, match="identity"):
        stunnel_psk_secrets({"a:b": KEY})


def test_wireguard_preshared_key_is_32_bytes_base64() -> None:
    text = wireguard_preshared_key(KEY)
    assert len(text.strip()) == 44
    assert base64.b64decode(text) == bytes(range(32))
    with pytest.raises(ExportError, match="32 bytes"):
        wireguard_preshared_key(bytes(31))


def test_swanctl_ppk_fragment() -> None:
    text = swanctl_ppk_secrets("agile", KEY, ["carol@example.org"])
    assert text.splitlines() == [
        "secrets {",
        "    ppk-agile {",
        f"        secret = 0x{bytes(range(32)).hex()}",
        "        id = carol@example.org",
        "    }",
        "}",
    ]
    shared = swanctl_ppk_secrets("agile", KEY, ["a", "b"])
    assert "id-1 = a" in shared
    assert "id-2 = b" in shared
    with pytest.raises(ExportError, match="256 bits"):
        swanctl_ppk_secrets("agile", bytes(16), ["a"])
    with pytest.raises(ExportError, match="section name"):
        swanctl_ppk_secrets("a b", KEY, ["a"])


def test_errors_never_quote_the_key() -> None:
    secret = bytes([0xAB] * 15)
    for call in (
        lambda: openssl_psk(secret),
        lambda: wireguard_preshared_key(secret),
        lambda: stunnel_psk_secrets({"x": secret}),
        lambda: swanctl_ppk_secrets("n", secret, ["x"]),
    ):
        with pytest.raises(ExportError) as exc:
            call()
        assert secret.hex() not in str(exc.value)
        assert "abab" not in str(exc.value)


def test_imported_identity_encoding() -> None:
    identity = ImportedIdentity(external_identity=b"psk-1", context=b"ctx")
    assert identity.encode() == (
        struct.pack(">H", 5)
        + b"psk-1"
        + struct.pack(">H", 3)
        + b"ctx"
        + struct.pack(">HH", 0x0304, 1)
    )
    with pytest.raises(ExportError):
        ImportedIdentity(external_identity=b"")
    with pytest.raises(ExportError):
        ImportedIdentity(external_identity=b"x", target_kdf=0x0003)


def _rfc9258_reference(
    epsk: bytes, identity: ImportedIdentity, algorithm: hashes.HashAlgorithm, length: int
) -> bytes:
    # RFC 9258 clause 5.1 with pyca's HKDF: epskx = HKDF-Extract(0, epsk);
    # ipskx = HKDF-Expand-Label(epskx, "derived psk", Hash(ImportedIdentity), L).
    extract = crypto_hmac.HMAC(bytes(algorithm.digest_size), algorithm)  # the all-zero salt
    extract.update(epsk)
    epskx = extract.finalize()
    digest = hashlib.new(algorithm.name, identity.encode()).digest()
    label = b"tls13 derived psk"
    info = struct.pack(">H", length) + bytes([len(label)]) + label + bytes([len(digest)]) + digest
    return HKDFExpand(algorithm=algorithm, length=length, info=info).derive(epskx)


@settings(max_examples=40, deadline=None)
@given(
    epsk=st.binary(min_size=1, max_size=80),
    external=st.binary(min_size=1, max_size=40),
    context=st.binary(max_size=40),
    sha384=st.booleans(),
)
def test_import_psk_matches_an_independent_rfc9258_derivation(
    epsk: bytes, external: bytes, context: bytes, sha384: bool
) -> None:
    identity = ImportedIdentity(
        external_identity=external,
        context=context,
        target_kdf=TLS_HKDF_SHA384 if sha384 else 0x0001,
    )
    length = 48 if sha384 else 32
    ours = import_psk(epsk, identity)
    assert len(ours) == length
    assert ours.reveal() == _rfc9258_reference(epsk, identity, hashes.SHA256(), length)
    ours384 = import_psk(epsk, identity, epsk_hash="sha384")
    assert ours384.reveal() == _rfc9258_reference(epsk, identity, hashes.SHA384(), length)


def _session(key: bytes) -> HybridSession:
    return HybridSession.create(
        key=SecretBytes(key),
        suite=("ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"),
        hash_name="SHA-256",
        aead="AES-256-GCM",
        transcript_hash=hashlib.sha256(b"transcript").digest(),
    )


def test_target_keys_agree_between_peers_and_are_separated() -> None:
    alice, bob = _session(bytes(32)), _session(bytes(32))
    other = _session(bytes([1]) * 32)
    keys = {}
    for target in ("openssl", "stunnel", "wireguard", "strongswan"):
        a = derive_target_key(alice, target, "site-a")  # type: ignore[arg-type]
        assert a == derive_target_key(bob, target, "site-a")  # type: ignore[arg-type]
        assert a != derive_target_key(other, target, "site-a")  # type: ignore[arg-type]
        assert a != derive_target_key(alice, target, "site-b")  # type: ignore[arg-type]
        keys[target] = a.reveal()
    # Same label for the two TLS targets (same key for the same identity), others differ.
    assert keys["openssl"] == keys["stunnel"]
    assert len({keys["openssl"], keys["wireguard"], keys["strongswan"]}) == 3
    with pytest.raises(ExportError, match="identity"):
        derive_target_key(alice, "wireguard", "has space")


def test_write_secret_file_is_0600_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "psk.txt"
    old_umask = os.umask(0)
    try:
        write_secret_file(target, "first\n")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "first\n"
    assert target.stat().st_mode & 0o777 == 0o600
    write_secret_file(target, b"second\n")
    assert target.read_bytes() == b"second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["psk.txt"]


def test_write_secret_file_replaces_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "key"
    link.symlink_to(victim)
    write_secret_file(link, "key\n")
    assert victim.read_text() == "untouched"
    assert not link.is_symlink()
    assert link.read_text() == "key\n"


def test_write_secret_file_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="missing"):
        write_secret_file(tmp_path / "missing" / "key", "x")


def test_concurrent_readers_never_see_a_half_written_file(tmp_path: Path) -> None:
    target = tmp_path / "wg.psk"
    # Contents of very different lengths, each recognisable as a whole.
    versions = [(chr(ord("a") + i) * (1 + 7919 * (i % 5))).encode() for i in range(10)]
    write_secret_file(target, versions[0])
    valid = set(versions)
    stop = threading.Event()
    seen: list[bytes] = []
    bad: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            data = target.read_bytes()
            if data not in valid:
                bad.append(len(data))
            seen.append(data)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(200):
            write_secret_file(target, versions[i % len(versions)])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert bad == []
    assert len(set(seen)) > 1  # the readers did see the file change
