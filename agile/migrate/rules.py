"""Quantum risk and fix for each TLS setting.

Theory of operation. An attacker who records traffic today and runs a quantum computer later
("harvest now, decrypt later") recovers every session whose key exchange rests only on RSA,
finite-field or elliptic-curve Diffie-Hellman (Shor's algorithm). Symmetric ciphers and hashes
lose at most half their strength (Grover) and stay usable at 128 bits and up. So the audit asks,
for each setting, whether a recorded session can be decrypted later:

- RSA key transport (``kRSA`` suites such as ``AES128-SHA``): the premaster secret travels
  encrypted to the server's RSA key -> ``quantum-vulnerable`` (and no forward secrecy at all).
- Key-exchange groups with no ML-KEM group (X25519, P-256, ffdhe ...) -> ``quantum-vulnerable``.
  A hybrid (X25519MLKEM768, SecP256r1MLKEM768, SecP384r1MLKEM1024) or pure ML-KEM group ->
  ``ok``; listed but not first -> ``weak`` (clients send a key share for the first group).
- TLS 1.3 disabled -> ``quantum-vulnerable``: ML-KEM groups exist only in TLS 1.3. TLS 1.2
  still allowed beside 1.3 -> ``weak`` (legacy clients get a classical key exchange); SSLv3,
  TLS 1.0 and 1.1 -> ``weak`` (RFC 8996).
- NULL, EXPORT, RC4, DES, 3DES, IDEA, MD5 and anonymous suites -> ``weak`` (broken today,
  quantum or not).
- Certificates and signature algorithms (RSA, ECDSA): a quantum computer can forge them only
  while it exists, so recorded traffic stays safe; they need replacing before such a computer
  does, which is a lower priority -> ``weak`` with that explanation.
- A pre-shared key mixed into every handshake (stunnel ``PSKsecrets`` without a certificate)
  keeps recorded sessions safe while the key is random, long and secret -> ``ok``.

Absent settings are judged by the stack's documented default (``DEFAULTS``), which is where
many quantum-vulnerable configurations hide: OpenSSL before 3.5 offers no ML-KEM group unless
told to, and every default cipher string still selects RSA key transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agile.migrate._ciphers import Cipher, evaluate
from agile.migrate._model import (
    PROTOCOL_ORDER,
    Dialect,
    Directive,
    Finding,
    ParsedConfig,
    Risk,
    Scope,
    protocol_versions,
)

HYBRID_FIX = (
    "add X25519MLKEM768 first in the group list (OpenSSL >= 3.5, BoringSSL, AWS-LC, "
    "wolfSSL >= 5.7, GnuTLS >= 3.8.9), keeping X25519 after it for old clients; where the stack "
    "cannot yet, take the PSK route: mix a key from `agile keys export` in as a TLS 1.3 "
    "external PSK"
)

# -- key-exchange groups ---------------------------------------------------------------------

_GROUP_SPELLINGS: dict[str, str] = {
    "x25519": "X25519",
    "x448": "X448",
    "p-256": "P-256",
    "prime256v1": "P-256",
    "secp256r1": "P-256",
    "p-384": "P-384",
    "secp384r1": "P-384",
    "p-521": "P-521",
    "secp521r1": "P-521",
    "p-224": "P-224",
    "secp224r1": "P-224",
    "p-192": "P-192",
    "secp192r1": "P-192",
    "prime192v1": "P-192",
    "secp256k1": "secp256k1",
    "brainpoolp256r1": "brainpoolP256r1",
    "brainpoolp384r1": "brainpoolP384r1",
    "brainpoolp512r1": "brainpoolP512r1",
    "brainpoolp256r1tls13": "brainpoolP256r1",
    "brainpoolp384r1tls13": "brainpoolP384r1",
    "brainpoolp512r1tls13": "brainpoolP512r1",
    "ffdhe2048": "ffdhe2048",
    "ffdhe3072": "ffdhe3072",
    "ffdhe4096": "ffdhe4096",
    "ffdhe6144": "ffdhe6144",
    "ffdhe8192": "ffdhe8192",
    "x25519mlkem768": "X25519MLKEM768",
    "secp256r1mlkem768": "SecP256r1MLKEM768",
    "secp384r1mlkem1024": "SecP384r1MLKEM1024",
    "mlkem512": "MLKEM512",
    "mlkem768": "MLKEM768",
    "mlkem1024": "MLKEM1024",
    "x25519kyber768draft00": "X25519Kyber768Draft00",
    "x25519_kyber768": "X25519Kyber768Draft00",
    "p256_kyber768": "P256Kyber768Draft00",
}

HYBRID_GROUPS = frozenset({"X25519MLKEM768", "SecP256r1MLKEM768", "SecP384r1MLKEM1024"})
PQ_GROUPS = frozenset({"MLKEM512", "MLKEM768", "MLKEM1024"})
DRAFT_GROUPS = frozenset({"X25519Kyber768Draft00", "P256Kyber768Draft00"})
WEAK_CLASSICAL_GROUPS = frozenset({"P-192", "P-224", "secp256k1"})

OPENSSL_35_DEFAULT_GROUPS: tuple[str, ...] = (
    "X25519MLKEM768",
    "X25519",
    "P-256",
    "X448",
    "P-384",
    "P-521",
    "ffdhe2048",
    "ffdhe3072",
)
OPENSSL_30_DEFAULT_GROUPS: tuple[str, ...] = (
    "X25519",
    "P-256",
    "X448",
    "P-521",
    "P-384",
    "ffdhe2048",
    "ffdhe3072",
    "ffdhe4096",
    "ffdhe6144",
    "ffdhe8192",
)


def group_name(word: str) -> str:
    """The canonical spelling of a group name (unknown names are returned as written)."""
    return _GROUP_SPELLINGS.get(word.strip().lower(), word.strip())


def parse_group_list(text: str, stack_default: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """Parse an OpenSSL group list, including 3.5's ``?``, ``*``, ``/``, ``-`` and ``DEFAULT``.

    Returns the groups, most preferred first, and a note on anything not understood.
    """
    groups: list[str] = []
    odd: list[str] = []
    for raw in text.replace("/", ":").replace(",", ":").split(":"):
        word = raw.strip().lstrip("?*")
        if not word:
            continue
        if word.upper() == "DEFAULT":
            groups.extend(g for g in stack_default if g not in groups)
        elif word.startswith("-"):
            removed = group_name(word[1:].lstrip("?*"))
            groups = [g for g in groups if g != removed]
        else:
            name = group_name(word)
            if name.lower() not in {k.lower() for k in _GROUP_SPELLINGS.values()}:
                odd.append(word)
            if name not in groups:
                groups.append(name)
    note = f"unknown group name(s): {', '.join(odd)}" if odd else ""
    return tuple(groups), note


# -- defaults of each stack -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Stack:
    """What the audited deployment runs; defaults differ between versions."""

    openssl: tuple[int, int] = (3, 0)
    """The OpenSSL version the service links against (default: 3.0, the common LTS)."""

    @property
    def has_mlkem(self) -> bool:
        return self.openssl >= (3, 5)

    def default_groups(self) -> tuple[str, ...]:
        return OPENSSL_35_DEFAULT_GROUPS if self.has_mlkem else OPENSSL_30_DEFAULT_GROUPS


@dataclass(frozen=True, kw_only=True)
class DialectDefaults:
    """Setting names and documented defaults of one dialect."""

    protocols_setting: str
    protocols: frozenset[str]
    protocols_source: str
    ciphers_setting: str
    cipher_string: str
    ciphers_source: str
    groups_setting: str
    groups: tuple[str, ...] | None
    """``None``: the OpenSSL library default of the stack."""
    groups_source: str
    seclevel: int = 1
    """The OpenSSL security level in force unless the configuration sets one."""


_ALL_TLS = protocol_versions("TLSv1", "TLSv1.3")

DEFAULTS: dict[Dialect, DialectDefaults] = {
    "openssl": DialectDefaults(
        protocols_setting="MinProtocol",
        protocols=_ALL_TLS,
        protocols_source="OpenSSL library default: TLS 1.0 to 1.3",
        ciphers_setting="CipherString",
        cipher_string="DEFAULT",
        ciphers_source="OpenSSL DEFAULT",
        groups_setting="Groups",
        groups=None,
        groups_source="OpenSSL library default",
    ),
    "nginx": DialectDefaults(
        protocols_setting="ssl_protocols",
        protocols=_ALL_TLS,
        protocols_source="nginx before 1.23.4: TLSv1 TLSv1.1 TLSv1.2 TLSv1.3",
        ciphers_setting="ssl_ciphers",
        cipher_string="HIGH:!aNULL:!MD5",
        ciphers_source="nginx default HIGH:!aNULL:!MD5",
        groups_setting="ssl_ecdh_curve",
        groups=None,
        groups_source="nginx default 'auto' (the OpenSSL library default)",
    ),
    "apache": DialectDefaults(
        protocols_setting="SSLProtocol",
        protocols=_ALL_TLS,
        protocols_source="mod_ssl default 'all -SSLv3'",
        ciphers_setting="SSLCipherSuite",
        cipher_string="DEFAULT",
        ciphers_source="mod_ssl default: OpenSSL DEFAULT",
        groups_setting="SSLOpenSSLConfCmd Curves",
        groups=None,
        groups_source="OpenSSL library default",
    ),
    "haproxy": DialectDefaults(
        protocols_setting="ssl-min-ver",
        protocols=protocol_versions("TLSv1.2", "TLSv1.3"),
        protocols_source="HAProxy >= 2.2 default ssl-min-ver TLSv1.2",
        ciphers_setting="ciphers",
        cipher_string="DEFAULT",
        ciphers_source="HAProxy default: OpenSSL DEFAULT",
        groups_setting="curves",
        groups=("P-256",),
        groups_source="HAProxy sets its ECDHE default curve prime256v1 when neither curves "
        "nor ecdhe is given",
    ),
    "stunnel": DialectDefaults(
        protocols_setting="sslVersionMin",
        protocols=_ALL_TLS,
        protocols_source="stunnel default: TLS 1.0 to 1.3 (SSLv2/SSLv3 off)",
        ciphers_setting="ciphers",
        cipher_string="DEFAULT",
        ciphers_source="stunnel sets none: OpenSSL DEFAULT (older stunnel: "
        "HIGH:!aNULL:!SSLv2:!DH:!kDHEPSK; both allow RSA key transport)",
        groups_setting="curves",
        groups=("X25519", "P-256", "X448", "P-521", "P-384"),
        groups_source="stunnel default (OpenSSL >= 1.1.1, server mode) "
        "X25519:P-256:X448:P-521:P-384",
        seclevel=2,
    ),
}


# -- the effective settings of a scope -------------------------------------------------------


@dataclass(kw_only=True)
class Context:
    """What applies in one scope once inheritance and every directive are taken into account."""

    dialect: Dialect
    stack: Stack
    protocols: frozenset[str]
    protocols_set: bool
    groups: tuple[str, ...]
    groups_set: bool
    groups_note: str
    cipher_string: str
    ciphers_set: bool
    psk: bool
    certificate: bool
    seclevel: int = 1
    groups_from_library: bool = False
    kinds: set[str] = field(default_factory=set)

    @property
    def psk_only(self) -> bool:
        """A PSK is mixed into every handshake: no certificate to fall back on."""
        return self.psk and not self.certificate

    @property
    def legacy_enabled(self) -> bool:
        """Whether TLS 1.2 or older can be negotiated."""
        return any(v != "TLSv1.3" for v in self.protocols)


_PASSED_TO_OPENSSL = ("ssl_conf_command", "SSLOpenSSLConfCmd")


def _in_effect_order(scope: Scope) -> list[Directive]:
    # nginx and Apache hand ssl_conf_command / SSLOpenSSLConfCmd to OpenSSL after their own
    # settings, so within a block those win whatever their place in the file.
    ordered: list[Directive] = []
    for level in scope.chain():
        ordered += sorted(level.directives, key=lambda d: d.setting.startswith(_PASSED_TO_OPENSSL))
    return ordered


def context_of(scope: Scope, dialect: Dialect, stack: Stack) -> Context:
    """Fold the directives that apply in ``scope`` into a :class:`Context`."""
    defaults = DEFAULTS[dialect]
    enabled: frozenset[str] | None = None
    low: str | None = None
    high: str | None = None
    groups_text: tuple[str, ...] | None = None
    cipher_string: str | None = None
    psk = certificate = False
    seclevel = defaults.seclevel
    kinds: set[str] = set()
    for d in _in_effect_order(scope):
        kinds.add(d.kind)
        if d.kind == "protocols":
            enabled = frozenset(d.data)
        elif d.kind == "protocol_delta":
            base = enabled if enabled is not None else defaults.protocols
            enabled = (base | frozenset(d.data)) - frozenset(d.removed)
        elif d.kind == "min_protocol":
            low = d.data[0] if d.data else None
        elif d.kind == "max_protocol":
            high = d.data[0] if d.data else None
        elif d.kind == "groups":
            groups_text = d.data
        elif d.kind == "cipher_string":
            cipher_string = d.value
        elif d.kind == "psk":
            psk = True
        elif d.kind == "seclevel" and d.data:
            seclevel = int(d.data[0])
        elif d.kind == "certificate":
            certificate = True
    protocols_set = bool(kinds & {"protocols", "protocol_delta", "min_protocol", "max_protocol"})
    base_set = enabled if enabled is not None else defaults.protocols
    if low is not None or high is not None:
        # A bound given without a version list applies to everything the stack can speak.
        if enabled is None:
            base_set = protocol_versions("SSLv3", "TLSv1.3")
        base_set = base_set & protocol_versions(low, high)
    library = stack.default_groups()
    from_library = scope.library_groups or defaults.groups is None
    if groups_text is not None:
        groups, note = parse_group_list(":".join(groups_text), library)
    else:
        groups, note = (library if from_library else defaults.groups or library), ""
    return Context(
        dialect=dialect,
        stack=stack,
        protocols=base_set,
        protocols_set=protocols_set,
        groups=groups,
        groups_set=groups_text is not None,
        groups_note=note,
        cipher_string=cipher_string if cipher_string is not None else defaults.cipher_string,
        ciphers_set=cipher_string is not None,
        psk=psk,
        certificate=certificate,
        seclevel=seclevel,
        groups_from_library=from_library,
        kinds=kinds,
    )


# -- judging one setting ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Verdict:
    risk: Risk
    fix: str
    note: str = ""


def _versions(versions: frozenset[str]) -> str:
    ordered = [v for v in PROTOCOL_ORDER if v in versions]
    return " ".join(ordered) if ordered else "none"


def judge_protocols(versions: frozenset[str], ctx: Context) -> Verdict:
    """Risk of allowing exactly ``versions``."""
    old = sorted(versions - {"TLSv1.2", "TLSv1.3"}, key=PROTOCOL_ORDER.index)
    enabled = f"enabled: {_versions(versions)}"
    if not versions:
        return Verdict(
            risk="weak",
            fix="enable TLSv1.3 (this leaves no protocol version at all)",
            note=enabled,
        )
    if "TLSv1.3" not in versions:
        if ctx.psk_only:
            return Verdict(
                risk="weak",
                fix="enable TLSv1.3; the pre-shared key keeps recorded sessions safe meanwhile",
                note=enabled,
            )
        return Verdict(
            risk="quantum-vulnerable",
            fix="enable TLSv1.3: ML-KEM key exchange exists only in TLS 1.3; then " + HYBRID_FIX,
            note=f"{enabled}; every session uses a classical key exchange",
        )
    if old:
        return Verdict(
            risk="weak",
            fix=f"disable {', '.join(old)} (RFC 8996); allow TLSv1.2 only while clients need it",
            note=enabled,
        )
    if "TLSv1.2" in versions and ctx.psk_only:
        return Verdict(
            risk="ok",
            fix="none",
            note=f"{enabled}; TLS 1.2 here uses the pre-shared key exchange",
        )
    if "TLSv1.2" in versions:
        return Verdict(
            risk="weak",
            fix="retire TLSv1.2 when clients allow (TLS 1.2 has no ML-KEM key exchange)",
            note=f"{enabled}; TLS 1.2 clients get a classical key exchange",
        )
    return Verdict(risk="ok", fix="none", note=enabled)


def judge_protocol_directive(d: Directive, ctx: Context) -> Verdict:
    """Risk of one protocol directive: what it allows, judged with the scope's outcome."""
    if d.kind == "min_protocol":
        # A minimum is judged on what it lets in; a missing TLS 1.3 is the maximum's fault.
        low = d.data[0] if d.data else "SSLv3"
        return judge_protocols(protocol_versions(low, "TLSv1.3"), ctx)
    if d.kind == "max_protocol":
        if d.data and d.data[0] != "TLSv1.3":
            return judge_protocols(protocol_versions(None, d.data[0]) & ctx.protocols, ctx)
        return Verdict(risk="ok", fix="none", note=f"enabled: {_versions(ctx.protocols)}")
    if d.kind == "protocols":
        return judge_protocols(frozenset(d.data), ctx)
    return judge_protocols(ctx.protocols, ctx)


