"""Key rotation between two hosts: run the hybrid handshake, export keys to the tools they run.

``agile keys export`` (one handshake) and the ``agile peer`` daemon (one handshake every
interval) are built from three pieces:

- :class:`Sink`: where one exported key goes — a target format (:data:`agile.export.TARGETS`),
  a file, the identity the key is bound to, and optionally a command that installs it
  (``wg set wg0 peer PUB preshared-key {key_file}``);
- :class:`KeyRing`: the keys on disk and their life cycle (rotation, grace, fail closed);
- :class:`PeerLink`: the connection to the other host, as the listening responder or the
  connecting initiator, over the socket adapter in :mod:`agile.transport`.

What happens to the files, exactly:

1. **Rotation.** After each completed handshake every sink's key is derived with
   :func:`agile.export.derive_target_key` (both hosts derive the same key for the same target
   and identity) and written to ``PATH`` atomically, mode 0600; the key it replaces is first
   written to ``PATH.previous``. Then the sink's command, if any, runs.
2. **Grace.** ``PATH.previous`` is removed ``grace_s`` seconds after the rotation, so a service
   that reloads late (or holds two keys) keeps working across the switch; only one previous
   key is ever kept.
3. **Failure.** A failed handshake changes nothing on disk: the current key stays in use while
   the session it came from is within the policy's ``session.lifetime_s``; the daemon keeps
   trying (every interval, at most every 10 s).
4. **Fail closed.** When the lifetime ends with no new handshake, ``PATH`` and
   ``PATH.previous`` are deleted; a sink with a command gets its command run once more with a
   fresh random key that no peer has (so ``wg`` stops accepting the old key), and that file is
   deleted too. The event ``fail_closed`` is reported; the daemon keeps trying, and the next
   completed handshake installs a key again.
5. **Stop and start.** When the daemon stops, the ``.previous`` files are deleted and the
   current keys stay (the services keep working); nothing withdraws them while the daemon is
   not running. When it starts and finds key files, it takes charge of them
   (:meth:`KeyRing.adopt_existing`): they expire ``session.lifetime_s`` after they were written
   (file time), unless a handshake replaces them first.

Nothing here prints, logs or puts key material in a message: events carry key *ids*,
one-way public identifiers of each exported key (:func:`export_key_id`).

Example::

    ring = KeyRing([parse_sink("openssl:/run/agile/psk.hex:site-a")], grace_s=120)
    event = ring.install(session)          # session: an agile HybridSession
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import re
import secrets
import shlex
import socket
import subprocess
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from agile._errors import AgileError, HandshakeError
from agile.engine import Engine, Identity
from agile.export import (
    TARGETS,
    ExportError,
    Target,
    derive_target_key,
    openssl_psk,
    stunnel_psk_secrets,
    swanctl_ppk_secrets,
    wireguard_preshared_key,
    write_secret_file,
)
from agile.export import _identity as _check_identity
from agile.policy.model import Policy
from agile.secret import SecretBytes
from agile.session import HybridSession
from agile.transport import handshake_over_socket

LOGGER_NAME = "agile.peer"
logger = logging.getLogger(LOGGER_NAME)
logger.addHandler(logging.NullHandler())

PREVIOUS_SUFFIX = ".previous"
COMMAND_TIMEOUT_S = 30.0
MAX_RETRY_S = 10.0
Event = dict[str, Any]


class PeerError(AgileError):
    """Key rotation cannot start or continue: a bad sink, identity file or address."""


# -- sinks ------------------------------------------------------------------------------------


def export_key_id(key: SecretBytes) -> str:
    """A public identifier of an exported key: 8 bytes of HMAC(key, label), hex.

    One-way, so it can be printed and compared between hosts to check that both installed the
    same key, without revealing it.
    """
    return hmac.digest(key.reveal(), b"qkd-agile export key id", "sha256")[:8].hex()


_PLACEHOLDERS = ("{key_file}", "{identity}", "{target}", "{key_id}")


@dataclass(frozen=True, kw_only=True)
class Sink:
    """One exported key: its target format, its file, its identity, and an install command.

    ``command`` is an argument vector (run without a shell) whose arguments may contain
    ``{key_file}``, ``{identity}``, ``{target}`` and ``{key_id}``.
    """

    target: Target
    path: Path
    identity: str
    command: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise PeerError(
                f"sink {self.path}: unknown target {self.target!r}; use one of {', '.join(TARGETS)}"
            )
        # The same rule as key derivation (agile.export), checked here so that a bad sink is
        # reported before any handshake runs.
        try:
            _check_identity(self.identity, self.target)
        except ExportError as exc:
            raise PeerError(f"sink {self.target}:{self.path}: {exc}") from exc

    @property
    def previous_path(self) -> Path:
        """Where the key this sink replaced is kept during the grace period."""
        return self.path.with_name(self.path.name + PREVIOUS_SUFFIX)

    def render(self, key: SecretBytes) -> str:
        """The file content for ``key`` in this sink's target format."""
        try:
            if self.target == "openssl":
                return openssl_psk(key)
            if self.target == "stunnel":
                return stunnel_psk_secrets({self.identity: key})
            if self.target == "wireguard":
                return wireguard_preshared_key(key)
            section = re.sub(r"[^A-Za-z0-9_-]", "_", self.identity)[:64]
            return swanctl_ppk_secrets(section, key, [self.identity])
        except ExportError as exc:
            raise PeerError(f"sink {self.target}:{self.path}: {exc}") from exc

    def argv(self, key_file: Path, key_id: str) -> list[str]:
        """The command with its placeholders filled in."""
        values = {
            "{key_file}": str(key_file),
            "{identity}": self.identity,
            "{target}": self.target,
            "{key_id}": key_id,
        }
        filled = []
        for template in self.command:
            arg = template
            for placeholder in _PLACEHOLDERS:
                arg = arg.replace(placeholder, values[placeholder])
            filled.append(arg)
        return filled

    def describe(self) -> dict[str, str]:
        return {"target": self.target, "path": str(self.path), "identity": self.identity}


