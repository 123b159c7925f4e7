"""``agile tls``: TLS 1.3 with QKD keys as PSKs and a hybrid group, like stunnel.

::

    agile tls serve   --listen HOST:PORT (--echo | --forward HOST:PORT) [--policy P]
                      (--psk-secrets FILE | --kme URL --cert C --key K --ca CA --peer-sae ID)
                      [--tls-cert CHAIN --tls-key KEY]
    agile tls connect HOST:PORT [--listen HOST:PORT] [--policy P]
                      (--psk-secrets FILE [--psk-identity ID] | --kme URL ... --peer-sae ID)
                      [--tls-ca FILE --server-name NAME]

Without ``--psk-secrets`` or ``--kme``, QKD keys come from the policy's ``[qkd.etsi014]``
section. ``--tls-*`` configure the certificate fallback of a policy whose QKD is optional.

``serve --forward`` terminates TLS in front of a plain TCP service; ``connect --listen``
accepts plain TCP locally and carries it over TLS; ``connect`` alone pipes stdin and stdout,
like ``openssl s_client``. Without ``--policy`` the built-in default policy applies, which
insists on a post-quantum group. One line per connection goes to stderr (peer, group, key ID,
bytes; never key material), or one JSON event per line on stdout with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from agile import AgileError
from agile.cli._output import EXIT_OK, EXIT_USAGE, fail

DEFAULT_POLICY = "hybrid-default-latest"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tls", help="TLS 1.3 keyed by QKD PSKs over a hybrid group (serve, connect)"
    )
    commands = parser.add_subparsers(dest="tls_command", metavar="SUBCOMMAND", required=True)

    serve = commands.add_parser("serve", help="accept TLS and echo or forward to plain TCP")
    serve.add_argument("--listen", required=True, metavar="HOST:PORT")
    action = serve.add_mutually_exclusive_group(required=True)
    action.add_argument("--echo", action="store_true", help="echo what each client sends")
    action.add_argument("--forward", metavar="HOST:PORT", help="a plain TCP service behind")
    _common(serve)
    serve.set_defaults(handler=run_serve)

    connect = commands.add_parser("connect", help="open TLS to a server (stdin/stdout or --listen)")
    connect.add_argument("target", metavar="HOST:PORT")
    connect.add_argument("--listen", metavar="HOST:PORT", help="accept plain TCP here instead")
    connect.add_argument("--psk-identity", metavar="ID", help="which identity of --psk-secrets")
    _common(connect)
    connect.set_defaults(handler=run_connect)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default=DEFAULT_POLICY, metavar="NAME|FILE")
    parser.add_argument("--psk-secrets", type=Path, metavar="FILE", help="stunnel PSKsecrets")
    parser.add_argument("--kme", metavar="URL", help="ETSI GS QKD 014 KME base URL")
    parser.add_argument("--cert", type=Path, metavar="FILE", help="SAE certificate (with --kme)")
    parser.add_argument("--key", type=Path, metavar="FILE", help="SAE private key (with --kme)")
    parser.add_argument("--ca", type=Path, metavar="FILE", help="KME CA (with --kme)")
    parser.add_argument("--peer-sae", metavar="ID", help="the other end's SAE ID (with --kme)")
    fallback = parser.add_argument_group(
        "certificate fallback (a policy whose QKD is optional, when no QKD key can be had)"
    )
    fallback.add_argument("--tls-cert", type=Path, metavar="FILE", help="server: PEM chain")
    fallback.add_argument("--tls-key", type=Path, metavar="FILE", help="server: its key")
    fallback.add_argument("--tls-ca", type=Path, metavar="FILE", help="client: trust anchors")
    fallback.add_argument("--server-name", metavar="NAME", help="client: the name to verify")
    parser.add_argument("--json", action="store_true", help="one JSON event per line on stdout")


def _address(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        fail(f"{option} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8443", EXIT_USAGE)
    return host.strip("[]"), int(port)


def _context(args: argparse.Namespace, role: str) -> Any:
    from agile.tls import PskSecrets, TlsContext

    kme_options = (args.kme, args.cert, args.key, args.ca, args.peer_sae)
    if args.psk_secrets is not None and args.kme is not None:
        fail("give one PSK source: --psk-secrets FILE or --kme URL, not both", EXIT_USAGE)
    fallback: dict[str, Any] = {}
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            fail("--tls-cert and --tls-key go together", EXIT_USAGE)
        fallback["certificate"] = (args.tls_cert, args.tls_key)
    if args.tls_ca or args.server_name:
        fallback.update(ca=args.tls_ca, server_name=args.server_name)
    if args.psk_secrets is not None:
        secrets = PskSecrets.load(args.psk_secrets)
        identity = getattr(args, "psk_identity", None)
        if role == "client":
            return TlsContext.client(args.policy, psk_secrets=secrets, psk_identity=identity)
        return TlsContext.server(args.policy, psk_secrets=secrets)
    source = None  # without --kme: the policy's [qkd.etsi014] section, if it has one
    if args.kme is not None:
        if any(option is None for option in kme_options):
            fail("--kme needs --cert, --key, --ca and --peer-sae", EXIT_USAGE)
        from qkd import Etsi014Client

        source = Etsi014Client(
            args.kme, peer_sae_id=args.peer_sae, cert=args.cert, key=args.key, ca=args.ca
        )
    return TlsContext(role, args.policy, key_source=source, **fallback)


class _Log:
    """One line per connection on stderr, or JSON events (on stdout, unless it carries data)."""

    def __init__(self, as_json: bool, *, stdout_is_data: bool = False) -> None:
        self.as_json = as_json
        self.stream = sys.stderr if stdout_is_data or not as_json else sys.stdout

    def event(self, event: str, **fields: Any) -> None:
        if self.as_json:
            line = json.dumps({"event": event, **fields})
        else:
            text = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
            line = f"agile tls: {event} {text}"
        self.stream.write(line + "\n")
        self.stream.flush()


async def _pipe(read: Any, write: Any, counter: list[int]) -> None:
    while True:
        data = await read()
        if not data:
            return
        counter[0] += len(data)
        await write(data)


async def _splice(
    stream: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[int, int]:
    """Carry bytes both ways between a TLS stream and a plain one; (to plain, to TLS)."""
    to_plain, to_tls = [0], [0]

    async def write_plain(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def read_plain() -> bytes:
        return await reader.read(65536)

    tasks = [
        asyncio.create_task(_pipe(stream.read, write_plain, to_plain)),
        asyncio.create_task(_pipe(read_plain, stream.write, to_tls)),
    ]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    writer.close()
    for task in done:
        error = task.exception()
        if error is not None:
            raise error
    return to_plain[0], to_tls[0]


def _info_fields(stream: Any) -> dict[str, Any]:
    info = stream.info
    return {
        "group": info.group,
        "cipher": info.cipher_suite,
        "psk_identity": info.psk_identity,
        "qkd_key_id": info.qkd_key_id,
        "policy": info.policy,
    }


async def _until_stopped(server: asyncio.Server, log: _Log, address: tuple[str, int]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()
    log.event("listening", address=f"{bound[0]}:{bound[1]}", requested=f"{address[0]}:{address[1]}")
    async with server:
        await stop.wait()
    log.event("stopped")


def run_serve(args: argparse.Namespace) -> int:
    from agile.tls import TlsError
    from agile.tls.sockets import TlsStream, start_server

    listen = _address(args.listen, "--listen")
    forward = _address(args.forward, "--forward") if args.forward else None
    context = _context(args, "server")
    log = _Log(args.json)

    async def handle(stream: TlsStream) -> None:
        started = time.monotonic()
        peer = stream.peername
        counts = [0, 0]  # received, sent
        ended = "closed"
        try:
            if forward is None:
                while data := await stream.read():
                    counts[0] += len(data)
                    await stream.write(data)
                    counts[1] += len(data)
            else:
                reader, writer = await asyncio.open_connection(*forward)
                counts[0], counts[1] = await _splice(stream, reader, writer)
        except (TlsError, OSError) as exc:
            ended = f"ended abruptly: {exc}"
        log.event(
            "connection",
            peer=peer,
            **_info_fields(stream),
            bytes_in=counts[0],
            bytes_out=counts[1],
            seconds=round(time.monotonic() - started, 3),
            end=ended,
        )

    def refused(exc: BaseException, peer: str) -> None:
        reason = str(exc) if isinstance(exc, TlsError) else f"{type(exc).__name__}: {exc}"
        log.event("refused", peer=peer, reason=reason)

    async def main() -> None:
        server = await start_server(handle, listen[0], listen[1], context, on_error=refused)
        await _until_stopped(server, log, listen)

    asyncio.run(main())
    return EXIT_OK


def run_connect(args: argparse.Namespace) -> int:
    from agile.tls.sockets import open_connection

    target = _address(args.target, "HOST:PORT")
    listen = _address(args.listen, "--listen") if args.listen else None
    context = _context(args, "client")
    log = _Log(args.json, stdout_is_data=listen is None)

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await open_connection(target[0], target[1], context)
        except Exception as exc:  # one refused tunnel does not stop the listener
            log.event("refused", reason=str(exc))
            writer.close()
            return
        counts, ended = (0, 0), "closed"
        try:
            counts = await _splice(stream, reader, writer)
        except (AgileError, OSError) as exc:
            ended = f"ended abruptly: {exc}"
        await stream.close()
        log.event(
            "connection", **_info_fields(stream), bytes_in=counts[0], bytes_out=counts[1], end=ended
        )

    async def pipe_stdio() -> None:
        stream = await open_connection(target[0], target[1], context)
        log.event("connected", **_info_fields(stream))
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

        async def read_stdin() -> bytes:
            return await stdin.read(65536)

        async def write_stdout(data: bytes) -> None:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()

        async def send_stdin() -> None:
            await _pipe(read_stdin, stream.write, sent)
            await stream.close_write()  # end of stdin: the server may still answer

        sent, received = [0], [0]
        outgoing = asyncio.create_task(send_stdin())
        await _pipe(stream.read, write_stdout, received)
        outgoing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await outgoing
        await stream.close()
        log.event("closed", bytes_in=received[0], bytes_out=sent[0])

    async def main() -> None:
        if listen is None:
            await pipe_stdio()
            return
        server = await asyncio.start_server(tunnel, listen[0], listen[1])
        await _until_stopped(server, log, listen)

    asyncio.run(main())
    return EXIT_OK
