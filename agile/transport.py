"""Thin socket and asyncio adapters over the sans-I/O handshake.

They move bytes between a connection and a state machine and nothing else: every decision is
the machine's. A failed handshake raises :class:`~agile.HandshakeError` (or
:class:`~agile.QKDUnavailable`); the caller closes the connection.

Example::

    with socket.create_connection(("127.0.0.1", port)) as sock:
        session = handshake_over_socket(sock, engine.initiator())
"""

from __future__ import annotations

import asyncio
import socket

from agile._errors import HandshakeError
from agile.handshake.machine import Initiator, Responder
from agile.session import HybridSession

_RECV_SIZE = 65536


def _finish(machine: Initiator | Responder) -> HybridSession:
    if machine.session is None:  # pragma: no cover - is_complete implies a session
        raise HandshakeError("handshake completed without a session")
    return machine.session


def handshake_over_socket(
    sock: socket.socket, machine: Initiator | Responder, *, timeout: float | None = 30.0
) -> HybridSession:
    """Run ``machine`` to completion over a connected blocking socket."""
    sock.settimeout(timeout)
    try:
        if isinstance(machine, Initiator):
            sock.sendall(machine.start())
        while True:
            outgoing = machine.data_to_send()
            if outgoing:
                sock.sendall(outgoing)
            if machine.is_complete:
                return _finish(machine)
            data = sock.recv(_RECV_SIZE)
            if not data:
                raise HandshakeError(
                    f"the peer closed the connection during the handshake ({machine.state.value})"
                )
            machine.receive_data(data)
    except TimeoutError as exc:
        raise HandshakeError(f"the peer did not answer within {timeout} s") from exc
    except OSError as exc:
        raise HandshakeError(f"connection failed during the handshake: {exc}") from exc


async def handshake_over_stream(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    machine: Initiator | Responder,
    *,
    timeout: float | None = 30.0,
) -> HybridSession:
    """Run ``machine`` to completion over an asyncio stream pair."""
    # A QKD key source may be a KME across the network (a blocking HTTPS call): such steps run
    # in a worker thread so that the event loop keeps serving other connections.
    offload = machine.may_block
    try:
        if isinstance(machine, Initiator):
            hello = await asyncio.to_thread(machine.start) if offload else machine.start()
            writer.write(hello)
            await writer.drain()
        while True:
            outgoing = machine.data_to_send()
            if outgoing:
                writer.write(outgoing)
                await writer.drain()
            if machine.is_complete:
                return _finish(machine)
            data = await asyncio.wait_for(reader.read(_RECV_SIZE), timeout)
            if not data:
                raise HandshakeError(
                    f"the peer closed the connection during the handshake ({machine.state.value})"
                )
            if offload:
                await asyncio.to_thread(machine.receive_data, data)
            else:
                machine.receive_data(data)
    except TimeoutError as exc:
        raise HandshakeError(f"the peer did not answer within {timeout} s") from exc
    except OSError as exc:
        raise HandshakeError(f"connection failed during the handshake: {exc}") from exc
