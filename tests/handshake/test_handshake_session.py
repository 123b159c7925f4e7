"""SecretBytes and HybridSession: wrapping, key ids, exporters, AEAD with key-id prefix, rekey."""

from __future__ import annotations

import copy
import pickle

import pytest

from agile._errors import SessionError
from agile.secret import SecretBytes
from agile.session import HybridSession, key_id_of


def _session(key: bytes = b"\x11" * 32, aead: str = "AES-256-GCM") -> HybridSession:
    return HybridSession.create(
        SecretBytes(key),
        suite=("ML-KEM-768", "QKD"),
        hash_name="SHA-256",
        aead=aead,
        transcript_hash=b"t" * 32,
        qkd_used=True,
        qkd_key_ids=("7f1f1c2e-1d1e-4c1b-9a41-1b1f3f2b4a10",),
    )


def test_secret_bytes_hides_its_value() -> None:
    secret = SecretBytes(b"\xab" * 32)
    assert repr(secret) == str(secret) == f"{secret}" == "<SecretBytes 32 bytes>"
    assert "ab" not in repr(secret).lower()
    assert secret.reveal() == b"\xab" * 32
    assert len(secret) == 32


def test_secret_bytes_equality_is_by_value_and_only_between_secrets() -> None:
    assert SecretBytes(b"k" * 16) == SecretBytes(b"k" * 16)
    assert SecretBytes(b"k" * 16) != SecretBytes(b"j" * 16)
    assert SecretBytes(b"k" * 16) != b"k" * 16


def test_secret_bytes_refuses_pickle_copy_hash_and_mutation() -> None:
    secret = SecretBytes(b"k" * 16)
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(TypeError):
        copy.copy(secret)
    with pytest.raises(TypeError):
        copy.deepcopy(secret)
    with pytest.raises(TypeError):
        hash(secret)
    with pytest.raises(AttributeError):
        secret._value = b"x"
    with pytest.raises(TypeError):
        SecretBytes("not bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize("aead", ["AES-256-GCM", "ChaCha20-Poly1305"])
def test_seal_open_round_trip_with_associated_data(aead: str) -> None:
    a, b = _session(aead=aead), _session(aead=aead)
    sealed = a.seal(b"payload", b"header")
    assert sealed[0] == 1
    assert sealed[1:9] == bytes.fromhex(a.key_id)
    assert b.open(sealed, b"header") == b"payload"
    with pytest.raises(SessionError, match="authentication"):
        b.open(sealed, b"other header")


def test_open_refuses_another_key_id_before_decrypting() -> None:
    sealed = _session(b"\x11" * 32).seal(b"payload")
    with pytest.raises(SessionError, match="key id"):
        _session(b"\x22" * 32).open(sealed)


def test_open_refuses_tampering_truncation_and_unknown_version() -> None:
    session = _session()
    sealed = session.seal(b"payload")
    with pytest.raises(SessionError, match="authentication"):
        session.open(sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(SessionError, match="too short"):
        session.open(sealed[:20])
    with pytest.raises(SessionError, match="version"):
        session.open(b"\x02" + sealed[1:])


def test_key_id_is_public_and_one_way() -> None:
    session = _session()
    assert session.key_id == key_id_of("SHA-256", b"\x11" * 32).hex()
    assert len(session.key_id) == 16
    assert (b"\x11" * 8).hex() not in session.key_id
    assert session.key_id not in repr(session.key)
    assert "key_id=" + session.key_id in repr(session)


def test_exporter_is_deterministic_and_label_and_context_bound() -> None:
    a, b = _session(), _session()
    assert a.export("EXPORTER-test", b"ctx", 48) == b.export("EXPORTER-test", b"ctx", 48)
    assert len(a.export("x", b"", 48)) == 48
    assert a.export("EXPORTER-test", b"ctx") != a.export("EXPORTER-other", b"ctx")
    assert a.export("EXPORTER-test", b"ctx") != a.export("EXPORTER-test", b"ctx2")
    assert a.export("x").reveal() != a.key.reveal()


def test_rekey_derives_a_new_epoch_one_way() -> None:
    session = _session()
    next_session = session.rekey()
    assert next_session.epoch == 1
    assert next_session.key_id != session.key_id
    assert next_session.key != session.key
    assert next_session.suite == session.suite
    assert next_session.qkd_used
    assert _session().rekey().key == next_session.key  # both peers derive the same key
    with pytest.raises(SessionError, match="key id"):
        next_session.open(session.seal(b"old epoch"))


def test_lifetime_and_rekey_interval() -> None:
    session = HybridSession.create(
        SecretBytes(b"k" * 32),
        suite=("ML-KEM-768",),
        hash_name="SHA-256",
        aead="AES-256-GCM",
        transcript_hash=b"",
        lifetime_s=-1.0,
        rekey_interval_s=-1.0,
    )
    assert session.expired
    assert session.needs_rekey
    with pytest.raises(SessionError, match="lifetime"):
        session.seal(b"x")
    assert not _session().expired


def test_unknown_aead_is_refused() -> None:
    with pytest.raises(SessionError, match="unknown AEAD"):
        _session(aead="RC4")
