"""The agent service's Prometheus metrics, defined once (``GET /metrics`` exposes the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TURNS = Counter(
    "parley_agent_turns_total",
    "Turns finished, by outcome (replied, suppressed by a takeover, silent, non_client, nothing, lease_lost)",
    ["outcome"],
)
ORDER_GAPS = Counter(
    "parley_agent_order_gaps_total",
    "Turns that found a contact's earlier message not arrived yet: held (waited for it) or expired "
    "(answered without it after ORDER_GAP_WAIT_S)",
    ["outcome"],
)
TURN_FAILURES = Counter("parley_agent_turn_failures_total", "Turns that raised and will be retried")
MODEL_LATENCY = Histogram(
    "parley_agent_model_latency_seconds",
    "Duration of the engine's decision (all attempts)",
    ["engine"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
MODEL_FALLBACKS = Counter(
    "parley_agent_model_fallbacks_total", "Decisions answered with the safe fallback (model failed)", ["engine"]
)
UNGROUNDED = Counter(
    "parley_agent_ungrounded_replies_total", "Replies the grounding guard replaced with the manager check", ["engine"]
)
HANDOFFS = Counter("parley_agent_handoffs_total", "Turns that flagged the contact for a human", ["reason"])
