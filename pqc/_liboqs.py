"""The ``liboqs`` provider: liboqs-python (module ``oqs``) over the C liboqs library.

Offers every KEM and signature scheme the installed liboqs enables, under liboqs's names
(which for ML-KEM, ML-DSA, HQC, Classic-McEliece and sntrup761 are the standard names;
liboqs's ``SLH_DSA_PURE_SHA2_128S`` style is mapped to ``SLH-DSA-SHA2-128s``).

``import oqs`` is dangerous: when the shared library is absent, liboqs-python tries to
git-clone and build liboqs and then calls ``SystemExit``. So this module first looks for the
library exactly where ``oqs/oqs.py`` would (``ctypes.util.find_library("oqs")`` and
``"liboqs"``, then ``$OQS_INSTALL_PATH/lib`` and ``lib64``, default ``~/_oqs``), loads it
with ctypes, and only then imports ``oqs``.

liboqs returns ``(ciphertext, shared_secret)`` from ``encap_secret`` and zero-pads or
truncates inputs to the sizes it expects, so this adapter checks every length itself and
runs the FIPS 203 modulus check on ML-KEM encapsulation keys.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import importlib.util
import io
import os
import platform
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from pqc._checks import (
    bad_ciphertext,
    bad_public_key,
    bad_secret_key,
    bad_seed,
    mlkem_encapsulation_key_is_valid,
)
from pqc._errors import InvalidCiphertext, InvalidKey, InvalidSignature, UnsupportedAlgorithm
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

NAME = "liboqs"
_INSTALL = (
    "build and install liboqs (https://github.com/open-quantum-safe/liboqs, "
    "cmake -DBUILD_SHARED_LIBS=ON) and put it on the loader path or set OQS_INSTALL_PATH, "
    "then pip install 'qkd-agile[liboqs]'"
)
_SLH_DSA = re.compile(r"SLH_DSA_PURE_(SHA2|SHAKE)_(\d+)([SF])")


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


def canonical_name(oqs_name: str) -> str:
    match = _SLH_DSA.fullmatch(oqs_name)
    if match:
        return f"SLH-DSA-{match.group(1)}-{match.group(2)}{match.group(3).lower()}"
    return oqs_name


def _family(name: str) -> str:
    for prefix in ("ML-KEM", "ML-DSA", "SLH-DSA", "HQC", "Classic-McEliece", "FrodoKEM", "BIKE"):
        if name.startswith(prefix):
            return prefix
    if name.startswith("sntrup"):
        return "NTRU-Prime"
    return re.split(r"[-_]", name, maxsplit=1)[0]


_STANDARDS = {"ML-KEM": "FIPS 203", "ML-DSA": "FIPS 204", "SLH-DSA": "FIPS 205"}


class _OqsKem(Kem):
    def __init__(self, oqs: Any, name: str, oqs_name: str) -> None:
        self._oqs = oqs
        self._oqs_name = oqs_name
        with oqs.KeyEncapsulation(oqs_name) as probe:
            details = dict(probe.details)
        family = _family(name)
        self._is_mlkem = family == "ML-KEM"
        seed_size = int(details.get("length_keypair_seed", 0)) or None
        self.info = KemInfo(
            name=name,
            provider=NAME,
            family=family,
            nist_level=int(details["claimed_nist_level"]) or None,
            public_key_size=int(details["length_public_key"]),
            secret_key_size=int(details["length_secret_key"]),
            ciphertext_size=int(details["length_ciphertext"]),
            shared_secret_size=int(details["length_shared_secret"]),
            standard=_STANDARDS.get(family, f"liboqs {details.get('version', '')}".strip()),
            secret_key_format=SK_FIPS203_EXPANDED if self._is_mlkem else SK_PROVIDER_NATIVE,
            seed_size=seed_size,
        )

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        info = self.info
        with self._oqs.KeyEncapsulation(self._oqs_name) as kem:
            if seed is None:
                public_key = kem.generate_keypair()
            elif info.seed_size is None:
                raise UnsupportedAlgorithm(
                    f"{info.name} ({NAME}) has no seeded key generation in this liboqs build"
                )
            elif len(seed) != info.seed_size:
                raise bad_seed(info.name, NAME, info.seed_size, seed)
            else:
                public_key = kem.generate_keypair_seed(seed)
            secret_key = kem.export_secret_key()
        return bytes(public_key), bytes(secret_key)

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        info = self.info
        # liboqs silently zero-pads a short key, so the length check must happen here.
        if len(public_key) != info.public_key_size or (
            self._is_mlkem and not mlkem_encapsulation_key_is_valid(info.name, public_key)
        ):
            raise bad_public_key(info.name, NAME, info.public_key_size, public_key)
        try:
            with self._oqs.KeyEncapsulation(self._oqs_name) as kem:
                ciphertext, shared_secret = kem.encap_secret(public_key)  # liboqs: (ct, ss)
        except (RuntimeError, ValueError) as exc:
            raise InvalidKey(f"{info.name} ({NAME}): liboqs rejected the public key") from exc
        return Encapsulation(bytes(ciphertext), bytes(shared_secret))

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        info = self.info
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, NAME, info.secret_key_size, secret_key)
        if len(ciphertext) != info.ciphertext_size:
            raise bad_ciphertext(info.name, NAME, info.ciphertext_size, ciphertext)
        try:
            with self._oqs.KeyEncapsulation(self._oqs_name, secret_key) as kem:
                return bytes(kem.decap_secret(ciphertext))
        except (RuntimeError, ValueError) as exc:
            raise InvalidCiphertext(f"{info.name} ({NAME}): liboqs failed to decapsulate") from exc


class _OqsSignature(SignatureScheme):
    def __init__(self, oqs: Any, name: str, oqs_name: str) -> None:
        self._oqs = oqs
        self._oqs_name = oqs_name
        with oqs.Signature(oqs_name) as probe:
            details = dict(probe.details)
        family = _family(name)
        self.info = SignatureInfo(
            name=name,
            provider=NAME,
            family=family,
            nist_level=int(details["claimed_nist_level"]) or None,
            public_key_size=int(details["length_public_key"]),
            secret_key_size=int(details["length_secret_key"]),
            signature_size=int(details["length_signature"]),
            standard=_STANDARDS.get(family, f"liboqs {details.get('version', '')}".strip()),
            secret_key_format=SK_FIPS204_EXPANDED if family == "ML-DSA" else SK_PROVIDER_NATIVE,
            seed_size=None,
            supports_context=bool(details.get("sig_with_ctx_support", False)),
        )

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        if seed is not None:
            raise UnsupportedAlgorithm(
                f"{self.info.name} ({NAME}) cannot generate a key pair from a seed; "
                "use provider='cryptography' for seeded ML-DSA keys"
            )
        with self._oqs.Signature(self._oqs_name) as scheme:
            public_key = scheme.generate_keypair()
            secret_key = scheme.export_secret_key()
        return bytes(public_key), bytes(secret_key)

    def _check_context(self, context: bytes) -> None:
        if context and not self.info.supports_context:
            raise UnsupportedAlgorithm(
                f"{self.info.name} ({NAME}) takes no context string in this liboqs build"
            )
        if len(context) > 255:
            raise InvalidSignature(f"{self.info.name} ({NAME}): context must be <= 255 bytes")

    def sign(self, secret_key: bytes, message: bytes, context: bytes = b"") -> bytes:
        info = self.info
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, NAME, info.secret_key_size, secret_key)
        self._check_context(context)
        try:
            with self._oqs.Signature(self._oqs_name, secret_key) as scheme:
                if context:
                    return bytes(scheme.sign_with_ctx_str(message, context))
                return bytes(scheme.sign(message))
        except (RuntimeError, ValueError) as exc:
            raise InvalidKey(f"{info.name} ({NAME}): liboqs failed to sign") from exc

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
        try:
            with self._oqs.Signature(self._oqs_name) as scheme:
                if context:
                    valid = scheme.verify_with_ctx_str(message, signature, context, public_key)
                else:
                    valid = scheme.verify(message, signature, public_key)
        except (RuntimeError, ValueError) as exc:
            raise InvalidSignature(f"{info.name} ({NAME}): signature did not verify") from exc
        if not valid:
            raise InvalidSignature(f"{info.name} ({NAME}): signature did not verify")


class LiboqsProvider(Provider):
    """liboqs through liboqs-python, loaded only when the shared library is present.

    ``module_loader`` replaces the locate-then-import step (tests pass a stand-in module).
    """

    name = NAME

    def __init__(self, module_loader: Callable[[], ModuleType] | None = None) -> None:
        self._loader = module_loader
        self._oqs: Any = None
        self._reason: str | None = None
        self._kem_names: dict[str, str] = {}
        self._sig_names: dict[str, str] = {}
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
            # find_spec locates the package without executing it (executing it is the danger).
            if importlib.util.find_spec("oqs") is None:
                self._reason = f"liboqs-python is not installed; {_INSTALL}"
                return False
            path, why = locate_library()
            if path is None:
                self._reason = why
                return False
            try:
                module = _import_oqs()
            except (ImportError, OSError, RuntimeError, SystemExit) as exc:
                self._reason = f"import oqs failed ({exc}); {_INSTALL}"
                return False
        self._kem_names = {canonical_name(n): n for n in module.get_enabled_kem_mechanisms()}
        self._sig_names = {canonical_name(n): n for n in module.get_enabled_sig_mechanisms()}
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

    def kem(self, name: str) -> Kem:
        if not self._load():
            raise UnsupportedAlgorithm(f"provider {NAME!r} is unavailable: {self._reason}")
        if name not in self._kem_names:
            raise UnsupportedAlgorithm(f"provider {NAME!r} does not enable KEM {name!r}")
        if name not in self._kems:
            self._kems[name] = _OqsKem(self._oqs, name, self._kem_names[name])
        return self._kems[name]

    def signature(self, name: str) -> SignatureScheme:
        if not self._load():
            raise UnsupportedAlgorithm(f"provider {NAME!r} is unavailable: {self._reason}")
        if name not in self._sig_names:
            raise UnsupportedAlgorithm(f"provider {NAME!r} does not enable signature {name!r}")
        if name not in self._signatures:
            self._signatures[name] = _OqsSignature(self._oqs, name, self._sig_names[name])
        return self._signatures[name]