_WEAK_ENC = {"None": "NULL", "RC4": "RC4", "DES": "DES", "3DES": "3DES", "IDEA": "IDEA"}


def judge_cipher_string(text: str, ctx: Context) -> Verdict:
    """Risk of a TLS 1.2-and-older cipher string in its scope."""
    selection = evaluate(text, default_seclevel=ctx.seclevel)
    notes: list[str] = []
    if selection.unknown:
        notes.append(f"not understood (OpenSSL skips them): {' '.join(selection.unknown)}")
    if not ctx.legacy_enabled:
        return Verdict(
            risk="ok",
            fix="none",
            note="; ".join([*notes, "inactive: only TLS 1.3 is enabled"]),
        )
    ciphers = selection.ciphers
    if not ciphers:
        return Verdict(
            risk="weak",
            fix="this cipher string selects nothing; OpenSSL refuses to start with it",
            note="; ".join(notes),
        )
    rsa = [c for c in ciphers if c.kx == "RSA"]
    weak = _weak_ciphers(ciphers)
    if rsa and not ctx.psk_only:
        also = f"; also weak: {_examples([c for c, _ in weak])}" if weak else ""
        return Verdict(
            risk="quantum-vulnerable",
            fix="remove RSA key transport (add !kRSA): its sessions are decrypted by whoever "
            "later breaks the server's RSA key, and have no forward secrecy"
            + (
                ", and the weak suites (!aNULL:!eNULL:!EXPORT:!RC4:!DES:!3DES:!MD5)" if weak else ""
            ),
            note="; ".join([*notes, f"RSA key transport: {_examples(rsa)}{also}"]),
        )
    if weak:
        return Verdict(
            risk="weak",
            fix="remove " + ", ".join(sorted({why for _, why in weak})) + " suites "
            "(add !aNULL:!eNULL:!EXPORT:!RC4:!DES:!3DES:!MD5)",
            note="; ".join([*notes, f"weak: {_examples([c for c, _ in weak])}"]),
        )
    notes.append(
        f"{len(ciphers)} suites, forward-secret or PSK; the TLS 1.2 key exchange itself is "
        "classical (see the group and protocol findings)"
    )
    return Verdict(risk="ok", fix="none", note="; ".join(notes))


