"""Shared fixtures of the handshake tests: policies, peer engines, an in-memory run."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from agile import load_policy
from agile.engine import Engine, peer_engines
from agile.handshake.machine import Initiator, Responder
from agile.policy import builtin
from agile.policy.loader import policy_from_dict
from agile.policy.model import Policy
from agile.session import HybridSession
from qkd.delivery.keysource import KeyStatus, QkdKey, SimulatedLink

REPO_ROOT = Path(__file__).resolve().parents[2]


def builtin_policies() -> list[str]:
    """The versioned built-in policies (aliases point at these)."""
    return builtin.versioned_names()


def make_policy(**overrides: Any) -> Policy:
    """A small valid policy (default hybrid suites, QKD optional), with sections replaced."""
    document: dict[str, Any] = {
        "schema_version": 1,
        "name": "test-policy",
        "version": "1",
        "providers": ["cryptography"],
        "suites": [
            {
                "name": "mlkem768-x25519-qkd",
                "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"],
            },
            {"name": "mlkem768-x25519", "components": ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)"]},
        ],
        "qkd": {"source": "simulated", "required": False, "key_size_bits": 256},
        "kdf": {"combiner": "catkdf", "hash": "SHA-256", "label": "qkd-agile test"},
        "auth": {"method": "signature", "signature_algorithms": ["Ed25519"]},
        "session": {"key_length": 32},
        "rules": {"min_nist_level": 0},
    }
    document.update(overrides)
    return policy_from_dict(document, source="tests/handshake")


def run_in_memory(
    initiator: Initiator,
    responder: Responder,
    *,
    tamper: Callable[[int, bytes], bytes] | None = None,
) -> tuple[HybridSession | None, HybridSession | None]:
    """Run a handshake without sockets; ``tamper(flight, data)`` may change any flight."""
    flights = 0

    def carry(data: bytes) -> bytes:
        nonlocal flights
        flights += 1
        return tamper(flights, data) if tamper else data

    responder.receive_data(carry(initiator.start()))
    initiator.receive_data(carry(responder.data_to_send()))
    responder.receive_data(carry(initiator.data_to_send()))
    return initiator.session, responder.session


@pytest.fixture
def default_policy() -> Policy:
    return load_policy("hybrid-default-latest")


@pytest.fixture
def pair() -> Callable[..., tuple[Engine, Engine]]:
    """Build trusting peer engines for two policies (see agile.engine.peer_engines)."""

    def build(a: Policy, b: Policy | None = None, **kwargs: Any) -> tuple[Engine, Engine]:
        return peer_engines(a, b if b is not None else a, **kwargs)

    return build


class FaultySource:
    """Test double for a qkd.KeySource: wraps a real one and injects one fault."""

    def __init__(
        self,
        inner: Any,
        *,
        fail_with: Exception | None = None,
        qber: float | None = None,
        key_age_s: float | None = None,
    ) -> None:
        self._inner = inner
        self._fail_with = fail_with
        self._qber = qber
        self._key_age_s = key_age_s

    def status(self) -> KeyStatus:
        status: KeyStatus = self._inner.status()
        extension: dict[str, Any] = {}
        if self._qber is not None:
            extension["qber"] = self._qber
        if self._key_age_s is not None:
            extension["key_age_s"] = self._key_age_s
        return dataclasses.replace(status, status_extension=extension or None)

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        if self._fail_with is not None:
            raise self._fail_with
        keys: list[QkdKey] = self._inner.get_keys(number, size_bits)
        return keys

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        if self._fail_with is not None:
            raise self._fail_with
        keys: list[QkdKey] = self._inner.get_keys_by_id(key_ids)
        return keys

    def close(self) -> None:
        return None


def engines_with_sources(
    policy: Policy,
    initiator_source: Any,
    responder_source: Any,
    *,
    responder_policy: Policy | None = None,
) -> tuple[Engine, Engine]:
    """Peer engines whose QKD sources are the given ones (for fault injection)."""
    from agile.engine import Identity

    other = responder_policy or policy
    a, b = Identity.generate(policy), Identity.generate(other)
    return (
        Engine(
            policy,
            key_source=initiator_source,
            signing_keys=a.signing_keys,
            peer_public_keys=b.public_keys,
            allow_missing_key_source=True,
        ),
        Engine(
            other,
            key_source=responder_source,
            signing_keys=b.signing_keys,
            peer_public_keys=a.public_keys,
            allow_missing_key_source=True,
        ),
    )


def link_sources(link: SimulatedLink | None = None) -> tuple[Any, Any]:
    link = link or SimulatedLink(key_size=256)
    return link.source("sae-a", peer="sae-b"), link.source("sae-b", peer="sae-a")


def mismatched_link() -> SimulatedLink:
    """A link whose two ends receive different keys (a broken or attacked link)."""
    return SimulatedLink(key_size=256, supplier=lambda n: (os.urandom(n), os.urandom(n)))
