"""The ``liboqs`` provider: liboqs-python (module ``oqs``) over the C liboqs library.

Offers the KEMs and signature schemes the installed liboqs enables, under standard names and
standard family names (see ``classify``): ``HQC-1/3/5`` are listed as ``HQC-128/192/256``
(``pqc._names`` keeps the other spelling as an alias), ``SLH_DSA_PURE_SHA2_128S`` as
``SLH-DSA-SHA2-128s``, and the FIPS 205 pre-hash variants ``SLH_DSA_SHA2_256_PREHASH_SHA2_128S``
as ``HashSLH-DSA-SHA2-128s-with-SHA256``. Families that NIST has not standardised, or that
were withdrawn (Kyber), say so in ``info.standard``. The ML-DSA "external mu" variants
(``ML-DSA-44-extmu`` ...) are left out: they sign the 64-byte message representative mu of
FIPS 204, not a message, so they do not fit the ``SignatureScheme`` contract and must never
pass for plain ML-DSA.

``import oqs`` is dangerous: when the shared library is absent, liboqs-python tries to
git-clone and build liboqs and then calls ``SystemExit``. So this module first looks for the
library exactly where ``oqs/oqs.py`` would (``ctypes.util.find_library("oqs")`` and
``"liboqs"``, then ``$OQS_INSTALL_PATH/lib`` and ``lib64``, default ``~/_oqs``), loads it
with ctypes, and only then imports ``oqs``.

liboqs returns ``(ciphertext, shared_secret)`` from ``encap_secret`` and zero-pads or
truncates inputs to the sizes it expects, so this adapter checks every length itself, runs
the FIPS 203 modulus check on ML-KEM encapsulation keys and the FIPS 203 hash check on
ML-KEM decapsulation keys.

Errors: liboqs-python's objects free their C structure on leaving ``with``, and their repr
reads that structure. An exception raised inside one of their methods keeps the object
alive in its traceback, so formatting it later (pytest's long traceback shows ``self``)
crashes the interpreter. This adapter therefore never chains liboqs-python's exceptions:
``_attempt`` reduces a failure to plain strings inside the ``except`` block, and the pqc error
is raised after it, with a ``pqc._errors.LibraryFailure`` as its cause.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import hmac
import importlib
import importlib.util
import io
import os
import platform
import re
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from pqc._checks import (
    bad_ciphertext,
    bad_public_key,
    bad_secret_key,
    bad_seed,
    mlkem_encapsulation_key_is_valid,
    require_bytes,
)
from pqc._errors import (
    InvalidCiphertext,
    InvalidKey,
    InvalidSignature,
    PQCError,
    UnsupportedAlgorithm,
    library_error,
)
from pqc._interface import (
    SK_FIPS203_EXPANDED,
    SK_FIPS204_EXPANDED,
    SK_PROVIDER_NATIVE,
    Encapsulation,
    Kem,
    KemInfo,
    Provider,
    ProviderStatus,
    SignatureInfo,
    SignatureScheme,
)
from pqc._names import ALIASES

NAME = "liboqs"
_INSTALL = (
    "build and install liboqs (https://github.com/open-quantum-safe/liboqs, "
    "cmake -DBUILD_SHARED_LIBS=ON) and put it on the loader path or set OQS_INSTALL_PATH, "
    "then pip install 'qkd-agile[liboqs]'"
)

_T = TypeVar("_T")


# -- finding and importing liboqs -----------------------------------------------------------


def locate_library() -> tuple[str | None, str]:
    """Find and load liboqs as ``oqs/oqs.py`` would; return (path, explanation)."""
    candidates: list[str] = []
    for name in ("oqs", "liboqs"):
        found = ctypes.util.find_library(name)
        if found:
            candidates.append(found)
    install_dir = Path(os.environ.get("OQS_INSTALL_PATH", Path.home() / "_oqs"))
    system = platform.system()
    if system == "Windows":
        candidates += [str(install_dir / "bin" / n) for n in ("oqs.dll", "liboqs.dll")]
    else:
        suffix = ".dylib" if system == "Darwin" else ".so"
        candidates += [str(install_dir / d / f"liboqs{suffix}") for d in ("lib", "lib64")]
    for candidate in candidates:
        if os.sep in candidate and not Path(candidate).exists():
            continue
        try:
            ctypes.CDLL(candidate)
        except OSError:
            continue
        return candidate, f"found {candidate}"
    searched = f"ctypes.util.find_library('oqs'/'liboqs') and {install_dir}/lib, lib64"
    return None, f"liboqs shared library not found (searched {searched}); {_INSTALL}"


def _import_oqs() -> ModuleType:
    """Import ``oqs`` once the library is known to load, keeping its side effects contained.

    oqs logs to stdout at import (which would corrupt ``--json`` output) and warns when the
    liboqs and liboqs-python versions differ; neither may escape into the caller.
    """
    with (
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        return importlib.import_module("oqs")


_loaded: tuple[ModuleType | None, str] | None = None
_load_lock = threading.Lock()


def load_oqs() -> tuple[ModuleType | None, str]:
    """``(oqs, "installed")``, or ``(None, why and how to install)``; tried once per process."""
    global _loaded  # noqa: PLW0603 - the import is attempted once per process
    if _loaded is None:
        with _load_lock:
            if _loaded is None:
                _loaded = _locate_and_import()
    return _loaded


def _locate_and_import() -> tuple[ModuleType | None, str]:
    # find_spec locates the package without executing it (executing it is the danger).
    if importlib.util.find_spec("oqs") is None:
        return None, f"liboqs-python is not installed; {_INSTALL}"
    path, why = locate_library()
    if path is None:
        return None, why
    try:
        return _import_oqs(), "installed"
    except (ImportError, OSError, RuntimeError, SystemExit) as exc:
        return None, f"import oqs failed ({exc}); {_INSTALL}"


# -- names ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classified:
    """What liboqs's name of a mechanism stands for here."""

    name: str  # the standard (or, lacking one, the designers') spelling
    family: str  # the standard family name
    standard: str  # the standard, or why there is none (not standardised, withdrawn)


