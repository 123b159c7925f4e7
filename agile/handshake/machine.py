"""The hybrid handshake as two state machines without I/O, in the style of h11.

Feed received bytes to :meth:`receive_data`, which returns the events they caused; send what
:meth:`data_to_send` returns. Nothing here touches a socket; :mod:`agile.transport` does.

Protocol (see docs/handshake.md for the rationale)::

    I -> R  ClientHello  {random, fingerprint, combiner, hash, suites offered, key shares,
                          QKD key_IDs (from enc_keys), auth method, PSK id,
                          PSK binder (PSK only): HMAC(binder_key, H(CH up to the binder))}
    R -> I  ServerHello  {random, fingerprint, chosen suite, one ciphertext per KEM, key_IDs}
            Auth         (signatures only) signatures over H(CH || SH)
            Finished     HMAC(finished_key_R, H(CH || SH [|| Auth_R]))
    I -> R  Auth         (signatures only) signatures over H(... || Finished_R)
            Finished     HMAC(finished_key_I, H(... || Finished_R [|| Auth_I]))

With a PSK, the binder lets the responder refuse an initiator without the PSK before it
encapsulates or fetches QKD keys, and the Finished MACs, keyed from a combiner output that the
PSK enters, authenticate both sides over the whole transcript (docs/handshake.md, "PSK
authentication").

Key schedule: the suite's secrets, in the suite's component order (the QKD key where the
suite puts it), go through the policy's ETSI TS 103 744 combiner with MA = ClientHello,
MB = ServerHello (the exact bytes on the wire) and info = f(label, fingerprint_I,
fingerprint_R); with a PSK, the PSK is the combiner's ``psk`` input. The result, the
handshake secret, is expanded (HKDF-Expand-Label) into the two Finished keys and the session
key. A man in the middle who strips suites or changes any byte changes the transcript that
both signatures and both Finished MACs cover, so the handshake fails.

Every transition lives in :data:`_TRANSITIONS`. Any exception moves the machine to
``State.ERROR``; it is re-raised as :class:`~agile.HandshakeError` (or
:class:`~agile.QKDUnavailable` when the policy requires QKD and none could be had).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn

from agile import audit
from agile._errors import AgileError, HandshakeError, QKDUnavailable, TrustPathViolation
from agile.handshake.config import QKD_COMPONENT, HandshakeConfig
from agile.handshake.events import Event, HandshakeComplete, QkdFallback, SuiteNegotiated
from agile.handshake.messages import (
    HEADER_LENGTH,
    RANDOM_LENGTH,
    Auth,
    AuthMethod,
    ClientHello,
    Finished,
    KeyShare,
    Message,
    ServerHello,
    SignatureEntry,
    decode_frame,
    encode,
    frame_length,
)
from agile.kdf import CascadeRound, CatKdf, caskdf, catkdf, concat_format, digest_size
from agile.kdf._common import hashlib_name
from agile.secret import SecretBytes
from agile.session import HybridSession, expand_label, expand_label_info, expand_label_prefix

if TYPE_CHECKING:
    from pqc import KemPrivateKey
    from qkd.delivery.keysource import QkdKey

_SIGN_CONTEXT = {
    "initiator": b"qkd-agile v1 initiator auth\x00",
    "responder": b"qkd-agile v1 responder auth\x00",
}
_FINISHED_LABEL = {"initiator": b"i finished", "responder": b"r finished"}
BINDER_LABEL = b"i psk binder"
_METHODS = {"signature": AuthMethod.SIGNATURE, "psk": AuthMethod.PSK}


class State(Enum):
    START = "start"
    WAIT_CLIENT_HELLO = "wait_client_hello"
    WAIT_SERVER_HELLO = "wait_server_hello"
    WAIT_SERVER_AUTH = "wait_server_auth"
    WAIT_SERVER_FINISHED = "wait_server_finished"
    WAIT_CLIENT_AUTH = "wait_client_auth"
    WAIT_CLIENT_FINISHED = "wait_client_finished"
    DONE = "done"
    ERROR = "error"

    # Members are singletons compared by identity: hash them the same way (Enum's default
    # hashes the name in Python, once per frame in the transition lookup).
    __hash__ = object.__hash__


def _combiner_info(label: bytes, initiator_fingerprint: str, responder_fingerprint: str) -> bytes:
    """The combiner's info f(label, fingerprint_I, fingerprint_R)."""
    return concat_format(label, initiator_fingerprint.encode(), responder_fingerprint.encode())


_CATKDF_CACHE_SIZE = 64


