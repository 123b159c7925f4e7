"""The ``pqcrypto`` provider: the PyPI ``pqcrypto`` package (PQClean/RustCrypto wheels).

KEMs: ML-KEM-512/768/1024, HQC-128/192/256, Classic-McEliece-* and sntrup*; signatures:
ML-DSA-44/65/87 and SLH-DSA-*.

pqcrypto's ML-KEM takes and returns the expanded FIPS 203 decapsulation key (2400 bytes for
ML-KEM-768), and that is this adapter's secret key (``info.secret_key_format`` is
``fips203-expanded``), hash-checked (FIPS 203 section 7.3) before use. pqcrypto cannot
generate a key from a seed; this adapter never expands one itself. Where liboqs is present,
its ``OQS_KEM_keypair_derand`` expands seeds (``pqc._liboqs.mlkem_seed_expander``) and
``info.seed_size`` is 64; elsewhere ``info.seed_size`` is None and ``generate_keypair(seed=...)``
raises ``UnsupportedAlgorithm`` saying to install liboqs (pyca serves seeded ML-KEM-768 and
ML-KEM-1024 anyway). A 64-byte seed given as the secret key (this adapter's format before)
is expanded the same way.

pqcrypto's ML-DSA takes no seed: its secret key is the expanded FIPS 204 key.
``info.secret_key_format`` says so, ``info.seed_size`` is None, and
``generate_keypair(seed=...)`` raises ``UnsupportedAlgorithm``.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import importlib.metadata
from collections.abc import Callable
from types import ModuleType
from typing import Any

from pqc._checks import (
    MLKEM_LEVEL,
    bad_ciphertext,
    bad_public_key,
    bad_secret_key,
    bad_seed,
    require_bytes,
)
from pqc._errors import InvalidKey, InvalidSignature, UnsupportedAlgorithm
from pqc._interface import (
    SK_FIPS203_EXPANDED,
    SK_FIPS204_EXPANDED,
    SK_PROVIDER_NATIVE,
    Encapsulation,
    Kem,
    KemInfo,
    KemPrivateKey,
    Provider,
    ProviderStatus,
    SignatureInfo,
    SignatureScheme,
)

NAME = "pqcrypto"
MLKEM_SEED_SIZE = 64  # d || z (FIPS 203 Algorithm 16 inputs)

# name -> (expand(d || z) -> (ek, expanded dk), or None; who expands, or why nobody can)
SeedExpander = Callable[[str], tuple[Callable[[bytes], tuple[bytes, bytes]] | None, str]]


def _liboqs_expander(name: str) -> tuple[Callable[[bytes], tuple[bytes, bytes]] | None, str]:
    from pqc._liboqs import mlkem_seed_expander

    return mlkem_seed_expander(name)


_INSTALL = "install it with: pip install 'qkd-agile[pqcrypto]'"

# standard name -> (pqcrypto module, family, NIST level, standard, secret-key format)
_KEMS: dict[str, tuple[str, str, int | None, str, str]] = {
    **{
        name: (
            name.lower().replace("-", "_"),
            "ML-KEM",
            MLKEM_LEVEL[name],
            "FIPS 203",
            SK_FIPS203_EXPANDED,
        )
        for name in ("ML-KEM-512", "ML-KEM-768", "ML-KEM-1024")
    },
    "HQC-128": ("hqc_128", "HQC", 1, "HQC (NIST selection, 2025)", SK_PROVIDER_NATIVE),
    "HQC-192": ("hqc_192", "HQC", 3, "HQC (NIST selection, 2025)", SK_PROVIDER_NATIVE),
    "HQC-256": ("hqc_256", "HQC", 5, "HQC (NIST selection, 2025)", SK_PROVIDER_NATIVE),
    **{
        f"Classic-McEliece-{variant}": (
            f"mceliece_{variant}",
            "Classic-McEliece",
            level,
            "Classic McEliece (NIST round 4, ISO/IEC 18033-2 draft)",
            SK_PROVIDER_NATIVE,
        )
        for variant, level in (
            ("348864", 1),
            ("348864f", 1),
            ("460896", 3),
            ("460896f", 3),
            ("6688128", 5),
            ("6688128f", 5),
            ("6960119", 5),
            ("6960119f", 5),
            ("8192128", 5),
            ("8192128f", 5),
        )
    },
    # NTRU Prime: only sntrup761 has a level claimed by liboqs (2); the others are left
    # unstated rather than guessed.
    **{
        f"sntrup{size}": (
            f"sntrup_{size}",
            "NTRU-Prime",
            2 if size == 761 else None,
            "Streamlined NTRU Prime (NIST round 3; draft-josefsson-ntruprime-streamlined)",
            SK_PROVIDER_NATIVE,
        )
        for size in (653, 761, 857, 953, 1013, 1277)
    },
}

# standard name -> (pqcrypto module, family, NIST level, standard, secret-key format)
_SIGNATURES: dict[str, tuple[str, str, int, str, str]] = {
    "ML-DSA-44": ("ml_dsa_44", "ML-DSA", 2, "FIPS 204", SK_FIPS204_EXPANDED),
    "ML-DSA-65": ("ml_dsa_65", "ML-DSA", 3, "FIPS 204", SK_FIPS204_EXPANDED),
    "ML-DSA-87": ("ml_dsa_87", "ML-DSA", 5, "FIPS 204", SK_FIPS204_EXPANDED),
    **{
        f"SLH-DSA-{hash_name}-{bits}{speed}": (
            f"slh_dsa_{hash_name.lower()}_{bits}{speed}",
            "SLH-DSA",
            {128: 1, 192: 3, 256: 5}[bits],
            "FIPS 205",
            SK_PROVIDER_NATIVE,
        )
        for hash_name in ("SHA2", "SHAKE")
        for bits in (128, 192, 256)
        for speed in ("s", "f")
    },
}


class _PqcryptoKem(Kem):
    """HQC, Classic McEliece and sntrup: the library's own secret-key encoding, no seeds."""

    def __init__(self, name: str, module: ModuleType) -> None:
        _, family, level, standard, sk_format = _KEMS[name]
        self._keygen = module.keygen
        self._encaps = module.encaps
        self._decaps = module.decaps
        self.info = KemInfo(
            name=name,
            provider=NAME,
            family=family,
            nist_level=level,
            public_key_size=module.PUBLIC_KEY_SIZE,
            secret_key_size=module.SECRET_KEY_SIZE,
            ciphertext_size=module.CIPHERTEXT_SIZE,
            shared_secret_size=module.SHARED_SECRET_SIZE,
            standard=standard,
            secret_key_format=sk_format,
            seed_size=None,
        )

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        if seed is not None:
            raise UnsupportedAlgorithm(
                f"{self.info.name} ({NAME}) cannot generate a key pair from a seed: its secret "
                f"key is the {self.info.secret_key_size}-byte {self.info.secret_key_format} key; "
                "use provider='cryptography' (or liboqs) for seeded key generation"
            )
        public_key, secret_key = self._keygen()
        return bytes(public_key), bytes(secret_key)

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        info = self.info
        try:
            ciphertext, shared_secret = self._encaps(public_key)
        except (ValueError, TypeError) as exc:
            raise bad_public_key(info.name, NAME, info.public_key_size, public_key) from exc
        return Encapsulation(bytes(ciphertext), bytes(shared_secret))

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        info = self.info
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, NAME, info.secret_key_size, secret_key)
        try:
            return bytes(self._decaps(secret_key, ciphertext))
        except (ValueError, TypeError) as exc:
            raise bad_ciphertext(info.name, NAME, info.ciphertext_size, ciphertext) from exc