_NOT_SELECTED_SIG = "not standardised: NIST additional signatures, round 2 candidate"
_PREHASH = {
    "SHA2_224": "SHA224",
    "SHA2_256": "SHA256",
    "SHA2_384": "SHA384",
    "SHA2_512": "SHA512",
    "SHA2_512_224": "SHA512-224",
    "SHA2_512_256": "SHA512-256",
    "SHA3_224": "SHA3-224",
    "SHA3_256": "SHA3-256",
    "SHA3_384": "SHA3-384",
    "SHA3_512": "SHA3-512",
    "SHAKE_128": "SHAKE128",
    "SHAKE_256": "SHAKE256",
}
_SLH_DSA_PURE = re.compile(r"SLH_DSA_PURE_(SHA2|SHAKE)_(128|192|256)([SF])")
_SLH_DSA_PREHASH = re.compile(
    rf"SLH_DSA_({'|'.join(_PREHASH)})_PREHASH_(SHA2|SHAKE)_(128|192|256)([SF])"
)
_HQC = {"HQC-1": "HQC-128", "HQC-3": "HQC-192", "HQC-5": "HQC-256"}
assert all(ALIASES[old] == new for old, new in _HQC.items())

# liboqs's name (regular expression) -> (family, standard). The first match wins.
_FAMILIES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern), family, standard)
    for pattern, family, standard in (
        (r"ML-KEM-(512|768|1024)", "ML-KEM", "FIPS 203"),
        (r"ML-DSA-(44|65|87)", "ML-DSA", "FIPS 204"),
        (r"HQC-(128|192|256)", "HQC", "HQC (NIST selection, 2025)"),
        (
            r"Kyber(512|768|1024)",
            "Kyber",
            "withdrawn: CRYSTALS-Kyber round 3, superseded by FIPS 203 ML-KEM "
            "(not interoperable with it)",
        ),
        (
            r"Classic-McEliece-\w+",
            "Classic-McEliece",
            "Classic McEliece (NIST round 4, not selected; ISO/IEC 18033-2 draft)",
        ),
        (
            r"e?FrodoKEM-\w+-(AES|SHAKE)",
            "FrodoKEM",
            "FrodoKEM (not selected by NIST; ISO/IEC 18033-2 draft)",
        ),
        (r"BIKE-L[135]", "BIKE", "not standardised: NIST round 4 candidate, not selected"),
        (
            r"NTRU-HRSS-\d+|NTRU-HPS-\d+-\d+",
            "NTRU",
            "not standardised: NIST round 3 finalist, not selected",
        ),
        (
            r"sntrup\d+",
            "NTRU-Prime",
            "Streamlined NTRU Prime (not standardised by NIST: round 3 alternate; "
            "draft-josefsson-ntruprime-streamlined)",
        ),
        (
            r"Falcon-(padded-)?(512|1024)",
            "Falcon",
            "not yet standardised: NIST selection, FIPS 206 (FN-DSA) in draft",
        ),
        (r"MAYO-\d", "MAYO", _NOT_SELECTED_SIG),
        (r"cross-rsdpg?-\d+-\w+", "CROSS", _NOT_SELECTED_SIG),
        (r"OV-\w+(-pkc)?(-skc)?", "UOV", _NOT_SELECTED_SIG),
        (r"SNOVA_\w+", "SNOVA", _NOT_SELECTED_SIG),
        (r"mqom2_\w+", "MQOM", _NOT_SELECTED_SIG),
    )
)
UNCLASSIFIED = "unclassified"

