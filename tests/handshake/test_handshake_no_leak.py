"""No key byte appears in any log record, repr or exception message.

Handshakes run with every logger at DEBUG into a buffer (structured fields included); the
reprs of every object involved and the messages of every exception raised are collected;
then every secret of those handshakes is searched for as hex, base64 and raw bytes.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from agile import AgileError, load_policy
from agile.engine import Engine, Identity
from agile.handshake.machine import Initiator, Responder
from agile.secret import SecretBytes
from qkd.delivery.keysource import QkdKey

from .conftest import link_sources, make_policy, mismatched_link, run_in_memory


class RecordingSource:
    """Test double: a key source that remembers every key it handed out."""

    def __init__(self, inner: Any, seen: list[bytes]) -> None:
        self._inner, self._seen = inner, seen

    def status(self) -> Any:
        return self._inner.status()

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        keys: list[QkdKey] = self._inner.get_keys(number, size_bits)
        self._seen.extend(k.key for k in keys)
        return keys

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        keys: list[QkdKey] = self._inner.get_keys_by_id(key_ids)
        self._seen.extend(k.key for k in keys)
        return keys

    def close(self) -> None:
        return None


class _Everything(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return super().format(record) + " " + repr(vars(record))


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(_Everything("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _forms(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        secret.decode("latin-1"),
    ]


def _secrets_of(machine: Initiator | Responder) -> list[bytes]:
    found: list[bytes] = []
    secret = machine._handshake_secret
    if secret is not None:
        found.append(secret.reveal())
    if isinstance(machine, Initiator):
        found += [sk.secret_bytes() for sk in machine._secret_keys.values()]
    if machine.session is not None:
        found.append(machine.session.key.reveal())
        found.append(machine.session.export("leak-test", b"", 32).reveal())
    return found


def test_no_key_bytes_in_logs_reprs_or_errors(log_buffer: io.StringIO) -> None:
    qkd_keys: list[bytes] = []
    texts: list[str] = []
    secrets: list[bytes] = []

    def scenario(
        policy_overrides: dict[str, Any],
        *,
        psk: bytes | None,
        link: Any = None,
        psk_responder: bytes | None = None,
    ) -> None:
        policy = make_policy(**policy_overrides)
        master, slave = link_sources(link)
        sources = (RecordingSource(master, qkd_keys), RecordingSource(slave, qkd_keys))
        engines = []
        if policy.auth.method == "signature":
            a, b = Identity.generate(policy), Identity.generate(policy)
            secrets.extend(k.reveal() for k in (*a.signing_keys.values(), *b.signing_keys.values()))
            engines = [
                Engine(
                    policy,
                    key_source=sources[0],
                    signing_keys=a.signing_keys,
                    peer_public_keys=b.public_keys,
                ),
                Engine(
                    policy,
                    key_source=sources[1],
                    signing_keys=b.signing_keys,
                    peer_public_keys=a.public_keys,
                ),
            ]
            texts.extend([repr(a), repr(b)])
        else:
            assert psk is not None
            secrets.append(psk)
            other = psk_responder if psk_responder is not None else psk
            secrets.append(other)
            engines = [
                Engine(policy, key_source=sources[0], psk=psk),
                Engine(policy, key_source=sources[1], psk=other),
            ]
        initiator, responder = engines[0].initiator(), engines[1].responder()
        try:
            ours, theirs = run_in_memory(initiator, responder)
            texts.extend([repr(ours), repr(theirs), str(ours), repr(ours.key if ours else None)])
            if ours is not None:
                texts.append(repr(ours.seal(b"x")[:9]))
        except AgileError as exc:
            texts.extend([str(exc), repr(exc), str(exc.__cause__), repr(exc.__cause__)])
        texts.extend(
            repr(x)
            for x in (*engines, engines[0].config, initiator, responder, *initiator.start_events)
        )
        secrets.extend(_secrets_of(initiator) + _secrets_of(responder))

    signature = {"auth": {"method": "signature", "signature_algorithms": ["Ed25519", "ML-DSA-65"]}}
    psk = {"auth": {"method": "psk", "psk_id": "leak"}}
    scenario(signature, psk=None)
    scenario(psk, psk=b"P" * 32)
    scenario(psk, psk=b"Q" * 32, psk_responder=b"R" * 32)  # wrong PSK: binder error
    scenario(signature, psk=None, link=mismatched_link())  # mismatched QKD keys
    scenario({**psk, "kdf": {"combiner": "caskdf", "hash": "SHA-384"}}, psk=b"S" * 48)

    secrets.extend(qkd_keys)
    assert len(qkd_keys) >= 8
    assert len(secrets) > 20
    haystack = log_buffer.getvalue() + "\n".join(texts)
    assert "handshake_complete" in haystack
    assert "handshake_failed" in haystack
    for secret in secrets:
        assert len(secret) >= 16
        for form in _forms(secret):
            assert form not in haystack, "key material leaked into logs, reprs or errors"


def test_secret_wrappers_and_keys_never_print() -> None:
    key = SecretBytes(bytes(range(32)))
    assert bytes(range(32)).hex() not in f"{key} {key!r} {key!s}"
    qkd_key = QkdKey(key_id="7f1f1c2e-1d1e-4c1b-9a41-1b1f3f2b4a10", key=bytes(range(32)))
    assert bytes(range(32)).hex() not in repr(qkd_key)
    policy = load_policy("pqc-only-latest")
    identity = Identity.generate(policy)
    for secret in identity.signing_keys.values():
        assert secret.reveal().hex() not in repr(identity)
