"""HTTPS/1.1 server for ETSI GS QKD 014: asyncio + ssl, client certificates required (hazmat).

Why this stack: the SAE's identity is the subject of its TLS client certificate, and several
ASGI servers do not hand the verified peer certificate to the application. Here the
application gets it straight from the TLS transport (``SSLObject.getpeercert()``), after the
handshake verified it against the configured CA; there is no way to reach the handler without
a valid client certificate.

HTTP/1.1 is parsed by :class:`RequestParser`, a small sans-I/O parser in this module, strict
about the subset of RFC 9112 an ETSI 014 client needs: origin- or absolute-form targets,
bodies framed by ``Content-Length`` or ``chunked``, keep-alive, pipelining and
``Expect: 100-continue``. Anything else is refused with the right status (400, 413, 417, 431,
501, 505) and the connection is closed; a request with both ``Content-Length`` and
``Transfer-Encoding``, or two ``Content-Length`` or ``Host`` fields, is refused as a smuggling
attempt. It replaced h11 because h11's general event machinery cost about 55 µs per request,
a fifth of the KME's whole CPU time per enc_keys/dec_keys pair; the connections are
:class:`asyncio.Protocol` objects for the same reason (no stream futures per read).

The server knows nothing about keys: it calls ``handler(Request) -> (status, JSON object)``.
Bounds: request heads up to 16 KiB, bodies up to 64 KiB, 10 s to send a request once begun,
idle keep-alive connections closed after ``idle_timeout`` seconds. One request per connection
is handled at a time; pipelined requests wait in a bounded buffer, and reading stops while the
peer does not read its answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

__all__ = [
    "Handler",
    "HttpError",
    "HttpsServer",
    "Request",
    "RequestParser",
    "TextBody",
    "encode_response",
    "peer_identity",
    "server_ssl_context",
    "start_server",
]

_log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT = 10.0
# A client that sent a too-large Content-Length is still sending its body; reading (and
# dropping) up to this much of it before closing lets the client read the 413 instead of
# meeting a reset connection.
_MAX_DISCARD = 1024 * 1024
_MAX_CHUNKED = 2 * MAX_BODY + MAX_HEAD

_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}

# RFC 9110 5.6.2 token, the request line of RFC 9112 3 (any visible-ASCII target: the handler
# decides what exists), and a field line of RFC 9112 5 without obsolete line folding.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(%s) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])" % _TOKEN)
_FIELD_LINE = re.compile(rb"(%s):[ \t]*((?:[^\x00-\x1f\x7f]|\t)*?)[ \t]*" % _TOKEN)
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,8})(?:[ \t]*;[^\r\n]*)?")
_ENCODE_JSON = json.JSONEncoder(separators=(",", ":")).encode


class HttpError(Exception):
    """A request the server refuses before the handler sees it: ``status`` and why.

    ``unread`` counts body bytes the client announced but has not sent yet (a refused
    ``Content-Length``); reading and dropping them lets the client see the answer.
    """

    def __init__(self, status: int, message: str, *, declared: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.declared = declared
        self.unread = 0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    body: bytes
    sae_id: str | None
    # The organizationalUnitName of the verified client certificate: a network's CA marks
    # KME certificates "KME" and SAE certificates "SAE" (qkd.delivery.kme.certs).
    peer_unit: str | None = None


@dataclass(frozen=True, slots=True)
class TextBody:
    """A non-JSON answer (a Prometheus exposition, say): its content type and bytes."""

    content_type: str
    body: bytes


Handler = Callable[[Request], Awaitable[tuple[int, dict[str, Any] | TextBody]]]


@dataclass(frozen=True, slots=True)
class _Head:
    method: str
    target: str
    keep_alive: bool
    content_length: int
    chunked: bool
    expect_continue: bool


def _parse_head(data: bytes) -> _Head:
    """Parse a request head (request line and fields, without the final blank line)."""
    lines = data.split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise HttpError(400, "malformed HTTP request line")
    method, target, major, minor = match.groups()
    if major != b"1":
        raise HttpError(505, "only HTTP/1.1 (and 1.0) are supported")
    http10 = minor == b"0"
    hosts = 0
    content_length: bytes | None = None
    transfer_encoding: bytes | None = None
    connection = b""
    expect: bytes | None = None
    for line in lines[1:]:
        field = _FIELD_LINE.fullmatch(line)
        if field is None:
            raise HttpError(400, "malformed HTTP header field")
        name = field[1].lower()
        value = field[2]
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            if content_length is not None:
                raise HttpError(400, "more than one Content-Length")
            content_length = value
        elif name == b"transfer-encoding":
            if transfer_encoding is not None:
                raise HttpError(501, "more than one Transfer-Encoding; send Content-Length")
            transfer_encoding = value.lower()
        elif name == b"connection":
            connection += b"," + value.lower()
        elif name == b"expect":
            expect = value.lower()
    if hosts > 1 or (hosts == 0 and not http10):
        raise HttpError(400, "an HTTP/1.1 request needs exactly one Host header")
    if content_length is not None and transfer_encoding is not None:
        raise HttpError(400, "Content-Length and Transfer-Encoding together are not allowed")
    chunked = False
    if transfer_encoding is not None:
        if http10 or transfer_encoding != b"chunked":
            raise HttpError(501, "only the chunked Transfer-Encoding is supported")
        chunked = True
    length = 0
    if content_length is not None:
        if not content_length.isdigit() or len(content_length) > 12:
            raise HttpError(400, "Content-Length is not a decimal number")
        length = int(content_length)
        if length > MAX_BODY:
            raise HttpError(
                413, f"request body too large: at most {MAX_BODY} bytes", declared=length
            )
    tokens = {t.strip() for t in connection.split(b",")}
    keep_alive = b"keep-alive" in tokens if http10 else b"close" not in tokens
    if expect is not None and expect != b"100-continue":
        raise HttpError(417, "only Expect: 100-continue is supported")
    return _Head(
        method=method.decode("ascii"),
        target=target.decode("ascii"),
        keep_alive=keep_alive,
        content_length=length,
        chunked=chunked,
        expect_continue=expect is not None and not http10,
    )


def _decode_chunked(buffer: bytearray) -> tuple[bytes, int] | None:
    """A complete chunked body at the start of ``buffer``: (body, bytes used), or None."""
    body = bytearray()
    at = 0
    while True:
        end = buffer.find(b"\r\n", at, at + 1024)
        if end < 0:
            if len(buffer) - at >= 1024:
                raise HttpError(400, "malformed chunk size line")
            return None
        match = _CHUNK_LINE.fullmatch(buffer, at, end)
        if match is None:
            raise HttpError(400, "malformed chunk size line")
        size = int(match[1], 16)
        at = end + 2
        if size == 0:
            break
        if len(body) + size > MAX_BODY:
            raise HttpError(413, f"request body too large: at most {MAX_BODY} bytes")
        if len(buffer) < at + size + 2:
            return None
        if buffer[at + size : at + size + 2] != b"\r\n":
            raise HttpError(400, "chunk data not followed by CRLF")
        body += buffer[at : at + size]
        at += size + 2
    # Trailer fields are read and dropped (nothing here needs them), up to the blank line.
    while True:
        end = buffer.find(b"\r\n", at, at + MAX_HEAD)
        if end < 0:
            if len(buffer) - at >= MAX_HEAD:
                raise HttpError(431, "chunked trailer too large")
            return None
        if end == at:
            return bytes(body), end + 2
        if _FIELD_LINE.fullmatch(buffer, at, end) is None:
            raise HttpError(400, "malformed trailer field")
        at = end + 2


class RequestParser:
    """Sans-I/O HTTP/1.1 request parser: feed bytes, take complete requests.

    :meth:`next_request` returns ``(head, body)`` once a whole request is buffered, ``None``
    while more bytes are needed, and raises :class:`HttpError` for a request to refuse (the
    connection must then be closed: after a framing error nothing later can be trusted).
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._head: _Head | None = None
        self.continue_due = False

    def feed(self, data: bytes) -> None:
        self.buffer += data

    @property
    def in_request(self) -> bool:
        """Whether part of a request (head or body) has arrived and waits for the rest."""
        return self._head is not None or bool(self.buffer)

    def next_request(self) -> tuple[_Head, bytes] | None:
        buffer = self.buffer
        head = self._head
        if head is None:
            # RFC 9112 2.2: ignore empty lines before a request line.
            while buffer[:2] == b"\r\n":
                del buffer[:2]
            end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    raise HttpError(431, f"request head too large: at most {MAX_HEAD} bytes")
                return None
            try:
                head = _parse_head(bytes(buffer[:end]))
            except HttpError as exc:
                arrived = len(buffer) - end - 4
                exc.unread = max(0, min(exc.declared, _MAX_DISCARD) - arrived)
                raise
            del buffer[: end + 4]
            self._head = head
            self.continue_due = head.expect_continue
        if head.chunked:
            decoded = _decode_chunked(buffer)
            if decoded is None:
                # Chunk framing may take more bytes than the body, but not without bound:
                # tiny chunks would make each re-parse of the buffer costlier.
                if len(buffer) > _MAX_CHUNKED:
                    raise HttpError(413, "chunked body too large or too finely chunked")
                return None
            body, used = decoded
        else:
            used = head.content_length
            if len(buffer) < used:
                return None
            body = bytes(buffer[:used])
        del buffer[:used]
        self._head = None
        self.continue_due = False
        return head, body