# Mechanisms left out on purpose, with the reason given to whoever asks for one.
_EXTMU = re.compile(r"ML-DSA-(44|65|87)-extmu")
EXTMU_REASON = (
    "signs the 64-byte FIPS 204 message representative mu (external-mu mode), not a "
    "message, so it is not offered as a signature scheme; use ML-DSA-{level} for messages"
)


def left_out(oqs_name: str) -> str | None:
    """Why liboqs's mechanism ``oqs_name`` is not offered, or None when it is."""
    match = _EXTMU.fullmatch(oqs_name)
    if match:
        return f"{oqs_name}: " + EXTMU_REASON.format(level=match.group(1))
    return None


def classify(oqs_name: str) -> Classified:
    """The standard name, family and standard of liboqs's mechanism ``oqs_name``.

    >>> classify("SLH_DSA_PURE_SHA2_128S")
    Classified(name='SLH-DSA-SHA2-128s', family='SLH-DSA', standard='FIPS 205')
    """
    match = _SLH_DSA_PURE.fullmatch(oqs_name)
    if match:
        hash_name, bits, speed = match.groups()
        return Classified(f"SLH-DSA-{hash_name}-{bits}{speed.lower()}", "SLH-DSA", "FIPS 205")
    match = _SLH_DSA_PREHASH.fullmatch(oqs_name)
    if match:
        prehash, hash_name, bits, speed = match.groups()
        digest = _PREHASH[prehash]
        return Classified(
            f"HashSLH-DSA-{hash_name}-{bits}{speed.lower()}-with-{digest}",
            "HashSLH-DSA",
            f"FIPS 205 (HashSLH-DSA, the message pre-hashed with {digest})",
        )
    name = _HQC.get(oqs_name, oqs_name)
    for pattern, family, standard in _FAMILIES:
        if pattern.fullmatch(name):
            return Classified(name, family, standard)
    # A mechanism newer than this table: offered under liboqs's name, and marked so.
    return Classified(name, UNCLASSIFIED, "not classified by this adapter (liboqs's name)")


def canonical_name(oqs_name: str) -> str:
    """The standard spelling of liboqs's name (see ``classify``)."""
    return classify(oqs_name).name


# -- calling liboqs without keeping its objects ---------------------------------------------


@dataclass(frozen=True, slots=True)
class _Failure:
    """A liboqs-python exception reduced to plain strings."""

    status: str
    detail: str


def _attempt(call: Callable[..., _T], *args: Any) -> _T | _Failure:
    """Run ``call(*args)``; a liboqs-python failure comes back as a :class:`_Failure`.

    The exception (and with it the traceback holding liboqs objects) is dropped when the
    ``except`` block ends; only its type and message survive.
    """
    try:
        return call(*args)
    except RuntimeError as exc:
        # liboqs-python raises RuntimeError when a liboqs call returned a failure status;
        # it does not pass the status on, and liboqs's only failure status there is OQS_ERROR.
        return _Failure("OQS_ERROR", f"RuntimeError: {exc}")
    except ValueError as exc:
        return _Failure("rejected by liboqs-python before calling liboqs", f"ValueError: {exc}")


