"""Structured audit events through the standard :mod:`logging` module.

Every event goes to the logger ``agile.audit`` at INFO (failures at WARNING), with a
human-readable message and the structured fields as attributes of the ``LogRecord`` (passed
through ``extra``), so that any handler or formatter can pick them up::

    record.event               "policy_loaded" | "suite_chosen" | "qkd_key_used" |
                               "qkd_fallback" | "qkd_path_refused" | "handshake_complete" |
                               "handshake_failed" | "policy_warning"
    record.policy              policy name
    record.policy_fingerprint  ``sha256:...``
    record.role                "initiator" | "responder" (handshake events)
    record.suite               list of component names
    record.qkd_used            bool
    record.qkd_key_ids         list of key IDs (public identifiers, not keys)
    record.qkd_path            the QKD key's relay path, KME node names from the master
                               SAE's KME to the slave SAE's KME (None when none was reported)
    record.trusted_nodes       how many trusted nodes saw the key: len(qkd_path) - 2
    record.reason              why (fallback, failure, warning)
    record.key_id              the session's public key id

No event carries key bytes: the fields are names, public identifiers and reasons only, and
every field goes through :func:`emit`, which accepts only these names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

LOGGER_NAME = "agile.audit"
logger = logging.getLogger(LOGGER_NAME)
# A library does not print: without a handler configured by the application, events go
# nowhere (rather than to logging's last-resort stderr handler).
logger.addHandler(logging.NullHandler())

EVENTS = frozenset(
    {
        "policy_loaded",
        "policy_warning",
        "suite_chosen",
        "qkd_key_used",
        "qkd_fallback",
        "qkd_path_refused",
        "handshake_complete",
        "handshake_failed",
    }
)
_FAILURES = frozenset({"handshake_failed", "qkd_fallback", "qkd_path_refused", "policy_warning"})


def enabled(event: str) -> bool:
    """Whether :func:`emit` would log ``event``: callers on hot paths check this first and
    skip building the event's fields when no handler listens at its level."""
    return logger.isEnabledFor(logging.WARNING if event in _FAILURES else logging.INFO)


def emit(
    event: str,
    *,
    policy: str | None = None,
    policy_fingerprint: str | None = None,
    role: str | None = None,
    suite: Sequence[str] | None = None,
    qkd_used: bool | None = None,
    qkd_key_ids: Sequence[str] | None = None,
    reason: str | None = None,
    key_id: str | None = None,
    qkd_path: Sequence[str] | None = None,
) -> None:
    """Log one audit event with its structured fields."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    level = logging.WARNING if event in _FAILURES else logging.INFO
    if not logger.isEnabledFor(level):
        return
    fields = {
        "event": event,
        "policy": policy,
        "policy_fingerprint": policy_fingerprint,
        "role": role,
        "suite": list(suite) if suite is not None else None,
        "qkd_used": qkd_used,
        "qkd_key_ids": list(qkd_key_ids) if qkd_key_ids is not None else None,
        "reason": reason,
        "key_id": key_id,
        "qkd_path": list(qkd_path) if qkd_path is not None else None,
        "trusted_nodes": len(qkd_path) - 2 if qkd_path is not None else None,
    }
    parts = [event]
    parts.extend(f"{k}={v}" for k, v in fields.items() if k != "event" and v is not None)
    logger.log(level, " ".join(parts), extra=fields)
