"""The engine: resolves a policy into concrete providers, keys and a QKD key source, once.

Resolution happens when the engine is built, so that an algorithm that no provider here
implements, a missing peer key or a missing key source fails *then*, with the reason, rather
than in the middle of a handshake. After that, :meth:`Engine.initiator` and
:meth:`Engine.responder` create handshakes that never look at the policy again.

Example::

    engine = Engine(load_policy("hybrid-default-latest"), key_source=link_end,
                    signing_keys=my_keys, peer_public_keys=their_keys)
    initiator = engine.initiator()
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pqc
from agile import audit
from agile._errors import EngineError
from agile.handshake.config import (
    QKD_COMPONENT,
    HandshakeConfig,
    QkdConfig,
    Signer,
    Verifier,
)
from agile.handshake.machine import BINDER_LABEL, Initiator, Responder, strip_qkd
from agile.kdf import digest_size
from agile.secret import SecretBytes
from agile.session import expand_label

if TYPE_CHECKING:
    from agile.policy.model import Policy
    from pqc import Kem, SignatureScheme
    from qkd.delivery.keysource import KeySource, SimulatedLink

_MIN_PSK_BYTES = 32


@dataclass(frozen=True, kw_only=True)
class Identity:
    """A party's signing keys (secret) and the matching public keys (to give the peer)."""

    signing_keys: Mapping[str, SecretBytes]
    public_keys: Mapping[str, bytes]

    def __repr__(self) -> str:
        return f"<Identity {', '.join(self.public_keys)}>"

    @classmethod
    def generate(
        cls,
        policy: Policy,
        *,
        algorithms: Sequence[str] | None = None,
        providers: Sequence[str] | None = None,
    ) -> Identity:
        """Fresh key pairs for ``algorithms`` (default: those ``policy`` signs with)."""
        signing: dict[str, SecretBytes] = {}
        public: dict[str, bytes] = {}
        for name in policy.auth.signature_algorithms if algorithms is None else algorithms:
            scheme = _signature(name, providers or policy.providers)
            pk, sk = scheme.generate_keypair()
            signing[name] = SecretBytes(sk)
            public[name] = pk
        return cls(signing_keys=signing, public_keys=public)


def _unavailable(kind: str, name: str, reasons: list[str]) -> EngineError:
    return EngineError(
        f"{kind} {name} is unavailable from every provider the policy allows "
        f"({'; '.join(reasons) or 'no providers listed'}); install a provider that has it "
        "(see `agile pqc list`) or remove it from the policy"
    )


def _kem(name: str, providers: Sequence[str]) -> Kem:
    """The KEM ``name`` from the first provider in ``providers`` that has it."""
    reasons: list[str] = []
    for provider in providers:
        try:
            return pqc.kem(name, provider=provider)
        except pqc.PQCError as exc:
            reasons.append(f"{provider}: {exc}")
    raise _unavailable("kem", name, reasons)


def _signature(name: str, providers: Sequence[str]) -> SignatureScheme:
    """The signature scheme ``name`` from the first provider in ``providers`` that has it."""
    reasons: list[str] = []
    for provider in providers:
        try:
            return pqc.signature(name, provider=provider)
        except pqc.PQCError as exc:
            reasons.append(f"{provider}: {exc}")
    raise _unavailable("signature", name, reasons)


def _read_trust_file(path: str) -> dict[str, bytes]:
    """A trust file is TOML: ``[peer_public_keys]`` mapping algorithm names to hex keys."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        table = document["peer_public_keys"]
        return {str(name): bytes.fromhex(str(value)) for name, value in table.items()}
    except OSError as exc:
        raise EngineError(f"{path}: cannot read the trust file ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, KeyError, AttributeError, ValueError) as exc:
        raise EngineError(
            f"{path}: not a trust file; expected a [peer_public_keys] table of "
            f'algorithm = "hex" entries ({type(exc).__name__})'
        ) from exc


def _read_psk_file(path: str) -> SecretBytes:
    """A PSK file holds the key as hex text (whitespace ignored) or as raw bytes."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise EngineError(f"{path}: cannot read the PSK file ({exc.strerror})") from exc
    try:
        key = bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    return SecretBytes(key)