def _translated(
    error: type[PQCError],
    info: KemInfo | SignatureInfo,
    operation: str,
    message: str,
    failed: _Failure,
) -> PQCError:
    """The pqc error for a failed liboqs call, to raise outside the ``except`` block."""
    return library_error(
        error,
        f"{info.name} ({NAME}): {message}",
        provider=NAME,
        algorithm=info.name,
        operation=operation,
        status=failed.status,
        detail=failed.detail,
    )


# -- seeded ML-KEM key generation -----------------------------------------------------------

_OQS_STATUS = {-1: "OQS_ERROR", 0: "OQS_SUCCESS", 50: "OQS_EXTERNAL_LIB_ERROR_OPENSSL"}


def keypair_derand_ctypes(oqs: Any, oqs_name: str, seed: bytes) -> tuple[bytes, bytes] | _Failure:
    """``OQS_KEM_keypair_derand`` called through ctypes in the library ``oqs`` loaded.

    For liboqs-python releases without ``generate_keypair_seed``. The function objects are
    taken with ``lib["..."]`` (a fresh object each time), so the signatures declared here do
    not change the ones liboqs-python declared on its own attributes.
    """
    lib = oqs.native()
    kem_new = lib["OQS_KEM_new"]
    kem_new.restype = ctypes.c_void_p
    kem_new.argtypes = [ctypes.c_char_p]
    kem_free = lib["OQS_KEM_free"]
    kem_free.restype = None
    kem_free.argtypes = [ctypes.c_void_p]
    derand = lib["OQS_KEM_keypair_derand"]
    derand.restype = ctypes.c_int
    derand.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
    handle = kem_new(oqs_name.encode())
    if not handle:
        return _Failure("mechanism unavailable", f"OQS_KEM_new({oqs_name!r}) returned NULL")
    try:
        # The sizes come from liboqs-python's view of the same OQS_KEM structure.
        sizes = _kem_details(oqs, oqs_name)
        if len(seed) != sizes["length_keypair_seed"]:
            return _Failure("not called", f"seed of {len(seed)} bytes")
        public_key = ctypes.create_string_buffer(sizes["length_public_key"])
        secret_key = ctypes.create_string_buffer(sizes["length_secret_key"])
        status = derand(handle, public_key, secret_key, seed)
        if status != 0:
            return _Failure(_OQS_STATUS.get(status, str(status)), "OQS_KEM_keypair_derand failed")
        result = (public_key.raw, secret_key.raw)
        ctypes.memset(secret_key, 0, len(secret_key))
        return result
    finally:
        kem_free(handle)


def _kem_details(oqs: Any, oqs_name: str) -> dict[str, int]:
    with oqs.KeyEncapsulation(oqs_name) as probe:
        return {k: int(v) for k, v in probe.details.items() if k.startswith("length_")}


def _keypair_seed_oqs(oqs: Any, oqs_name: str, seed: bytes) -> tuple[bytes, bytes]:
    with oqs.KeyEncapsulation(oqs_name) as kem:
        public_key = kem.generate_keypair_seed(seed)
        return bytes(public_key), bytes(kem.export_secret_key())


def keypair_from_seed(oqs: Any, oqs_name: str, seed: bytes) -> tuple[bytes, bytes] | _Failure:
    """(public key, secret key) from ``seed``: liboqs-python's ``generate_keypair_seed`` where
    it has one, else ``OQS_KEM_keypair_derand`` through ctypes."""
    if hasattr(oqs.KeyEncapsulation, "generate_keypair_seed"):
        return _attempt(_keypair_seed_oqs, oqs, oqs_name, seed)
    return keypair_derand_ctypes(oqs, oqs_name, seed)