def _catkdf_for(cfg: HandshakeConfig, fingerprints: tuple[str, str]) -> CatKdf:
    """The CatKDF prepared for this policy and this pair of fingerprints (kept per config:
    the info, label, hash and PSK are the same for every handshake with the same peer)."""
    cache = cfg.cache
    key = ("catkdf", fingerprints)
    combiner = cache.get(key)
    if combiner is None:
        if len(cache) >= _CATKDF_CACHE_SIZE:
            cache.clear()  # bounded: a peer sending fresh fingerprints cannot grow it
        combiner = CatKdf(
            info=_combiner_info(cfg.label, fingerprints[0], fingerprints[1]),
            label=cfg.label,
            length=digest_size(cfg.hash_name),
            hash_name=cfg.hash_name,
            psk=cfg.psk.reveal() if cfg.psk is not None else b"",
        )
        cache[key] = combiner
    assert isinstance(combiner, CatKdf)
    return combiner


class _Prepared:
    """What every machine on one config shares, derived from the config alone, once: the
    transcript hash (an empty object to copy), the Finished labels' infos, the transition
    table of each role, the initiator's offers. A machine is created per connection, so its
    constructor only copies the empty hash. Nothing here depends on what a peer sent."""

    __slots__ = (
        "empty_hash",
        "expected_hello",
        "finished_info",
        "hash",
        "hash_len",
        "offers",
        "psk",
        "session_key_info",
        "transitions",
        "wants_qkd",
    )

    def __init__(self, cfg: HandshakeConfig) -> None:
        self.hash = hashlib_name(cfg.hash_name)
        self.empty_hash = hashlib.new(self.hash)
        self.hash_len: int = self.empty_hash.digest_size
        self.psk = cfg.auth_method == "psk"
        self.wants_qkd = any(QKD_COMPONENT in suite for suite in cfg.suites)
        self.transitions = {role: _TRANSITIONS[role, self.psk] for role in _ROLES}
        # The session key's Expand-Label info up to its context, the transcript hash.
        self.session_key_info = expand_label_prefix(b"session key", self.hash_len, cfg.key_length)
        # Expand-Label(secret, "i|r finished", "", Hash.length): one HMAC over an info that
        # is the same in every handshake.
        self.finished_info = {
            role: expand_label_info(label, b"", self.hash_len)
            for role, label in _FINISHED_LABEL.items()
        }
        # Responder: what a compatible ClientHello says (anything else is explained in full).
        self.expected_hello = (cfg.combiner, cfg.hash_name, _METHODS[cfg.auth_method], cfg.psk_id)
        # Initiator: (offered suites, KEMs needing key shares), without and with QKD keys.
        self.offers: list[_Offer | None] = [None, None]


_PREPARED = "machine"
# What an initiator offers: the suites, and the KEMs they need key shares for.
_Offer = tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]
_ROLES = ("initiator", "responder")


def strip_qkd(suite: tuple[str, ...]) -> tuple[str, ...]:
    """The fallback form of ``suite``: the same components without the QKD key."""
    return tuple(c for c in suite if c != QKD_COMPONENT)


def _describe(suites: tuple[tuple[str, ...], ...] | list[tuple[str, ...]]) -> str:
    return ", ".join("+".join(s) for s in suites) or "(none)"


_MessageClass = type[ClientHello] | type[ServerHello] | type[Auth] | type[Finished]
# (expected message, handler, next state); the table is at the end of the module.
_Transition = tuple[_MessageClass, Callable[[Any, Any, bytes, list[Event]], None], State]