class _PqcryptoMlKem(Kem):
    """ML-KEM through pqcrypto, with pqcrypto's own key format: the expanded FIPS 203 key.

    pqcrypto has no seeded key generation. A seed is expanded by liboqs where it is present
    (``expander``); without it ``info.seed_size`` is None and a seed is refused with the way
    out. A 64-byte seed given as a secret key (the format this adapter used before) is
    expanded the same way.
    """

    def __init__(self, name: str, module: ModuleType, expander: SeedExpander) -> None:
        _, family, level, standard, sk_format = _KEMS[name]
        self._keygen = module.keygen
        self._encaps = module.encaps
        self._decaps = module.decaps
        self._expand, self._expander_reason = expander(name)
        self.info = KemInfo(
            name=name,
            provider=NAME,
            family=family,
            nist_level=level,
            public_key_size=module.PUBLIC_KEY_SIZE,
            secret_key_size=module.SECRET_KEY_SIZE,
            ciphertext_size=module.CIPHERTEXT_SIZE,
            shared_secret_size=module.SHARED_SECRET_SIZE,
            standard=standard,
            secret_key_format=sk_format,
            seed_size=MLKEM_SEED_SIZE if self._expand is not None else None,
        )

    def _expand_seed(self, seed: bytes) -> tuple[bytes, bytes]:
        info = self.info
        if self._expand is None:
            raise UnsupportedAlgorithm(
                f"{info.name} ({NAME}) cannot generate a key pair from a seed: pqcrypto has no "
                "seeded ML-KEM key generation, and no kept library here can expand a FIPS 203 "
                f"seed for it ({self._expander_reason}); install liboqs (pip install "
                "'qkd-agile[liboqs]' and the C library), or use provider='cryptography' for "
                "ML-KEM-768 and ML-KEM-1024"
            )
        return self._expand(seed)

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        if seed is None:
            public_key, secret_key = self._keygen()
            return bytes(public_key), bytes(secret_key)
        seed = require_bytes(seed, "seed", self.info.name)
        if len(seed) != MLKEM_SEED_SIZE:
            raise bad_seed(self.info.name, NAME, MLKEM_SEED_SIZE, seed)
        return self._expand_seed(seed)

    def encapsulate(self, public_key: bytes) -> Encapsulation:
        # pqcrypto runs the FIPS 203 length and modulus checks itself (a test pins this).
        try:
            ciphertext, shared_secret = self._encaps(public_key)
        except (ValueError, TypeError) as exc:
            info = self.info
            raise bad_public_key(info.name, NAME, info.public_key_size, public_key) from exc
        return Encapsulation(bytes(ciphertext), bytes(shared_secret))

    def _expanded(self, secret_key: bytes) -> bytes:
        """The expanded key, hash-checked; a 64-byte seed is expanded first."""
        info = self.info
        secret_key = require_bytes(secret_key, "secret key", info.name)
        if len(secret_key) == MLKEM_SEED_SIZE:
            return self._expand_seed(secret_key)[1]
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, NAME, info.secret_key_size, secret_key)
        # FIPS 203 7.3 hash check: dk = dk_PKE || ek || H(ek) || z with H = SHA3-256.
        start = info.secret_key_size - info.public_key_size - 64
        public_key = secret_key[start : start + info.public_key_size]
        stored_hash = secret_key[start + info.public_key_size : start + info.public_key_size + 32]
        if not hmac.compare_digest(hashlib.sha3_256(public_key).digest(), stored_hash):
            raise InvalidKey(
                f"{info.name} ({NAME}): expanded secret key of {info.secret_key_size} bytes "
                "fails the FIPS 203 hash check (H(ek) does not match); it is corrupt"
            )
        return secret_key

    def decapsulate(self, secret_key: bytes, ciphertext: bytes) -> bytes:
        expanded = self._expanded(secret_key)
        try:
            return bytes(self._decaps(expanded, ciphertext))
        except (ValueError, TypeError) as exc:
            info = self.info
            raise bad_ciphertext(info.name, NAME, info.ciphertext_size, ciphertext) from exc

    def load_private_key(self, secret_key: bytes) -> KemPrivateKey:
        expanded = self._expanded(secret_key)
        return super().load_private_key(expanded)