def mlkem_seed_expander(
    name: str,
) -> tuple[Callable[[bytes], tuple[bytes, bytes]] | None, str]:
    """FIPS 203 ML-KEM.KeyGen_internal(d, z) for ``name`` by liboqs, for other providers.

    Returns ``(expand, "liboqs")`` where ``expand(d || z) -> (ek, expanded dk)``, or
    ``(None, why not)`` when liboqs is not available or does not enable ``name``.
    """
    oqs, why = load_oqs()
    if oqs is None:
        return None, why
    if name not in oqs.get_enabled_kem_mechanisms():
        return None, f"this liboqs does not enable {name}"

    def expand(seed: bytes) -> tuple[bytes, bytes]:
        outcome = keypair_from_seed(oqs, name, seed)
        if isinstance(outcome, _Failure):
            raise library_error(
                InvalidKey,
                f"{name} ({NAME}): liboqs failed to expand the seed",
                provider=NAME,
                algorithm=name,
                operation="keypair_derand",
                status=outcome.status,
                detail=outcome.detail,
            )
        return outcome

    return expand, NAME


# -- KEMs -----------------------------------------------------------------------------------


class _OqsKem(Kem):
    def __init__(self, oqs: Any, name: str, oqs_name: str, classified: Classified) -> None:
        self._oqs = oqs
        self._oqs_name = oqs_name
        with oqs.KeyEncapsulation(oqs_name) as probe:
            details = dict(probe.details)
        self._is_mlkem = classified.family == "ML-KEM"
        seed_size = int(details.get("length_keypair_seed", 0)) or None
        self.info = KemInfo(
            name=name,
            provider=NAME,
            family=classified.family,
            nist_level=int(details["claimed_nist_level"]) or None,
            public_key_size=int(details["length_public_key"]),
            secret_key_size=int(details["length_secret_key"]),
            ciphertext_size=int(details["length_ciphertext"]),
            shared_secret_size=int(details["length_shared_secret"]),
            standard=classified.standard,
            secret_key_format=SK_FIPS203_EXPANDED if self._is_mlkem else SK_PROVIDER_NATIVE,
            seed_size=seed_size,
        )

    def _keypair(self) -> tuple[bytes, bytes]:
        with self._oqs.KeyEncapsulation(self._oqs_name) as kem:
            public_key = kem.generate_keypair()
            return bytes(public_key), bytes(kem.export_secret_key())

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        info = self.info
        if seed is None:
            outcome = _attempt(self._keypair)
        elif info.seed_size is None:
            raise UnsupportedAlgorithm(
                f"{info.name} ({NAME}) has no seeded key generation in this liboqs build"
            )
        else:
            seed = require_bytes(seed, "seed", info.name)
            if len(seed) != info.seed_size:
                raise bad_seed(info.name, NAME, info.seed_size, seed)
            outcome = keypair_from_seed(self._oqs, self._oqs_name, seed)
        if isinstance(outcome, _Failure):
            raise _translated(
                InvalidKey, info, "keypair", "liboqs failed to generate a key pair", outcome
            )
        return outcome

    def _encaps(self, public_key: bytes) -> tuple[bytes, bytes]:
        with self._oqs.KeyEncapsulation(self._oqs_name) as kem:
            ciphertext, shared_secret = kem.encap_secret(public_key)  # liboqs: (ct, ss)
            return bytes(ciphertext), bytes(shared_secret)

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        info = self.info
        # liboqs silently zero-pads a short key, so the length check must happen here.
        if len(public_key) != info.public_key_size or (
            self._is_mlkem and not mlkem_encapsulation_key_is_valid(info.name, public_key)
        ):
            raise bad_public_key(info.name, NAME, info.public_key_size, public_key)
        outcome = _attempt(self._encaps, public_key)
        if isinstance(outcome, _Failure):
            raise _translated(InvalidKey, info, "encaps", "liboqs rejected the public key", outcome)
        return Encapsulation(*outcome)

    def _decaps(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        with self._oqs.KeyEncapsulation(self._oqs_name, secret_key) as kem:
            return bytes(kem.decap_secret(ciphertext))

    def _check_mlkem_secret_key(self, secret_key: bytes) -> None:
        """FIPS 203 7.3 hash check: dk = dk_PKE || ek || H(ek) || z, H = SHA3-256."""
        info = self.info
        start = info.secret_key_size - info.public_key_size - 64
        public_key = secret_key[start : start + info.public_key_size]
        stored = secret_key[start + info.public_key_size : start + info.public_key_size + 32]
        if not hmac.compare_digest(hashlib.sha3_256(public_key).digest(), stored):
            raise InvalidKey(
                f"{info.name} ({NAME}): expanded secret key of {info.secret_key_size} bytes "
                "fails the FIPS 203 hash check (H(ek) does not match); it is corrupt"
            )

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        info = self.info
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, NAME, info.secret_key_size, secret_key)
        if len(ciphertext) != info.ciphertext_size:
            raise bad_ciphertext(info.name, NAME, info.ciphertext_size, ciphertext)
        if self._is_mlkem:
            self._check_mlkem_secret_key(secret_key)
        outcome = _attempt(self._decaps, secret_key, ciphertext)
        if isinstance(outcome, _Failure):
            if self._is_mlkem:
                # ML-KEM decapsulation of a ciphertext of the right size cannot fail (implicit
                # rejection): a failure is the key's.
                raise _translated(
                    InvalidKey, info, "decaps", "liboqs rejected the secret key", outcome
                )
            raise _translated(
                InvalidCiphertext, info, "decaps", "liboqs failed to decapsulate", outcome
            )
        return outcome


