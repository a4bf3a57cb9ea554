"""Prometheus metrics of a gateway worker (served on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ACKS",
    "CLOSES",
    "CONNECTIONS",
    "CREDENTIAL_CHECKS",
    "DELIVERIES",
    "DELIVERY_LATENCY",
    "DRAINING",
    "DRAINS",
    "FEEDS",
    "FEED_READS",
    "LAG",
    "REFUSED",
    "REPLAYED",
    "SLOW",
    "UNIDENTIFIED",
]

CONNECTIONS = Gauge("botgw_gateway_connections", "open WebSocket connections")
FEEDS = Gauge("botgw_gateway_feeds", "bots with at least one connection on this worker")
DELIVERIES = Counter("botgw_gateway_deliveries_total", "updates sent to connections (live)")
REPLAYED = Counter("botgw_gateway_replayed_total", "updates sent from the log (replay, catch-up)")
ACKS = Counter("botgw_gateway_acks_total", "cumulative acks received")
CLOSES = Counter("botgw_gateway_closes_total", "connections closed, by close code", ["code"])
DRAINS = Counter("botgw_gateway_drains_total", "drains started")
DRAINING = Gauge(
    "botgw_gateway_draining_connections",
    "connections a draining worker still holds (0 when not draining): the drain's progress",
)
SLOW = Counter("botgw_gateway_fell_behind_total", "live connections that fell behind")
REFUSED = Counter(
    "botgw_gateway_upgrades_refused_total",
    "upgrades refused before the WebSocket opened, by error code",
    ["code"],
)
UNIDENTIFIED = Gauge("botgw_gateway_unidentified", "open sockets that have not identified yet")
CREDENTIAL_CHECKS = Counter(
    "botgw_gateway_credential_checks_total", "sweeps comparing open sessions' tokens with the store"
)
FEED_READS = Counter("botgw_gateway_feed_reads_total", "batches read by feeds")
DELIVERY_LATENCY = Histogram(
    "botgw_gateway_delivery_latency_seconds",
    "from an update's append (its id's time) to its live delivery by this worker",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge(
    "botgw_gateway_consumer_lag_seconds",
    "age difference between the newest update the worker has seen and the consumer's ack",
    ["bot", "consumer"],
)
