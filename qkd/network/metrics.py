"""Prometheus metrics of one network node (``GET /kmapi/v1/metrics``; the ``metrics`` extra).

Per link (label ``link``, and ``direction`` for pools): unused link key in bits, QBER, alarm
and up (0/1), alarms raised, the secret key rate the decoy bounds certify (fibre links);
per node: keys relayed from here (as origin), relay latency
(enc_keys at the origin until the far node's acknowledgement), relay failures. Values are
read from the node when the metrics are scraped; no key bytes are involved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qkd.network.node import NetworkKme

__all__ = ["NodeMetrics", "metrics_available"]

try:
    import prometheus_client
except ImportError:  # pragma: no cover - the extra is part of "all"
    prometheus_client = None  # type: ignore[assignment]


def metrics_available() -> bool:
    return prometheus_client is not None


class NodeMetrics:
    """The node's Prometheus registry; :meth:`render` refreshes the gauges and exposes."""

    def __init__(self, node: NetworkKme) -> None:
        assert prometheus_client is not None
        p = prometheus_client
        self.node = node
        self.registry = p.CollectorRegistry()
        r = self.registry
        self.pool = p.Gauge(
            "qkd_link_pool_bits", "Unused link key", ["link", "direction"], registry=r
        )
        self.qber = p.Gauge("qkd_link_qber", "QBER of the link", ["link"], registry=r)
        self.alarm = p.Gauge("qkd_link_alarm", "1 while the link is in alarm", ["link"], registry=r)
        self.up = p.Gauge("qkd_link_up", "1 while the link is up", ["link"], registry=r)
        self.decoy = p.Gauge(
            "qkd_link_decoy_key_rate_bound",
            "Secret bits per pulse the decoy bounds certify (fibre links only)",
            ["link"],
            registry=r,
        )
        self.alarms = p.Counter(
            "qkd_link_alarms", "Alarms raised on the link", ["link"], registry=r
        )
        self.relayed = p.Counter(
            "qkd_relayed_keys", "Keys relayed from this node as origin", registry=r
        )
        self.failures = p.Counter("qkd_relay_failures", "Relays that failed on the way", registry=r)
        self.latency = p.Histogram(
            "qkd_relay_latency_seconds",
            "From enc_keys at the origin to the far node's acknowledgement",
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=r,
        )

    def render(self) -> tuple[str, bytes]:
        """(content type, exposition) with the gauges read now."""
        assert prometheus_client is not None
        for end in self.node.links.values():
            self.pool.labels(end.id, end.out.direction).set(8 * end.out.available_bytes)
            self.pool.labels(end.id, end.inbound.direction).set(8 * end.inbound.available_bytes)
            self.qber.labels(end.id).set(end.qber)
            self.alarm.labels(end.id).set(1 if end.alarm else 0)
            self.up.labels(end.id).set(1 if end.up else 0)
            if (decoy := end.decoy_now) is not None:
                self.decoy.labels(end.id).set(decoy.key_rate_bound)
        return prometheus_client.CONTENT_TYPE_LATEST, prometheus_client.generate_latest(
            self.registry
        )

    def observe_relay(self, keys: int, seconds: float) -> None:
        self.relayed.inc(keys)
        self.latency.observe(seconds)

    def alarm_raised(self, link: str) -> None:
        self.alarms.labels(link).inc()

    def relay_failed(self) -> None:
        self.failures.inc()