class _PqcryptoSignature(SignatureScheme):
    def __init__(self, name: str, module: ModuleType) -> None:
        _, family, level, standard, sk_format = _SIGNATURES[name]
        self._module = module
        self.info = SignatureInfo(
            name=name,
            provider=NAME,
            family=family,
            nist_level=level,
            public_key_size=module.PUBLIC_KEY_SIZE,
            secret_key_size=module.SECRET_KEY_SIZE,
            signature_size=module.SIGNATURE_SIZE,
            standard=standard,
            secret_key_format=sk_format,
            seed_size=None,
            supports_context=True,
        )

    def generate_keypair(self, seed: bytes | None = None) -> tuple[bytes, bytes]:
        if seed is not None:
            raise UnsupportedAlgorithm(
                f"{self.info.name} ({NAME}) cannot generate a key pair from a seed; "
                "use provider='cryptography' for seeded ML-DSA keys"
            )
        public_key, secret_key = self._module.keygen()
        return bytes(public_key), bytes(secret_key)

    def sign(self, secret_key: bytes, message: bytes, context: bytes = b"") -> bytes:
        info = self.info
        if len(secret_key) != info.secret_key_size:
            raise bad_secret_key(info.name, NAME, info.secret_key_size, secret_key)
        if len(context) > 255:
            raise InvalidSignature(f"{info.name} ({NAME}): context must be at most 255 bytes")
        try:
            return bytes(self._module.sign(secret_key, message, context or None))
        except (ValueError, TypeError) as exc:
            raise InvalidKey(f"{info.name} ({NAME}): signing failed: secret key rejected") from exc

    def verify(
        self, public_key: bytes, message: bytes, signature: bytes, context: bytes = b""
    ) -> None:
        info = self.info
        if len(public_key) != info.public_key_size:
            raise bad_public_key(info.name, NAME, info.public_key_size, public_key)
        try:
            self._module.verify(public_key, message, signature, context or None)
        except (ValueError, TypeError) as exc:
            # pqcrypto.InvalidSignatureError is a ValueError; so are length errors.
            raise InvalidSignature(f"{info.name} ({NAME}): signature did not verify") from exc


