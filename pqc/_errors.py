"""The exception tree of the ``pqc`` package (see the package docstring).

Messages name the algorithm and provider at fault and the way out. They never contain key,
ciphertext or shared-secret bytes: only sizes.

An error raised where a provider's library failed carries that failure as plain data: the
``algorithm``, the ``provider``, the ``operation`` and the library's ``status``, and as its
``__cause__`` a :class:`LibraryFailure` holding the same data and the library's message as
strings. The library's own exception is not kept: its traceback holds the library's objects,
and liboqs-python's objects crash the interpreter when they are shown after being freed
(which happens when pytest or ``traceback`` formats the chain). So the chain of a pqc error
is always safe to format, repr and keep.
"""

from __future__ import annotations


class PQCError(Exception):
    """Root of every error raised by the ``pqc`` package.

    ``algorithm``, ``provider``, ``operation`` and ``status`` are set (plain strings) when a
    provider's library reported the failure; otherwise they are None.
    """

    def __init__(
        self,
        message: str,
        *,
        algorithm: str | None = None,
        provider: str | None = None,
        operation: str | None = None,
        status: str | None = None,
    ) -> None:
        super().__init__(message)
        self.algorithm = algorithm
        self.provider = provider
        self.operation = operation
        self.status = status


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


class LibraryFailure(Exception):
    """What a provider's library reported, reduced to plain strings (never raised by itself).

    It is the ``__cause__`` of the pqc error raised in its place. It has no traceback and
    references no object of the library, so its repr and every formatting of the chain are
    safe.
    """

    def __init__(
        self, *, provider: str, algorithm: str, operation: str, status: str, detail: str
    ) -> None:
        super().__init__(f"{provider} {operation} of {algorithm} failed ({status}): {detail}")
        self.provider = provider
        self.algorithm = algorithm
        self.operation = operation
        self.status = status
        self.detail = detail

    def __repr__(self) -> str:
        return (
            f"LibraryFailure(provider={self.provider!r}, algorithm={self.algorithm!r}, "
            f"operation={self.operation!r}, status={self.status!r}, detail={self.detail!r})"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_failure,
            (self.provider, self.algorithm, self.operation, self.status, self.detail),
        )


def _rebuild_failure(
    provider: str, algorithm: str, operation: str, status: str, detail: str
) -> LibraryFailure:
    return LibraryFailure(
        provider=provider, algorithm=algorithm, operation=operation, status=status, detail=detail
    )


def library_error(
    error: type[PQCError],
    message: str,
    *,
    provider: str,
    algorithm: str,
    operation: str,
    status: str,
    detail: str,
) -> PQCError:
    """A pqc error for a library failure, with a plain-data :class:`LibraryFailure` as cause.

    Raise it outside the ``except`` block that caught the library's exception, so that the
    library's exception does not become its ``__context__`` either.
    """
    failure = LibraryFailure(
        provider=provider, algorithm=algorithm, operation=operation, status=status, detail=detail
    )
    raised = error(
        message, algorithm=algorithm, provider=provider, operation=operation, status=status
    )
    raised.__cause__ = failure
    return raised