def simulated_link(policy: Policy) -> SimulatedLink:
    """A simulated QKD link whose two ends can serve two engines in this process.

    The link is ideal (matched keys from the OS CSPRNG): ``qkd`` simulates the physics; this
    link is the key-delivery side of it, which is what a handshake consumes.
    """
    from qkd.delivery.keysource import SimulatedLink

    return SimulatedLink(key_size=policy.qkd.key_size_bits)


def resolve_qkd(
    policy: Policy, key_source: KeySource | None, *, allow_missing: bool = False
) -> QkdConfig:
    """The policy's QKD settings with their key source: ``key_source``, or the ETSI 014 client
    that the policy's ``[qkd.etsi014]`` section describes (``agile.tls`` uses this too)."""
    qkd = policy.qkd
    if policy.uses_qkd and key_source is None and not allow_missing:
        if qkd.source == "etsi014" and qkd.etsi014 is not None:
            from qkd.delivery.etsi014.client import Etsi014Client

            e = qkd.etsi014
            try:
                key_source = Etsi014Client(
                    e.kme_url,
                    peer_sae_id=e.peer_sae_id,
                    cert=e.cert,
                    key=e.key,
                    ca=e.ca,
                    timeout=e.timeout_s,
                )
            except (OSError, ValueError) as exc:
                raise EngineError(
                    f"policy {policy.name}: cannot set up the ETSI 014 client for "
                    f"{e.kme_url} ({exc}); check qkd.etsi014.cert, key and ca"
                ) from exc
        elif qkd.source == "simulated":
            raise EngineError(
                f"policy {policy.name} uses a simulated QKD link, whose two ends must be "
                "shared by both peers: pass key_source= (e.g. "
                "agile.engine.simulated_link(policy).source('sae-a', peer='sae-b'))"
            )
    return QkdConfig(
        source_kind=qkd.source,
        source=key_source if policy.uses_qkd else None,
        required=qkd.required,
        key_size_bits=qkd.key_size_bits,
        max_qber=qkd.max_qber,
        max_key_age_s=float(qkd.max_key_age_s),
        max_trusted_nodes=qkd.max_trusted_nodes,
        excluded_nodes=qkd.excluded_nodes,
        required_nodes=qkd.required_nodes,
        on_violation=qkd.on_violation,
    )


