"""HTTPS/1.1 server for ETSI GS QKD 014: asyncio + ssl + h11, client certificates required.

Why this stack: the SAE's identity is the subject of its TLS client certificate, and several
ASGI servers do not hand the verified peer certificate to the application. Here the
application gets it straight from the TLS transport (``SSLObject.getpeercert()``), after the
handshake verified it against the configured CA; there is no way to reach the handler without
a valid client certificate. h11 parses HTTP strictly and supports keep-alive.

The server knows nothing about keys: it calls ``handler(Request) -> (status, JSON object)``.
Bounds: request heads up to 16 KiB, bodies up to 64 KiB, 10 s to send a request once begun,
idle keep-alive connections closed after ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

import h11

__all__ = [
    "Handler",
    "HttpsServer",
    "Request",
    "peer_identity",
    "server_ssl_context",
    "start_server",
]

_log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    body: bytes
    sae_id: str | None


Handler = Callable[[Request], Awaitable[tuple[int, dict[str, Any]]]]


def server_ssl_context(
    cert: str | PathLike[str], key: str | PathLike[str], ca: str | PathLike[str]
) -> ssl.SSLContext:
    """TLS server context that requires a client certificate issued by ``ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    context.load_verify_locations(cafile=ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_identity(peercert: Any) -> str | None:
    """The SAE ID in a verified peer certificate: its subject commonName."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and isinstance(value, str) and value:
                return value
    return None


def _encode(status: int, document: dict[str, Any], conn: h11.Connection) -> bytes:
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    out = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    out += conn.send(h11.Data(data=body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    return out


class _Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: Handler,
        idle_timeout: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.sae_id = peer_identity(writer.get_extra_info("peercert"))

    async def _next_event(self, timeout: float) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(timeout):
                data = await self.reader.read(65536)
            self.conn.receive_data(data)

    async def serve(self) -> None:
        while True:
            try:
                event = await self._next_event(self.idle_timeout)
                if isinstance(event, h11.ConnectionClosed):
                    return
                if not isinstance(event, h11.Request):
                    return
                body = bytearray()
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    while True:
                        part = await self._next_event(REQUEST_TIMEOUT)
                        if isinstance(part, h11.Data):
                            body += part.data
                            if len(body) > MAX_BODY:
                                await self._reply(413, {"message": "request body too large"})
                                return
                        elif isinstance(part, h11.EndOfMessage):
                            break
                        else:
                            return
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                with contextlib.suppress(h11.LocalProtocolError):
                    await self._reply(status, {"message": f"malformed HTTP request: {exc}"})
                return
            except TimeoutError:
                return
            request = Request(
                method=event.method.decode("ascii", "replace"),
                target=event.target.decode("ascii", "replace"),
                body=bytes(body),
                sae_id=self.sae_id,
            )
            try:
                status, document = await self.handler(request)
            except Exception:
                _log.exception("KME handler failed on %s %s", request.method, request.target)
                status, document = 503, {"message": "internal KME error; retry later"}
            await self._reply(status, document)
            if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                return
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _reply(self, status: int, document: dict[str, Any]) -> None:
        self.writer.write(_encode(status, document, self.conn))
        await self.writer.drain()


class HttpsServer:
    """A listening server; :meth:`close` also ends the open keep-alive connections."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening; give requests in progress ``grace`` seconds, then cancel them."""
        if self.server is not None:
            self.server.close()
        # Aborting the transports ends each connection's read loop; the tasks then finish
        # on their own (cancelling them would make asyncio's stream callback log errors).
        for writer in list(self.connections.values()):
            writer.transport.abort()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=grace)
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.wait(list(self.connections))
        if self.server is not None:
            await self.server.wait_closed()


async def start_server(
    handler: Handler,
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    idle_timeout: float = 60.0,
) -> HttpsServer:
    """Listen on ``host:port`` with mutual TLS; ``port=0`` picks a free port."""
    https = HttpsServer()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        https.connections[task] = writer
        connection = _Connection(reader, writer, handler, idle_timeout)
        try:
            await connection.serve()
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            # Only close() cancels a connection; ending quietly keeps asyncio's stream
            # callback from logging the cancellation as an error.
            pass
        finally:
            https.connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    https.server = await asyncio.start_server(
        on_connection, host=host, port=port, ssl=ssl_context, ssl_handshake_timeout=10.0
    )
    return https
