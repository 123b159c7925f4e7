"""Post-quantum and classical KEM and signature providers: the low ("hazmat") layer.

This package is easy to misuse: it takes explicit parameters and returns plain ``bytes``
(secret keys and shared secrets included). Applications should use ``agile``, which wraps
secrets and enforces policy.

Example::

    import pqc

    kem = pqc.kem("X-Wing")                      # MLKEM768-X25519
    public_key, secret_key = kem.generate_keypair()
    enc = kem.encapsulate(public_key)            # Encapsulation(ciphertext, shared_secret)
    assert kem.decapsulate(secret_key, enc.ciphertext) == enc.shared_secret

    key = kem.generate_private_key()             # prepared: parsed/expanded once
    enc = kem.encapsulate(key.public_key)
    assert key.decapsulate(enc.ciphertext) == enc.shared_secret

Providers (tried in the preference order, default cryptography, pqcrypto, liboqs):
``cryptography`` (pyca), ``pqcrypto`` and ``liboqs`` (liboqs-python); see ``providers()``.

Errors::

    PQCError
    ├── UnsupportedAlgorithm   unknown name, provider unavailable, or operation not offered
    ├── InvalidKey             public/secret key or seed of the wrong size or malformed
    ├── InvalidCiphertext      ciphertext of the wrong size or malformed
    ├── InvalidSignature       signature did not verify (verify raises, never returns False)
    └── ProviderConflict       a different provider is already registered under that name

An error raised where a provider's library failed says so in plain data: ``algorithm``,
``provider``, ``operation`` and ``status`` (liboqs: ``"OQS_ERROR"``), with a
``pqc._errors.LibraryFailure`` of the same strings as its ``__cause__``. No library object
is kept, so the whole chain is safe to repr and format.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from pqc._errors import (
    InvalidCiphertext,
    InvalidKey,
    InvalidSignature,
    PQCError,
    ProviderConflict,
    UnsupportedAlgorithm,
)
from pqc._interface import (
    Encapsulation,
    Kem,
    KemInfo,
    KemPrivateKey,
    Provider,
    ProviderStatus,
    SignatureInfo,
    SignaturePrivateKey,
    SignaturePublicKey,
    SignatureScheme,
)
from pqc._registry import DEFAULT_PREFERENCE, Registry

__all__ = [
    "DEFAULT_PREFERENCE",
    "Encapsulation",
    "InvalidCiphertext",
    "InvalidKey",
    "InvalidSignature",
    "Kem",
    "KemInfo",
    "KemPrivateKey",
    "PQCError",
    "Provider",
    "ProviderConflict",
    "ProviderStatus",
    "Registry",
    "SignatureInfo",
    "SignaturePrivateKey",
    "SignaturePublicKey",
    "SignatureScheme",
    "UnsupportedAlgorithm",
    "available_kems",
    "available_signatures",
    "kem",
    "kem_providers",
    "preference",
    "providers",
    "register_provider",
    "registry",
    "set_preference",
    "signature",
    "signature_providers",
]

_registry: Registry | None = None
_registry_lock = threading.Lock()


def registry() -> Registry:
    """The process-wide registry (created on first use with the built-in providers)."""
    global _registry  # noqa: PLW0603 - one lazily built registry per process
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                from pqc._registry import default_registry

                _registry = default_registry()
    return _registry


def kem(name: str, provider: str | None = None, preference: Sequence[str] | None = None) -> Kem:
    """Return the KEM ``name`` (standard spelling or alias) from the preferred provider.

    >>> pqc.kem("ML-KEM-768").info.ciphertext_size
    1088
    """
    return registry().kem(name, provider, preference)


def signature(
    name: str, provider: str | None = None, preference: Sequence[str] | None = None
) -> SignatureScheme:
    """Return the signature scheme ``name`` from the preferred provider."""
    return registry().signature(name, provider, preference)


def available_kems() -> list[str]:
    """Names of every KEM an available provider can serve, hybrids included."""
    return registry().available_kems()


def available_signatures() -> list[str]:
    """Names of every signature scheme an available provider can serve."""
    return registry().available_signatures()


def kem_providers(name: str) -> list[str]:
    """The providers that can serve KEM ``name``, in preference order."""
    return registry().kem_providers(name)


def signature_providers(name: str) -> list[str]:
    """The providers that can serve signature scheme ``name``, in preference order."""
    return registry().signature_providers(name)


def providers() -> list[ProviderStatus]:
    """Every provider, available or not, with the reason and version."""
    return registry().providers()


def set_preference(names: Sequence[str]) -> None:
    """Change the order in which providers are tried (unlisted ones come after)."""
    registry().set_preference(names)


def preference() -> tuple[str, ...]:
    """The order in which providers are tried."""
    return registry().preference()


def register_provider(provider: Provider) -> None:
    """Add a provider (same one twice is harmless; a different one under a taken name raises)."""
    registry().register(provider)