class Engine:
    """A policy resolved for one party; creates handshakes.

    Parameters beyond the policy supply what a policy file cannot hold or names only by path:
    ``key_source`` (the local end of the QKD link; built from the policy for ``etsi014``),
    ``signing_keys`` (our secret keys, by algorithm), ``peer_public_keys`` (overrides the
    policy's pinned keys or trust file), ``psk`` (overrides ``auth.psk_file``), and
    ``providers`` (overrides the provider preference, e.g. to test one provider).
    ``allow_missing_key_source`` lets a QKD policy run without a key source, so that its
    ``qkd.required`` rule decides (fall back, audited, or fail closed) at handshake time.
    """

    def __init__(
        self,
        policy: Policy,
        *,
        key_source: KeySource | None = None,
        signing_keys: Mapping[str, SecretBytes | bytes] | None = None,
        peer_public_keys: Mapping[str, bytes] | None = None,
        psk: SecretBytes | bytes | None = None,
        providers: Sequence[str] | None = None,
        allow_missing_key_source: bool = False,
    ) -> None:
        self.policy = policy
        self._owned_source: KeySource | None = None
        self._check_rules_today(policy)
        self.config = self._build(
            policy,
            key_source=key_source,
            signing_keys=signing_keys,
            peer_public_keys=peer_public_keys,
            psk=psk,
            providers=providers,
            allow_missing_key_source=allow_missing_key_source,
        )
        if key_source is None and self.config.qkd.source is not None:
            self._owned_source = self.config.qkd.source
        audit.emit("policy_loaded", policy=policy.name, policy_fingerprint=policy.fingerprint)

    def __repr__(self) -> str:
        return f"<Engine policy={self.policy.name} fingerprint={self.policy.fingerprint}>"

    @staticmethod
    def _check_rules_today(policy: Policy) -> None:
        """Re-apply the policy's rules as of today: a policy loaded before an algorithm's
        sunset must not keep using it after; upcoming sunsets are audited as warnings."""
        from agile.policy import rules

        today = rules.today_utc()
        problems = rules.check(policy, today=today)
        if problems:
            details = "; ".join(f"{p.dotted_path}: {p.message}" for p in problems)
            raise EngineError(f"policy {policy.name} is no longer valid today: {details}")
        for warning in rules.warnings(policy, today=today):
            audit.emit(
                "policy_warning",
                policy=policy.name,
                policy_fingerprint=policy.fingerprint,
                reason=f"{warning.dotted_path}: {warning.message}",
            )

    def close(self) -> None:
        """Close the key source that the engine built from the policy (an ETSI 014 client).

        A key source passed in by the caller stays the caller's to close.
        """
        if self._owned_source is not None:
            self._owned_source.close()
            self._owned_source = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def initiator(self) -> Initiator:
        """A new handshake on the offering side (QKD master)."""
        return Initiator(self.config)

    def responder(self) -> Responder:
        """A new handshake on the choosing side (QKD slave)."""
        return Responder(self.config)

    # -- resolution -----------------------------------------------------------------------

    @staticmethod
    def _build(
        policy: Policy,
        *,
        key_source: KeySource | None,
        signing_keys: Mapping[str, SecretBytes | bytes] | None,
        peer_public_keys: Mapping[str, bytes] | None,
        psk: SecretBytes | bytes | None,
        providers: Sequence[str] | None,
        allow_missing_key_source: bool,
    ) -> HandshakeConfig:
        kems: dict[str, Kem] = {}
        suites: list[tuple[str, ...]] = []
        names: dict[tuple[str, ...], str] = {}
        for suite in policy.suites:
            preference = tuple(providers) if providers else policy.providers_for(suite)
            for component in suite.components:
                if component != QKD_COMPONENT and component not in kems:
                    try:
                        kems[component] = _kem(component, preference)
                    except EngineError as exc:
                        raise EngineError(
                            f"policy {policy.name}, suite {suite.name}: {exc}"
                        ) from exc
            suites.append(tuple(suite.components))
            names[tuple(suite.components)] = suite.name
            if suite.uses_qkd:
                names.setdefault(strip_qkd(tuple(suite.components)), f"{suite.name} (without QKD)")
        return HandshakeConfig(
            policy_name=policy.name,
            fingerprint=policy.fingerprint,
            suites=tuple(suites),
            suite_names=names,
            kems=kems,
            combiner=policy.kdf.combiner,
            hash_name=policy.kdf.hash,
            label=policy.kdf.label.encode("ascii"),
            key_length=policy.session.key_length,
            aead=policy.session.aead,
            lifetime_s=float(policy.session.lifetime_s),
            rekey_interval_s=float(policy.session.rekey_interval_s),
            qkd=resolve_qkd(policy, key_source, allow_missing=allow_missing_key_source),
            **Engine._auth(policy, signing_keys, peer_public_keys, psk, providers),
        )

    @staticmethod
    def _auth(
        policy: Policy,
        signing_keys: Mapping[str, SecretBytes | bytes] | None,
        peer_public_keys: Mapping[str, bytes] | None,
        psk: SecretBytes | bytes | None,
        providers: Sequence[str] | None,
    ) -> dict[str, Any]:
        auth = policy.auth
        if auth.method == "psk":
            if psk is None:
                if auth.psk_file is None:
                    raise EngineError(
                        f"policy {policy.name} authenticates with a PSK: set auth.psk_file "
                        "or pass psk="
                    )
                psk = _read_psk_file(auth.psk_file)
            key = psk if isinstance(psk, SecretBytes) else SecretBytes(psk)
            if len(key) < _MIN_PSK_BYTES:
                raise EngineError(
                    f"policy {policy.name}: the PSK has {len(key)} bytes; use at least "
                    f"{_MIN_PSK_BYTES} random bytes"
                )
            size = digest_size(policy.kdf.hash)
            binder_key = SecretBytes(
                expand_label(policy.kdf.hash, key.reveal(), BINDER_LABEL, b"", size)
            )
            return {
                "auth_method": "psk",
                "psk": key,
                "psk_id": auth.psk_id or "",
                "binder_key": binder_key,
            }
        preference = tuple(providers) if providers else policy.providers
        if peer_public_keys is None:
            if auth.trust_file is not None:
                peer_public_keys = _read_trust_file(auth.trust_file)
            else:
                peer_public_keys = {k: bytes.fromhex(v) for k, v in auth.peer_public_keys.items()}
        signing_keys = signing_keys or {}
        signers: list[Signer] = []
        verifiers: list[Verifier] = []
        for name in auth.signature_algorithms:
            scheme = _signature(name, preference)
            secret = signing_keys.get(name)
            if secret is None:
                raise EngineError(
                    f"policy {policy.name} signs with {name}, but no {name} signing key was "
                    "given: pass signing_keys= (see agile.engine.Identity)"
                )
            public = peer_public_keys.get(name)
            if public is None:
                raise EngineError(
                    f"policy {policy.name} needs the peer's {name} public key: pin it in "
                    "auth.peer_public_keys, name a trust_file, or pass peer_public_keys="
                )
            # Keys are parsed (and ML-DSA seeds expanded) once here, not at every handshake;
            # a malformed key fails now, naming the algorithm.
            raw_secret = secret.reveal() if isinstance(secret, SecretBytes) else secret
            try:
                signing_key = scheme.load_private_key(raw_secret)
            except pqc.PQCError as exc:
                raise EngineError(
                    f"policy {policy.name}: our {name} signing key is unusable ({exc}); pass "
                    "the key generate_keypair returned (see agile.engine.Identity)"
                ) from exc
            try:
                verifying_key = scheme.load_public_key(public)
            except pqc.PQCError as exc:
                raise EngineError(
                    f"policy {policy.name}: the peer's {name} public key is unusable ({exc}); "
                    "check auth.peer_public_keys or the trust file"
                ) from exc
            signers.append(Signer(algorithm=name, scheme=scheme, key=signing_key))
            verifiers.append(
                Verifier(algorithm=name, scheme=scheme, public_key=public, key=verifying_key)
            )
        return {
            "auth_method": "signature",
            "signers": tuple(signers),
            "verifiers": tuple(verifiers),
        }