# -- signatures -----------------------------------------------------------------------------


class _OqsSignature(SignatureScheme):
    def __init__(self, oqs: Any, name: str, oqs_name: str, classified: Classified) -> None:
        self._oqs = oqs
        self._oqs_name = oqs_name
        with oqs.Signature(oqs_name) as probe:
            details = dict(probe.details)
        family = classified.family
        self.info = SignatureInfo(
            name=name,
            provider=NAME,
            family=family,
            nist_level=int(details["claimed_nist_level"]) or None,
            public_key_size=int(details["length_public_key"]),
            secret_key_size=int(details["length_secret_key"]),
            signature_size=int(details["length_signature"]),
            standard=classified.standard,
            secret_key_format=SK_FIPS204_EXPANDED if family == "ML-DSA" else SK_PROVIDER_NATIVE,
            seed_size=None,
            supports_context=bool(details.get("sig_with_ctx_support", False)),
        )

    def _keypair(self) -> tuple[bytes, bytes]:
        with self._oqs.Signature(self._oqs_name) as scheme:
            public_key = scheme.generate_keypair()
            return bytes(public_key), bytes(scheme.export_secret_key())

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        if seed is not None:
            raise UnsupportedAlgorithm(
                f"{self.info.name} ({NAME}) cannot generate a key pair from a seed; "
                "use provider='cryptography' for seeded ML-DSA keys"
            )
        outcome = _attempt(self._keypair)
        if isinstance(outcome, _Failure):
            raise _translated(
                InvalidKey, self.info, "keypair", "liboqs failed to generate a key pair", outcome
            )
        return outcome

    def _check_context(self, context: bytes) -> None:
        if context and not self.info.supports_context:
            raise UnsupportedAlgorithm(
                f"{self.info.name} ({NAME}) takes no context string in this liboqs build"
            )
        if len(context) > 255:
            raise InvalidSignature(f"{self.info.name} ({NAME}): context must be <= 255 bytes")

    def _sign(self, secret_key: bytes, message: bytes, context: bytes) -> bytes:
        with self._oqs.Signature(self._oqs_name, secret_key) as scheme:
            if context:
                return bytes(scheme.sign_with_ctx_str(message, context))
            return bytes(scheme.sign(message))

    def sign(self, secret_key: bytes, message: bytes, context: bytes = b"") -> bytes:
        info = self.info
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, NAME, info.secret_key_size, secret_key)
        self._check_context(context)
        outcome = _attempt(self._sign, secret_key, message, context)
        if isinstance(outcome, _Failure):
            raise _translated(InvalidKey, info, "sign", "liboqs failed to sign", outcome)
        return outcome

    def _verify(self, public_key: bytes, message: bytes, signature: bytes, context: bytes) -> bool:
        with self._oqs.Signature(self._oqs_name) as scheme:
            if context:
                return bool(scheme.verify_with_ctx_str(message, signature, context, public_key))
            return bool(scheme.verify(message, signature, public_key))

    def verify(
        self, public_key: bytes, message: bytes, signature: bytes, context: bytes = b""
    ) -> None:
        info = self.info
        if len(public_key) != info.public_key_size:
            raise bad_public_key(info.name, NAME, info.public_key_size, public_key)
        self._check_context(context)
        if not 0 < len(signature) <= info.signature_size:
            raise InvalidSignature(
                f"{info.name} ({NAME}): signature must be at most {info.signature_size} bytes, "
                f"got {len(signature)}"
            )
        outcome = _attempt(self._verify, public_key, message, signature, context)
        if isinstance(outcome, _Failure):
            raise _translated(InvalidSignature, info, "verify", "signature did not verify", outcome)
        if not outcome:
            raise InvalidSignature(f"{info.name} ({NAME}): signature did not verify")


