"""Thin I/O adapters over :class:`agile.tls.TlsConnection`: blocking sockets and asyncio.

Blocking::

    with socket.create_connection(("127.0.0.1", 8443)) as raw:
        tls = TlsSocket.client(raw, client_context)     # runs the handshake
        tls.sendall(b"ping")
        print(tls.info.group, tls.recv())

asyncio::

    stream = await open_connection("127.0.0.1", 8443, client_context)
    await stream.write(b"ping")
    print(await stream.read())
    server = await start_server(handler, "127.0.0.1", 0, server_context)

The handshake steps of the asyncio adapter run in the default executor: a server's PSK
callback fetches the QKD key from the KME (a blocking HTTPS request) inside OpenSSL.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from agile.secret import SecretBytes
from agile.tls.connection import ConnectionInfo, TlsConnection, TlsContext, TlsError

_RECV = 65536


class _Adapter:
    """What both adapters pass through from their :class:`TlsConnection`."""

    connection: TlsConnection

    @property
    def info(self) -> ConnectionInfo:
        return self.connection.info

    def export_keying_material(
        self, label: str | bytes, context: bytes = b"", length: int = 32
    ) -> SecretBytes:
        return self.connection.export_keying_material(label, context, length)


class TlsSocket(_Adapter):
    """A blocking TLS 1.3 connection over a connected socket, after its handshake."""

    def __init__(self, sock: socket.socket, connection: TlsConnection) -> None:
        self.socket = sock
        self.connection = connection

    @classmethod
    def client(cls, sock: socket.socket, context: TlsContext) -> TlsSocket:
        connection = context.connection()
        sock.sendall(connection.start())
        return cls._handshake(sock, connection)

    @classmethod
    def server(cls, sock: socket.socket, context: TlsContext) -> TlsSocket:
        return cls._handshake(sock, context.connection())

    @classmethod
    def _handshake(cls, sock: socket.socket, connection: TlsConnection) -> TlsSocket:
        try:
            while not connection.handshake_complete:
                data = sock.recv(_RECV)
                try:
                    connection.receive_data(data)
                finally:
                    # Alerts too: a refused peer learns why before the socket closes.
                    _send_quietly(sock, connection.data_to_send())
        except OSError as exc:
            raise TlsError(f"the transport failed during the handshake: {exc}") from exc
        return cls(sock, connection)

    def sendall(self, data: bytes) -> None:
        self.connection.send(data)
        self.socket.sendall(self.connection.data_to_send())

    def recv(self) -> bytes:
        """Application data; ``b""`` once the peer has closed."""
        while True:
            data = self.connection.read()
            if data or self.connection.closed:
                return data
            chunk = self.socket.recv(_RECV)
            self.connection.receive_data(chunk)
            _send_quietly(self.socket, self.connection.data_to_send())

    def close(self) -> None:
        _send_quietly(self.socket, self.connection.close())
        self.socket.close()

    def __enter__(self) -> TlsSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    if data:
        with contextlib.suppress(OSError):  # the peer is gone; the next read tells the caller
            sock.sendall(data)


class TlsStream(_Adapter):
    """An asyncio TLS 1.3 connection, after its handshake."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: TlsConnection
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.connection = connection
        self._closed_write = False

    @property
    def peername(self) -> str:
        """The peer's address, ``HOST:PORT``."""
        peer = self._writer.get_extra_info("peername")
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def write(self, data: bytes) -> None:
        self.connection.send(data)
        self._writer.write(self.connection.data_to_send())
        await self._writer.drain()

    async def read(self) -> bytes:
        """Application data; ``b""`` once the peer has closed."""
        while True:
            data = self.connection.read()
            if data or self.connection.closed:
                return data
            chunk = await self._reader.read(_RECV)
            self.connection.receive_data(chunk)
            self._writer.write(self.connection.data_to_send())

    async def close_write(self) -> None:
        """Send close_notify and keep reading: TLS 1.3 lets the peer go on sending."""
        if not self._closed_write:
            self._closed_write = True
            self._writer.write(self.connection.close())
            await self._writer.drain()

    async def close(self) -> None:
        if not self._closed_write:
            self._closed_write = True
            self._writer.write(self.connection.close())
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: TlsConnection
) -> TlsStream:
    loop = asyncio.get_running_loop()
    while not connection.handshake_complete:
        data = await reader.read(_RECV)
        try:
            await loop.run_in_executor(None, connection.receive_data, data)
        finally:
            writer.write(connection.data_to_send())
        await writer.drain()
    return TlsStream(reader, writer, connection)


async def open_connection(host: str, port: int, context: TlsContext) -> TlsStream:
    """Connect to ``host:port`` and run the handshake (the client's side)."""
    reader, writer = await asyncio.open_connection(host, port)
    connection = context.connection()
    try:
        hello = await asyncio.get_running_loop().run_in_executor(None, connection.start)
        writer.write(hello)
        return await _handshake(reader, writer, connection)
    except BaseException:
        writer.close()
        raise


async def start_server(
    handler: Callable[[TlsStream], Awaitable[None]],
    host: str,
    port: int,
    context: TlsContext,
    *,
    on_error: Callable[[BaseException, str], Any] | None = None,
) -> asyncio.Server:
    """Serve TLS 1.3 on ``host:port``; ``handler`` gets each connection after its handshake.

    A failed handshake closes that connection (it is an audit event) and goes to
    ``on_error(exc, peer)`` when given; the server goes on.
    """

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await _handshake(reader, writer, context.connection())
        except (TlsError, OSError, ConnectionError) as exc:
            if on_error is not None:
                peer = writer.get_extra_info("peername")
                on_error(exc, f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer))
            writer.close()
            return
        try:
            await handler(stream)
        finally:
            await stream.close()

    return await asyncio.start_server(serve, host, port)
