"""The socket and asyncio adapters over real loopback connections, and ``agile demo``."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import pytest

from agile import HandshakeError, load_policy
from agile.cli import main
from agile.engine import peer_engines
from agile.session import HybridSession
from agile.transport import handshake_over_socket, handshake_over_stream


def test_socket_adapter_over_loopback() -> None:
    policy = load_policy("hybrid-default-latest")
    initiator_engine, responder_engine = peer_engines(policy, policy)
    result: dict[str, HybridSession | BaseException] = {}
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def serve() -> None:
            connection, _ = server.accept()
            with connection:
                try:
                    result["responder"] = handshake_over_socket(
                        connection, responder_engine.responder(), timeout=10
                    )
                except BaseException as exc:
                    result["responder"] = exc

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            ours = handshake_over_socket(sock, initiator_engine.initiator(), timeout=10)
        thread.join(10)
    theirs = result["responder"]
    assert isinstance(theirs, HybridSession)
    assert ours.key == theirs.key
    assert ours.qkd_used


def test_socket_adapter_reports_a_closed_connection() -> None:
    policy = load_policy("pqc-only-latest")
    initiator_engine, _ = peer_engines(policy, policy)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def close_at_once() -> None:
            connection, _ = server.accept()
            connection.recv(65536)
            connection.close()

        thread = threading.Thread(target=close_at_once)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as sock,
            pytest.raises(HandshakeError, match="closed the connection"),
        ):
            handshake_over_socket(sock, initiator_engine.initiator(), timeout=10)
        thread.join(10)


@pytest.mark.parametrize("name", ["pqc-only-latest", "hybrid-default-latest"])
def test_asyncio_adapter_over_loopback(name: str) -> None:
    # With a QKD key source the blocking steps run in a worker thread (may_block).
    policy = load_policy(name)
    initiator_engine, responder_engine = peer_engines(policy, policy)

    async def scenario() -> tuple[HybridSession, HybridSession]:
        done: asyncio.Future[HybridSession] = asyncio.get_running_loop().create_future()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                done.set_result(
                    await handshake_over_stream(reader, writer, responder_engine.responder())
                )
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            ours = await handshake_over_stream(reader, writer, initiator_engine.initiator())
            theirs = await asyncio.wait_for(done, 10)
            writer.close()
            await writer.wait_closed()
        return ours, theirs

    ours, theirs = asyncio.run(scenario())
    assert ours.key == theirs.key
    assert ours.key_id == theirs.key_id
    assert ours.qkd_used is policy.uses_qkd


def test_demo_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for field in (
        "policy",
        "fingerprint",
        "suite",
        "qkd",
        "initiator_key_id",
        "responder_key_id",
        "keys_match",
        "elapsed_ms",
    ):
        assert field in report
    assert report["policy"] == "hybrid-default-20261207"
    assert report["fingerprint"] == load_policy("hybrid-default-latest").fingerprint
    assert report["suite"] == ["ML-KEM-768", "DHKEM(X25519, HKDF-SHA256)", "QKD"]
    assert report["qkd"]["used"] is True
    assert report["qkd"]["source"] == "simulated"
    assert len(report["qkd"]["key_ids"]) == 1
    assert report["qkd"]["path"] == ["SIM-KME-A", "SIM-KME-B"]  # the simulated link's ends
    assert report["qkd"]["trusted_nodes"] == 0
    assert report["keys_match"] is True
    assert report["initiator_key_id"] == report["responder_key_id"]
    assert report["elapsed_ms"] > 0


def test_demo_text_and_other_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--policy", "cnsa2-latest"]) == 0
    out = capsys.readouterr().out
    assert "cnsa2-20261129" in out
    assert "ML-KEM-1024" in out
    assert "keys match  True" in out


def test_demo_without_qkd_shows_the_fallback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--no-qkd", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["qkd"]["used"] is False
    assert report["qkd"]["fallback_reason"]
    assert report["keys_match"] is True


def test_demo_fail_closed_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--policy", "qkd-required-latest", "--no-qkd"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "fail closed" in err


def test_demo_unknown_policy_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--policy", "no-such-policy"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no-such-policy" in err
