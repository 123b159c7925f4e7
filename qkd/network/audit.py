"""Audit events of a network's KMEs through the standard :mod:`logging` module.

The same style as :mod:`agile.audit`: every event goes to the logger ``qkd.network.audit``
(alarms, starvation and failed relays at WARNING, the rest at INFO), with a readable message
and the structured fields as attributes of the ``LogRecord`` (passed through ``extra``)::

    record.event     "link_alarm" | "link_alarm_cleared" | "link_down" | "link_up" |
                     "reroute" | "starvation" | "relay_failed" | "node_started"
    record.node      the KME node that logs the event
    record.link      a link id
    record.src       the first node of a route
    record.dst       the last node of a route
    record.path      the new path (list of node names)
    record.previous  the previous path
    record.qber      a link's QBER
    record.reason    why
    record.cause     what tripped a link alarm: "qber" or "decoy"
    record.y1_lower  a fibre link's single-photon yield bound (vacuum+weak decoy) at the alarm

No event carries key bytes: only names, public identifiers, figures and reasons, and every
field goes through :func:`emit`, which accepts only these names. ``agile kme serve
--network`` writes the events as JSON lines to ``STATE/nodes/NAME/audit.jsonl``
(:class:`JsonLinesHandler`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

__all__ = ["EVENTS", "LOGGER_NAME", "JsonLinesHandler", "emit"]

LOGGER_NAME = "qkd.network.audit"
logger = logging.getLogger(LOGGER_NAME)
logger.addHandler(logging.NullHandler())

EVENTS = frozenset(
    {
        "link_alarm",
        "link_alarm_cleared",
        "link_down",
        "link_up",
        "reroute",
        "starvation",
        "relay_failed",
        "node_started",
        "replica_leader",
    }
)
_WARNINGS = frozenset({"link_alarm", "link_down", "starvation", "relay_failed"})
_FIELDS = (
    "node",
    "link",
    "src",
    "dst",
    "path",
    "previous",
    "qber",
    "reason",
    "cause",
    "y1_lower",
)


def emit(
    event: str,
    *,
    node: str | None = None,
    link: str | None = None,
    src: str | None = None,
    dst: str | None = None,
    path: Sequence[str] | None = None,
    previous: Sequence[str] | None = None,
    qber: float | None = None,
    reason: str | None = None,
    cause: str | None = None,
    y1_lower: float | None = None,
) -> None:
    """Log one audit event with its structured fields."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    level = logging.WARNING if event in _WARNINGS else logging.INFO
    if not logger.isEnabledFor(level):
        return
    fields = {
        "event": event,
        "node": node,
        "link": link,
        "src": src,
        "dst": dst,
        "path": list(path) if path is not None else None,
        "previous": list(previous) if previous is not None else None,
        "qber": qber,
        "reason": reason,
        "cause": cause,
        "y1_lower": y1_lower,
    }
    parts = [event]
    parts.extend(f"{k}={v}" for k, v in fields.items() if k != "event" and v is not None)
    logger.log(level, " ".join(parts), extra=fields)


class JsonLinesHandler(logging.Handler):
    """Appends each audit record as one JSON object per line (flushed at once)."""

    def __init__(self, path: str) -> None:
        super().__init__(logging.INFO)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def emit(self, record: logging.LogRecord) -> None:
        document: dict[str, object] = {"time": round(record.created, 3)}
        event = getattr(record, "event", None)
        if event is None:
            return
        document["event"] = event
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        try:
            self._file.write(json.dumps(document, separators=(",", ":")) + "\n")
            self._file.flush()
        except (OSError, ValueError):
            self.handleError(record)

    def close(self) -> None:
        self._file.close()
        super().close()