# -- the provider ---------------------------------------------------------------------------


class LiboqsProvider(Provider):
    """liboqs through liboqs-python, loaded only when the shared library is present.

    ``module_loader`` replaces the locate-then-import step (tests pass a stand-in module).
    """

    name = NAME

    def __init__(self, module_loader: Callable[[], ModuleType] | None = None) -> None:
        self._loader = module_loader
        self._oqs: Any = None
        self._reason: str | None = None
        self._kem_names: dict[str, tuple[str, Classified]] = {}
        self._sig_names: dict[str, tuple[str, Classified]] = {}
        self._left_out: dict[str, str] = {}
        self._kems: dict[str, Kem] = {}
        self._signatures: dict[str, SignatureScheme] = {}

    def _load(self) -> bool:
        if self._oqs is not None:
            return True
        if self._reason is not None:
            return False
        if self._loader is not None:
            module: Any = self._loader()
        else:
            module, why = load_oqs()
            if module is None:
                self._reason = why
                return False
        for oqs_name in module.get_enabled_kem_mechanisms():
            classified = classify(oqs_name)
            self._kem_names[classified.name] = (oqs_name, classified)
        for oqs_name in module.get_enabled_sig_mechanisms():
            reason = left_out(oqs_name)
            if reason is not None:
                self._left_out[oqs_name] = reason
                continue
            classified = classify(oqs_name)
            self._sig_names[classified.name] = (oqs_name, classified)
        self._oqs = module
        return True

    def status(self) -> ProviderStatus:
        if not self._load():
            return ProviderStatus(
                name=NAME, available=False, reason=self._reason or "", version=None
            )
        oqs = self._oqs
        version = f"liboqs {oqs.oqs_version()}, liboqs-python {oqs.oqs_python_version()}"
        return ProviderStatus(name=NAME, available=True, reason="installed", version=version)

    def kem_names(self) -> tuple[str, ...]:
        return tuple(self._kem_names) if self._load() else ()

    def signature_names(self) -> tuple[str, ...]:
        return tuple(self._sig_names) if self._load() else ()

    def left_out(self) -> dict[str, str]:
        """liboqs's mechanisms that are not offered, with the reason."""
        return dict(self._left_out) if self._load() else {}

    def kem(self, name: str) -> Kem:
        if not self._load():
            raise UnsupportedAlgorithm(f"provider {NAME!r} is unavailable: {self._reason}")
        name = ALIASES.get(name, name)
        if name not in self._kem_names:
            raise UnsupportedAlgorithm(f"provider {NAME!r} does not enable KEM {name!r}")
        if name not in self._kems:
            oqs_name, classified = self._kem_names[name]
            self._kems[name] = _OqsKem(self._oqs, name, oqs_name, classified)
        return self._kems[name]

    def signature(self, name: str) -> SignatureScheme:
        if not self._load():
            raise UnsupportedAlgorithm(f"provider {NAME!r} is unavailable: {self._reason}")
        if name in self._left_out:
            raise UnsupportedAlgorithm(f"provider {NAME!r}: {self._left_out[name]}")
        if name not in self._sig_names:
            raise UnsupportedAlgorithm(f"provider {NAME!r} does not enable signature {name!r}")
        if name not in self._signatures:
            oqs_name, classified = self._sig_names[name]
            self._signatures[name] = _OqsSignature(self._oqs, name, oqs_name, classified)
        return self._signatures[name]
