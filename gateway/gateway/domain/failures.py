"""Send failures: permanent or worth retrying (the wait before the next attempt is the shared retry
policy's, ``parley_shared.retry``).

* **transient** -- HTTP 429, 408, 5xx, provider rate-limit codes, a connection that never got
  through: the message was certainly not delivered; retry with exponential backoff, waiting at
  least as long as the provider's ``Retry-After`` asks.
* **permanent** -- any other 4xx (Meta 131047 outside the 24-hour window, 131026 undeliverable,
  bad parameters, an unpaid Wappi profile): retrying cannot help; dead-letter and report.
* **ambiguous** -- the request left but no answer came back (timeout, connection dropped
  mid-response): the provider may have delivered it. Retrying could send it twice, so the
  outcome is reported as unknown instead (a message id is never sent twice).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime


class FailureKind(enum.StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    code: str | None  # the provider's error code, else the HTTP status
    reason: str
    retry_after_s: float | None = None

    @property
    def retryable(self) -> bool:
        return self.kind is FailureKind.TRANSIENT


# Meta Graph error codes that mean "slow down / try again" rather than "never".
META_TRANSIENT_CODES = frozenset(
    {
        "1",  # API unknown
        "2",  # API service
        "4",  # application request limit
        "17",  # user request limit
        "341",  # application limit
        "80007",  # WhatsApp Business Account rate limit
        "130429",  # throughput rate limit
        "131000",  # something went wrong
        "131016",  # service unavailable
        "131048",  # spam rate limit
        "131056",  # pair rate limit (same recipient too fast)
        "133004",  # server temporarily unavailable
    }
)
MAX_RETRY_AFTER_S = 24 * 3600.0


def classify_http(status: int, code: str | None, reason: str, retry_after_s: float | None = None) -> Failure:
    """Sort a provider's error answer into transient or permanent."""
    code = code or str(status)
    if status in (408, 429) or status >= 500 or code in META_TRANSIENT_CODES:
        return Failure(FailureKind.TRANSIENT, code, reason, retry_after_s)
    return Failure(FailureKind.PERMANENT, code, reason)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER_S)