DEFAULT_IDENTITY = "agile"


def parse_sink(spec: str, command: str | None = None) -> Sink:
    """Parse ``TARGET:PATH[:IDENTITY]`` (identity default ``agile``) and an optional command.

    An identity never contains ``:``, so a path that does must be followed by an identity.

    >>> parse_sink("wireguard:/run/wg0.psk:wg0-b").identity
    'wg0-b'
    """
    target, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise PeerError(
            f"--sink {spec!r}: write TARGET:PATH[:IDENTITY] with TARGET one of {', '.join(TARGETS)}"
        )
    path, sep, identity = rest.rpartition(":")
    if not sep:
        path, identity = rest, DEFAULT_IDENTITY
    if not path:
        raise PeerError(f"--sink {spec!r}: the PATH is empty")
    argv: tuple[str, ...] = ()
    if command is not None:
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            raise PeerError(f"--sink-command {command!r}: {exc}") from exc
        if not argv:
            raise PeerError("--sink-command is empty")
    return Sink(target=cast(Target, target), path=Path(path), identity=identity, command=argv)


def _run_command(argv: Sequence[str]) -> str | None:
    """Run an install command; return why it failed, or None."""
    try:
        proc = subprocess.run(  # noqa: S603 - an argument vector from the operator, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{argv[0]} did not finish within {COMMAND_TIMEOUT_S:.0f} s"
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror}"
    if proc.returncode != 0:
        return f"{argv[0]} exited with status {proc.returncode}"
    return None


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise PeerError(f"{path}: cannot remove the key file ({exc.strerror})") from exc
    return True


# -- the key ring -----------------------------------------------------------------------------


@dataclass
class _Installed:
    session_key_id: str
    expires_at: float | None
    keys: dict[Sink, SecretBytes]
    previous_until: float | None = None
    previous_sinks: list[Sink] = field(default_factory=list)


