"""Prometheus metrics of a webhook dispatcher (served on ``/metrics``, see
:mod:`webhooks.health`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ATTEMPTS",
    "ATTEMPT_SECONDS",
    "DISPATCHERS",
    "GAVE_UP",
    "INDEX_READS",
    "LEASED",
    "LEASE_ATTEMPTS",
    "LEASE_CHANGES",
    "OWNED",
    "REPLIES",
]

ATTEMPTS = Counter(
    "botgw_webhook_deliveries_total",
    "delivery attempts, by outcome: delivered (a 2xx answer), http_error, redirect, "
    "timeout, connection (not made or broken), refused (the SSRF guard)",
    ["outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "botgw_webhook_delivery_seconds",
    "time from sending a delivery attempt to its answer or failure",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GAVE_UP = Counter("botgw_webhook_gave_up_total", "webhooks turned inactive after the last retry")
OWNED = Gauge("botgw_webhook_owned_bots", "bots this dispatcher owns by the assignment")
LEASED = Gauge(
    "botgw_webhook_leased_bots",
    "bots whose lease this dispatcher holds (delivering, or handing over after the "
    "assignment moved them)",
)
DISPATCHERS = Gauge("botgw_webhook_dispatchers", "live dispatchers, as this one last saw them")
LEASE_CHANGES = Counter(
    "botgw_webhook_lease_changes_total",
    "delivery leases taken (acquired), given back (released) or lost (expired or taken)",
    ["change"],
)
LEASE_ATTEMPTS = Counter(
    "botgw_webhook_lease_attempts_total",
    "delivery leases asked for (one SET NX each; only for bots this dispatcher owns)",
)
INDEX_READS = Counter(
    "botgw_webhook_index_reads_total", "reads of the whole list of bots with a webhook"
)
REPLIES = Counter(
    "botgw_webhook_replies_total",
    "Bot API calls receivers answered deliveries with (webhook replies), by outcome: "
    "done, replayed (an earlier delivery of the update ran it), refused (invalid, "
    "or a send limit), malformed, unsupported, failed (the store or a bug)",
    ["outcome"],
)
