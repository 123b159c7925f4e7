"""The policy model: what a policy file may say, as frozen pydantic v2 models.

A :class:`Policy` is immutable and refuses unknown fields. Validation happens in two steps:

1. each field on its own (types, ranges, algorithm names) — pydantic reports these with the
   exact location of the field;
2. the rules between fields (a suite that uses a forbidden algorithm, QKD required with no
   source, a sunset date passed, ...) in :mod:`agile.policy.rules`, once every section parsed.

Parsing files, ``extends`` and located error messages live in :mod:`agile.policy.loader`;
most code should call :func:`agile.load_policy` rather than build a ``Policy`` directly.

Example::

    >>> from agile import load_policy
    >>> policy = load_policy("hybrid-default-latest")
    >>> [suite.name for suite in policy.suites][:1]
    ['mlkem768-x25519-qkd']
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from agile.policy import algorithms
from agile.policy.algorithms import QKD_COMPONENT

SCHEMA_VERSION = 1
"""The schema version this code reads; a policy file must say ``schema_version = 1``."""


def _check_name(name: str, *, kind: str, allowed: frozenset[str] | tuple[str, ...]) -> str:
    canonical = algorithms.canonical_name(name)
    if canonical not in allowed:
        raise ValueError(algorithms.unknown_name_message(name, kind, allowed))
    return canonical


def _component(name: str) -> str:
    if name == QKD_COMPONENT:
        return name
    return _check_name(name, kind="KEM", allowed=algorithms.KEM_NAMES | {QKD_COMPONENT})


def _signature(name: str) -> str:
    return _check_name(name, kind="signature algorithm", allowed=algorithms.SIGNATURE_NAMES)


def _any_algorithm(name: str) -> str:
    return _check_name(name, kind="algorithm", allowed=frozenset(algorithms.ALGORITHMS))


def _provider(name: str) -> str:
    if name not in algorithms.PROVIDER_NAMES:
        known = ", ".join(algorithms.PROVIDER_NAMES)
        raise ValueError(f"unknown provider {name!r}; known providers: {known}")
    return name


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


def _date(value: object) -> object:
    # TOML and YAML give dates; JSON gives strings. A datetime or a number is not a date.
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value) if len(value) == 10 else value
        except ValueError:
            raise ValueError("not a date; write it as YYYY-MM-DD") from None
    if isinstance(value, dt.datetime):
        raise ValueError("a date without a time is expected (YYYY-MM-DD)")
    return value


def _schema_version(value: int) -> int:
    if value != SCHEMA_VERSION:
        raise ValueError(
            f"unsupported schema_version {value}; this version of qkd-agile reads "
            f"schema_version = {SCHEMA_VERSION}"
        )
    return value


def _not_empty(values: tuple[Any, ...]) -> tuple[Any, ...]:
    # A length check after the items are validated, so that a list whose items are all
    # invalid reports those items, not also a spurious "too short".
    if not values:
        raise ValueError("must not be empty")
    return values


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, list):
        return isinstance(value, list | tuple) and list(value) == default
    return bool(value == default)


def _hex(value: str) -> str:
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ValueError("not a hexadecimal string (two hex digits per byte)") from None
    return value.lower()


def _names(*groups: frozenset[str] | tuple[str, ...]) -> dict[str, Any]:
    """JSON Schema of a name field: the canonical names and their aliases."""
    names = set().union(*groups)
    names |= {alias for alias, target in algorithms.ALIASES.items() if target in names}
    return {"enum": sorted(names)}


ComponentName = Annotated[
    str,
    AfterValidator(_component),
    Field(json_schema_extra=_names(algorithms.KEM_NAMES, (QKD_COMPONENT,))),
]
SignatureName = Annotated[
    str, AfterValidator(_signature), Field(json_schema_extra=_names(algorithms.SIGNATURE_NAMES))
]
AlgorithmName = Annotated[
    str,
    AfterValidator(_any_algorithm),
    Field(json_schema_extra=_names(tuple(algorithms.ALGORITHMS))),
]
ProviderName = Annotated[
    str,
    AfterValidator(_provider),
    Field(json_schema_extra={"enum": list(algorithms.PROVIDER_NAMES)}),
]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
PolicyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")]
ListOf = Field(strict=False)
"""Field marker for list fields: accept a list (and store a tuple); items stay strict."""
NonEmpty = Field(strict=False, json_schema_extra={"minItems": 1})
Path = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
HashName = Literal["SHA-256", "SHA-384", "SHA-512", "SHA3-256", "SHA3-384", "SHA3-512"]
AeadName = Literal["AES-256-GCM", "ChaCha20-Poly1305"]


class _Model(BaseModel):
    """Base of every policy section: frozen, unknown fields refused, no type coercion."""

    # Strict: a policy says 3, not "3"; true, not 1. Lists become tuples (see _List).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=True)

    def canonical_json(self) -> bytes:
        """The canonical form: JSON with sorted keys and no whitespace, UTF-8."""
        document = self.model_dump(mode="json")
        return json.dumps(
            document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")

    def __hash__(self) -> int:
        # Some fields are dicts, which the generated hash cannot take; the canonical form is
        # exactly what equality compares, so hash that.
        return hash(self.canonical_json())


class Suite(_Model):
    """One acceptable key-establishment suite.

    ``components`` is ordered: it is the order of the secrets in the combiner. Built-in suites
    put the ML-KEM secret first (SP 800-56C r2, Z' = Z || T) and the QKD key last.
    """

    name: Identifier
    components: Annotated[
        tuple[ComponentName, ...],
        NonEmpty,
        Field(max_length=6),
        AfterValidator(_not_empty),
        AfterValidator(_unique),
    ]
    providers: (
        Annotated[
            tuple[ProviderName, ...],
            NonEmpty,
            AfterValidator(_not_empty),
            AfterValidator(_unique),
        ]
        | None
    ) = Field(default=None, strict=False)
    """Provider preference for this suite; ``None`` means the policy's ``providers``."""

    @property
    def uses_qkd(self) -> bool:
        return QKD_COMPONENT in self.components

    @property
    def kems(self) -> tuple[str, ...]:
        """The KEM components, without the QKD pseudo-component, in combiner order."""
        return tuple(c for c in self.components if c != QKD_COMPONENT)

    @property
    def nist_level(self) -> int:
        """The suite's post-quantum strength: its strongest KEM (0 if it has none)."""
        return max((algorithms.info(c).nist_level for c in self.kems), default=0)


_EVE_PATTERN = r"^(none|pns|(intercept-resend|beam-splitting):(0(\.\d+)?|1(\.0+)?))$"


class SimulatedLink(_Model):
    """Parameters of a simulated QKD link (``qkd.source = "simulated"``)."""

    preset: Literal["gys", "ingaas", "snspd", "ideal"] = "gys"
    """Detector preset from DESIGN.md, or ``ideal`` for a noiseless link (tests, demos)."""
    distance_km: Annotated[float, Field(ge=0, le=500)] = 25.0
    eve: Annotated[str, StringConstraints(pattern=_EVE_PATTERN)] = "none"
    """An eavesdropper to simulate, as in ``agile qkd simulate --eve``."""


class Etsi014(_Model):
    """How to reach a KME over ETSI GS QKD 014 (``qkd.source = "etsi014"``)."""

    kme_url: Annotated[str, StringConstraints(pattern=r"^https://[^\s/]+(/[^\s]*)?$")]
    sae_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    peer_sae_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    cert: Path
    key: Path
    ca: Path
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 5.0


NodeName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
"""A KME node name, as a network file writes it (and a KME reports it in a key's path)."""

# Fields of [qkd] added after policies were released: left out of the canonical form while
# they hold their defaults, so that every policy that does not use them keeps its fingerprint
# (built-in versioned policies are pinned).
_TRUST_PATH_DEFAULTS: dict[str, Any] = {
    "max_trusted_nodes": None,
    "excluded_nodes": [],
    "required_nodes": [],
    "on_violation": "fail",
}


class QKD(_Model):
    """Where QKD keys come from, and what happens when they cannot be had.

    The trust-path fields bound the KME nodes a key may have passed through (the path a KME
    reports in ``key_extension.relay_path``; docs/policy.md, "Trust paths").
    """

    source: Literal["none", "simulated", "etsi014"] = "none"
    required: bool = False
    """``True``: fail closed without a QKD key; ``False``: fall back without it, audited."""
    max_qber: Annotated[float, Field(gt=0, le=0.11)] = 0.08
    """Refuse keys from a link whose QBER exceeds this (one-way BB84 aborts above ~11%)."""
    key_size_bits: Annotated[int, Field(ge=128, le=8192, multiple_of=8)] = 256
    max_key_age_s: Annotated[int, Field(gt=0, le=31_536_000)] = 3600
    simulated: SimulatedLink | None = None
    etsi014: Etsi014 | None = None
    max_trusted_nodes: Annotated[int, Field(ge=0, le=1000)] | None = None
    """Refuse a key that passed through more trusted nodes (``len(relay_path) - 2``)."""
    excluded_nodes: Annotated[tuple[NodeName, ...], ListOf, AfterValidator(_unique)] = ()
    """Refuse a key whose path names any of these nodes."""
    required_nodes: Annotated[tuple[NodeName, ...], ListOf, AfterValidator(_unique)] = ()
    """Refuse a key whose path does not name every one of these nodes."""
    on_violation: Literal["fail", "fallback"] = "fail"
    """A key outside the trust-path bounds fails the handshake, or (``required = false``
    only) makes it fall back to a suite without QKD, audited."""

    @property
    def constrains_path(self) -> bool:
        """Whether the policy bounds the trust path (a key without a path is then refused)."""
        return (
            self.max_trusted_nodes is not None
            or bool(self.excluded_nodes)
            or bool(self.required_nodes)
        )

    @model_serializer(mode="wrap")
    def _omit_unused_trust_path(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        document: dict[str, Any] = handler(self)
        for name, default in _TRUST_PATH_DEFAULTS.items():
            if name in document and _same(document[name], default):
                del document[name]
        return document

    @property
    def link(self) -> SimulatedLink:
        """The simulated link parameters, defaults if the section is absent."""
        return self.simulated if self.simulated is not None else SimulatedLink()


class KDF(_Model):
    """The combiner that turns the suite's secrets into the session key (ETSI TS 103 744)."""

    combiner: Literal["catkdf", "caskdf"] = "catkdf"
    hash: HashName = "SHA-256"
    label: Annotated[str, StringConstraints(pattern=r"^[\x20-\x7e]{1,64}$")] = "qkd-agile v1"


class Auth(_Model):
    """How the peers authenticate each other (a KEM alone does not stop a man in the middle).

    With ``method = "signature"`` every listed algorithm signs the transcript and every
    signature must verify (listing ML-DSA-65 and Ed25519 is a composite). The peer's public
    keys come from ``peer_public_keys`` (hex, by algorithm), from ``trust_file``, or, when
    the policy names neither, from the application at run time. With ``method = "psk"`` the
    key comes from ``psk_file`` or from the application.
    """

    method: Literal["signature", "psk"] = "signature"
    signature_algorithms: Annotated[
        tuple[SignatureName, ...], ListOf, Field(max_length=4), AfterValidator(_unique)
    ] = ()
    trust_file: Path | None = None
    peer_public_keys: dict[SignatureName, Annotated[str, AfterValidator(_hex)]] = Field(
        default_factory=dict
    )
    psk_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    psk_file: Path | None = None


class Session(_Model):
    """The session key that a handshake produces, and how it is used."""

    key_length: Annotated[int, Field(ge=32, le=64)] = 32
    lifetime_s: Annotated[int, Field(gt=0, le=31_536_000)] = 86_400
    rekey_interval_s: Annotated[int, Field(gt=0, le=31_536_000)] = 3600
    aead: AeadName = "AES-256-GCM"


class Sunset(_Model):
    """An algorithm refused after ``date``, with a warning ``warn_days`` before."""

    algorithm: AlgorithmName
    date: Annotated[dt.date, BeforeValidator(_date), Field(json_schema_extra={"format": "date"})]
    warn_days: Annotated[int, Field(ge=0, le=3650)] = 365


class Rules(_Model):
    """Crypto agility as data: what this policy refuses, now and in the future."""

    min_nist_level: Annotated[int, Field(ge=0, le=5)] = 1
    forbidden: Annotated[tuple[AlgorithmName, ...], ListOf, AfterValidator(_unique)] = ()
    sunset: Annotated[tuple[Sunset, ...], ListOf] = ()


class Policy(_Model):
    """A validated, resolved policy (``extends`` already applied).

    Build one with :func:`agile.load_policy`; :attr:`fingerprint` identifies it.
    """

    schema_version: Annotated[
        int, AfterValidator(_schema_version), Field(json_schema_extra={"const": SCHEMA_VERSION})
    ]
    name: PolicyName
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    providers: Annotated[
        tuple[ProviderName, ...], NonEmpty, AfterValidator(_not_empty), AfterValidator(_unique)
    ] = algorithms.PROVIDER_NAMES
    suites: Annotated[tuple[Suite, ...], NonEmpty, Field(max_length=16), AfterValidator(_not_empty)]
    qkd: QKD = Field(default_factory=QKD)
    kdf: KDF = Field(default_factory=KDF)
    auth: Auth = Field(default_factory=lambda: Auth(signature_algorithms=("ML-DSA-65",)))
    session: Session = Field(default_factory=Session)
    rules: Rules = Field(default_factory=Rules)

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> Self:
        # Imported here: rules.py reads Policy objects, and this keeps the import one-way.
        from agile.policy import rules

        context: dict[str, Any] = info.context if isinstance(info.context, dict) else {}
        today = context.get("today") or rules.today_utc()
        problems = rules.check(self, today=today)
        collector = context.get("problems")
        if isinstance(collector, list):
            # The loader collects problems to report each at its own location.
            collector.extend(problems)
        elif problems:
            raise ValueError("; ".join(f"{p.dotted_path}: {p.message}" for p in problems))
        return self

    @functools.cached_property
    def fingerprint(self) -> str:
        """``"sha256:<hex>"`` over the canonical JSON form of the resolved policy."""
        return "sha256:" + hashlib.sha256(self.canonical_json()).hexdigest()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update`` the copy is NOT validated (prefer ``policy_from_dict``)."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("fingerprint", None)  # computed again from the copy's fields
        return copied

    def providers_for(self, suite: Suite) -> tuple[str, ...]:
        """The provider preference for ``suite``: its own, else the policy's."""
        return suite.providers if suite.providers is not None else self.providers

    def suite(self, name: str) -> Suite:
        """Return the suite called ``name``; raises ``KeyError`` if there is none."""
        for suite in self.suites:
            if suite.name == name:
                return suite
        raise KeyError(name)

    @property
    def uses_qkd(self) -> bool:
        """Whether any suite takes a QKD key."""
        return any(suite.uses_qkd for suite in self.suites)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy document (``agile policy schema``)."""
    schema = Policy.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://qkd-agile.invalid/schema/policy-v{SCHEMA_VERSION}.json"
    properties = schema.setdefault("properties", {})
    properties["extends"] = {
        "type": "string",
        "description": "Name of a built-in policy (or a policy file) this one builds on.",
    }
    return schema