class KeyRing:
    """The keys one host has exported, and their life cycle (see the module docstring).

    Not thread-safe: one daemon loop drives it. ``run_command`` is injectable for tests.
    """

    def __init__(
        self,
        sinks: Iterable[Sink],
        *,
        grace_s: float,
        run_command: Callable[[Sequence[str]], str | None] = _run_command,
    ) -> None:
        self.sinks = tuple(sinks)
        if not self.sinks:
            raise PeerError("no --sink given: name at least one TARGET:PATH[:IDENTITY]")
        paths = [s.path.resolve() for s in self.sinks]
        if len(set(paths)) != len(paths):
            raise PeerError("two sinks write the same file: give each --sink its own PATH")
        if grace_s < 0:
            raise PeerError(f"--grace {grace_s}: must be 0 or more seconds")
        self.grace_s = grace_s
        self._run_command = run_command
        self._installed: _Installed | None = None
        self.rotations = 0
        self.closed = False

    @property
    def session_key_id(self) -> str | None:
        return self._installed.session_key_id if self._installed else None

    def install(self, session: HybridSession) -> Event:
        """Derive every sink's key from ``session``, keep the old ones as ``.previous``."""
        keys = {sink: derive_target_key(session, sink.target, sink.identity) for sink in self.sinks}
        now = time.monotonic()
        old = self._installed
        previous_sinks: list[Sink] = []
        if old is not None and self.grace_s > 0:
            for sink, key in old.keys.items():
                write_secret_file(sink.previous_path, sink.render(key))
                previous_sinks.append(sink)
        elif old is not None:
            for sink in self.sinks:
                _remove(sink.previous_path)
        for sink, key in keys.items():
            write_secret_file(sink.path, sink.render(key))
        errors = []
        written = []
        for sink, key in keys.items():
            key_id = export_key_id(key)
            written.append({**sink.describe(), "key_id": key_id})
            if sink.command:
                problem = self._run_command(sink.argv(sink.path, key_id))
                if problem is not None:
                    errors.append({**sink.describe(), "reason": problem})
        lifetime = session.lifetime_s
        self._installed = _Installed(
            session_key_id=session.key_id,
            expires_at=None if lifetime is None else session.created_at + lifetime,
            keys=keys,
            previous_until=now + self.grace_s if previous_sinks else None,
            previous_sinks=previous_sinks,
        )
        self.rotations += 1
        self.closed = False
        event: Event = {
            "event": "rotated",
            "rotation": self.rotations,
            "session_key_id": session.key_id,
            "suite": list(session.suite),
            "qkd_used": session.qkd_used,
            "qkd_key_ids": list(session.qkd_key_ids),
            "lifetime_s": lifetime,
            "keys": written,
            "previous_kept_s": self.grace_s if previous_sinks else 0,
        }
        if errors:
            event["command_errors"] = errors
        return event

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (monotonic seconds), if ever."""
        installed = self._installed
        if installed is None:
            return None
        times = [t for t in (installed.previous_until, installed.expires_at) if t is not None]
        return min(times, default=None)

    def tick(self, reason: str | None = None) -> list[Event]:
        """Remove previous keys whose grace ended; fail closed when the lifetime ended.

        ``reason`` says why no new key came (the last failure), for the ``fail_closed`` event.
        """
        installed = self._installed
        if installed is None:
            return []
        now = time.monotonic()
        events: list[Event] = []
        if installed.previous_until is not None and now >= installed.previous_until:
            for sink in installed.previous_sinks:
                _remove(sink.previous_path)
            installed.previous_until = None
            installed.previous_sinks = []
            events.append({"event": "previous_removed", "grace_s": self.grace_s})
        if installed.expires_at is not None and now >= installed.expires_at:
            events.append(self.fail_closed(reason or "no new handshake before the key expired"))
        return events

    def adopt_existing(self, lifetime_s: float) -> Event | None:
        """Take charge of key files left by an earlier run, so that they too expire.

        Their age is read from the file times: they stay until ``lifetime_s`` after the
        oldest was written, like a key of this run, and are withdrawn then (fail closed)
        unless a handshake replaces them first. Left-over ``.previous`` files are deleted: their
        grace period cannot be known.
        """
        for sink in self.sinks:
            _remove(sink.previous_path)
        times = []
        for sink in self.sinks:
            with contextlib.suppress(FileNotFoundError):
                times.append(sink.path.stat().st_mtime)
        if not times or self._installed is not None:
            return None
        remaining = min(times) + lifetime_s - time.time()
        self._installed = _Installed(
            session_key_id="", expires_at=time.monotonic() + remaining, keys={}
        )
        return {
            "event": "adopted",
            "paths": [str(s.path) for s in self.sinks if s.path.exists()],
            "expires_in_s": round(max(0.0, remaining), 3),
        }

    def discard_previous(self) -> None:
        """Remove the ``.previous`` files now (the daemon stops: no grace left to serve)."""
        installed = self._installed
        if installed is not None:
            for sink in installed.previous_sinks:
                _remove(sink.previous_path)
            installed.previous_until = None
            installed.previous_sinks = []

    def fail_closed(self, reason: str) -> Event:
        """Withdraw every key now (see the module docstring, point 4)."""
        installed = self._installed
        self._installed = None
        self.closed = True
        errors = []
        for sink in self.sinks:
            _remove(sink.previous_path)
            if sink.command:
                # A key no peer has: the service is left with a key that matches nothing.
                blank = SecretBytes(secrets.token_bytes(32))
                write_secret_file(sink.path, sink.render(blank))
                problem = self._run_command(sink.argv(sink.path, export_key_id(blank)))
                if problem is not None:
                    errors.append({**sink.describe(), "reason": problem})
            _remove(sink.path)
        event: Event = {
            "event": "fail_closed",
            "reason": reason,
            "session_key_id": installed.session_key_id or None if installed else None,
            "removed": [str(s.path) for s in self.sinks],
        }
        if errors:
            event["command_errors"] = errors
        return event


# -- identities -------------------------------------------------------------------------------


def write_identity(policy: Policy, out: Path) -> tuple[Path, Path]:
    """Generate signing keys for ``policy``; write ``OUT.identity.toml`` and ``OUT.trust.toml``.

    The identity file holds the secret keys (mode 0600); the trust file holds the public keys
    in the format of ``auth.trust_file`` (a ``[peer_public_keys]`` table), to give to the peer.
    """
    algorithms = policy.auth.signature_algorithms
    if policy.auth.method != "signature" or not algorithms:
        raise PeerError(
            f"policy {policy.name} does not authenticate with signatures "
            f"(auth.method = {policy.auth.method!r}); it needs no identity"
        )
    identity = Identity.generate(policy)
    identity_path = out.with_name(out.name + ".identity.toml")
    trust_path = out.with_name(out.name + ".trust.toml")
    public = "".join(f'"{name}" = "{key.hex()}"\n' for name, key in identity.public_keys.items())
    secret = "".join(
        f'"{name}" = "{key.reveal().hex()}"\n' for name, key in identity.signing_keys.items()
    )
    header = f"# agile identity for policy {policy.name}: SECRET signing keys, keep it 0600.\n"
    write_secret_file(identity_path, f"{header}\n[signing_keys]\n{secret}\n[public_keys]\n{public}")
    trust = (
        f"# Public keys of an agile peer (policy {policy.name}): pass to `--trust` on the "
        "other host,\n# or name it in auth.trust_file.\n\n[peer_public_keys]\n"
    )
    try:
        trust_path.write_text(trust + public, encoding="utf-8")
    except OSError as exc:
        raise PeerError(f"{trust_path}: cannot write the trust file ({exc.strerror})") from exc
    return identity_path, trust_path


def _hex_table(path: Path, table: str) -> dict[str, bytes]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PeerError(f"{path}: cannot read the file ({exc.strerror})") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PeerError(f"{path}: not a TOML file ({exc})") from exc
    entries = document.get(table)
    if not isinstance(entries, dict) or not entries:
        raise PeerError(f"{path}: no [{table}] table; make one with `agile keys identity`")
    out = {}
    for name, value in entries.items():
        try:
            out[str(name)] = bytes.fromhex(str(value))
        except ValueError:
            raise PeerError(f"{path}: [{table}] {name} is not hexadecimal") from None
    return out


def read_identity(path: Path) -> dict[str, SecretBytes]:
    """The ``[signing_keys]`` of an identity file."""
    return {name: SecretBytes(key) for name, key in _hex_table(path, "signing_keys").items()}


def read_trust(path: Path) -> dict[str, bytes]:
    """The ``[peer_public_keys]`` of a trust file."""
    return _hex_table(path, "peer_public_keys")


def read_psk(path: Path) -> SecretBytes:
    """A PSK file: hex text (whitespace ignored) or raw bytes."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PeerError(f"{path}: cannot read the PSK file ({exc.strerror})") from exc
    try:
        return SecretBytes(bytes.fromhex(raw.decode("ascii")))
    except (UnicodeDecodeError, ValueError):
        return SecretBytes(raw)