def _weak_ciphers(ciphers: tuple[Cipher, ...]) -> list[tuple[Cipher, str]]:
    found: list[tuple[Cipher, str]] = []
    for c in ciphers:
        if c.enc in _WEAK_ENC:
            found.append((c, _WEAK_ENC[c.enc]))
        elif c.strength == "EXPORT":
            found.append((c, "EXPORT"))
        elif c.mac == "MD5":
            found.append((c, "MD5"))
        elif c.au == "None":
            found.append((c, "anonymous"))
    return found


def _examples(ciphers: list[Cipher]) -> str:
    names = [c.name for c in ciphers]
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


_TLS13_SUITES = {
    "TLS_AES_128_GCM_SHA256": "",
    "TLS_AES_256_GCM_SHA384": "",
    "TLS_CHACHA20_POLY1305_SHA256": "",
    "TLS_AES_128_CCM_SHA256": "",
    "TLS_AES_128_CCM_8_SHA256": "64-bit authentication tag",
    "TLS_SHA256_SHA256": "integrity only, no encryption (RFC 9150)",
    "TLS_SHA384_SHA384": "integrity only, no encryption (RFC 9150)",
}


def judge_ciphersuites(suites: tuple[str, ...]) -> Verdict:
    """Risk of a TLS 1.3 cipher-suite list (the key exchange is judged by the groups)."""
    weak = [f"{s} ({_TLS13_SUITES[s]})" for s in suites if _TLS13_SUITES.get(s)]
    unknown = [s for s in suites if s not in _TLS13_SUITES]
    if not suites:
        return Verdict(risk="weak", fix="list at least TLS_AES_256_GCM_SHA384", note="empty")
    if weak or unknown:
        note = "; ".join(
            part
            for part in (
                f"weak: {', '.join(weak)}" if weak else "",
                f"unknown: {', '.join(unknown)}" if unknown else "",
            )
            if part
        )
        return Verdict(
            risk="weak",
            fix="keep TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256",
            note=note,
        )
    return Verdict(
        risk="ok",
        fix="none",
        note="TLS 1.3 AEADs keep >= 128-bit strength against Grover's search",
    )