class _Machine:
    """What both roles share: framing, transcript, key schedule, authentication."""

    role: str

    # Immutable starting values, shared until a handshake sets its own (a machine is created
    # per connection, so its constructor sets only what is mutable or per-config).
    _client_hello: bytes = b""
    _server_hello: bytes = b""
    _peer_fingerprint = ""
    _handshake_secret: SecretBytes | None = None
    _session_context = b""
    _transcript_after_sh = b""
    _transcript_before_finished = b""
    suite: tuple[str, ...] = ()
    qkd_key_ids: tuple[str, ...] = ()
    qkd_used = False
    qkd_path: tuple[str, ...] | None = None
    """The relay path of the QKD key used (KME node names, master's KME first), if reported."""
    fallback_reason: str | None = None
    session: HybridSession | None = None

    _inbox = b""  # a trailing partial frame, kept until the rest arrives
    _outbox = b""
    _initial_state = State.START

    def __init__(self, config: HandshakeConfig) -> None:
        self._cfg = config
        prepared = config.cache.get(_PREPARED)
        if prepared is None:
            prepared = config.cache[_PREPARED] = _Prepared(config)
        self._prepared: _Prepared = prepared
        self._psk = prepared.psk
        self._transitions = prepared.transitions[self.role]
        self._transcript = prepared.empty_hash.copy()
        self.state = self._initial_state

    def __repr__(self) -> str:
        return f"<{type(self).__name__} policy={self._cfg.policy_name} state={self.state.value}>"

    # -- the I/O surface ------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes to send to the peer (drains the outgoing buffer)."""
        out = self._outbox
        self._outbox = b""
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; returns the events they caused (possibly none yet)."""
        if self.state is State.ERROR:
            raise HandshakeError("the handshake already failed; start a new one")
        if self.state is State.DONE:
            if data:
                self._fail_with(HandshakeError("data received after the handshake completed"))
            return []
        if self._inbox:
            buffer = self._inbox + data
            self._inbox = b""
        else:
            buffer = bytes(data)
        events: list[Event] = []
        size = len(buffer)
        pos = 0
        transitions = self._transitions
        # Frames are read in place from ``buffer``; only a trailing partial frame is kept.
        while True:
            if size - pos < HEADER_LENGTH:  # (frame_length would say None)
                self._inbox = buffer[pos:]
                return events
            try:
                total = frame_length(buffer, pos)
            except HandshakeError as exc:
                self._fail_with(exc)
            if total is None or size - pos < total:
                self._inbox = buffer[pos:]
                return events
            frame = buffer if total == size else buffer[pos : pos + total]
            pos += total
            try:
                # The frame's type byte (frame_length has checked the header) says which
                # message it is; one this state does not expect is refused before decoding.
                entry = transitions.get(self.state)
                if entry is None or frame[0] != entry[0].TYPE:
                    self._unexpected(frame[0], entry)
                message: Message = decode_frame(frame)
                entry[1](self, message, frame, events)
                state: State = self.state  # DONE if the handler completed the handshake
                if state is not State.DONE:
                    self.state = state = entry[2]
            except Exception as exc:
                self._fail_with(exc)
            if state is State.DONE:
                if pos != size:
                    self._fail_with(HandshakeError("data received after the final message"))
                return events

    @property
    def is_complete(self) -> bool:
        return self.state is State.DONE

    @property
    def may_block(self) -> bool:
        """True when a step may wait on I/O: a QKD key source (a KME over the network)."""
        return self._cfg.qkd.source is not None

    # -- transitions ----------------------------------------------------------------------

    def _unexpected(self, kind: int, entry: _Transition | None) -> NoReturn:
        expected = entry[0].__name__ if entry else "nothing"
        raise HandshakeError(
            f"unexpected {_MESSAGE_NAMES[kind]} in state {self.state.value} (expected {expected})"
        )

    def _fail_with(self, exc: BaseException) -> NoReturn:
        self.state = State.ERROR
        error: AgileError
        if isinstance(exc, HandshakeError | QKDUnavailable):  # TrustPathViolation included
            error = exc
        elif isinstance(exc, AgileError):
            error = HandshakeError(str(exc))
        else:
            # Lower-layer errors (pqc, qkd) and anything unexpected: translated, never leaked.
            error = HandshakeError(f"{type(exc).__name__}: {exc}")
        audit.emit(
            "handshake_failed",
            policy=self._cfg.policy_name,
            policy_fingerprint=self._cfg.fingerprint,
            role=self.role,
            suite=self.suite or None,
            reason=str(error),
            qkd_path=error.relay_path if isinstance(error, TrustPathViolation) else self.qkd_path,
        )
        if error is exc:
            raise error
        raise error from exc

    # -- key schedule ---------------------------------------------------------------------

    def _absorb(self, frame: bytes) -> bytes:
        """Add a frame to the transcript; return the transcript hash after it."""
        self._transcript.update(frame)
        digest: bytes = self._transcript.copy().digest()
        return digest

    def _combine(self, secrets: list[bytes], fingerprints: tuple[str, str]) -> None:
        cfg = self._cfg
        if cfg.combiner == "catkdf":
            combiner = _catkdf_for(cfg, fingerprints)
            secret = combiner.derive(secrets, ma=self._client_hello, mb=self._server_hello)
            self._handshake_secret = SecretBytes(secret)
            return
        info = _combiner_info(cfg.label, fingerprints[0], fingerprints[1])
        psk = cfg.psk.reveal() if cfg.psk is not None else b""
        if cfg.combiner == "caskdf":
            round_inputs = CascadeRound(
                ma=self._client_hello, mb=self._server_hello, label=cfg.label, info=info
            )
            rounds = [round_inputs] * len(secrets)
            secret = caskdf(
                secrets, rounds, length=self._prepared.hash_len, hash_name=cfg.hash_name, psk=psk
            )
        else:
            secret = catkdf(
                secrets,
                ma=self._client_hello,
                mb=self._server_hello,
                info=info,
                label=cfg.label,
                length=self._prepared.hash_len,
                hash_name=cfg.hash_name,
                psk=psk,
            )
        self._handshake_secret = SecretBytes(secret)

    def _derive(self, label: bytes, context: bytes, length: int) -> bytes:
        secret = self._handshake_secret
        assert secret is not None
        return expand_label(self._cfg.hash_name, secret.reveal(), label, context, length)

    def _finished(self, role: str, transcript_hash: bytes) -> bytes:
        secret = self._handshake_secret
        assert secret is not None
        name = self._prepared.hash
        key = hmac.digest(secret.reveal(), self._prepared.finished_info[role], name)
        return hmac.digest(key, transcript_hash, name)

    def _complete(self, events: list[Event]) -> None:
        cfg = self._cfg
        length = cfg.key_length
        prepared = self._prepared
        if length <= prepared.hash_len:
            # Expand-Label(secret, "session key", transcript hash, length): one HMAC.
            secret = self._handshake_secret
            assert secret is not None
            info = prepared.session_key_info + self._session_context + b"\x01"
            key = hmac.digest(secret.reveal(), info, prepared.hash)[:length]
        else:
            key = self._derive(b"session key", self._session_context, length)
        self.session = HybridSession.create(
            SecretBytes(key),
            suite=self.suite,
            hash_name=cfg.hash_name,
            aead=cfg.aead,
            transcript_hash=self._session_context,
            qkd_used=self.qkd_used,
            qkd_key_ids=self.qkd_key_ids,
            qkd_path=self.qkd_path,
            lifetime_s=cfg.lifetime_s,
            rekey_interval_s=cfg.rekey_interval_s,
        )
        self.state = State.DONE
        events.append(HandshakeComplete(self.session))
        if audit.enabled("handshake_complete"):
            audit.emit(
                "handshake_complete",
                policy=cfg.policy_name,
                policy_fingerprint=cfg.fingerprint,
                role=self.role,
                suite=self.suite,
                qkd_used=self.qkd_used,
                qkd_key_ids=self.qkd_key_ids,
                key_id=self.session.key_id,
                qkd_path=self.qkd_path,
            )

    # -- authentication -------------------------------------------------------------------

    def _auth_frame(self, transcript_hash: bytes) -> bytes:
        """The encoded Auth message: our signatures over the transcript."""
        cfg = self._cfg
        message = _SIGN_CONTEXT[self.role] + transcript_hash
        return encode(
            Auth(
                signatures=tuple(
                    SignatureEntry(algorithm=s.algorithm, signature=s.key.sign(message))
                    for s in cfg.signers
                )
            )
        )

    def _verify_auth(self, auth: Auth, transcript_hash: bytes) -> None:
        cfg = self._cfg
        peer = "responder" if self.role == "initiator" else "initiator"
        given = {s.algorithm: s.signature for s in auth.signatures}
        message = _SIGN_CONTEXT[peer] + transcript_hash
        for verifier in cfg.verifiers:
            signature = given.get(verifier.algorithm)
            if signature is None:
                raise HandshakeError(
                    f"the peer did not sign with {verifier.algorithm}, which policy "
                    f"{cfg.policy_name} requires (it signed with {', '.join(given) or 'nothing'})"
                )
            try:
                verifier.key.verify(message, signature)
            except Exception as exc:
                raise HandshakeError(
                    f"the peer's {verifier.algorithm} signature over the transcript does not "
                    "verify (wrong peer key, or the transcript was altered in transit)"
                ) from exc

    def _binder(self, truncated_hello_hash: bytes) -> bytes:
        """The PSK binder: HMAC(binder key, H(ClientHello up to the binder))."""
        binder_key = self._cfg.binder_key
        assert binder_key is not None
        return hmac.digest(binder_key.reveal(), truncated_hello_hash, self._prepared.hash)

    def _finished_frame(self, role: str, transcript_hash: bytes) -> bytes:
        """The encoded Finished message of ``role`` over ``transcript_hash``."""
        return encode(Finished(verify_data=self._finished(role, transcript_hash)))

    def _check_finished(self, finished: Finished, role: str, transcript_hash: bytes) -> None:
        expected = self._finished(role, transcript_hash)
        if not hmac.compare_digest(expected, finished.verify_data):
            raise HandshakeError(
                "key confirmation failed: the peers derived different keys (mismatched QKD "
                "keys, a different PSK, or a message altered in transit)"
            )

    # -- QKD ------------------------------------------------------------------------------

    def _check_link(self) -> None:
        """Refuse keys from a link whose reported QBER or key age exceeds the policy."""
        problem = self._cfg.qkd.link_problem()
        if problem is not None:
            raise _QkdProblem(problem)

    def _qkd_unavailable(
        self, reason: str, events: list[Event], *, path: tuple[str, ...] | None = None
    ) -> None:
        """Fail closed, or fall back with an audit event, as the policy says."""
        cfg = self._cfg
        if cfg.qkd.required:
            raise QKDUnavailable(
                f"policy {cfg.policy_name} requires a QKD key (fail closed): {reason}"
            )
        self.fallback_reason = reason
        events.append(QkdFallback(reason=reason))
        audit.emit(
            "qkd_fallback",
            policy=cfg.policy_name,
            policy_fingerprint=cfg.fingerprint,
            role=self.role,
            reason=reason,
            qkd_path=path,
        )

    def _check_path(self, keys: list[QkdKey], events: list[Event]) -> bool:
        """Apply the policy's trust-path bounds to ``keys``: True when they may be used.

        A refused key is audited (``qkd_path_refused``), then fails the handshake
        (``on_violation = "fail"``) or makes it fall back without QKD (``"fallback"``).
        """
        qkd = self._cfg.qkd
        problem = qkd.path_problem(keys)
        path = keys[0].relay_path if keys else None
        if problem is None:
            self.qkd_path = path
            return True
        cfg = self._cfg
        reason = f"trust path refused: {problem}"
        audit.emit(
            "qkd_path_refused",
            policy=cfg.policy_name,
            policy_fingerprint=cfg.fingerprint,
            role=self.role,
            qkd_key_ids=[k.key_id for k in keys],
            reason=f"{reason} (on_violation = {qkd.on_violation})",
            qkd_path=path,
        )
        if qkd.on_violation == "fallback":
            self._qkd_unavailable(reason, events, path=path)
            return False
        raise TrustPathViolation(
            f'policy {cfg.policy_name} refuses the QKD key (on_violation = "fail"): {problem}',
            relay_path=path,
        )

    def _negotiated(self, events: list[Event]) -> None:
        cfg = self._cfg
        events.append(SuiteNegotiated(self.suite, self.qkd_used, self.qkd_key_ids))
        if not audit.enabled("suite_chosen"):
            # Nothing listens: build no event fields (qkd_key_used is at the same level).
            return
        audit.emit(
            "suite_chosen",
            policy=cfg.policy_name,
            policy_fingerprint=cfg.fingerprint,
            role=self.role,
            suite=self.suite,
            qkd_used=self.qkd_used,
        )
        if self.qkd_used:
            audit.emit(
                "qkd_key_used",
                policy=cfg.policy_name,
                policy_fingerprint=cfg.fingerprint,
                role=self.role,
                suite=self.suite,
                qkd_used=True,
                qkd_key_ids=self.qkd_key_ids,
                qkd_path=self.qkd_path,
            )


class _QkdProblem(Exception):
    """Internal: a QKD key could not be had or used; the policy decides what follows."""


def _qkd_reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _QkdProblem) else f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------
# Initiator
# --------------------------------------------------------------------------------------------


class Initiator(_Machine):
    """The side that offers: QKD master (enc_keys), sends the ClientHello first.

    Example::

        initiator = engine.initiator()
        send(initiator.start())
        for event in initiator.receive_data(recv()):
            ...
        send(initiator.data_to_send())
    """

    role = "initiator"
    _qkd_keys: list[QkdKey] | tuple[()] = ()
    _offered: tuple[tuple[str, ...], ...] = ()
    _start_events: list[Event] | tuple[()] = ()

    @property
    def start_events(self) -> list[Event]:
        """Events raised while building the ClientHello (a QKD fallback)."""
        return list(self._start_events)

    def start(self) -> bytes:
        """Build the ClientHello; return the bytes to send."""
        if self.state is not State.START:
            raise HandshakeError(f"start() called in state {self.state.value}")
        try:
            self._start()
        except Exception as exc:
            self._fail_with(exc)
        out = self._outbox
        self._outbox = b""
        return out

    def _start(self) -> None:
        cfg = self._cfg
        if self._prepared.wants_qkd:
            events: list[Event] = []
            self._start_events = events
            self._fetch_qkd_keys(events)
        have_qkd = bool(self._qkd_keys)
        self._offered, algorithms = self._offer(have_qkd)
        shares: list[KeyShare] = []
        secret_keys: dict[str, KemPrivateKey] = {}
        self._secret_keys = secret_keys
        kems = cfg.kems
        for algorithm in algorithms:
            # The key object stays parsed until decapsulation (no re-expansion of its seed).
            key = kems[algorithm].generate_private_key()
            secret_keys[algorithm] = key
            shares.append(KeyShare(algorithm=algorithm, public_key=key.public_key))
        binder_length = self._prepared.hash_len if self._psk else 0
        frame = encode(
            ClientHello(
                random=os.urandom(RANDOM_LENGTH),
                policy_fingerprint=cfg.fingerprint,
                combiner=cfg.combiner,
                hash_name=cfg.hash_name,
                suites=self._offered,
                key_shares=tuple(shares),
                qkd_key_ids=tuple([k.key_id for k in self._qkd_keys]) if have_qkd else (),
                auth_method=_METHODS[cfg.auth_method],
                psk_id=cfg.psk_id,
                psk_binder=bytes(binder_length),  # a placeholder of the binder's length
            )
        )
        transcript = self._transcript
        if self._psk:
            # The binder is the frame's last field: it covers the hash of the frame up to it
            # (whose header and length byte already count it), and replaces the placeholder;
            # the transcript goes on with the binder.
            truncated = memoryview(frame)[:-binder_length]
            transcript.update(truncated)
            binder = self._binder(transcript.copy().digest())
            transcript.update(binder)
            frame = b"".join((truncated, binder))
        else:
            transcript.update(frame)
        self._client_hello = frame
        self._outbox += frame
        self.state = State.WAIT_SERVER_HELLO

    def _offer(self, have_qkd: bool) -> _Offer:
        """The suites to offer and the KEMs they need key shares for (once per config)."""
        cached = self._prepared.offers[have_qkd]
        if cached is not None:
            return cached
        cfg = self._cfg
        offered: list[tuple[str, ...]] = []
        for suite in cfg.suites:
            if QKD_COMPONENT not in suite or have_qkd:
                offered.append(suite)
        if not cfg.qkd.required:
            # Fallback forms come after every full suite, so a responder that can use the
            # QKD key always prefers it; they let a responder whose KME failed still agree.
            for suite in cfg.suites:
                stripped = strip_qkd(suite)
                if QKD_COMPONENT in suite and stripped and stripped not in offered:
                    offered.append(stripped)
        if not offered:
            raise HandshakeError(f"policy {cfg.policy_name} leaves no suite to offer")
        algorithms = tuple(dict.fromkeys(c for s in offered for c in s if c != QKD_COMPONENT))
        cached = (tuple(offered), algorithms)
        self._prepared.offers[have_qkd] = cached
        return cached

    def _fetch_qkd_keys(self, events: list[Event]) -> None:
        qkd = self._cfg.qkd
        if qkd.source is None:
            self._qkd_unavailable(f"no QKD key source (qkd.source = {qkd.source_kind!r})", events)
            return
        try:
            self._check_link()
            keys = list(qkd.source.get_keys(1, qkd.key_size_bits))
        except Exception as exc:
            self._qkd_unavailable(f"QKD key source failed: {_qkd_reason(exc)}", events)
            self._qkd_keys = []
            return
        # Outside the try: a refused path fails the handshake when the policy says so.
        self._qkd_keys = keys if self._check_path(keys, events) else []

    def _on_server_hello(self, hello: ServerHello, frame: bytes, events: list[Event]) -> None:
        cfg = self._cfg
        if hello.suite not in self._offered:
            raise HandshakeError(
                f"the responder chose {'+'.join(hello.suite)}, which was not offered "
                f"(offered: {_describe(self._offered)})"
            )
        our_ids = tuple([k.key_id for k in self._qkd_keys]) if self._qkd_keys else ()
        self.qkd_used = QKD_COMPONENT in hello.suite
        if self.qkd_used and hello.qkd_key_ids != our_ids:
            raise HandshakeError("the responder used QKD key IDs other than the ones offered")
        if not self.qkd_used and hello.qkd_key_ids:
            raise HandshakeError("the responder sent QKD key IDs for a suite without QKD")
        if our_ids and not self.qkd_used:
            self._qkd_unavailable("the responder chose a suite without QKD", events)
        n_kems = len(hello.suite) - self.qkd_used  # a suite names QKD at most once
        if len(hello.ciphertexts) != n_kems:
            raise HandshakeError(
                f"ServerHello carries {len(hello.ciphertexts)} ciphertexts for {n_kems} KEMs"
            )
        self._server_hello = frame
        self._peer_fingerprint = hello.policy_fingerprint
        self.suite = hello.suite
        self.qkd_key_ids = our_ids if self.qkd_used else ()
        if not self.qkd_used:
            self.qkd_path = None
        secrets: list[bytes] = []
        cts = iter(hello.ciphertexts)
        for component in hello.suite:
            if component == QKD_COMPONENT:
                secrets.append(b"".join(k.key for k in self._qkd_keys))
            else:
                secrets.append(self._secret_keys[component].decapsulate(next(cts)))
        self._combine(secrets, (cfg.fingerprint, hello.policy_fingerprint))
        # With a PSK no Auth follows: Finished_R covers H(CH || SH).
        transcript = self._transcript
        transcript.update(frame)
        self._transcript_after_sh = self._transcript_before_finished = transcript.copy().digest()
        self._negotiated(events)

    def _on_server_auth(self, auth: Auth, frame: bytes, events: list[Event]) -> None:
        self._verify_auth(auth, self._transcript_after_sh)
        self._transcript_before_finished = self._absorb(frame)

    def _on_server_finished(self, finished: Finished, frame: bytes, events: list[Event]) -> None:
        self._check_finished(finished, "responder", self._transcript_before_finished)
        transcript = self._transcript
        transcript.update(frame)
        context = self._session_context = transcript.copy().digest()
        if self._psk:
            fin_frame = self._finished_frame("initiator", context)
            self._outbox += fin_frame
        else:
            auth_frame = self._auth_frame(context)
            fin_frame = self._finished_frame("initiator", self._absorb(auth_frame))
            self._outbox += auth_frame + fin_frame
        transcript.update(fin_frame)  # the final frame: no hash of the transcript follows
        self._complete(events)


# --------------------------------------------------------------------------------------------
# Responder
# --------------------------------------------------------------------------------------------


class Responder(_Machine):
    """The side that chooses: QKD slave (dec_keys), answers the ClientHello.

    Example::

        responder = engine.responder()
        responder.receive_data(recv())
        send(responder.data_to_send())
        events = responder.receive_data(recv())   # -> [HandshakeComplete(...)]
    """

    role = "responder"
    _initial_state = State.WAIT_CLIENT_HELLO

    def _acceptable(self, with_qkd: bool) -> list[tuple[str, ...]]:
        """The suites this policy accepts, in its order (computed once per config)."""
        cfg = self._cfg
        key = ("acceptable", with_qkd)
        cached = cfg.cache.get(key)
        if cached is None:
            accepted: list[tuple[str, ...]] = []
            for suite in cfg.suites:
                if QKD_COMPONENT not in suite:
                    accepted.append(suite)
                    continue
                if with_qkd:
                    accepted.append(suite)
                stripped = strip_qkd(suite)
                if not cfg.qkd.required and stripped:
                    accepted.append(stripped)
            cfg.cache[key] = cached = accepted
        assert isinstance(cached, list)
        return cached

    def _choose(
        self, offered: tuple[tuple[str, ...], ...], with_qkd: bool
    ) -> tuple[str, ...] | None:
        """The first offered suite this policy accepts."""
        accepted = self._acceptable(with_qkd)
        return next((suite for suite in offered if suite in accepted), None)

    def _check_compatible(self, hello: ClientHello) -> None:
        cfg = self._cfg
        if (hello.combiner, hello.hash_name) != (cfg.combiner, cfg.hash_name):
            raise HandshakeError(
                f"the initiator combines with {hello.combiner}/{hello.hash_name}, policy "
                f"{cfg.policy_name} with {cfg.combiner}/{cfg.hash_name}; align kdf.combiner "
                "and kdf.hash"
            )
        if hello.auth_method is not _METHODS[cfg.auth_method]:
            raise HandshakeError(
                f"the initiator authenticates by {hello.auth_method.name.lower()}, policy "
                f"{cfg.policy_name} by {cfg.auth_method}"
            )
        if cfg.auth_method == "psk" and cfg.psk_id and hello.psk_id != cfg.psk_id:
            raise HandshakeError(
                f"the initiator names PSK {hello.psk_id!r}, policy {cfg.policy_name} has "
                f"{cfg.psk_id!r}"
            )

    def _on_client_hello(self, hello: ClientHello, frame: bytes, events: list[Event]) -> None:
        cfg = self._cfg
        prepared = self._prepared
        if (
            hello.combiner,
            hello.hash_name,
            hello.auth_method,
            hello.psk_id,
        ) != prepared.expected_hello:
            self._check_compatible(hello)  # says what differs (or accepts any PSK id)
        transcript = self._transcript
        if self._psk:
            # Before any work for this initiator (encapsulation, a KME request for QKD keys),
            # check that it holds the PSK: the binder covers the hello up to the binder.
            binder = hello.psk_binder
            if not binder:
                raise HandshakeError("the initiator sent no PSK binder; policy needs a PSK")
            transcript.update(memoryview(frame)[: len(frame) - len(binder)])
            if not hmac.compare_digest(self._binder(transcript.copy().digest()), binder):
                raise HandshakeError(
                    "the initiator's PSK binder does not verify (a different PSK, or the "
                    "ClientHello was altered in transit)"
                )
            transcript.update(binder)
        else:
            if hello.psk_binder:
                raise HandshakeError("the initiator sent a PSK binder; policy needs signatures")
            transcript.update(frame)
        qkd_keys: list[QkdKey] = []
        choice = self._choose(hello.suites, with_qkd=True)
        if choice is not None and QKD_COMPONENT in choice:
            try:
                qkd_keys = self._fetch_qkd_keys(hello.qkd_key_ids)
            except Exception as exc:
                self._qkd_unavailable(_qkd_reason(exc), events)
                choice = self._choose(hello.suites, with_qkd=False)
            else:
                # The responder sees the path too (dec_keys reports it): both ends check.
                if not self._check_path(qkd_keys, events):
                    qkd_keys = []
                    choice = self._choose(hello.suites, with_qkd=False)
        elif cfg.qkd.required:
            self._qkd_unavailable("the initiator offered no suite with QKD", events)
        if choice is None:
            raise HandshakeError(
                f"no common suite: the initiator offered [{_describe(hello.suites)}]; policy "
                f"{cfg.policy_name} accepts [{_describe(self._acceptable(with_qkd=True))}]"
            )
        self.suite = choice
        self.qkd_used = QKD_COMPONENT in choice
        self.qkd_key_ids = hello.qkd_key_ids if self.qkd_used else ()
        secrets: list[bytes] = []
        ciphertexts: list[bytes] = []
        for component in choice:
            if component == QKD_COMPONENT:
                secrets.append(b"".join(k.key for k in qkd_keys))
                continue
            public_key = hello.share(component)
            if public_key is None:
                raise HandshakeError(f"the initiator offered {component} without a key share")
            encapsulation = cfg.kems[component].encapsulate(public_key)
            ciphertexts.append(encapsulation.ciphertext)
            secrets.append(encapsulation.shared_secret)
        self._client_hello = frame
        sh_frame = encode(
            ServerHello(
                random=os.urandom(RANDOM_LENGTH),
                policy_fingerprint=cfg.fingerprint,
                suite=choice,
                ciphertexts=tuple(ciphertexts),
                qkd_key_ids=self.qkd_key_ids,
            )
        )
        self._server_hello = sh_frame
        self._peer_fingerprint = hello.policy_fingerprint
        self._combine(secrets, (hello.policy_fingerprint, cfg.fingerprint))
        transcript.update(sh_frame)
        after_sh = transcript.copy().digest()
        if self._psk:
            fin_frame = self._finished_frame("responder", after_sh)
            self._outbox += sh_frame + fin_frame
        else:
            auth_frame = self._auth_frame(after_sh)
            fin_frame = self._finished_frame("responder", self._absorb(auth_frame))
            self._outbox += sh_frame + auth_frame + fin_frame
        # With a PSK no Auth follows either: Finished_I covers H(... || Finished_R).
        transcript.update(fin_frame)
        self._session_context = self._transcript_before_finished = transcript.copy().digest()
        self._negotiated(events)

    def _fetch_qkd_keys(self, key_ids: tuple[str, ...]) -> list[QkdKey]:
        qkd = self._cfg.qkd
        if not key_ids:
            raise _QkdProblem("the initiator sent no QKD key IDs")
        if qkd.source is None:
            raise _QkdProblem(f"no QKD key source (qkd.source = {qkd.source_kind!r})")
        self._check_link()
        keys = list(qkd.source.get_keys_by_id(list(key_ids)))
        if [k.key_id for k in keys] != list(key_ids):
            raise _QkdProblem("the key source returned other keys than the IDs asked for")
        if any(len(k.key) * 8 < 128 for k in keys):
            raise _QkdProblem("a QKD key is shorter than 128 bits")
        return keys

    def _on_client_auth(self, auth: Auth, frame: bytes, events: list[Event]) -> None:
        self._verify_auth(auth, self._session_context)
        self._transcript_before_finished = self._absorb(frame)

    def _on_client_finished(self, finished: Finished, frame: bytes, events: list[Event]) -> None:
        self._check_finished(finished, "initiator", self._transcript_before_finished)
        self._transcript.update(frame)  # the final frame: no hash of the transcript follows
        self._complete(events)


# Every transition: (role, authenticates by PSK) -> state -> (expected message, handler, next
# state). With a PSK there are no Auth frames (the ClientHello carries the initiator's binder).
_TRANSITIONS: dict[tuple[str, bool], dict[State, _Transition]] = {
    ("initiator", False): {
        State.WAIT_SERVER_HELLO: (ServerHello, Initiator._on_server_hello, State.WAIT_SERVER_AUTH),
        State.WAIT_SERVER_AUTH: (Auth, Initiator._on_server_auth, State.WAIT_SERVER_FINISHED),
        State.WAIT_SERVER_FINISHED: (Finished, Initiator._on_server_finished, State.DONE),
    },
    ("initiator", True): {
        State.WAIT_SERVER_HELLO: (
            ServerHello,
            Initiator._on_server_hello,
            State.WAIT_SERVER_FINISHED,
        ),
        State.WAIT_SERVER_FINISHED: (Finished, Initiator._on_server_finished, State.DONE),
    },
    ("responder", False): {
        State.WAIT_CLIENT_HELLO: (ClientHello, Responder._on_client_hello, State.WAIT_CLIENT_AUTH),
        State.WAIT_CLIENT_AUTH: (Auth, Responder._on_client_auth, State.WAIT_CLIENT_FINISHED),
        State.WAIT_CLIENT_FINISHED: (Finished, Responder._on_client_finished, State.DONE),
    },
    ("responder", True): {
        State.WAIT_CLIENT_HELLO: (
            ClientHello,
            Responder._on_client_hello,
            State.WAIT_CLIENT_FINISHED,
        ),
        State.WAIT_CLIENT_FINISHED: (Finished, Responder._on_client_finished, State.DONE),
    },
}
_MESSAGE_NAMES: dict[int, str] = {
    int(cls.TYPE): cls.__name__ for cls in (ClientHello, ServerHello, Auth, Finished)
}
