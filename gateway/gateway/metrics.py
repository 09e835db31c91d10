"""The gateway's Prometheus metrics, defined once (``GET /metrics`` exposes the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECEIVED = Counter(
    "parley_gateway_received_total", "Inbound provider messages seen (before dedupe and filtering)", ["provider"]
)
PUBLISHED = Counter(
    "parley_gateway_published_total",
    "Inbound messages committed for publication (outbox) to a queue, once per provider message",
    ["provider", "queue"],
)
IGNORED = Counter("parley_gateway_ignored_total", "Inbound messages from numbers on the ignore list", ["provider"])
DUPLICATES = Counter(
    "parley_gateway_duplicates_total",
    "Inbound provider messages seen again and dropped (retries, overlaps)",
    ["provider"],
)
SKIPPED = Counter(
    "parley_gateway_skipped_total",
    "Inbound items not forwarded (each also logged): own messages, groups, non-phones, malformed items, "
    "other webhook fields, statuses not ours to report, WhatsApp's own notices",
    ["provider", "reason"],
)
SENT = Counter("parley_gateway_sent_total", "Outgoing messages the provider accepted", ["provider", "kind"])
FAILED = Counter(
    "parley_gateway_failed_total",
    "Outgoing messages that failed for good (permanent, exhausted retries, unknown outcome)",
    ["provider", "reason"],
)
SEND_RETRIES = Counter(
    "parley_gateway_send_retries_total", "Send attempts retried after a transient error", ["provider"]
)
SEND_LATENCY = Histogram(
    "parley_gateway_send_latency_seconds",
    "Duration of one provider send call",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
RATE_LIMIT_WAITS = Counter(
    "parley_gateway_rate_limit_waits_total", "Times a send waited for the account's rate limit", ["provider"]
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "parley_gateway_rate_limit_wait_seconds_total", "Seconds spent waiting for the account's rate limit", ["provider"]
)
TRANSCRIPTIONS = Counter("parley_gateway_transcriptions_total", "Voice notes processed, by outcome", ["outcome"])
POLLS = Counter("parley_gateway_polls_total", "Provider polls, by outcome", ["provider", "outcome"])
DELIVERY_STATUSES = Counter(
    "parley_gateway_delivery_statuses_total", "Delivery statuses reported back to the agent", ["provider", "status"]
)
INBOUND_KINDS = Counter(
    "parley_gateway_inbound_kinds_total",
    "Inbound messages committed for publication, by kind (text, image, order, reaction, unsupported ...)",
    ["provider", "kind"],
)
MEDIA = Counter(
    "parley_gateway_media_total",
    "Inbound files: kept, or failed and why (not_found, timeout, too_large, wrong_type, refused, failed)",
    ["provider", "outcome"],
)
MEDIA_UPLOADS = Counter(
    "parley_gateway_media_uploads_total", "Outgoing files uploaded to the provider, or sent by a reused id", ["outcome"]
)