def judge_groups(groups: tuple[str, ...], ctx: Context, *, note: str = "") -> Verdict:
    """Risk of a key-exchange group list, most preferred first."""
    notes = [n for n in (note,) if n]
    pq = [g for g in groups if g in HYBRID_GROUPS | PQ_GROUPS]
    if ctx.psk_only:
        return Verdict(
            risk="ok",
            fix="none",
            note="; ".join(
                [*notes, "a pre-shared key is mixed into every handshake (no certificate)"]
            ),
        )
    if pq:
        if groups[0] in HYBRID_GROUPS | PQ_GROUPS:
            return Verdict(
                risk="ok",
                fix="none",
                note="; ".join([*notes, f"post-quantum key exchange: {', '.join(pq)}"]),
            )
        return Verdict(
            risk="weak",
            fix=f"move {pq[0]} first: clients send their key share for the first group, so "
            f"{groups[0]} is negotiated unless a retry is forced",
            note="; ".join(notes),
        )
    draft = [g for g in groups if g in DRAFT_GROUPS]
    if draft:
        return Verdict(
            risk="weak",
            fix=f"replace {', '.join(draft)} (pre-standard Kyber, being withdrawn) with "
            "X25519MLKEM768",
            note="; ".join(notes),
        )
    weak = [g for g in groups if g in WEAK_CLASSICAL_GROUPS]
    if weak:
        notes.append(f"also below 128-bit classical strength: {', '.join(weak)}")
    notes.append(
        "classical-only key exchange: recorded sessions can be decrypted later "
        "(harvest now, decrypt later)"
    )
    fix = HYBRID_FIX
    if not ctx.stack.has_mlkem:
        fix = "upgrade to OpenSSL >= 3.5 and " + fix
    return Verdict(risk="quantum-vulnerable", fix=fix, note="; ".join(notes))


