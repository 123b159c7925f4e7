"""What a handshake needs, resolved once from a policy by :class:`agile.engine.Engine`.

Everything here is concrete: KEM and signature objects from ``pqc``, key bytes, a key source.
The state machines read it and never look at the policy again, which keeps them free of
policy logic and fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agile.secret import SecretBytes

if TYPE_CHECKING:
    from pqc import Kem, SignaturePrivateKey, SignaturePublicKey, SignatureScheme
    from qkd.delivery.keysource import KeySource, QkdKey

QKD_COMPONENT = "QKD"


@dataclass(frozen=True, kw_only=True, slots=True)
class Signer:
    """One of our signature algorithms with our secret key for it, loaded once (a pqc key
    object: an ML-DSA seed is expanded here, not at every signature)."""

    algorithm: str
    scheme: SignatureScheme
    key: SignaturePrivateKey = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Verifier:
    """One signature algorithm the peer must sign with, and the peer's pinned public key."""

    algorithm: str
    scheme: SignatureScheme
    public_key: bytes
    key: SignaturePublicKey = field(repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class QkdConfig:
    """Where QKD keys come from and what the policy says when they cannot be had."""

    source_kind: str  # none | simulated | etsi014
    source: KeySource | None
    required: bool
    key_size_bits: int
    max_qber: float
    max_key_age_s: float
    max_trusted_nodes: int | None = None
    excluded_nodes: tuple[str, ...] = ()
    required_nodes: tuple[str, ...] = ()
    on_violation: str = "fail"  # fail | fallback

    @property
    def constrains_path(self) -> bool:
        """Whether the policy bounds the trust path of a key at all."""
        return (
            self.max_trusted_nodes is not None
            or bool(self.excluded_nodes)
            or bool(self.required_nodes)
        )

    def path_problem(self, keys: Sequence[QkdKey]) -> str | None:
        """Why the policy refuses these keys' relay paths, or ``None`` when it takes them.

        A key is refused if it passed through more than ``max_trusted_nodes`` trusted nodes,
        if its path names an excluded node or lacks a required one, or if the KME reported
        no path while the policy bounds paths. Node names are public; the message shows them.
        """
        if not self.constrains_path:
            return None
        for key in keys:
            path = key.relay_path
            if path is None:
                return (
                    f"the KME reported no relay path for QKD key {key.key_id}, and the policy "
                    "bounds trust paths (max_trusted_nodes, excluded_nodes, required_nodes)"
                )
            shown = " -> ".join(path)
            trusted = len(path) - 2
            if self.max_trusted_nodes is not None and trusted > self.max_trusted_nodes:
                return (
                    f"QKD key {key.key_id} passed through {trusted} trusted node(s) "
                    f"({shown}); the policy allows at most {self.max_trusted_nodes}"
                )
            excluded = [node for node in path if node in self.excluded_nodes]
            if excluded:
                return (
                    f"QKD key {key.key_id} passed through excluded node(s) "
                    f"{', '.join(excluded)} ({shown})"
                )
            missing = [node for node in self.required_nodes if node not in path]
            if missing:
                return (
                    f"QKD key {key.key_id} did not pass through required node(s) "
                    f"{', '.join(missing)} ({shown})"
                )
        return None

    def link_problem(self) -> str | None:
        """Why the link's keys may not be used now (QBER or key age over the policy's limit,
        from the source's status), or ``None``. The agile handshake and ``agile.tls`` ask."""
        if self.source is None:
            return None
        extension = self.source.status().status_extension or {}
        qber = extension.get("qber")
        if isinstance(qber, int | float) and qber > self.max_qber:
            return f"link QBER {qber:.4f} exceeds the policy maximum {self.max_qber}"
        age = extension.get("key_age_s")
        if isinstance(age, int | float) and age > self.max_key_age_s:
            return (
                f"QKD keys are {age:.0f} s old, over the policy maximum {self.max_key_age_s:.0f} s"
            )
        return None


@dataclass(frozen=True, kw_only=True)
class HandshakeConfig:
    """A policy resolved into the objects one side of a handshake uses."""

    policy_name: str
    fingerprint: str
    suites: tuple[tuple[str, ...], ...]
    suite_names: Mapping[tuple[str, ...], str]
    kems: Mapping[str, Kem]
    combiner: str
    hash_name: str
    label: bytes
    key_length: int
    aead: str
    lifetime_s: float
    rekey_interval_s: float
    qkd: QkdConfig
    auth_method: str  # signature | psk
    signers: tuple[Signer, ...] = ()
    verifiers: tuple[Verifier, ...] = ()
    psk: SecretBytes | None = field(default=None, repr=False)
    psk_id: str = ""
    binder_key: SecretBytes | None = field(default=None, repr=False)
    """The key of the initiator's PSK binder, ``Expand-Label(psk, "i psk binder", "", Nh)``,
    derived once from the PSK (see machine.BINDER_LABEL)."""
    cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    """What the state machines derive from this config once and reuse between handshakes
    (bounded by them): prepared combiners per peer, acceptable suites."""

    def suite_name(self, suite: tuple[str, ...]) -> str:
        """The policy's name for ``suite`` (or its fallback without QKD), else the components."""
        if suite in self.suite_names:
            return self.suite_names[suite]
        return "+".join(suite)
