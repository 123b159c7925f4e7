"""The KME's HTTP/1.1 layer: the sans-I/O request parser, and the server over real mutual TLS."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd.delivery.etsi014 import client_ssl_context
from qkd.delivery.etsi014.server import (
    MAX_BODY,
    MAX_HEAD,
    HttpError,
    HttpsServer,
    Request,
    RequestParser,
    encode_response,
    server_ssl_context,
    start_server,
)

POST = b"POST /api/v1/keys/sae-b/enc_keys HTTP/1.1\r\nHost: kme\r\n"


def _parse_all(data: bytes) -> list[tuple[str, str, bytes, bool]]:
    parser = RequestParser()
    parser.feed(data)
    found = []
    while (request := parser.next_request()) is not None:
        head, body = request
        found.append((head.method, head.target, body, head.keep_alive))
    return found


def test_a_request_with_a_body_and_pipelined_requests() -> None:
    data = (
        POST + b'Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{"number":1}'
        b"GET /api/v1/keys/sae-b/status HTTP/1.1\r\nHost: kme\r\nConnection: close\r\n\r\n"
    )
    assert _parse_all(data) == [
        ("POST", "/api/v1/keys/sae-b/enc_keys", b'{"number":1}', True),
        ("GET", "/api/v1/keys/sae-b/status", b"", False),
    ]


def test_bytes_arriving_one_at_a_time_give_the_same_request() -> None:
    data = POST + b'Content-Length: 12\r\n\r\n{"number":1}'
    parser = RequestParser()
    for i in range(len(data) - 1):
        parser.feed(data[i : i + 1])
        assert parser.next_request() is None
    parser.feed(data[-1:])
    request = parser.next_request()
    assert request is not None
    assert request[1] == b'{"number":1}'
    assert not parser.in_request


def test_chunked_bodies_with_extensions_and_trailers() -> None:
    data = (
        POST + b"Transfer-Encoding: chunked\r\n\r\n"
        b'5;ext=1\r\n{"num\r\n7\r\nber":1}\r\n0\r\nX-Trailer: yes\r\n\r\n'
    )
    assert _parse_all(data)[0][2] == b'{"number":1}'


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        (b"1.1", b"", True),
        (b"1.1", b"Connection: close\r\n", False),
        (b"1.1", b"Connection: Keep-Alive, Close\r\n", False),
        (b"1.0", b"", False),
        (b"1.0", b"Connection: keep-alive\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection_header(
    version: bytes, connection: bytes, keep_alive: bool
) -> None:
    data = b"GET / HTTP/" + version + b"\r\nHost: kme\r\n" + connection + b"\r\n"
    assert _parse_all(data)[0][3] is keep_alive


MALFORMED = [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),  # space before the colon
    (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),  # obsolete line folding
    (b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),  # bare LF
    (POST + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    (POST + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (POST + b"Content-Length: -1\r\n\r\n", 400),
    (POST + b"Content-Length: +1\r\n\r\n", 400),
    (POST + b"Content-Length: 0x10\r\n\r\n", 400),
    (POST + b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1), 413),
    (POST + b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    (POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (POST + b"Expect: the-unexpected\r\n\r\n", 417),
    (POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (POST + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400),
    (POST + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 1), 413),
    (b"GET /" + b"a" * MAX_HEAD + b" HTTP/1.1\r\n", 431),
    # A small body in so many chunks that the framing outweighs it.
    (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\nx\r\n" * 30_000, 413),
]


@pytest.mark.parametrize(("data", "status"), MALFORMED)
def test_malformed_requests_are_refused_with_the_right_status(data: bytes, status: int) -> None:
    parser = RequestParser()
    parser.feed(data)
    with pytest.raises(HttpError) as refused:
        _drain(parser)
    assert refused.value.status == status


def _drain(parser: RequestParser) -> None:
    while parser.next_request() is not None:
        pass


def test_a_refused_content_length_says_how_much_body_is_still_coming() -> None:
    parser = RequestParser()
    parser.feed(POST + b"Content-Length: 200000\r\n\r\n" + b"x" * 100)
    with pytest.raises(HttpError) as refused:
        parser.next_request()
    assert refused.value.status == 413
    assert refused.value.unread == 200_000 - 100


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_the_parser_raises_only_http_error(data: bytes, step: int) -> None:
    parser = RequestParser()
    status = 0
    try:
        for i in range(0, len(data), step):
            parser.feed(data[i : i + step])
            _drain(parser)
    except HttpError as exc:
        status = exc.status
    assert status in (0, 400, 413, 417, 431, 501, 505)


def test_responses_are_json_with_length_and_no_store() -> None:
    response = encode_response(404, {"message": "not found"}, close=True)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 404 Not Found"
    assert b"Content-Length: %d" % len(body) in head
    assert b"Cache-Control: no-store" in head
    assert b"Connection: close" in head
    assert json.loads(body) == {"message": "not found"}
    assert encode_response(405, {"message": "x"}, head_only=True).endswith(b"\r\n\r\n")


# ---------------------------------------------------------------- over mutual TLS


class _Echo:
    """A real server whose handler echoes the request (and can be slowed down)."""

    def __init__(self, certs: Path, idle_timeout: float) -> None:
        self.delay = 0.0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def handle(request: Request) -> tuple[int, dict[str, Any]]:
            if self.delay:
                await asyncio.sleep(self.delay)
            return 200, {
                "method": request.method,
                "target": request.target,
                "body": request.body.decode("latin-1"),
                "sae": request.sae_id,
            }

        async def main() -> None:
            context = server_ssl_context(certs / "kme-a.pem", certs / "kme-a.key", certs / "ca.pem")
            self.server: HttpsServer = await start_server(
                handle, host="127.0.0.1", port=0, ssl_context=context, idle_timeout=idle_timeout
            )
            self.stop = asyncio.Event()
            ready.set()
            await self.stop.wait()
            await self.server.close(grace=1.0)

        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(main()))
        self.thread.start()
        assert ready.wait(10)
        self.port = self.server.address[1]
        self.context = client_ssl_context(
            certs / "sae-a.pem", certs / "sae-a.key", certs / "ca.pem"
        )

    def connect(self) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        return self.context.wrap_socket(raw, server_hostname="127.0.0.1")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def echo(certs: Path) -> Iterator[_Echo]:
    server = _Echo(certs, idle_timeout=0.5)
    yield server
    server.close()


def _read_response(
    tls: ssl.SSLSocket, buffer: bytearray, *, to_head: bool = False
) -> tuple[int, bytes, bytes]:
    """(status, head, body) of the next response; leftover bytes stay in ``buffer``.
    An answer to HEAD (``to_head``) has no body whatever its Content-Length says."""
    while b"\r\n\r\n" not in buffer:
        data = tls.recv(65536)
        assert data, "the server closed the connection"
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length" and not to_head:
            length = int(value)
    while len(buffer) < end + 4 + length:
        buffer += tls.recv(65536)
    body = bytes(buffer[end + 4 : end + 4 + length])
    del buffer[: end + 4 + length]
    return int(head.split(b" ")[1]), head, body


def _closed(tls: ssl.SSLSocket) -> bool:
    try:
        return tls.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True


def test_pipelined_requests_are_answered_in_order(echo: _Echo) -> None:
    with echo.connect() as tls:
        tls.sendall(
            b"".join(
                b"POST /n%d HTTP/1.1\r\nHost: kme\r\nContent-Length: 1\r\n\r\n%d" % (i, i)
                for i in range(5)
            )
        )
        buffer = bytearray()
        for i in range(5):
            status, _, body = _read_response(tls, buffer)
            assert status == 200
            assert json.loads(body) == {
                "method": "POST",
                "target": f"/n{i}",
                "body": str(i),
                "sae": "sae-a",
            }


def test_chunked_and_expect_continue_bodies_reach_the_handler(echo: _Echo) -> None:
    with echo.connect() as tls:
        buffer = bytearray()
        tls.sendall(b"POST /c HTTP/1.1\r\nHost: kme\r\nTransfer-Encoding: chunked\r\n\r\n")
        tls.sendall(b"3\r\nabc\r\n")
        tls.sendall(b"0\r\n\r\n")
        assert json.loads(_read_response(tls, buffer)[2])["body"] == "abc"
        tls.sendall(b"POST /e HTTP/1.1\r\nHost: kme\r\nExpect: 100-continue\r\n")
        tls.sendall(b"Content-Length: 3\r\n\r\n")
        assert _read_response(tls, buffer)[0] == 100
        tls.sendall(b"xyz")
        assert json.loads(_read_response(tls, buffer)[2])["body"] == "xyz"


def test_connection_close_and_head(echo: _Echo) -> None:
    with echo.connect() as tls:
        buffer = bytearray()
        tls.sendall(b"HEAD /h HTTP/1.1\r\nHost: kme\r\n\r\n")
        status, head, _ = _read_response(tls, buffer, to_head=True)
        assert status == 200
        assert b"Content-Length: " in head  # of the answer a GET would get
        tls.sendall(b"GET /x HTTP/1.1\r\nHost: kme\r\nConnection: close\r\n\r\n")
        status, head, _ = _read_response(tls, buffer)
        assert status == 200
        assert b"Connection: close" in head
        assert not buffer
        assert _closed(tls)


def test_a_malformed_request_gets_an_error_body_and_a_closed_connection(echo: _Echo) -> None:
    with echo.connect() as tls:
        buffer = bytearray()
        tls.sendall(b"GET / HTTP/1.1\r\nHost: kme\r\nHost: other\r\n\r\n")
        status, head, body = _read_response(tls, buffer)
        assert status == 400
        assert b"Connection: close" in head
        assert "Host" in json.loads(body)["message"]
        assert _closed(tls)


def test_a_too_large_body_is_refused_and_the_client_reads_the_answer(echo: _Echo) -> None:
    with echo.connect() as tls:
        tls.sendall(b"POST / HTTP/1.1\r\nHost: kme\r\nContent-Length: 200000\r\n\r\n")
        tls.sendall(b"x" * 200_000)
        status, _, body = _read_response(tls, bytearray())
        assert status == 413
        assert "too large" in json.loads(body)["message"]


def test_idle_and_stalled_connections_are_closed(echo: _Echo) -> None:
    with echo.connect() as idle, echo.connect() as busy:
        # The handler takes longer than the idle timeout: a request in progress is not idle.
        echo.delay = 0.8
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: kme\r\n\r\n")
        begin = time.monotonic()
        assert _read_response(busy, bytearray())[0] == 200
        assert _closed(idle)
        assert time.monotonic() - begin < 3.0


def test_close_answers_the_request_in_progress(echo: _Echo) -> None:
    with echo.connect() as tls:
        echo.delay = 0.3
        tls.sendall(b"GET /last HTTP/1.1\r\nHost: kme\r\n\r\n")
        time.sleep(0.1)
        echo.loop.call_soon_threadsafe(echo.stop.set)
        status, head, _ = _read_response(tls, bytearray())
        assert status == 200
        assert b"Connection: close" in head
        assert _closed(tls)