def build_engine(
    policy: Policy,
    *,
    identity: Path | None = None,
    trust: Path | None = None,
    psk: Path | None = None,
    no_qkd: bool = False,
) -> tuple[Engine, str]:
    """An engine for one host of a pair, and a sentence on where its QKD keys come from.

    A simulated QKD link exists inside one process only, so across two hosts it cannot be
    used: a QKD-optional policy then runs without QKD (the fallback is audited); a policy that
    requires QKD needs ``qkd.source = "etsi014"`` (a KME, e.g. ``agile kme serve``).
    """
    allow_missing = no_qkd
    if not policy.uses_qkd:
        note = "none (the policy uses no QKD)"
    elif no_qkd:
        note = "none (--no-qkd): the policy's qkd.required rule decides"
    elif policy.qkd.source == "simulated":
        if policy.qkd.required:
            raise PeerError(
                f"policy {policy.name} requires QKD from a simulated link, which cannot join "
                'two processes: use qkd.source = "etsi014" with a KME (`agile kme serve`)'
            )
        allow_missing = True
        note = (
            "none: a simulated link cannot join two processes, so the QKD-optional policy "
            'falls back without QKD (audited); use qkd.source = "etsi014" for real QKD keys'
        )
    else:
        note = f"{policy.qkd.source}"
    signing_keys: Mapping[str, SecretBytes] | None = None
    peer_keys: Mapping[str, bytes] | None = None
    psk_key: SecretBytes | None = None
    auth = policy.auth
    if auth.method == "psk":
        if psk is not None:
            psk_key = read_psk(psk)
        elif auth.psk_file is None:
            raise PeerError(
                f"policy {policy.name} authenticates with a PSK: pass --psk-file FILE or set "
                "auth.psk_file"
            )
    else:
        if identity is None:
            raise PeerError(
                f"policy {policy.name} authenticates with signatures: pass --identity FILE "
                "(make one with `agile keys identity --policy ... --out NAME`)"
            )
        signing_keys = read_identity(identity)
        if trust is not None:
            peer_keys = read_trust(trust)
        elif auth.trust_file is None and not auth.peer_public_keys:
            raise PeerError(
                f"policy {policy.name} pins no peer keys: pass --trust FILE (the peer's "
                "NAME.trust.toml)"
            )
        for name in auth.signature_algorithms:
            if name not in signing_keys:
                raise PeerError(
                    f"{identity}: no {name} signing key, which policy {policy.name} signs "
                    "with; make an identity for this policy with `agile keys identity`"
                )
            if peer_keys is not None and name not in peer_keys:
                raise PeerError(
                    f"{trust}: no {name} public key, which policy {policy.name} needs from "
                    "the peer; use the trust file made for this policy"
                )
    engine = Engine(
        policy,
        signing_keys=signing_keys,
        peer_public_keys=peer_keys,
        psk=psk_key,
        allow_missing_key_source=allow_missing,
    )
    return engine, note