def encode_response(
    status: int,
    document: dict[str, Any] | TextBody,
    *,
    close: bool = False,
    head_only: bool = False,
) -> bytes:
    """An HTTP/1.1 response carrying ``document`` as JSON, or a :class:`TextBody` as it is
    (headers only for HEAD)."""
    if isinstance(document, TextBody):
        body, content_type = document.body, document.content_type.encode("ascii")
    else:
        body, content_type = _ENCODE_JSON(document).encode(), b"application/json"
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
        b"Cache-Control: no-store\r\n%s\r\n"
        % (
            status,
            _REASONS.get(status, "Unknown").encode(),
            content_type,
            len(body),
            b"Connection: close\r\n" if close else b"",
        )
    )
    return head if head_only else head + body


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


def peer_identity(peercert: Any, attribute: str = "commonName") -> str | None:
    """The SAE ID in a verified peer certificate: its subject commonName (or ``attribute``)."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for name, value in rdn:
            if name == attribute and isinstance(value, str) and value:
                return value
    return None


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parse requests, run the handler, write the answers."""

    def __init__(self, server: HttpsServer, handler: Handler, idle_timeout: float) -> None:
        self.server = server
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.loop = asyncio.get_running_loop()
        self.parser = RequestParser()
        self.transport: asyncio.Transport | None = None
        self.sae_id: str | None = None
        self.peer_unit: str | None = None
        self.task: asyncio.Task[None] | None = None  # the request being answered
        self.closed = False
        self.paused_reading = False
        self.paused_writing = False
        self.discard = 0  # body bytes still to drop after a 413
        # One timer per connection; moving the deadline is an assignment, not a new handle.
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peercert = transport.get_extra_info("peercert")
        self.sae_id = peer_identity(peercert)
        self.peer_unit = peer_identity(peercert, "organizationalUnitName")
        self.server.connections.add(self)
        if self.server.closing:
            self.close()
            return
        self.deadline = self.loop.time() + self.idle_timeout
        self.timer = self.loop.call_at(self.deadline, self._on_timer)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.discard:
            self.discard -= min(self.discard, len(data))
            if not self.discard:
                self.close()
            return
        if not self.parser.in_request and self.task is None:
            self.deadline = self.loop.time() + REQUEST_TIMEOUT
        self.parser.feed(data)
        self._next()
        # While an answer is pending (or the peer does not read), requests wait in the
        # buffer; past one full request's worth, stop reading until the answer is out.
        busy = self.task is not None or self.paused_writing
        if busy and len(self.parser.buffer) > _MAX_CHUNKED and not self.paused_reading:
            assert self.transport is not None
            self.transport.pause_reading()
            self.paused_reading = True

    def eof_received(self) -> bool | None:
        # TLS has no half-close: the peer is gone, and so is the connection.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self.server.connections.discard(self)
        # A request in progress runs to the end: its transaction may already be committed,
        # and the answer is simply dropped (delivery is at most once).

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._resume_reading()
        self._next()

    def _resume_reading(self) -> None:
        if self.paused_reading and self.transport is not None and not self.closed:
            self.paused_reading = False
            self.transport.resume_reading()

    # the request cycle

    def _next(self) -> None:
        """Start the next buffered request, if it is complete and the peer reads answers."""
        if self.closed or self.paused_writing or self.task is not None:
            return
        try:
            request = self.parser.next_request()
        except HttpError as exc:
            self._refuse(exc)
            return
        if request is None:
            if self.parser.continue_due and self.transport is not None:
                self.parser.continue_due = False
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        self.task = self.loop.create_task(self._answer(*request))

    async def _answer(self, head: _Head, body: bytes) -> None:
        request = Request(
            method=head.method,
            target=head.target,
            body=body,
            sae_id=self.sae_id,
            peer_unit=self.peer_unit,
        )
        try:
            status, document = await self.handler(request)
        except Exception:
            _log.exception("KME handler failed on %s %s", request.method, request.target)
            status, document = 503, {"message": "internal KME error; retry later"}
        self.task = None
        if self.closed or self.transport is None:
            return
        close = not head.keep_alive or self.server.closing
        self.transport.write(
            encode_response(status, document, close=close, head_only=head.method == "HEAD")
        )
        if close:
            self.close()
            return
        self.deadline = self.loop.time() + (
            REQUEST_TIMEOUT if self.parser.in_request else self.idle_timeout
        )
        self._resume_reading()
        self._next()

    def _refuse(self, error: HttpError) -> None:
        if self.transport is None:
            return
        document = {"message": f"malformed HTTP request: {error}"}
        self.transport.write(encode_response(error.status, document, close=True))
        self.parser.buffer.clear()
        # After a too-large Content-Length the client is still sending its body; drop it
        # (up to a bound, within the request deadline) so that it can read the 413.
        if error.unread:
            self.discard = error.unread
            self.deadline = self.loop.time() + REQUEST_TIMEOUT
            self._resume_reading()
            return
        self.close()

    def _on_timer(self) -> None:
        self.timer = None
        if self.closed:
            return
        now = self.loop.time()
        if now >= self.deadline and self.task is None:
            self.close()
            return
        self.timer = self.loop.call_at(max(self.deadline, now + 0.5), self._on_timer)

    def close(self) -> None:
        """Close after the answers written so far are sent."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class HttpsServer:
    """A listening server; :meth:`close` also ends the open keep-alive connections."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()
        self.closing = False

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening; answer the requests in progress (waiting up to ``grace`` seconds,
        then cancelling them) and close every connection."""
        self.closing = True
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            if connection.task is None:
                connection.close()
        busy = [c.task for c in self.connections if c.task is not None]
        if busy:
            await asyncio.wait(busy, timeout=grace)
        # TLS close_notify may wait for the peer; give it a moment, then cut the rest.
        for _ in range(20):
            if not self.connections:
                break
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            if connection.task is not None:
                connection.task.cancel()
            connection.abort()
        tasks = [c.task for c in list(self.connections) if c.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        for _ in range(100):
            if not self.connections:
                break
            await asyncio.sleep(0.01)
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
    loop = asyncio.get_running_loop()
    https.server = await loop.create_server(
        lambda: _Connection(https, handler, idle_timeout),
        host=host,
        port=port,
        ssl=ssl_context,
        ssl_handshake_timeout=10.0,
    )
    return https
