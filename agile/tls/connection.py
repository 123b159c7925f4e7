"""TLS 1.3 connections keyed by QKD (or static) PSKs and a hybrid group: the sans-I/O core.

A :class:`TlsContext` holds what a policy gives (:func:`agile.tls.config.tls_settings`), the
PSK source and OpenSSL's context; it makes one :class:`TlsConnection` per connection. A
connection is fed bytes from the network and gives bytes to send, in the manner of
:mod:`agile.handshake` (and h11)::

    client = client_context.connection()
    server = server_context.connection()
    server.receive_data(client.start())          # ClientHello
    client.receive_data(server.data_to_send())   # ServerHello ... Finished
    server.receive_data(client.data_to_send())   # client Finished
    assert client.handshake_complete and server.handshake_complete

OpenSSL runs over memory BIOs; sockets and asyncio are thin adapters
(:mod:`agile.tls.sockets`). A failed handshake raises :class:`TlsError` (or
:class:`agile.QKDUnavailable` when the QKD key could not be had) and is an audit event; so is a
completed one. The connection checks, after OpenSSL's handshake, that the PSK was really used:
a server that ignored it could otherwise leave the session keyed by the group alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agile import audit
from agile._errors import AgileError, EngineError, QKDUnavailable, TrustPathViolation
from agile.engine import resolve_qkd
from agile.handshake.config import QkdConfig
from agile.policy.model import Policy
from agile.secret import SecretBytes
from agile.tls import _openssl
from agile.tls.config import (
    CipherSuite,
    TlsSettings,
    canonical_group,
    group_string,
    tls_settings,
)
from agile.tls.psk import (
    PskError,
    PskSecrets,
    imported_psk,
    parse_qkd_identity,
    qkd_identity,
)
from qkd import KeySource, QKDError, QkdKey

_READ_CHUNK = 65536


class TlsError(AgileError):
    """A TLS connection failed or was refused; the message says why (never key material)."""


KEY_SCHEDULE = (
    "TLS 1.3 key schedule (RFC 8446 §7.1): the PSK enters the early secret and the group's "
    "shared secret the handshake secret; the policy's [kdf] combiner does not apply"
)


@dataclass(frozen=True, kw_only=True)
class ConnectionInfo:
    """What a completed connection tells the application (no key material)."""

    role: str  # "client" | "server"
    version: str  # "TLSv1.3"
    cipher_suite: str
    group: str
    psk_used: bool
    psk_identity: str  # the QKD key ID, or the static identity
    qkd_used: bool
    qkd_key_id: str | None
    policy: str
    policy_fingerprint: str
    fallback_reason: str | None = None  # set when the certificate fallback replaced QKD
    combiner: str = KEY_SCHEDULE
    qkd_path: tuple[str, ...] | None = None  # the QKD key's relay path, when reported

    @property
    def trusted_nodes(self) -> int | None:
        """How many trusted nodes saw the QKD key (``len(qkd_path) - 2``), or ``None``."""
        return None if self.qkd_path is None else len(self.qkd_path) - 2


class TlsContext:
    """The per-endpoint setup: policy settings, PSK source and OpenSSL's context.

    The PSK comes from QKD keys by key ID — through ``key_source`` (a ``qkd.KeySource``), or
    the ETSI 014 client that the policy's ``[qkd.etsi014]`` section describes — or from
    ``psk_secrets`` (a stunnel-format file; a client also names ``psk_identity`` when the file
    holds several). Build with :meth:`client` or :meth:`server`.

    The certificate fallback, for a policy whose QKD is optional: a server with
    ``certificate=(CERT_CHAIN_FILE, KEY_FILE)`` also accepts clients that offer no QKD PSK,
    and a client with ``ca=FILE`` and ``server_name=`` falls back to a certificate-verified
    handshake (the same hybrid group) when no QKD key can be had. Either end audits it as
    ``qkd_fallback``. Certificates sign with the policy's signature algorithms.
    """

    def __init__(
        self,
        role: str,
        policy: Policy | str | os.PathLike[str],
        *,
        key_source: KeySource | None = None,
        psk_secrets: PskSecrets | None = None,
        psk_identity: str | None = None,
        certificate: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
        ca: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
    ) -> None:
        if role not in ("client", "server"):
            raise TlsError(f"role must be 'client' or 'server', not {role!r}")
        reason = _openssl.unavailable_reason()
        if reason is not None:
            raise TlsError(f"agile.tls is unavailable: {reason}")
        if key_source is not None and psk_secrets is not None:
            raise TlsError("give one PSK source: key_source= (QKD) or psk_secrets=, not both")
        self.role = role
        self.settings: TlsSettings = tls_settings(policy)
        policy_name = self.settings.policy.name
        self.psk_secrets = psk_secrets
        self.qkd: QkdConfig | None = None
        if psk_secrets is None:
            if not self.settings.uses_qkd:
                raise TlsError(
                    f"policy {policy_name} has no suite with QKD: give psk_secrets= (a static "
                    "PSK), or use a policy whose suites include QKD"
                )
            try:
                self.qkd = resolve_qkd(self.settings.policy, key_source)
            except EngineError as exc:
                raise TlsError(str(exc)) from exc
        self.key_source = self.qkd.source if self.qkd is not None else None
        self.certificate = certificate
        self.ca = ca
        self.server_name = server_name
        self._check_fallback()
        self._static: tuple[str, SecretBytes] | None = None
        if psk_secrets is not None and role == "client":
            self._static = _choose_identity(psk_secrets, psk_identity)
        if psk_secrets is not None and self.settings.cipher_suite_for("sha256") is None:
            raise TlsError(
                f"policy {self.settings.policy.name} allows no SHA-256 cipher suite, but a "
                "static PSK (as OpenSSL -psk and stunnel use it) is bound to one; use QKD keys"
            )
        if key_source is not None and not self.settings.uses_qkd:
            raise TlsError(
                f"policy {self.settings.policy.name} has no suite with QKD; a key_source= "
                "needs a policy whose suites include QKD"
            )
        self._psk_context = _openssl.PskContext(self._openssl_context(), role)
        if certificate is not None or ca is not None:
            sigalgs = _sigalgs(self.settings.policy.auth.signature_algorithms)
            if not sigalgs or not self._psk_context.set_sigalgs(":".join(sigalgs)):
                raise TlsError(
                    f"policy {policy_name}: none of auth.signature_algorithms "
                    f"{list(self.settings.policy.auth.signature_algorithms)} can sign TLS 1.3 "
                    f"certificates here; use one of {sorted(_SIGALGS)}"
                )
        if not self._psk_context.set_groups(group_string(self.settings.groups)):
            raise TlsError(
                f"this OpenSSL refuses the groups {group_string(self.settings.groups)} of "
                f"policy {self.settings.policy.name}"
            )

    def _check_fallback(self) -> None:
        name = self.settings.policy.name
        if self.certificate is None and self.ca is None:
            return
        if self.qkd is None:
            raise TlsError("the certificate fallback is for QKD PSKs, not for psk_secrets=")
        if self.qkd.required:
            raise TlsError(
                f"policy {name} requires QKD (qkd.required = true): a certificate fallback "
                "would let connections in without a QKD key"
            )
        if self.role == "server" and self.ca is not None:
            raise TlsError("ca= is for clients; a server takes certificate=(CHAIN, KEY)")
        if self.role == "client" and (self.certificate is not None or not self.server_name):
            raise TlsError("a client's fallback takes ca= and server_name= (no certificate=)")

    @property
    def can_fall_back(self) -> bool:
        """Whether a client may go on without a QKD key (certificate-verified)."""
        return self.role == "client" and self.ca is not None

    @classmethod
    def client(cls, policy: Policy | str | os.PathLike[str], **psk: Any) -> TlsContext:
        return cls("client", policy, **psk)

    @classmethod
    def server(cls, policy: Policy | str | os.PathLike[str], **psk: Any) -> TlsContext:
        return cls("server", policy, **psk)

    def __repr__(self) -> str:
        source = "qkd" if self.key_source is not None else "static PSK"
        return f"<TlsContext {self.role} policy={self.settings.policy.name} psk={source}>"

    def _openssl_context(self) -> Any:
        from OpenSSL import SSL

        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.set_max_proto_version(SSL.TLS1_3_VERSION)
        context.set_tls13_ciphersuites(
            ":".join(s.name for s in self._cipher_suites()).encode("ascii")
        )
        # No resumption: no tickets, no session cache; no 0-RTT (max early data stays 0).
        context.set_options(SSL.OP_NO_TICKET)
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        if self.role == "client" and self.ca is not None:
            # The fallback's trust anchors; a PSK connection still requires the PSK to have
            # been used (TlsConnection checks), so a certificate never replaces an offered PSK.
            context.load_verify_locations(os.fspath(self.ca))
            context.set_verify(SSL.VERIFY_PEER)
        elif self.role == "client":
            # PSK authentication only: a server that answers with a certificate instead is
            # refused, since no certificate can verify against an empty trust store.
            context.set_verify(SSL.VERIFY_PEER, lambda *_: False)
        if self.certificate is not None:
            chain, key = self.certificate
            try:
                context.use_certificate_chain_file(os.fspath(chain))
                context.use_privatekey_file(os.fspath(key))
                context.check_privatekey()
            except SSL.Error as exc:
                raise TlsError(
                    f"certificate {chain} / key {key}: {_describe(exc)}; give a PEM chain and "
                    "its private key"
                ) from None
        return context

    def _cipher_suites(self) -> tuple[CipherSuite, ...]:
        # A PSK is bound to one hash, and OpenSSL picks the cipher suite before it looks at
        # the PSK: offer (client) or accept (static server) only suites of the PSK's hash.
        # A QKD server accepts every policy suite: the client's identity names the hash.
        suites = self.settings.cipher_suites
        if self.psk_secrets is not None:
            return tuple(s for s in suites if s.hash == "sha256")
        if self.role == "client":
            return tuple(s for s in suites if s.hash == suites[0].hash)
        return suites

    def connection(self) -> TlsConnection:
        """A new connection in this context's role."""
        return TlsConnection(self)

    # -- what the PSK callbacks ask, per connection -------------------------------------------

    def client_psk(self, connection: TlsConnection) -> _openssl.ExternalPsk:
        """Take the PSK a new client connection offers (a QKD key is taken from the source)."""
        settings = self.settings
        if self._static is not None:
            name, static_key = self._static
            static_suite = settings.cipher_suite_for("sha256")
            assert static_suite is not None  # checked in __init__
            connection.psk_identity = name
            return _openssl.ExternalPsk(
                identity=name.encode("utf-8"), key=static_key.reveal(), cipher=static_suite.code
            )
        assert self.qkd is not None
        assert self.key_source is not None
        suite = settings.cipher_suites[0]
        try:
            problem = self.qkd.link_problem()
            if problem is None:
                key = self.key_source.get_keys(1, self.qkd.key_size_bits)[0]
        except QKDError as exc:
            raise QKDUnavailable(f"no QKD key from the key source: {exc}") from exc
        if problem is not None:
            raise QKDUnavailable(f"the QKD link is in alarm: {problem}")
        refused = connection.check_path(key)
        if refused is not None:
            raise refused
        identity = qkd_identity(key.key_id, suite.hash)
        connection.psk_identity = connection.qkd_key_id = key.key_id
        psk = imported_psk(key.key, identity)
        return _openssl.ExternalPsk(identity=identity.encode(), key=psk.reveal(), cipher=suite.code)

    def server_psk(self, connection: TlsConnection, identity: bytes) -> _openssl.ExternalPsk | None:
        """The PSK for ``identity``, or ``None`` (unknown identity: the handshake fails)."""
        if self.psk_secrets is not None:
            name = identity.decode("utf-8", errors="replace")
            static_key = self.psk_secrets.key_for(name)
            static_suite = self.settings.cipher_suite_for("sha256")
            if static_key is None or static_suite is None:
                connection.refusal = f"unknown PSK identity {name[:64]!r}"
                return None
            connection.psk_identity = name
            return _openssl.ExternalPsk(
                identity=identity, key=static_key.reveal(), cipher=static_suite.code
            )
        assert self.key_source is not None
        try:
            key_id, hash_name = parse_qkd_identity(identity)
        except PskError as exc:
            connection.refusal = str(exc)
            return None
        suite = self.settings.cipher_suite_for(hash_name)
        if suite is None:
            connection.refusal = (
                f"the client's PSK is for {hash_name}, which the policy does not allow"
            )
            return None
        connection.psk_identity = key_id
        assert self.qkd is not None
        try:
            problem = self.qkd.link_problem()
            if problem is None:
                key = self.key_source.get_keys_by_id([key_id])[0]
        except QKDError as exc:
            connection.refusal = f"QKD key {key_id} could not be had: {exc}"
            return None
        if problem is not None:
            connection.refusal = f"the QKD link is in alarm: {problem}"
            return None
        refused = connection.check_path(key)
        if refused is not None:
            connection.refusal = str(refused)
            connection.path_violation = refused
            return None
        connection.qkd_key_id = key.key_id
        psk = imported_psk(key.key, qkd_identity(key_id, hash_name))
        return _openssl.ExternalPsk(identity=identity, key=psk.reveal(), cipher=suite.code)