class PqcryptoProvider(Provider):
    """pqcrypto, imported lazily; unavailable (with the reason) when not installed.

    ``seed_expander`` says who expands ML-KEM seeds for it (default: liboqs, where present).
    """

    name = NAME

    def __init__(self, seed_expander: SeedExpander = _liboqs_expander) -> None:
        self._seed_expander = seed_expander
        self._import_error: str | None = None
        self._kem_modules: dict[str, ModuleType] | None = None
        self._sig_modules: dict[str, ModuleType] = {}
        self._kems: dict[str, Kem] = {}
        self._signatures: dict[str, SignatureScheme] = {}

    def _load(self) -> bool:
        if self._kem_modules is not None:
            return True
        if self._import_error is not None:
            return False
        try:
            kem_pkg: Any = importlib.import_module("pqcrypto.kem")
            sign_pkg: Any = importlib.import_module("pqcrypto.sign")
        except ImportError as exc:
            self._import_error = f"not installed ({exc}); {_INSTALL}"
            return False
        self._kem_modules = {
            name: getattr(kem_pkg, spec[0])
            for name, spec in _KEMS.items()
            if hasattr(kem_pkg, spec[0])
        }
        self._sig_modules = {
            name: getattr(sign_pkg, spec[0])
            for name, spec in _SIGNATURES.items()
            if hasattr(sign_pkg, spec[0])
        }
        return True

    def status(self) -> ProviderStatus:
        if not self._load():
            return ProviderStatus(
                name=NAME, available=False, reason=self._import_error or "", version=None
            )
        return ProviderStatus(
            name=NAME,
            available=True,
            reason="installed",
            version=importlib.metadata.version("pqcrypto"),
        )

    def kem_names(self) -> tuple[str, ...]:
        return tuple(self._kem_modules or {}) if self._load() else ()

    def signature_names(self) -> tuple[str, ...]:
        return tuple(self._sig_modules) if self._load() else ()

    def kem(self, name: str) -> Kem:
        if not self._load():
            raise UnsupportedAlgorithm(f"provider {NAME!r} is unavailable: {self._import_error}")
        assert self._kem_modules is not None
        if name not in self._kem_modules:
            raise UnsupportedAlgorithm(f"provider {NAME!r} has no KEM {name!r}")
        if name not in self._kems:
            module = self._kem_modules[name]
            if _KEMS[name][1] == "ML-KEM":
                self._kems[name] = _PqcryptoMlKem(name, module, self._seed_expander)
            else:
                self._kems[name] = _PqcryptoKem(name, module)
        return self._kems[name]

    def signature(self, name: str) -> SignatureScheme:
        if not self._load():
            raise UnsupportedAlgorithm(f"provider {NAME!r} is unavailable: {self._import_error}")
        if name not in self._sig_modules:
            raise UnsupportedAlgorithm(f"provider {NAME!r} has no signature scheme {name!r}")
        if name not in self._signatures:
            self._signatures[name] = _PqcryptoSignature(name, self._sig_modules[name])
        return self._signatures[name]
