"""Meta's customer-service window (pure): free-form messages only within 24 hours of the
prospect's last message; outside it only an approved template may be sent."""

from __future__ import annotations

from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)
OUTSIDE_WINDOW = "outside_24h_window"  # the error code a refused send is reported with


def outside_window(provider: str, last_inbound_at: datetime | None, now: datetime) -> bool:
    """Would a free-form (non-template) message to this contact fall outside the window?

    Only Meta has the window. A contact the gateway never heard from (no last inbound time) is
    outside it."""
    if provider != "meta":
        return False
    return last_inbound_at is None or now - last_inbound_at >= WINDOW


def refusal(provider: str, *, template: bool, last_inbound_at: datetime | None, now: datetime) -> str | None:
    """Why this message may not be sent now (None: it may). Templates always may."""
    if template or not outside_window(provider, last_inbound_at, now):
        return None
    since = "the prospect never wrote here"
    if last_inbound_at is not None:
        since = f"the prospect last wrote at {last_inbound_at.isoformat()}"
    return f"Meta's 24-hour customer-service window is closed ({since}); only a template can be sent"
