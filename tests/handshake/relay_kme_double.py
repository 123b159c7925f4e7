"""A TEST DOUBLE of a network KME whose keys were relayed through trusted nodes.

The real network (``agile kme serve --network``) answers with a relayed key's path too, and
tests/network/test_node_trust_path.py runs the engines and ``agile.tls`` against a 4-node
chain of node processes. This double stays for what a network of ours cannot be made to do
(a KME that reports no path) and for cheap engine-level variations. It answers over real
HTTPS with mutual TLS on 127.0.0.1 (the project's own ETSI 014 server and models): one
listener serves both SAEs, ``enc_keys`` hands out fresh random keys, ``dec_keys`` hands each
out once more to the slave the master named, and every Key container carries the fixed
``key_extension.relay_path`` it was built with (or none, with ``relay_path=None``). It relays
nothing and keeps nothing durable: it stands in only for what the engine sees of a network.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from qkd.delivery.etsi014.models import (
    API_PREFIX,
    RequestRejected,
    encode_key_container,
    error_body,
    parse_key_ids,
    parse_key_request,
)
from qkd.delivery.etsi014.server import HttpsServer, Request, server_ssl_context, start_server
from qkd.delivery.keysource import KeyStatus


class RelayedKmeDouble:
    """Test double: an ETSI 014 KME that reports ``relay_path`` for every key it serves."""

    def __init__(self, certs: Path, relay_path: Sequence[str] | None, key_size: int = 256) -> None:
        self.certs = certs
        self.relay_path = list(relay_path) if relay_path is not None else None
        self.key_size = key_size
        self.url = ""
        # key_ID -> (master SAE, slave SAE, key), until the slave takes it.
        self._waiting: dict[str, tuple[str, str, bytes]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="relayed-kme-double", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: list[BaseException] = []

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> RelayedKmeDouble:
        self._thread.start()
        assert self._ready.wait(20), "the KME double did not start"
        if self._failure:
            raise self._failure[0]
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            context = server_ssl_context(
                self.certs / "kme-a.pem", self.certs / "kme-a.key", self.certs / "ca.pem"
            )
            server: HttpsServer = await start_server(
                self._handle, host="127.0.0.1", port=0, ssl_context=context
            )
            host, port = server.address
            self.url = f"https://{host}:{port}"
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await server.close()

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:
            self._failure.append(exc)
            self._ready.set()
        finally:
            self._loop.close()

    # -- ETSI GS QKD 014 ----------------------------------------------------------------------

    async def _handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        try:
            return 200, self._answer(request)
        except RequestRejected as exc:
            return exc.status, exc.body()

    def _answer(self, request: Request) -> dict[str, Any]:
        parts = urlsplit(request.target)
        other, _, endpoint = parts.path.removeprefix(API_PREFIX).partition("/")
        other = unquote(other)
        caller = request.sae_id
        if caller is None or not parts.path.startswith(API_PREFIX):
            raise RequestRejected(401, "no SAE identity")
        body: Any = json.loads(request.body) if request.body.strip() else {}
        if endpoint == "status":
            return KeyStatus(
                source_kme_id="double-src",
                target_kme_id="double-dst",
                master_sae_id=caller,
                slave_sae_id=other,
                key_size=self.key_size,
                stored_key_count=1000,
                max_key_count=1000,
                max_key_per_request=128,
                max_key_size=8192,
                min_key_size=64,
                max_sae_id_count=0,
            ).to_json()
        if endpoint == "enc_keys":
            if request.method == "GET":
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                key_request = parse_key_request(query, from_query=True)
            else:
                key_request = parse_key_request(body)
            size = key_request.size or self.key_size
            keys = [(str(uuid.uuid4()), os.urandom(size // 8)) for _ in range(key_request.number)]
            with self._lock:
                for key_id, key in keys:
                    self._waiting[key_id] = (caller, other, key)
            return encode_key_container(keys, relay_path=self.relay_path)
        if endpoint == "dec_keys":
            if request.method == "GET":
                key_ids = parse_key_ids(parse_qs(parts.query)["key_ID"], from_query=True)
            else:
                key_ids = parse_key_ids(body)
            found: list[tuple[str, bytes]] = []
            with self._lock:
                for key_id in key_ids:
                    entry = self._waiting.get(key_id)
                    if entry is None or entry[:2] != (other, caller):
                        raise RequestRejected(400, "key_ID not found", [{"key_ID": key_id}])
                for key_id in key_ids:
                    found.append((key_id, self._waiting.pop(key_id)[2]))
            return encode_key_container(found, relay_path=self.relay_path)
        raise RequestRejected(404, error_body("not found")["message"])
