"""The exception tree of the ``pqc`` package (see the package docstring).

Messages name the algorithm and provider at fault and the way out. They never contain key,
ciphertext or shared-secret bytes: only sizes.
"""

from __future__ import annotations


class PQCError(Exception):
    """Root of every error raised by the ``pqc`` package."""


class UnsupportedAlgorithm(PQCError):
    """No usable provider offers the algorithm, or a provider cannot do what was asked.

    Raised for unknown names, for providers that are not installed, and for operations a
    provider cannot perform (for example seeded key generation on a provider whose secret
    key is not a seed).
    """


class InvalidKey(PQCError):
    """A public key, secret key or seed has the wrong length or fails the standard's checks."""


class InvalidCiphertext(PQCError):
    """A KEM ciphertext (encapsulation) has the wrong length or is malformed."""


class InvalidSignature(PQCError):
    """A signature did not verify, or is malformed."""


class ProviderConflict(PQCError):
    """A different provider is already registered under the same name."""
