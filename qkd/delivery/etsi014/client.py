"""ETSI GS QKD 014 v1.1.1 client over mutual TLS (httpx), sync and async.

Point it at any KME that speaks ETSI 014 - vendor hardware or ``agile kme serve`` - by URL::

    client = Etsi014Client(
        "https://kme-a.example:8443",
        peer_sae_id="sae-b",
        cert="sae-a.pem", key="sae-a.key", ca="ca.pem",
    )
    keys = client.get_keys(number=1, size_bits=256)       # master: enc_keys
    # ... send keys[0].key_id to sae-b, which calls get_keys_by_id([...]) at its KME

Each call has one overall deadline (``timeout`` seconds, covering every retry); 503 answers
and connection failures are retried a bounded number of times with exponential backoff. Every
answer is validated (JSON shape, base64, key length equal to the size asked, UUID key_IDs,
counts) and errors become typed :mod:`qkd` exceptions carrying the KME's ``message`` and
``details``. Retrying enc_keys after an ambiguous failure may waste a key (the KME marks a key
delivered before it answers) but can never deliver one twice.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from qkd.delivery.etsi014.models import API_PREFIX, parse_key_container, parse_status
from qkd.delivery.keysource import (
    InvalidRequest,
    InvalidResponse,
    KeyExhausted,
    KeyNotFound,
    KeySourceError,
    KeyStatus,
    KMEError,
    KMEUnavailable,
    QkdKey,
)

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise KeySourceError(
        "the ETSI 014 client is unavailable: httpx is not installed;"
        " install it with `pip install 'qkd-agile[server]'`"
    ) from exc

__all__ = ["AsyncEtsi014Client", "Etsi014Client", "client_ssl_context"]

T = TypeVar("T")
StrPath = str | PathLike[str]

_MAX_ERROR_TEXT = 500


def client_ssl_context(cert: StrPath, key: StrPath, ca: StrPath | None = None) -> ssl.SSLContext:
    """A TLS client context presenting ``cert``/``key`` and trusting ``ca`` (or the system)."""
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise KeySourceError(
            f"cannot load the TLS client credentials (cert={cert}, key={key}, ca={ca}): {exc}; "
            "check the paths and that the key matches the certificate"
        ) from exc
    return context


@dataclass(frozen=True, slots=True)
class _Call(Generic[T]):
    method: str
    path: httpx.URL
    params: httpx.QueryParams | None
    body: dict[str, Any] | None
    interpret: Callable[[Any], T]
    kind: str  # "status", "enc_keys" or "dec_keys": selects how errors are typed


def _verify(
    cert: StrPath | None,
    key: StrPath | None,
    ca: StrPath | None,
    ssl_context: ssl.SSLContext | None,
    *,
    has_transport: bool,
) -> ssl.SSLContext | bool:
    """The TLS setting of a client: its own mutual-TLS context, or the caller's."""
    if ssl_context is None and cert is not None and key is not None:
        ssl_context = client_ssl_context(cert, key, ca)
    if ssl_context is None and not has_transport:
        raise InvalidRequest("give cert and key (and ca), or an ssl_context: ETSI 014 is mTLS")
    return ssl_context if ssl_context is not None else True


