"""Structured logging (structlog): JSON in production, readable console in development.

Privacy is enforced here, in one processor, rather than at every call site:

* values under phone-like keys are masked (``+7701*****01``);
* values under message-content keys (``text``, ``body``, ``caption``, ``contact_name`` ...) are
  replaced by their length unless ``LOG_MESSAGE_CONTENT`` is on;
* any run of 9+ digits in any string value (an exception text, a URL) is masked too -- but not a
  date (``2026-12-07 08:33:20`` stays readable);
* values under secret-like keys (``token``, ``password``, ``api_key`` ...) are dropped;
* all of this applies inside nested values too (a dict or list logged as one value).

stdlib logging (aio_pika, aiohttp, sqlalchemy) goes through the same processors. Libraries that
log statement parameters at DEBUG (``aiosqlite``, ``sqlalchemy.engine``) are held at WARNING.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from parley_shared.phone import mask_phone

PHONE_KEYS = frozenset({"phone", "to", "from", "from_", "recipient", "wa_id", "chat_id", "sender"})
CONTENT_KEYS = frozenset(
    {"text", "body", "caption", "message_text", "reply", "transcript", "prompt", "contact_name", "profile_name"}
)
SECRET_KEYS = frozenset({"token", "api_token", "password", "secret", "api_key", "authorization", "app_secret"})
# A phone-like run of digits standing on its own (not inside a UUID, hash or other token).
_DIGITS = re.compile(r"(?<![\w-])\+?\d[\d\s\-()]{7,}\d(?![\w-])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2})?")  # what the digit mask must leave alone

_log_content = False


def _mask_digits(value: str) -> str:
    def repl(match: re.Match[str]) -> str:
        if _DATE.fullmatch(match.group(0)):
            return match.group(0)
        digits = re.sub(r"\D", "", match.group(0))
        return mask_phone(digits) if len(digits) >= 9 else match.group(0)

    return _DIGITS.sub(repl, value)


def _redacted(key: str, value: Any, depth: int = 0) -> Any:
    """``value`` as it may be logged under ``key`` (nested mappings and sequences included)."""
    lowered = key.lower()
    if lowered in SECRET_KEYS:
        return "[secret]"
    if lowered in PHONE_KEYS and isinstance(value, str):
        return mask_phone(value)
    if lowered in CONTENT_KEYS:
        if _log_content:
            return value
        return f"[{len(value)} chars]" if isinstance(value, str) else "[redacted]"
    if isinstance(value, str):
        return _mask_digits(value)
    if depth >= 8:  # deeper than anything logged on purpose
        return "[nested]" if isinstance(value, Mapping | list | tuple | set) else value
    if isinstance(value, Mapping):
        return {k: _redacted(str(k), v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_redacted(key, item, depth + 1) for item in value]
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event.keys()):
        event[key] = _redacted(key, event[key])
    return event


def configure_logging(
    *, level: str = "INFO", fmt: str = "auto", production: bool = False, log_content: bool = False, service: str = ""
) -> None:
    """Configure structlog and the stdlib root logger once per process."""
    global _log_content
    _log_content = log_content
    json_output = fmt == "json" or (fmt == "auto" and (production or not sys.stderr.isatty()))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_output:  # tracebacks become strings before redaction, so they are masked too
        shared.append(structlog.processors.format_exc_info)
    shared.append(redact)
    if service:
        shared.insert(0, _add_service(service))
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        # A call below the level stops at once (not after the timestamp and the redaction).
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "aiosqlite",  # logs every statement with its parameters at DEBUG
        "aiormq",
        "aio_pika",
        "aiohttp.access",
        "sqlalchemy.engine",
        "httpx",
        "google_genai",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _add_service(service: str) -> Any:
    def processor(_l: Any, _n: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("service", service)
        return event

    return processor