def peer_engines(
    initiator_policy: Policy,
    responder_policy: Policy,
    *,
    qkd: bool = True,
    psk: SecretBytes | bytes | None = None,
    providers: Sequence[str] | None = None,
) -> tuple[Engine, Engine]:
    """Two engines in this process that trust each other: for demos, tests and benchmarks.

    Each side gets fresh signing keys and pins the other's public keys; PSK policies share
    ``psk`` (fresh random bytes when None). When ``qkd`` is true and a policy uses QKD, both
    ends of one simulated link are handed out (the initiator is the master SAE ``sae-a``);
    when false, no key source is given, so the QKD policy decides: fall back, or fail closed.
    """
    import os

    shared_psk = psk if psk is not None else SecretBytes(os.urandom(32))
    # Each side holds keys for every algorithm either policy names, and signs with those its
    # own policy lists: a mismatch of signature rules then fails in the handshake, where it
    # would in the field, rather than here.
    named = (
        *initiator_policy.auth.signature_algorithms,
        *responder_policy.auth.signature_algorithms,
    )
    algorithms = list(dict.fromkeys(named))
    identities = [
        Identity.generate(initiator_policy, algorithms=algorithms, providers=providers),
        Identity.generate(responder_policy, algorithms=algorithms, providers=providers),
    ]
    link = (
        simulated_link(initiator_policy)
        if qkd and (initiator_policy.uses_qkd or responder_policy.uses_qkd)
        else None
    )
    ends = ("sae-a", "sae-b")
    engines: list[Engine] = []
    for index, policy in enumerate((initiator_policy, responder_policy)):
        own, peer = identities[index], identities[1 - index]
        source = None
        if link is not None and policy.uses_qkd:
            source = link.source(ends[index], peer=ends[1 - index])
        engines.append(
            Engine(
                policy,
                key_source=source,
                signing_keys=own.signing_keys,
                peer_public_keys=dict(peer.public_keys),
                psk=shared_psk if policy.auth.method == "psk" else None,
                providers=providers,
                allow_missing_key_source=link is None,
            )
        )
    return engines[0], engines[1]