class _Core:
    """Requests, retries and answer checking shared by the sync and async clients."""

    def __init__(
        self,
        base_url: str,
        peer_sae_id: str,
        *,
        timeout: float,
        retries: int,
        backoff: float,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise InvalidRequest(f"base_url {base_url!r} must be an https:// URL of the KME")
        if not peer_sae_id:
            raise InvalidRequest("peer_sae_id must name the other SAE")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise InvalidRequest("timeout must be positive; retries and backoff not negative")
        self.base_url = base_url.rstrip("/")
        self.peer_sae_id = peer_sae_id
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._urls: dict[str, httpx.URL] = {}

    def url(self, endpoint: str) -> httpx.URL:
        # Parsed once per endpoint: URL parsing is a visible share of httpx's per-request cost.
        url = self._urls.get(endpoint)
        if url is None:
            peer = quote(self.peer_sae_id, safe="")
            url = httpx.URL(f"{self.base_url}{API_PREFIX}{peer}/{endpoint}")
            self._urls[endpoint] = url
        return url

    def status_call(self) -> _Call[KeyStatus]:
        return _Call("GET", self.url("status"), None, None, parse_status, "status")

    def enc_call(self, number: int, size_bits: int | None, *, post: bool) -> _Call[list[QkdKey]]:
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise InvalidRequest("number must be a positive integer")
        if size_bits is not None and (
            isinstance(size_bits, bool)
            or not isinstance(size_bits, int)
            or size_bits <= 0
            or size_bits % 8
        ):
            raise InvalidRequest("size_bits must be a positive multiple of 8")

        def interpret(document: Any) -> list[QkdKey]:
            keys = parse_key_container(document, size_bits=size_bits, number=number)
            if size_bits is None and len({k.size_bits for k in keys}) > 1:
                raise InvalidResponse("the KME returned keys of different sizes")
            return keys

        fields: dict[str, Any] = {"number": number}
        if size_bits is not None:
            fields["size"] = size_bits
        if post:
            return _Call("POST", self.url("enc_keys"), None, fields, interpret, "enc_keys")
        query = httpx.QueryParams(fields)
        return _Call("GET", self.url("enc_keys"), query, None, interpret, "enc_keys")

    def dec_call(self, key_ids: Sequence[str], *, post: bool) -> _Call[list[QkdKey]]:
        if isinstance(key_ids, str) or not key_ids:
            raise InvalidRequest("key_ids must be a non-empty sequence of key_ID strings")
        ids = [str(k) for k in key_ids]

        def interpret(document: Any) -> list[QkdKey]:
            try:
                return parse_key_container(document, key_ids=ids)
            except ValueError as exc:  # a key_id we were asked for is not a UUID
                raise InvalidResponse(str(exc)) from exc

        if post:
            body = {"key_IDs": [{"key_ID": k} for k in ids]}
            return _Call("POST", self.url("dec_keys"), None, body, interpret, "dec_keys")
        params = httpx.QueryParams([("key_ID", k) for k in ids])
        return _Call("GET", self.url("dec_keys"), params, None, interpret, "dec_keys")

    def finish(self, call: _Call[T], response: httpx.Response) -> T:
        """Turn an answer into the call's value or a typed error."""
        if response.status_code == 200:
            try:
                document = json.loads(response.content)
            except ValueError as exc:
                raise InvalidResponse(f"{call.kind}: the KME's answer is not JSON") from exc
            return call.interpret(document)
        raise self.error(call, response)

    def error(self, call: _Call[Any], response: httpx.Response) -> KMEError:
        status = response.status_code
        message, details = f"HTTP {status} without an ETSI error body", []
        try:
            document = json.loads(response.content)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("message"), str):
            message = document["message"][:_MAX_ERROR_TEXT]
            raw = document.get("details")
            if isinstance(raw, list):
                details = [d for d in raw if isinstance(d, dict)]
        if status == 401:
            return KMEError(
                status,
                message,
                details,
                hint=f"is this SAE's certificate registered with the KME for {self.peer_sae_id}?",
            )
        if status == 400 and call.kind == "dec_keys":
            return KeyNotFound(status, message, details)
        if status == 503:
            cls = KeyExhausted if call.kind == "enc_keys" else KMEUnavailable
            return cls(status, message, details, hint="retries exhausted")
        return KMEError(status, message, details)

    def delay(self, attempt: int, deadline: float) -> float | None:
        """Backoff before retry ``attempt`` (1-based), or None when no retry is left."""
        if attempt > self.retries:
            return None
        pause: float = self.backoff * (2 ** (attempt - 1))
        if time.monotonic() + pause >= deadline:
            return None
        return pause

    def unavailable(self, call: _Call[Any], exc: Exception) -> KMEUnavailable:
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
        return KMEUnavailable(
            0,
            f"KME {what} on {call.kind} ({type(exc).__name__})",
            hint=f"check that {self.base_url} is up and reachable (timeout {self.timeout} s)",
        )


def _timeout(remaining: float) -> httpx.Timeout:
    return httpx.Timeout(max(remaining, 0.001))