_PQ_SIGALGS = ("mldsa", "ml-dsa", "slhdsa", "slh-dsa", "falcon")


def judge_sigalgs(algorithms: tuple[str, ...]) -> Verdict:
    if any(any(p in a.lower() for p in _PQ_SIGALGS) for a in algorithms):
        return Verdict(risk="ok", fix="none", note="post-quantum signature algorithm listed")
    return Verdict(
        risk="weak",
        fix="plan ML-DSA (or composite ML-DSA + ECDSA) signatures once your stack and CAs "
        "support them",
        note=_AUTH_NOTE,
    )


_AUTH_NOTE = (
    "classical authentication: a quantum computer can forge it only once one exists, so "
    "recorded traffic stays safe; replace it before then (lower priority than key exchange)"
)


def judge(d: Directive, ctx: Context) -> Verdict:
    """The verdict for one directive in the context of its scope."""
    if d.kind in {"protocols", "protocol_delta", "min_protocol", "max_protocol"}:
        return judge_protocol_directive(d, ctx)
    if d.kind == "cipher_string":
        return judge_cipher_string(d.value, ctx)
    if d.kind == "ciphersuites":
        return judge_ciphersuites(d.data)
    if d.kind == "groups":
        groups, note = parse_group_list(":".join(d.data), ctx.stack.default_groups())
        return judge_groups(groups, ctx, note=note)
    if d.kind == "sigalgs":
        return judge_sigalgs(d.data)
    if d.kind == "seclevel":
        return Verdict(
            risk="ok",
            fix="none",
            note="level 3 and up also refuse RSA key transport (no forward secrecy)",
        )
    if d.kind == "psk":
        return Verdict(
            risk="ok",
            fix="none",
            note="pre-shared keys keep recorded sessions safe while they are random, at least "
            "32 bytes, secret and rotated; `agile keys export` writes this file from a hybrid "
            "PQC/QKD session",
        )
    if d.kind == "certificate":
        return Verdict(
            risk="weak",
            fix="plan ML-DSA or composite certificates when your CA and clients support them",
            note=_AUTH_NOTE,
        )
    if d.kind == "include":
        return Verdict(
            risk="ok",
            fix=f"not followed: audit it separately (agile migrate tls {d.value})",
            note="include not followed",
        )
    if d.kind == "unknown":
        return Verdict(
            risk="weak",
            fix="check the spelling against the stack's documentation; an unknown command may "
            "stop the service from starting or be ignored",
            note=d.note or "unrecognised TLS setting",
        )
    if d.kind == "unparsed":
        return Verdict(
            risk="weak",
            fix="correct or remove this line; it was not audited",
            note=d.note or "unparsed line",
        )
    return Verdict(risk="ok", fix="none", note=d.note)