# The policy's signature algorithms as OpenSSL's TLS 1.3 signature scheme names.
_SIGALGS = {
    "ML-DSA-44": "mldsa44",
    "ML-DSA-65": "mldsa65",
    "ML-DSA-87": "mldsa87",
    "Ed25519": "ed25519",
    "Ed448": "ed448",
}


def _sigalgs(algorithms: Sequence[str]) -> list[str]:
    return [_SIGALGS[name] for name in algorithms if name in _SIGALGS]


def _choose_identity(secrets: PskSecrets, identity: str | None) -> tuple[str, SecretBytes]:
    if identity is None:
        if len(secrets.entries) != 1:
            raise TlsError(
                f"{secrets.source} holds {len(secrets.entries)} identities; name one with "
                "psk_identity= (--psk-identity)"
            )
        return secrets.entries[0]
    key = secrets.key_for(identity)
    if key is None:
        raise TlsError(f"{secrets.source} has no identity {identity!r}")
    return identity, key


class TlsConnection:
    """One TLS 1.3 connection, without I/O (see the module docstring)."""

    def __init__(self, context: TlsContext) -> None:
        from OpenSSL import SSL

        self._SSL = SSL
        self.context = context
        self.role = context.role
        self.psk_identity: str | None = None
        self.qkd_key_id: str | None = None
        self.qkd_path: tuple[str, ...] | None = None
        self.refusal: str | None = None
        self.path_violation: QKDUnavailable | None = None
        self.fallback_reason: str | None = None
        self._offered_psk = False
        self.identity_buffer: Any = None  # kept alive for OpenSSL by the client callback
        self._callback_error: BaseException | None = None
        self._psk: _openssl.ExternalPsk | None = None
        self._info: ConnectionInfo | None = None
        self._failed: AgileError | None = None
        self._eof = False
        self._ssl = SSL.Connection(context._psk_context.context, None)
        if self.role == "client":
            self._ssl.set_connect_state()
        else:
            self._ssl.set_accept_state()
        context._psk_context.register(self._ssl, self)

    def __repr__(self) -> str:
        state = "complete" if self._info else ("failed" if self._failed else "handshaking")
        return f"<TlsConnection {self.role} {state}>"

    # -- the callbacks' side (called by agile.tls._openssl inside OpenSSL) --------------------

    def client_psk(self) -> _openssl.ExternalPsk | None:
        return self._psk

    def server_psk(self, identity: bytes) -> _openssl.ExternalPsk | None:
        # OpenSSL asks again after a HelloRetryRequest: the same identity gets the same PSK,
        # and the KME is never asked twice for one connection.
        if self._psk is not None:
            return self._psk if self._psk.identity == identity else None
        if self.refusal is not None:
            return None
        self._psk = self.context.server_psk(self, identity)
        return self._psk

    def callback_failed(self, exc: BaseException) -> None:
        self._callback_error = exc

    # -- the application's side -----------------------------------------------------------------

    @property
    def handshake_complete(self) -> bool:
        return self._info is not None

    @property
    def info(self) -> ConnectionInfo:
        if self._info is None:
            raise TlsError("the handshake has not completed")
        return self._info

    def start(self) -> bytes:
        """Client: take the PSK (a QKD key from the source) and return the ClientHello."""
        if self.role != "client":
            raise TlsError("only a client starts a connection")
        if self._psk is None:
            try:
                self._psk = self.context.client_psk(self)
            except TrustPathViolation as exc:
                self._fail(exc)  # on_violation = "fail": no certificate fallback either
            except QKDUnavailable as exc:
                self._fall_back_or_fail(exc)
            self._offered_psk = self._psk is not None
        self._advance()
        return self.data_to_send()

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the network; ``b""`` means the peer closed its side."""
        if self._failed is not None:
            raise self._failed
        if data:
            self._ssl.bio_write(data)
        else:
            self._eof = True
            self._ssl.bio_shutdown()
        if self._info is None:
            self._advance()

    def data_to_send(self) -> bytes:
        """Bytes for the network (possibly empty)."""
        out = bytearray()
        while True:
            try:
                chunk = self._ssl.bio_read(_READ_CHUNK)
            except self._SSL.WantReadError:
                break
            out += chunk
            if len(chunk) < _READ_CHUNK:
                break  # a short read emptied the BIO: no second call (and no exception)
        return bytes(out)

    def send(self, data: bytes) -> None:
        """Encrypt application data; the records come out of :meth:`data_to_send`."""
        self._require_complete()
        view = memoryview(data)
        while view:
            written = self._ssl.send(view[:16384].tobytes())
            view = view[written:]

    def read(self) -> bytes:
        """Decrypted application data received so far; ``b""`` when none (see :attr:`closed`)."""
        self._require_complete()
        out = bytearray()
        while True:
            try:
                out += self._ssl.recv(_READ_CHUNK)
            except (self._SSL.WantReadError, self._SSL.ZeroReturnError):
                break
            except self._SSL.Error as exc:
                raise TlsError(f"TLS record error: {_describe(exc)}") from None
        return bytes(out)

    @property
    def closed(self) -> bool:
        """Whether the peer sent close_notify or closed the transport."""
        return self._eof or bool(self._ssl.get_shutdown() & self._SSL.RECEIVED_SHUTDOWN)

    def close(self) -> bytes:
        """Send close_notify; return the bytes to send."""
        with contextlib.suppress(self._SSL.Error):  # the transport is going away anyway
            self._ssl.shutdown()
        self.context._psk_context.unregister(self._ssl)
        return self.data_to_send()

    def export_keying_material(
        self, label: str | bytes, context: bytes = b"", length: int = 32
    ) -> SecretBytes:
        """The TLS exporter (RFC 8446 §7.5): the same value at both ends of the connection."""
        self._require_complete()
        raw_label = label.encode("ascii") if isinstance(label, str) else label
        return SecretBytes(self._ssl.export_keying_material(raw_label, length, context))

    def check_path(self, key: QkdKey) -> QKDUnavailable | None:
        """The policy's trust-path bounds on ``key`` (audited when refused): ``None`` when
        they hold, else the error that ``on_violation`` calls for - a
        :class:`~agile.TrustPathViolation` (``"fail"``), or a plain ``QKDUnavailable``
        (``"fallback"``: the certificate fallback, where configured, takes over)."""
        qkd = self.context.qkd
        assert qkd is not None
        problem = qkd.path_problem([key])
        if problem is None:
            self.qkd_path = key.relay_path
            return None
        self._audit(
            "qkd_path_refused",
            qkd_key_ids=[key.key_id],
            reason=f"trust path refused: {problem} (on_violation = {qkd.on_violation})",
            qkd_path=key.relay_path,
        )
        if qkd.on_violation == "fallback":
            return QKDUnavailable(f"trust path refused: {problem}")
        return TrustPathViolation(
            f"policy {self.context.settings.policy.name} refuses the QKD key "
            f'(on_violation = "fail"): {problem}',
            relay_path=key.relay_path,
        )

    # -- internals ------------------------------------------------------------------------------

    def _fall_back_or_fail(self, exc: QKDUnavailable) -> None:
        context = self.context
        if context.can_fall_back:
            self.fallback_reason = str(exc)
            if context.server_name:
                _openssl.expect_host(self._ssl, context.server_name)
            self._audit_fallback(f"{exc}; certificate-verified TLS 1.3 instead")
            return
        if context.qkd is not None and not context.qkd.required:
            self._fail(
                QKDUnavailable(
                    f"{exc}; the policy allows QKD to be optional, but no certificate fallback "
                    "is configured (ca= and server_name=): the connection fails closed"
                )
            )
        self._fail(QKDUnavailable(f"{exc}; the policy requires QKD: the connection fails closed"))

    def _audit(self, event: str, **fields: Any) -> None:
        policy = self.context.settings.policy
        audit.emit(
            event,
            policy=policy.name,
            policy_fingerprint=policy.fingerprint,
            role=f"tls-{self.role}",
            **fields,
        )

    def _audit_fallback(self, reason: str) -> None:
        self._audit("qkd_fallback", qkd_used=False, reason=reason)

    def _require_complete(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._info is None:
            raise TlsError("the handshake has not completed")

    def _advance(self) -> None:
        SSL = self._SSL
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            if self._eof:
                self._fail(TlsError("the peer closed the connection during the handshake"))
            return
        except SSL.Error as exc:
            if isinstance(self.path_violation, TrustPathViolation):
                self._fail(self.path_violation)  # the server refused the key's path
            self._fail(TlsError(self._failure_reason(exc)))
        self._complete()

    def _failure_reason(self, exc: Exception) -> str:
        if self._callback_error is not None:
            return f"the PSK could not be prepared: {self._callback_error}"
        if self.refusal is not None:
            return f"refused: {self.refusal}"
        if self._eof:
            return "the peer closed the connection during the handshake"
        reason = _describe(exc)
        if self.role == "server" and self.psk_identity is None and "signature" in reason:
            # OpenSSL went looking for a certificate: no PSK was usable.
            return (
                f"handshake failed: {reason}: the client offered no usable PSK (none, one "
                "bound to another hash, or psk_ke alone, which is refused), and this PSK-only "
                "server has no certificate"
            )
        return f"handshake failed: {reason}"

    def _complete(self) -> None:
        ssl = self._ssl
        psk_used = self.context._psk_context.psk_was_used(ssl)
        if not psk_used:
            if self.role == "client" and self._offered_psk:
                # Never a silent downgrade: a PSK we offered must key the connection.
                self._fail(TlsError("the peer completed the handshake without our PSK; refused"))
            if self.role == "server":
                if isinstance(self.path_violation, TrustPathViolation):
                    self._fail(self.path_violation)  # on_violation = "fail": no certificate
                if self.context.certificate is None:
                    self._fail(TlsError("the client offered no usable PSK; refused"))
                offered = f"its PSK was refused ({self.refusal})" if self.refusal else "no QKD PSK"
                self.fallback_reason = f"the client offered {offered}: certificate-authenticated"
                self._audit_fallback(self.fallback_reason)
        settings = self.context.settings
        group = canonical_group(ssl.get_group_name() or "none")
        policy = settings.policy
        self._info = ConnectionInfo(
            role=self.role,
            version=ssl.get_protocol_version_name(),
            cipher_suite=ssl.get_cipher_name() or "",
            group=group,
            psk_used=psk_used,
            psk_identity=(self.psk_identity or "") if psk_used else "",
            qkd_used=self.qkd_key_id is not None,
            qkd_key_id=self.qkd_key_id,
            policy=policy.name,
            policy_fingerprint=policy.fingerprint,
            fallback_reason=self.fallback_reason,
            qkd_path=self.qkd_path if self.qkd_key_id is not None else None,
        )
        self._psk = None  # the key is in OpenSSL's session now; drop our reference
        self.context._psk_context.unregister(ssl)  # no callback comes after the handshake
        if self.qkd_key_id is not None and audit.enabled("qkd_key_used"):
            self._audit(
                "qkd_key_used",
                suite=[group, "QKD"],
                qkd_used=True,
                qkd_key_ids=[self.qkd_key_id],
                qkd_path=self.qkd_path,
            )
        if not audit.enabled("handshake_complete"):
            return  # the key id costs an exporter call: only made for a listener
        self._audit(
            "handshake_complete",
            suite=[group, *(["QKD"] if self.qkd_key_id else [])],
            qkd_used=self.qkd_key_id is not None,
            qkd_key_ids=[self.qkd_key_id] if self.qkd_key_id else [],
            key_id=_key_id(self),
            qkd_path=self.qkd_path if self.qkd_key_id else None,
        )

    def _fail(self, error: AgileError) -> None:
        self._failed = error
        self._psk = None
        self.context._psk_context.unregister(self._ssl)
        self._audit(
            "handshake_failed",
            qkd_key_ids=[self.qkd_key_id] if self.qkd_key_id else None,
            reason=str(error),
        )
        raise error


def _key_id(connection: TlsConnection) -> str:
    # A public identifier of the connection's keys: a hash of an exporter value, as the
    # agile handshake's key id is a hash of its session key.
    value = connection._ssl.export_keying_material(b"EXPORTER-qkd-agile key id", 32, None)
    return hashlib.sha256(value).hexdigest()[:16]


def _describe(exc: Exception) -> str:
    """OpenSSL's error queue as one line (reasons only; it never holds key material)."""
    args = exc.args[0] if exc.args else None
    if isinstance(args, Sequence) and args and isinstance(args[0], tuple):
        return "; ".join(str(entry[-1]) for entry in args)
    return str(exc) or type(exc).__name__