class Etsi014Client:
    """:class:`qkd.KeySource` over ETSI GS QKD 014 with mutual TLS (blocking).

    ``peer_sae_id`` is the other SAE: the slave for :meth:`get_keys`, the master for
    :meth:`get_keys_by_id`. ``timeout`` bounds each call including retries.
    """

    def __init__(
        self,
        base_url: str,
        *,
        peer_sae_id: str,
        cert: StrPath | None = None,
        key: StrPath | None = None,
        ca: StrPath | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.05,
        use_post: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = _Core(base_url, peer_sae_id, timeout=timeout, retries=retries, backoff=backoff)
        self._post = use_post
        self._http = httpx.Client(
            verify=_verify(cert, key, ca, ssl_context, has_transport=transport is not None),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    @property
    def peer_sae_id(self) -> str:
        return self._core.peer_sae_id

    def status(self) -> KeyStatus:
        return self._run(self._core.status_call())

    def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        return self._run(self._core.enc_call(number, size_bits, post=self._post))

    def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        return self._run(self._core.dec_call(key_ids, post=self._post))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Etsi014Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Etsi014Client {self._core.base_url} peer={self._core.peer_sae_id}>"

    def _run(self, call: _Call[T]) -> T:
        core = self._core
        deadline = time.monotonic() + core.timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise httpx.TimeoutException("deadline reached")
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.body,
                    timeout=_timeout(remaining),
                )
            except httpx.TimeoutException as exc:
                raise core.unavailable(call, exc) from exc
            except httpx.TransportError as exc:
                pause = core.delay(attempt, deadline)
                if pause is None:
                    raise core.unavailable(call, exc) from exc
                time.sleep(pause)
                continue
            if response.status_code == 503:
                pause = core.delay(attempt, deadline)
                if pause is not None:
                    time.sleep(pause)
                    continue
            return core.finish(call, response)


class AsyncEtsi014Client:
    """The asyncio twin of :class:`Etsi014Client` (:class:`qkd.AsyncKeySource`)."""

    def __init__(
        self,
        base_url: str,
        *,
        peer_sae_id: str,
        cert: StrPath | None = None,
        key: StrPath | None = None,
        ca: StrPath | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.05,
        use_post: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _Core(base_url, peer_sae_id, timeout=timeout, retries=retries, backoff=backoff)
        self._post = use_post
        self._http = httpx.AsyncClient(
            verify=_verify(cert, key, ca, ssl_context, has_transport=transport is not None),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    @property
    def peer_sae_id(self) -> str:
        return self._core.peer_sae_id

    async def status(self) -> KeyStatus:
        return await self._run(self._core.status_call())

    async def get_keys(self, number: int = 1, size_bits: int | None = None) -> list[QkdKey]:
        return await self._run(self._core.enc_call(number, size_bits, post=self._post))

    async def get_keys_by_id(self, key_ids: Sequence[str]) -> list[QkdKey]:
        return await self._run(self._core.dec_call(key_ids, post=self._post))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncEtsi014Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncEtsi014Client {self._core.base_url} peer={self._core.peer_sae_id}>"

    async def _run(self, call: _Call[T]) -> T:
        core = self._core
        deadline = time.monotonic() + core.timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise httpx.TimeoutException("deadline reached")
                # httpx's per-phase timeouts do not bound a server that trickles bytes, so
                # the whole exchange also runs under the call's deadline.
                response = await asyncio.wait_for(
                    self._http.request(
                        call.method,
                        call.path,
                        params=call.params,
                        json=call.body,
                        timeout=_timeout(remaining),
                    ),
                    timeout=remaining,
                )
            except (httpx.TimeoutException, TimeoutError) as exc:
                raise core.unavailable(call, exc) from exc
            except httpx.TransportError as exc:
                pause = core.delay(attempt, deadline)
                if pause is None:
                    raise core.unavailable(call, exc) from exc
                await asyncio.sleep(pause)
                continue
            if response.status_code == 503:
                pause = core.delay(attempt, deadline)
                if pause is not None:
                    await asyncio.sleep(pause)
                    continue
            return core.finish(call, response)