# -- the connection ---------------------------------------------------------------------------


def parse_address(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) into a pair; port 0 picks a free port (listen)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise PeerError(f"{option} {text!r}: write HOST:PORT, e.g. 127.0.0.1:7443")
    return host, int(port)


Role = Literal["initiator", "responder"]


class PeerLink:
    """The connection to the other host: ``listen`` (responder) or ``connect`` (initiator)."""

    def __init__(
        self,
        engine: Engine,
        *,
        listen: tuple[str, int] | None = None,
        connect: tuple[str, int] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if (listen is None) == (connect is None):
            raise PeerError("give exactly one of --listen HOST:PORT or --connect HOST:PORT")
        self.engine = engine
        self.timeout_s = timeout_s
        self.role: Role = "responder" if listen is not None else "initiator"
        self._connect = connect
        self._listener: socket.socket | None = None
        if listen is not None:
            try:
                infos = socket.getaddrinfo(
                    listen[0], listen[1], type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
                family, _, _, _, address = infos[0]
                listener = socket.socket(family, socket.SOCK_STREAM)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listener.bind(address)
                listener.listen(4)
            except OSError as exc:
                raise PeerError(f"--listen {listen[0]}:{listen[1]}: {exc.strerror or exc}") from exc
            self._listener = listener
            bound = listener.getsockname()
            self._address = f"{bound[0]}:{bound[1]}"
        else:
            assert connect is not None
            self._address = f"{connect[0]}:{connect[1]}"

    @property
    def address(self) -> str:
        """The bound address (``--listen``) or the peer's (``--connect``), as HOST:PORT."""
        return self._address

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def handshake(self, *, wait_s: float | None = None) -> HybridSession:
        """One handshake. The responder waits up to ``wait_s`` for a connection (raises
        ``TimeoutError`` when none came); the initiator retries a refused connection until
        ``wait_s`` has passed (the other host may still be starting)."""
        if self._listener is not None:
            self._listener.settimeout(wait_s)
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                raise  # no connection yet: the caller decides whether to wait again
            except OSError as exc:
                raise HandshakeError(f"accepting a connection failed: {exc}") from exc
            with connection:
                return handshake_over_socket(
                    connection, self.engine.responder(), timeout=self.timeout_s
                )
        assert self._connect is not None
        deadline = time.monotonic() + (wait_s or 0.0)
        while True:
            try:
                sock = socket.create_connection(self._connect, timeout=self.timeout_s)
            except OSError as exc:
                retry = exc.errno in {errno.ECONNREFUSED, errno.ECONNRESET}
                if retry and time.monotonic() + 0.2 < deadline:
                    time.sleep(0.2)
                    continue
                raise HandshakeError(
                    f"cannot connect to {self.address}: {exc.strerror or exc}"
                ) from exc
            with sock:
                return handshake_over_socket(sock, self.engine.initiator(), timeout=self.timeout_s)


# -- the daemon -------------------------------------------------------------------------------


def _log(event: Event) -> None:
    failure = event["event"] in {"handshake_failed", "fail_closed"}
    level = logging.WARNING if failure else logging.INFO
    details = " ".join(f"{k}={v}" for k, v in event.items() if k not in {"event", "keys"})
    logger.log(level, f"{event['event']} {details}".strip(), extra={"peer_event": event})


def run_daemon(
    link: PeerLink,
    ring: KeyRing,
    *,
    interval_s: float,
    report: Callable[[Event], None],
    stop: threading.Event,
    rounds: int | None = None,
) -> None:
    """Rotate keys until ``stop`` is set (or after ``rounds`` rotations).

    The initiator starts a handshake every ``interval_s`` (after a failure: again after
    ``min(interval_s, 10 s)``); the responder installs the keys of every handshake that
    completes. Both check grace periods and lifetimes between handshakes.
    """

    def emit(event: Event) -> None:
        _log(event)
        report(event)

    adopted = ring.adopt_existing(link.engine.policy.session.lifetime_s)
    if adopted is not None:
        emit(adopted)
    try:
        _rotate(link, ring, interval_s=interval_s, emit=emit, stop=stop, rounds=rounds)
    finally:
        ring.discard_previous()


def _rotate(
    link: PeerLink,
    ring: KeyRing,
    *,
    interval_s: float,
    emit: Callable[[Event], None],
    stop: threading.Event,
    rounds: int | None,
) -> None:
    last_failure: str | None = None
    next_attempt = time.monotonic()
    while not stop.is_set():
        if rounds is not None and ring.rotations >= rounds:
            return
        for event in ring.tick(last_failure):
            emit(event)
        now = time.monotonic()
        deadline = ring.next_deadline()
        wake = [1.0]
        if deadline is not None:
            wake.append(max(0.0, deadline - now))
        try:
            if link.role == "responder":
                try:
                    session = link.handshake(wait_s=max(0.01, min(wake)))
                except TimeoutError:
                    continue
            else:
                wake.append(max(0.0, next_attempt - now))
                if now < next_attempt:
                    stop.wait(min(wake))
                    continue
                next_attempt = now + interval_s
                session = link.handshake(wait_s=0)
        except AgileError as exc:
            last_failure = str(exc)
            if link.role == "initiator":
                next_attempt = time.monotonic() + min(interval_s, MAX_RETRY_S)
            emit({"event": "handshake_failed", "reason": last_failure, "closed": ring.closed})
            continue
        last_failure = None
        emit(ring.install(session))


def install_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set ``stop``; returns a function that restores the old handlers."""
    import signal

    def handler(signum: int, frame: object) -> None:
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, previous in old.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)

    return restore


__all__ = [
    "DEFAULT_IDENTITY",
    "PREVIOUS_SUFFIX",
    "Event",
    "KeyRing",
    "PeerError",
    "PeerLink",
    "Sink",
    "build_engine",
    "export_key_id",
    "install_stop_signals",
    "parse_address",
    "parse_sink",
    "read_identity",
    "read_psk",
    "read_trust",
    "run_daemon",
    "write_identity",
]
