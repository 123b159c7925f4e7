"""The one private seam of :mod:`agile.tls`: OpenSSL's TLS 1.3 PSK callbacks.

pyOpenSSL drives OpenSSL for everything else, but it has no API for external PSKs. OpenSSL's
TLS 1.3 callbacks (``SSL_CTX_set_psk_use_session_callback`` on the client,
``SSL_CTX_set_psk_find_session_callback`` on the server) take a *binary* identity and an
``SSL_SESSION`` that carries the key, its cipher suite and the protocol version. The cffi
binding that pyca/cryptography ships exposes exactly what that needs
(``Cryptography_SSL_SESSION_new``, ``SSL_SESSION_set1_master_key``, ``_set_cipher``,
``_set_protocol_version``, ``SSL_CIPHER_find``), so the session is built the way OpenSSL's own
``s_client -psk_session`` builds one, and an RFC 9258 ``ImportedIdentity`` goes on the wire
as it is.

Everything that touches the binding, or a private attribute of pyOpenSSL (``_context``,
``_ssl``), lives in this module. :func:`unavailable_reason` checks at import time that every
symbol exists; if a future cryptography removes one, the TLS extra reports itself
unavailable with the reason instead of crashing.

Two rules for the callbacks, since they run inside OpenSSL's C stack:

- No exception crosses the C boundary. A handler that raises is treated as "no PSK"; the
  exception is kept on the handler and the connection reports it once the handshake fails.
- The cffi callback objects live as long as the ``SSL_CTX`` that holds their pointers: they
  are attributes of :class:`PskContext`, which owns the pyOpenSSL context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

TLS1_3_VERSION = 0x0304

# Symbols of cryptography's binding that this module needs, and pyOpenSSL's private names.
_REQUIRED_SYMBOLS = (
    "Cryptography_HAS_PSK_TLSv1_3",
    "SSL_CTX_set_psk_use_session_callback",
    "SSL_CTX_set_psk_find_session_callback",
    "Cryptography_SSL_SESSION_new",
    "SSL_SESSION_set1_master_key",
    "SSL_SESSION_set_cipher",
    "SSL_SESSION_set_protocol_version",
    "SSL_SESSION_free",
    "SSL_CIPHER_find",
    "SSL_CTX_set1_curves_list",
    "SSL_session_reused",
    "SSL_CTX_set1_sigalgs_list",
    "SSL_get0_param",
    "X509_VERIFY_PARAM_set1_host",
)


def unavailable_reason() -> str | None:
    """Why the TLS extra cannot run here, or ``None`` when it can."""
    try:
        import OpenSSL.SSL
        from cryptography.hazmat.bindings.openssl.binding import Binding
    except ImportError as exc:
        return (
            f"pyOpenSSL is not installed ({exc}); install the extra: pip install 'qkd-agile[tls]'"
        )
    missing = [name for name in _REQUIRED_SYMBOLS if not hasattr(Binding.lib, name)]
    if missing:
        return (
            "this cryptography's OpenSSL binding lacks " + ", ".join(missing) + "; agile.tls "
            "needs the TLS 1.3 PSK callbacks (cryptography 48 to 50 with pyOpenSSL have them)"
        )
    if not Binding.lib.Cryptography_HAS_PSK_TLSv1_3:
        return "the OpenSSL behind cryptography was built without TLS 1.3 PSK support"
    probe = OpenSSL.SSL.Context(OpenSSL.SSL.TLS_METHOD)
    if not hasattr(probe, "_context") or not hasattr(OpenSSL.SSL.Connection(probe), "_ssl"):
        return "this pyOpenSSL keeps no _context/_ssl pointers; agile.tls cannot reach OpenSSL"
    return None


class ClientPskHandler(Protocol):
    """What the client callback asks of a connection."""

    def client_psk(self) -> ExternalPsk | None:
        """The PSK to offer, or ``None`` to offer none."""
        ...

    def callback_failed(self, exc: BaseException) -> None:
        """Keep ``exc``: the callback could not produce a PSK."""
        ...


class ServerPskHandler(Protocol):
    """What the server callback asks of a connection."""

    def server_psk(self, identity: bytes) -> ExternalPsk | None:
        """The PSK for ``identity``, or ``None`` when it is unknown."""
        ...

    def callback_failed(self, exc: BaseException) -> None:
        """Keep ``exc``: the callback could not produce a PSK."""
        ...


@dataclass(frozen=True, kw_only=True, repr=False)
class ExternalPsk:
    """An external PSK as OpenSSL needs it: identity, key and the cipher suite's code point."""

    identity: bytes
    key: bytes
    cipher: bytes  # two bytes, e.g. b"\\x13\\x02" for TLS_AES_256_GCM_SHA384

    def __repr__(self) -> str:
        return f"<ExternalPsk identity {len(self.identity)} bytes, key {len(self.key)} bytes>"


