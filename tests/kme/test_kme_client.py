"""Etsi014Client (sync and async) against real servers that misbehave, and TLS refusals."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qkd import (
    AsyncEtsi014Client,
    Etsi014Client,
    InvalidResponse,
    KeyExhausted,
    KeyNotFound,
    KMEError,
    KMEUnavailable,
    QkdKey,
)
from qkd.delivery.etsi014.server import Request, server_ssl_context, start_server
from tests.kme.conftest import RunningPair, wait_for_keys

Reply = Callable[[Request], Awaitable[tuple[int, dict[str, Any]]]]


class FakeKme:
    """A real mutual-TLS server on 127.0.0.1 whose answers a test chooses."""

    def __init__(self, certs: Path) -> None:
        self.certs = certs
        self.requests: list[Request] = []
        self.reply: Reply = self._default
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    async def _default(self, request: Request) -> tuple[int, dict[str, Any]]:
        return 200, {}

    async def _handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        self.requests.append(request)
        return await self.reply(request)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            context = server_ssl_context(
                self.certs / "kme-a.pem", self.certs / "kme-a.key", self.certs / "ca.pem"
            )
            self.server = await start_server(
                self._handle, host="127.0.0.1", port=0, ssl_context=context
            )
            self.url = f"https://127.0.0.1:{self.server.address[1]}"
            self._ready.set()
            self._stop = asyncio.Event()
            await self._stop.wait()
            await self.server.close(grace=0.1)

        self._loop.run_until_complete(main())
        self._loop.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def client(self, **kwargs: Any) -> Etsi014Client:
        return Etsi014Client(
            self.url,
            peer_sae_id="sae-b",
            cert=self.certs / "sae-a.pem",
            key=self.certs / "sae-a.key",
            ca=self.certs / "ca.pem",
            **kwargs,
        )

    def async_client(self, **kwargs: Any) -> AsyncEtsi014Client:
        return AsyncEtsi014Client(
            self.url,
            peer_sae_id="sae-b",
            cert=self.certs / "sae-a.pem",
            key=self.certs / "sae-a.key",
            ca=self.certs / "ca.pem",
            **kwargs,
        )


@pytest.fixture
def fake(certs: Path) -> Iterator[FakeKme]:
    server = FakeKme(certs)
    yield server
    server.stop()


def answer(status: int, document: dict[str, Any]) -> Reply:
    async def reply(request: Request) -> tuple[int, dict[str, Any]]:
        return status, document

    return reply


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


KID = str(uuid.uuid4())

BAD_CONTAINERS: list[dict[str, Any]] = [
    {},
    {"keys": "x"},
    {"keys": [{"key_ID": KID}]},
    {"keys": [{"key": b64(bytes(32))}]},
    {"keys": [{"key_ID": "not-a-uuid", "key": b64(bytes(32))}]},
    {"keys": [{"key_ID": KID, "key": "***not base64***"}]},
    {"keys": [{"key_ID": KID, "key": b64(bytes(31))}]},
    {"keys": [{"key_ID": KID, "key": b64(bytes(33))}]},
    {"keys": [{"key_ID": KID, "key": ""}]},
    {"keys": [{"key_ID": KID, "key": 12}]},
    {"keys": []},
    {"keys": [{"key_ID": KID, "key": b64(bytes(32))}] * 2},
    {"keys": ["x"]},
]


@pytest.mark.parametrize("document", BAD_CONTAINERS, ids=lambda d: repr(d)[:50])
def test_bad_key_containers_raise_invalid_response(fake: FakeKme, document: Any) -> None:
    fake.reply = answer(200, document)
    with fake.client() as client, pytest.raises(InvalidResponse):
        client.get_keys(1, 256)


def test_dec_keys_must_return_exactly_the_ids_asked(fake: FakeKme) -> None:
    other = str(uuid.uuid4())
    fake.reply = answer(200, {"keys": [{"key_ID": other, "key": b64(bytes(32))}]})
    with fake.client() as client, pytest.raises(InvalidResponse):
        client.get_keys_by_id([KID])


def test_a_valid_container_is_accepted_and_the_repr_hides_the_key(fake: FakeKme) -> None:
    secret = bytes(range(32))
    fake.reply = answer(200, {"keys": [{"key_ID": KID, "key": b64(secret)}]})
    with fake.client() as client:
        keys = client.get_keys(1, 256)
    assert keys == [QkdKey(key_id=KID, key=secret)]
    assert secret.hex() not in repr(keys)
    assert str(list(secret)) not in repr(keys)
    request = fake.requests[-1]
    assert request.method == "POST"
    assert request.target == "/api/v1/keys/sae-b/enc_keys"
    assert request.sae_id == "sae-a"


@pytest.mark.parametrize(
    "document",
    [{}, {"source_KME_ID": "A"}, {**dict.fromkeys(["key_size"], -1)}],
)
def test_bad_status_raises_invalid_response(fake: FakeKme, document: Any) -> None:
    fake.reply = answer(200, document)
    with fake.client() as client, pytest.raises(InvalidResponse):
        client.status()


def test_error_answers_map_to_typed_errors(fake: FakeKme) -> None:
    details = [{"key_ID": KID}]
    with fake.client(retries=0) as client:
        fake.reply = answer(400, {"message": "no such key", "details": details})
        with pytest.raises(KeyNotFound) as not_found:
            client.get_keys_by_id([KID])
        assert not_found.value.message == "no such key"
        assert not_found.value.details == details
        fake.reply = answer(401, {"message": "who are you"})
        with pytest.raises(KMEError) as unauthorized:
            client.get_keys(1)
        assert unauthorized.value.status == 401
        assert unauthorized.value.message == "who are you"
        fake.reply = answer(503, {"message": "pool empty"})
        with pytest.raises(KeyExhausted) as exhausted:
            client.get_keys(1)
        assert exhausted.value.message == "pool empty"
        fake.reply = answer(500, {"unexpected": True})
        with pytest.raises(KMEError) as other:
            client.status()
        assert other.value.status == 500


def test_503_is_retried_with_backoff_then_succeeds(fake: FakeKme) -> None:
    calls = 0

    async def flaky(request: Request) -> tuple[int, dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls < 3:
            return 503, {"message": "busy"}
        return 200, {"keys": [{"key_ID": KID, "key": b64(bytes(32))}]}

    fake.reply = flaky
    with fake.client(retries=3, backoff=0.01) as client:
        assert len(client.get_keys(1, 256)) == 1
    assert calls == 3


def test_retries_are_bounded(fake: FakeKme) -> None:
    fake.reply = answer(503, {"message": "busy"})
    with fake.client(retries=2, backoff=0.01) as client, pytest.raises(KeyExhausted):
        client.get_keys(1)
    assert len(fake.requests) == 3


def test_a_stalled_server_costs_no_more_than_the_timeout(fake: FakeKme) -> None:
    async def stall(request: Request) -> tuple[int, dict[str, Any]]:
        await asyncio.sleep(30)
        return 200, {}

    fake.reply = stall
    with fake.client(timeout=0.5, retries=3) as client:
        begin = time.monotonic()
        with pytest.raises(KMEUnavailable):
            client.get_keys(1)
        assert time.monotonic() - begin < 1.5


def test_a_silent_tcp_listener_costs_no_more_than_the_timeout(certs: Path) -> None:
    # Accepts TCP but never answers the TLS handshake.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    try:
        port = listener.getsockname()[1]
        client = Etsi014Client(
            f"https://127.0.0.1:{port}",
            peer_sae_id="sae-b",
            cert=certs / "sae-a.pem",
            key=certs / "sae-a.key",
            ca=certs / "ca.pem",
            timeout=0.5,
        )
        begin = time.monotonic()
        with client, pytest.raises(KMEUnavailable):
            client.status()
        assert time.monotonic() - begin < 1.5
    finally:
        listener.close()


def test_connection_refused_is_retried_then_unavailable(certs: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = Etsi014Client(
        f"https://127.0.0.1:{port}",
        peer_sae_id="sae-b",
        cert=certs / "sae-a.pem",
        key=certs / "sae-a.key",
        ca=certs / "ca.pem",
        retries=2,
        backoff=0.01,
        timeout=2,
    )
    with client, pytest.raises(KMEUnavailable) as exc:
        client.get_keys(1)
    assert "unreachable" in exc.value.message


def test_async_client_validates_and_times_out(fake: FakeKme) -> None:
    async def scenario() -> None:
        fake.reply = answer(200, {"keys": [{"key_ID": KID, "key": b64(bytes(31))}]})
        async with fake.async_client() as client:
            with pytest.raises(InvalidResponse):
                await client.get_keys(1, 256)

        async def stall(request: Request) -> tuple[int, dict[str, Any]]:
            await asyncio.sleep(30)
            return 200, {}

        fake.reply = stall
        async with fake.async_client(timeout=0.5) as client:
            begin = time.monotonic()
            with pytest.raises(KMEUnavailable):
                await client.status()
            assert time.monotonic() - begin < 1.5

    asyncio.run(scenario())


def test_async_client_against_the_kme_pair(pair: RunningPair) -> None:
    def make(sae: str, url: str, peer: str) -> AsyncEtsi014Client:
        return AsyncEtsi014Client(
            url,
            peer_sae_id=peer,
            cert=pair.certs / f"{sae}.pem",
            key=pair.certs / f"{sae}.key",
            ca=pair.certs / "ca.pem",
        )

    with pair.client("sae-a", "a", "sae-b") as sync_master:
        wait_for_keys(sync_master, 8)

    async def scenario() -> None:
        async with (
            make("sae-a", pair.url_a, "sae-b") as master,
            make("sae-b", pair.url_b, "sae-a") as slave,
        ):
            status = await master.status()
            assert status.slave_sae_id == "sae-b"
            keys = await master.get_keys(4, 512)
            assert await slave.get_keys_by_id([k.key_id for k in keys]) == keys
            with pytest.raises(KeyNotFound):
                await slave.get_keys_by_id([keys[0].key_id])

    asyncio.run(scenario())


# ---------------------------------------------------------------- TLS refusals


def _tls_answer(url: str, context: ssl.SSLContext) -> bytes:
    """What an HTTP request over a TLS connection gets back; b"" if TLS refused it."""
    host, port = url.removeprefix("https://").split(":")
    try:
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            # In TLS 1.3 the server checks the client's certificate after the client's side
            # of the handshake is done: the refusal shows on the first read.
            tls.sendall(b"GET /api/v1/keys/sae-b/status HTTP/1.1\r\nHost: x\r\n\r\n")
            return tls.recv(4096)
    except (ssl.SSLError, ConnectionError):
        return b""


def test_a_client_with_a_good_certificate_gets_http(pair: RunningPair) -> None:
    # The control for the two refusals below: the same probe, with sae-a's certificate.
    context = ssl.create_default_context(cafile=str(pair.certs / "ca.pem"))
    context.load_cert_chain(pair.certs / "sae-a.pem", pair.certs / "sae-a.key")
    assert _tls_answer(pair.url_a, context).startswith(b"HTTP/1.1 200 ")


def test_a_client_without_certificate_is_refused_at_tls(pair: RunningPair) -> None:
    context = ssl.create_default_context(cafile=str(pair.certs / "ca.pem"))
    assert _tls_answer(pair.url_a, context) == b""
    # And through httpx: a transport error, never an HTTP answer.
    with httpx.Client(verify=context) as client, pytest.raises(httpx.TransportError):
        client.get(f"{pair.url_a}/api/v1/keys/sae-b/status")


def test_a_client_from_another_ca_is_refused_at_tls(pair: RunningPair, foreign_certs: Path) -> None:
    context = ssl.create_default_context(cafile=str(pair.certs / "ca.pem"))
    context.load_cert_chain(foreign_certs / "sae-a.pem", foreign_certs / "sae-a.key")
    assert _tls_answer(pair.url_a, context) == b""
    client = Etsi014Client(
        pair.url_a,
        peer_sae_id="sae-b",
        ssl_context=context,
        retries=0,
        timeout=3,
    )
    with client, pytest.raises(KMEUnavailable):
        client.status()


def test_the_client_refuses_a_kme_from_another_ca(pair: RunningPair, foreign_certs: Path) -> None:
    client = Etsi014Client(
        pair.url_a,
        peer_sae_id="sae-b",
        cert=pair.certs / "sae-a.pem",
        key=pair.certs / "sae-a.key",
        ca=foreign_certs / "ca.pem",
        retries=0,
        timeout=3,
    )
    with client, pytest.raises(KMEUnavailable):
        client.status()


def test_bad_arguments_raise_the_packages_own_error() -> None:
    # A misuse is a qkd error (and, for argument checks, a ValueError as Python code expects).
    from qkd import Etsi014Client, InvalidRequest, QKDError

    with pytest.raises(InvalidRequest) as exc:
        Etsi014Client("https://127.0.0.1:1", peer_sae_id="sae-b")
    assert isinstance(exc.value, QKDError)
    assert isinstance(exc.value, ValueError)
    assert "mTLS" in str(exc.value)
    with pytest.raises(InvalidRequest):
        Etsi014Client("ftp://kme", peer_sae_id="sae-b", ssl_context=ssl.create_default_context())