def audit_config(parsed: ParsedConfig, stack: Stack) -> list[Finding]:
    """Every finding for one parsed file: one per directive, plus one per absent default."""
    findings: list[Finding] = []
    defaults = DEFAULTS[parsed.dialect]

    def add(d: Directive, verdict: Verdict, scope: str) -> None:
        note = "; ".join(
            n for n in (d.note if d.kind not in {"unknown", "unparsed"} else "", verdict.note) if n
        )
        findings.append(
            Finding(
                file=d.file,
                line=d.line,
                setting=d.setting,
                value=d.value,
                risk=verdict.risk,
                fix=verdict.fix,
                note=note,
                scope=scope,
            )
        )

    for d in parsed.loose:
        add(d, judge(d, _loose_context(parsed.dialect, stack)), "")
    for scope in parsed.scopes:
        ctx = context_of(scope, parsed.dialect, stack)
        for d in scope.directives:
            add(d, judge(d, ctx), scope.name)
        if not scope.tls:
            continue
        findings.extend(_default_findings(parsed, scope, ctx, defaults))
    findings.sort(key=lambda f: (f.file, f.line))
    return findings


def _loose_context(dialect: Dialect, stack: Stack) -> Context:
    return context_of(Scope(name="", line=0), dialect, stack)


def _default_findings(
    parsed: ParsedConfig, scope: Scope, ctx: Context, defaults: DialectDefaults
) -> list[Finding]:
    found: list[Finding] = []

    def add(setting: str, source: str, verdict: Verdict) -> None:
        found.append(
            Finding(
                file=parsed.file,
                line=scope.line,
                setting=setting,
                value="(not set)",
                risk=verdict.risk,
                fix=verdict.fix,
                note="; ".join(n for n in (f"default: {source}", verdict.note) if n),
                scope=scope.name,
            )
        )

    if not ctx.protocols_set:
        add(
            defaults.protocols_setting,
            defaults.protocols_source,
            judge_protocols(ctx.protocols, ctx),
        )
    if not ctx.groups_set:
        source = defaults.groups_source
        if ctx.groups_from_library:
            version = f"{ctx.stack.openssl[0]}.{ctx.stack.openssl[1]}"
            source = f"OpenSSL {version} library default: " + ":".join(ctx.groups)
        add(defaults.groups_setting, source, judge_groups(ctx.groups, ctx))
    if not ctx.ciphers_set and ctx.legacy_enabled:
        add(
            defaults.ciphers_setting,
            defaults.ciphers_source,
            judge_cipher_string(ctx.cipher_string, ctx),
        )
    return found
