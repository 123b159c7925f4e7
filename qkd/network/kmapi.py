"""A small HTTPS/1.1 client for the inter-KME API: keep-alive mutual TLS, one pool per node.

Why not httpx: a relay hop is one small POST on a hot path, and httpx's layers (anyio,
httpcore, the client's request model) cost several milliseconds of CPU per request, more than
the rest of the hop. This client speaks just what the KMEs' own server
(:mod:`qkd.delivery.etsi014.server`) answers: ``Content-Length`` framed JSON bodies.

A node that runs as several replicas (:mod:`qkd.network.replicas`) has several addresses: new
connections go to them in turn, and one that does not accept a connection is skipped (a
request is sent again elsewhere only when it never reached a server).

Every connection checks, once after its handshake, that the server's certificate names the
expected node as a KME of the network (commonName = node, OU = ``KME``); the TLS layer has
already checked it against the network's CA and the address.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from qkd.delivery.etsi014.server import peer_identity

__all__ = ["KmapiClient", "KmapiError"]

_MAX_HEAD = 16 * 1024
_MAX_BODY = 1024 * 1024


class KmapiError(Exception):
    """The request did not complete (connection, TLS, identity, framing or timeout)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


Address = tuple[str, int]


class KmapiClient:
    """Requests to the nodes of one network; ``addresses`` maps node -> (host, port), or to
    the list of its replicas' addresses."""

    def __init__(
        self,
        context: ssl.SSLContext,
        addresses: Mapping[str, Address | Sequence[Address]],
        *,
        idle: int = 16,
    ) -> None:
        self._context = context
        self._addresses: dict[str, list[Address]] = {}
        for node, value in addresses.items():
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
                self._addresses[node] = [(str(value[0]), value[1])]
            else:
                self._addresses[node] = [(str(h), int(p)) for h, p in value]
        self._turn: dict[str, int] = {}
        self._idle: dict[str, list[_Connection]] = {}
        self._max_idle = idle

    async def _connect(self, node: str) -> _Connection:
        addresses = self._addresses[node]
        first = self._turn.get(node, 0)
        for i in range(len(addresses)):
            host, port = addresses[(first + i) % len(addresses)]
            try:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._context, server_hostname=host
                )
            except OSError:
                if i + 1 == len(addresses):
                    raise
                continue  # a replica that is down: the next one
            self._turn[node] = (first + i + 1) % len(addresses)
            break
        cert = writer.get_extra_info("peercert")
        if peer_identity(cert) != node or peer_identity(cert, "organizationalUnitName") != "KME":
            writer.close()
            raise KmapiError(f"the server at {host}:{port} is not KME {node}")
        return _Connection(reader, writer)

    async def request(
        self, node: str, method: str, path: str, document: Any = None, *, timeout: float = 5.0
    ) -> tuple[int, dict[str, Any]]:
        """Send one request to ``node``; its status and JSON object (``{}`` if none)."""
        body = b"" if document is None else json.dumps(document, separators=(",", ":")).encode()
        host, port = self._addresses[node][0]
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            async with asyncio.timeout(timeout):
                idle = self._idle.get(node)
                if idle:
                    connection = idle.pop()
                    try:
                        return await self._exchange(node, connection, head + body)
                    except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
                        # A kept-alive connection the peer closed (it restarted, or timed the
                        # connection out). Sending again is safe: a relay message the peer did
                        # process is refused the second time (its link key is used).
                        pass
                connection = await self._connect(node)
                return await self._exchange(node, connection, head + body)
        except TimeoutError as exc:
            raise KmapiError(f"{node}: no answer within {timeout} s") from exc
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise KmapiError(f"{node}: {type(exc).__name__}: {exc}") from exc

    async def _exchange(
        self, node: str, connection: _Connection, request: bytes
    ) -> tuple[int, dict[str, Any]]:
        try:
            connection.writer.write(request)
            head = await connection.reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEAD:
                raise KmapiError(f"{node}: answer head too large")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise KmapiError(f"{node}: malformed status line")
            status = int(parts[1])
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length" and value.strip().isdigit():
                    length = int(value)
                elif name == "connection" and "close" in value.lower():
                    close = True
            if length > _MAX_BODY:
                raise KmapiError(f"{node}: answer body too large")
            data = await connection.reader.readexactly(length)
        except BaseException:
            connection.close()
            raise
        if close:
            connection.close()
        else:
            pool = self._idle.setdefault(node, [])
            if len(pool) < self._max_idle:
                pool.append(connection)
            else:
                connection.close()
        try:
            document = json.loads(data) if data else {}
        except ValueError:
            document = {}
        return status, document if isinstance(document, dict) else {}

    async def aclose(self) -> None:
        for pool in self._idle.values():
            for connection in pool:
                connection.close()
        self._idle.clear()
