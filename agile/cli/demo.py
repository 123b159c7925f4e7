"""``agile demo``: a full hybrid handshake between two peers over a loopback socket.

Both peers run in this process, one thread each, connected over 127.0.0.1; a simulated QKD
link joins their key sources. The output says which suite was chosen, whether the QKD key
contributed (and its key IDs), and the public key ids both sides derived; never a key.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from agile import audit
from agile._errors import AgileError
from agile.cli._output import EXIT_OK, EXIT_REJECTED, emit_json, fail
from agile.engine import peer_engines
from agile.policy.loader import load_policy
from agile.session import HybridSession
from agile.transport import handshake_over_socket

_DEFAULT_POLICY = "hybrid-default-latest"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a hybrid PQC + QKD handshake between two peers over loopback"
    )
    parser.add_argument(
        "--policy",
        default=_DEFAULT_POLICY,
        metavar="NAME|FILE",
        help=f"built-in policy name or policy file (default: {_DEFAULT_POLICY})",
    )
    parser.add_argument(
        "--no-qkd",
        action="store_true",
        help="run without a QKD link, to see the policy's fallback (or fail-closed) rule",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=run)


class _Collector(logging.Handler):
    """Keeps the audit events of the demo, to show them (they carry no key material)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        fields = (
            "event",
            "policy",
            "role",
            "suite",
            "qkd_used",
            "qkd_key_ids",
            "qkd_path",
            "trusted_nodes",
            "reason",
            "key_id",
        )
        event = {f: getattr(record, f, None) for f in fields}
        self.events.append({k: v for k, v in event.items() if v is not None})


@contextlib.contextmanager
def _collect_audit() -> Iterator[_Collector]:
    collector = _Collector()
    logger = logging.getLogger(audit.LOGGER_NAME)
    old_level = logger.level
    logger.addHandler(collector)
    logger.setLevel(logging.INFO)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
        logger.setLevel(old_level)


def _run_pair(args: argparse.Namespace) -> dict[str, Any]:
    policy = load_policy(args.policy)
    initiator_engine, responder_engine = peer_engines(policy, policy, qkd=not args.no_qkd)
    initiator = initiator_engine.initiator()
    responder = responder_engine.responder()
    results: dict[str, HybridSession | BaseException] = {}

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                connection, _ = listener.accept()
                with connection:
                    results["responder"] = handshake_over_socket(connection, responder)
            except BaseException as exc:  # reported by the main thread
                results["responder"] = exc

        started = time.perf_counter()
        thread = threading.Thread(target=serve, name="agile-demo-responder", daemon=True)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                results["initiator"] = handshake_over_socket(sock, initiator)
        except BaseException as exc:
            results["initiator"] = exc
        thread.join(timeout=30)
        elapsed_ms = (time.perf_counter() - started) * 1000.0

    for role in ("initiator", "responder"):
        outcome = results.get(role)
        if isinstance(outcome, AgileError):
            raise outcome
        if not isinstance(outcome, HybridSession):
            fail(f"demo: the {role} did not finish ({outcome!r})")
    ours = results["initiator"]
    theirs = results["responder"]
    assert isinstance(ours, HybridSession)
    assert isinstance(theirs, HybridSession)
    # Prove the keys work end to end: the initiator seals, the responder opens.
    round_trip = theirs.open(ours.seal(b"hello over a hybrid key")) == b"hello over a hybrid key"
    if not policy.uses_qkd:
        source = "none"
    elif args.no_qkd:
        source = "none (--no-qkd)"
    else:
        # The demo always joins the peers with a simulated link, whatever the policy names.
        source = "simulated"
    return {
        "policy": policy.name,
        "fingerprint": policy.fingerprint,
        "suite": list(ours.suite),
        "suite_name": initiator_engine.config.suite_name(ours.suite),
        "qkd": {
            "used": ours.qkd_used,
            "source": source,
            "key_ids": list(ours.qkd_key_ids),
            "path": list(ours.qkd_path) if ours.qkd_path is not None else None,
            "trusted_nodes": ours.trusted_nodes,
            "required": policy.qkd.required,
            "fallback_reason": initiator.fallback_reason or responder.fallback_reason,
        },
        "combiner": f"{policy.kdf.combiner} ({policy.kdf.hash})",
        "auth": policy.auth.method,
        "aead": ours.aead,
        "initiator_key_id": ours.key_id,
        "responder_key_id": theirs.key_id,
        "keys_match": ours.key == theirs.key,
        "sealed_round_trip": round_trip,
        "transport": f"tcp 127.0.0.1:{port}",
        "elapsed_ms": round(elapsed_ms, 3),
    }


def run(args: argparse.Namespace) -> int:
    with _collect_audit() as collector:
        report = _run_pair(args)
    report["audit"] = collector.events
    if args.json:
        emit_json(report)
    else:
        qkd = report["qkd"]
        qkd_line = (
            f"used, key_IDs {', '.join(qkd['key_ids'])}"
            + (f", path {' -> '.join(qkd['path'])}" if qkd["path"] else "")
            if qkd["used"]
            else f"not used ({qkd['fallback_reason'] or 'the suite has no QKD component'})"
        )
        print(f"policy      {report['policy']}  {report['fingerprint']}")
        print(f"transport   {report['transport']} (two threads, one per peer)")
        print(f"suite       {report['suite_name']}: {' + '.join(report['suite'])}")
        print(f"combiner    {report['combiner']}; auth {report['auth']}; {report['aead']}")
        print(f"QKD         source {qkd['source']}: {qkd_line}")
        print(
            f"key ids     initiator {report['initiator_key_id']}, "
            f"responder {report['responder_key_id']}"
        )
        print(
            f"keys match  {report['keys_match']}; sealed round trip {report['sealed_round_trip']}"
        )
        print(f"elapsed     {report['elapsed_ms']:.1f} ms")
        print("audit events (logger agile.audit):")
        for event in report["audit"]:
            details = ", ".join(f"{k}={v}" for k, v in event.items() if k != "event")
            print(f"  {event['event']:<19} {details}")
    return EXIT_OK if report["keys_match"] and report["sealed_round_trip"] else EXIT_REJECTED