class PskContext:
    """A pyOpenSSL ``Context`` with the PSK callbacks installed, and the connections' handlers.

    ``role`` is ``"client"`` or ``"server"``. :meth:`register` ties a pyOpenSSL
    ``Connection`` to the handler the callback calls for it; :meth:`unregister` unties it.
    """

    def __init__(self, context: Any, role: str) -> None:
        from cryptography.hazmat.bindings.openssl.binding import Binding

        self.context = context
        self._lib = Binding.lib
        self._ffi = Binding.ffi
        self._handlers: dict[int, Any] = {}
        ctx_ptr = context._context
        if role == "client":
            self._callback = self._ffi.callback(
                "int(SSL *, EVP_MD *, unsigned char **, size_t *, SSL_SESSION **)",
                self._use_session,
            )
            self._lib.SSL_CTX_set_psk_use_session_callback(ctx_ptr, self._callback)
        elif role == "server":
            self._callback = self._ffi.callback(
                "int(SSL *, unsigned char *, size_t, SSL_SESSION **)", self._find_session
            )
            self._lib.SSL_CTX_set_psk_find_session_callback(ctx_ptr, self._callback)
        else:
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")

    def set_groups(self, groups: str) -> bool:
        """Set the key-exchange groups (``"X25519MLKEM768:X25519"``); False if refused."""
        return bool(self._lib.SSL_CTX_set1_curves_list(self.context._context, groups.encode()))

    def set_sigalgs(self, sigalgs: str) -> bool:
        """Set the signature schemes (``"mldsa65:ed25519"``); False if refused."""
        return bool(self._lib.SSL_CTX_set1_sigalgs_list(self.context._context, sigalgs.encode()))

    def register(self, connection: Any, handler: ClientPskHandler | ServerPskHandler) -> None:
        self._handlers[self._key(connection._ssl)] = handler

    def unregister(self, connection: Any) -> None:
        self._handlers.pop(self._key(connection._ssl), None)

    def psk_was_used(self, connection: Any) -> bool:
        """Whether the handshake was keyed by the PSK (in TLS 1.3, a PSK handshake "resumes")."""
        return bool(self._lib.SSL_session_reused(connection._ssl))

    def _key(self, ssl: Any) -> int:
        return int(self._ffi.cast("uintptr_t", ssl))

    def _session(self, ssl: Any, psk: ExternalPsk) -> Any:
        """A new SSL_SESSION carrying ``psk``; its ownership passes to OpenSSL."""
        lib, ffi = self._lib, self._ffi
        cipher = lib.SSL_CIPHER_find(ssl, psk.cipher)
        if cipher == ffi.NULL:
            raise ValueError(f"OpenSSL does not know the cipher suite 0x{psk.cipher.hex()}")
        session = lib.Cryptography_SSL_SESSION_new()
        if session == ffi.NULL:
            raise MemoryError("SSL_SESSION_new failed")
        ok = (
            lib.SSL_SESSION_set1_master_key(session, psk.key, len(psk.key)) == 1
            and lib.SSL_SESSION_set_cipher(session, cipher) == 1
            and lib.SSL_SESSION_set_protocol_version(session, TLS1_3_VERSION) == 1
        )
        if not ok:
            lib.SSL_SESSION_free(session)
            raise ValueError("OpenSSL refused the PSK session (key length or cipher suite)")
        return session

    def _use_session(self, ssl: Any, md: Any, identity: Any, identity_len: Any, sess: Any) -> int:
        sess[0] = self._ffi.NULL
        handler = self._handlers.get(self._key(ssl))
        if handler is None:
            return 1  # not one of ours: offer no PSK
        try:
            psk = handler.client_psk()
            if psk is None:
                return 1
            session = self._session(ssl, psk)
            # The identity's buffer must outlive the handshake: the handler keeps it.
            buffer = self._ffi.new("unsigned char[]", psk.identity)
            handler.identity_buffer = buffer
            identity[0] = buffer
            identity_len[0] = len(psk.identity)
            sess[0] = session
        except BaseException as exc:  # nothing may cross the C boundary
            _report(handler, exc)
        return 1

    def _find_session(self, ssl: Any, identity: Any, identity_len: int, sess: Any) -> int:
        sess[0] = self._ffi.NULL
        handler = self._handlers.get(self._key(ssl))
        if handler is None:
            return 1
        try:
            psk = handler.server_psk(bytes(self._ffi.buffer(identity, identity_len)))
            if psk is not None:
                sess[0] = self._session(ssl, psk)
        except BaseException as exc:  # nothing may cross the C boundary
            _report(handler, exc)
        return 1


def expect_host(connection: Any, name: str) -> None:
    """Verify the server certificate against ``name`` and send it as SNI."""
    from cryptography.hazmat.bindings.openssl.binding import Binding

    raw = name.encode("ascii")
    param = Binding.lib.SSL_get0_param(connection._ssl)
    if Binding.lib.X509_VERIFY_PARAM_set1_host(param, raw, len(raw)) != 1:
        raise ValueError(f"OpenSSL refused the host name {name!r}")
    connection.set_tlsext_host_name(raw)


def _report(handler: Any, exc: BaseException) -> None:
    report: Callable[[BaseException], None] = handler.callback_failed
    # The C boundary again: nothing escapes, and the handshake fails without a PSK anyway.
    with contextlib.suppress(BaseException):
        report(exc)
