"""What a policy means for TLS 1.3: groups, cipher suites, PSK modes.

The policy decides everything; nothing here is a knob of its own:

- **Groups** come from the suites, in the policy's order of preference. Each suite's key
  exchange maps onto one TLS group (draft-ietf-tls-ecdhe-mlkem code points)::

      ML-KEM-768  + X25519 (or X-Wing, X25519MLKEM768)      -> X25519MLKEM768      0x11EC
      ML-KEM-768  + P-256  (or MLKEM768-P256, SecP256r1…)   -> SecP256r1MLKEM768   0x11EB
      ML-KEM-1024 + P-384  (or MLKEM1024-P384, SecP384r1…)  -> SecP384r1MLKEM1024  0x11ED
      ML-KEM-768 alone / ML-KEM-1024 alone                  -> MLKEM768 / MLKEM1024
      X25519 / P-256 / P-384 alone (a classical suite)      -> X25519 / secp256r1 / secp384r1

  A classical group is offered only because the policy has a classical suite. A suite with
  no TLS group (ML-KEM-512, HQC, …) is a policy error, located in the policy file.
- **Cipher suites** come from the policy's level: AES-256-GCM-SHA384 and
  ChaCha20-Poly1305-SHA256, the policy's ``session.aead`` first; AES-128-GCM-SHA256 only for
  a policy whose ``rules.min_nist_level`` is 1 or less. ``rules.forbidden`` removes
  ChaCha20-Poly1305 or every SHA-256 suite.
- **TLS 1.3 only**; no session tickets (the policy schema has no resumption setting, so
  resumption is never allowed); 0-RTT is never accepted; only ``psk_dhe_ke``, so a client
  offering ``psk_ke`` alone is refused (OpenSSL accepts it only with
  ``SSL_OP_ALLOW_NO_DHE_KEX``, which is never set).
- The policy's combiner (``[kdf]``) does not apply: TLS's own key schedule combines the
  PSK (early secret) and the hybrid group's shared secret (handshake secret), RFC 8446 §7.1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from agile._errors import PolicyError, PolicyProblem
from agile.policy.algorithms import QKD_COMPONENT
from agile.policy.loader import load_policy, locate
from agile.policy.model import Policy

_X25519 = "DHKEM(X25519, HKDF-SHA256)"
_P256 = "DHKEM(P-256, HKDF-SHA256)"
_P384 = "DHKEM(P-384, HKDF-SHA384)"

# The key exchange of a suite (its KEMs, as a set) -> the TLS group that carries it.
_GROUPS: dict[frozenset[str], str] = {
    frozenset({"ML-KEM-768", _X25519}): "X25519MLKEM768",
    frozenset({"MLKEM768-X25519"}): "X25519MLKEM768",
    frozenset({"X25519MLKEM768"}): "X25519MLKEM768",
    frozenset({"ML-KEM-768", _P256}): "SecP256r1MLKEM768",
    frozenset({"MLKEM768-P256"}): "SecP256r1MLKEM768",
    frozenset({"SecP256r1MLKEM768"}): "SecP256r1MLKEM768",
    frozenset({"ML-KEM-1024", _P384}): "SecP384r1MLKEM1024",
    frozenset({"MLKEM1024-P384"}): "SecP384r1MLKEM1024",
    frozenset({"SecP384r1MLKEM1024"}): "SecP384r1MLKEM1024",
    frozenset({"ML-KEM-768"}): "MLKEM768",
    frozenset({"ML-KEM-1024"}): "MLKEM1024",
    frozenset({_X25519}): "X25519",
    frozenset({_P256}): "secp256r1",
    frozenset({_P384}): "secp384r1",
}
CLASSICAL_GROUPS = frozenset({"X25519", "secp256r1", "secp384r1"})


@dataclass(frozen=True)
class CipherSuite:
    name: str  # OpenSSL's and IANA's name
    code: bytes  # the two-byte code point
    hash: str  # "sha256" | "sha384", the suite's HKDF hash (and so the PSK's)
    aead: str  # the policy's spelling


CIPHER_SUITES = (
    CipherSuite("TLS_AES_256_GCM_SHA384", b"\x13\x02", "sha384", "AES-256-GCM"),
    CipherSuite("TLS_CHACHA20_POLY1305_SHA256", b"\x13\x03", "sha256", "ChaCha20-Poly1305"),
    CipherSuite("TLS_AES_128_GCM_SHA256", b"\x13\x01", "sha256", "AES-128-GCM"),
)


@dataclass(frozen=True, kw_only=True)
class TlsSettings:
    """The TLS 1.3 settings that one policy gives (see the module docstring)."""

    policy: Policy
    groups: tuple[str, ...]
    cipher_suites: tuple[CipherSuite, ...]
    uses_qkd: bool
    qkd_required: bool

    @property
    def post_quantum_only(self) -> bool:
        """Whether every offered group is post-quantum (no classical fallback)."""
        return not CLASSICAL_GROUPS.intersection(self.groups)

    def cipher_suite_for(self, hash_name: str) -> CipherSuite | None:
        """The most preferred allowed suite whose hash is ``hash_name``."""
        return next((s for s in self.cipher_suites if s.hash == hash_name), None)


def tls_settings(policy: Policy | str | os.PathLike[str]) -> TlsSettings:
    """The TLS settings of ``policy`` (a Policy, a built-in name or a file).

    Raises :class:`agile.PolicyError` when a suite has no TLS group or no cipher suite is
    left; given a name or file, the problem is located (``FILE:LINE:COL: suites.N...``).
    """
    source = None if isinstance(policy, Policy) else policy
    resolved = policy if isinstance(policy, Policy) else load_policy(policy)
    problems: list[PolicyProblem] = []

    def problem(path: tuple[str | int, ...], message: str) -> None:
        if source is not None:
            problems.append(locate(source, path, message))
        else:
            dotted = ".".join(str(p) for p in path)
            problems.append(
                PolicyProblem(
                    file=f"<policy {resolved.name}>", line=1, col=1, path=dotted, message=message
                )
            )

    groups: list[str] = []
    for index, suite in enumerate(resolved.suites):
        kems = frozenset(c for c in suite.components if c != QKD_COMPONENT)
        group = _GROUPS.get(kems)
        if group is None:
            problem(
                ("suites", index, "components"),
                f"suite {suite.name!r} ({' + '.join(sorted(kems)) or 'QKD alone'}) has no TLS "
                f"1.3 group; agile.tls carries {_group_list()}; use a suite with one of "
                "those key exchanges, or the agile handshake for this suite",
            )
        elif group not in groups:
            groups.append(group)

    forbidden = set(resolved.rules.forbidden)
    suites = [
        s
        for s in CIPHER_SUITES
        if s.aead not in forbidden
        and not (s.hash == "sha256" and "SHA-256" in forbidden)
        and not (s.aead == "AES-128-GCM" and resolved.rules.min_nist_level > 1)
    ]
    suites.sort(key=lambda s: s.aead != resolved.session.aead)  # stable: the policy's first
    if not suites:
        problem(("session", "aead"), "no TLS 1.3 cipher suite is left by rules.forbidden")
    if problems:
        raise PolicyError(problems)
    return TlsSettings(
        policy=resolved,
        groups=tuple(groups),
        cipher_suites=tuple(suites),
        uses_qkd=resolved.uses_qkd,
        qkd_required=resolved.qkd.required,
    )


def _group_list() -> str:
    return ", ".join(dict.fromkeys(_GROUPS.values()))


_BY_LOWER = {name.lower(): name for name in _GROUPS.values()}


def canonical_group(name: str) -> str:
    """A group as this module spells it (OpenSSL reports ``x25519`` for ``X25519``)."""
    return _BY_LOWER.get(name.lower(), name)


def group_string(groups: Iterable[str]) -> str:
    """OpenSSL's colon-separated group list."""
    return ":".join(groups)
