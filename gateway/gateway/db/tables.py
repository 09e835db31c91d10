"""The gateway's own database. Every change here comes with a migration in ``db/migrations``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from parley_shared.db import UtcDateTime, new_metadata
from parley_shared.outbox import inbox_table, outbox_table
from parley_shared.privacy import erasures_table

metadata = new_metadata()

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
erasures = erasures_table(metadata)  # one row per erased phone: its keyed hash, who, when, what went

# One row per message that crossed the gateway, either way. The unique key on
# (direction, provider, provider_message_id) is what makes a provider message seen twice
# (webhook retry, overlapping polls) publish once.
message_logs = Table(
    "message_logs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("direction", String(10), nullable=False),  # inbound | outbound
    Column("provider", String(20), nullable=False),
    Column("provider_message_id", String(200), nullable=True),
    Column("message_id", String(200), nullable=False),  # our id (the queue idempotency key)
    Column("correlation_id", String(200), nullable=True),
    Column("phone", String(40), nullable=False),  # the address (E.164 or a LID chat id); masked in logs and API
    Column("phone_masked", String(40), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("direction", "message_id", name="uq_message_logs_direction_message_id"),
    Index("ix_message_logs_provider_msg", "provider", "provider_message_id"),
    Index("ix_message_logs_created_at", "created_at"),
)

# The ignore list (the seed system called it "whitelist"): numbers whose messages are dropped.
ignored_numbers = Table(
    "ignored_numbers",
    metadata,
    Column("phone", String(40), primary_key=True),
    Column("note", String(200), nullable=True),
    Column("source", String(20), nullable=False),  # config | api
    Column("created_at", UtcDateTime, nullable=False),
)

# Where a polling provider stopped reading: the newest provider timestamp ingested and the ids
# (with their times) seen in the overlap window below it, so that equal or late timestamps
# neither replay nor skip. Advanced in the same transaction as the messages it covers.
provider_cursors = Table(
    "provider_cursors",
    metadata,
    Column("provider", String(20), primary_key=True),
    Column("account", String(200), primary_key=True),
    Column("cursor_time", BigInteger, nullable=False),  # provider time, Unix seconds
    Column("cursor_ids", Text, nullable=False),  # JSON {provider message id: time} seen in the overlap window
    Column("updated_at", UtcDateTime, nullable=False),
)

# What the gateway knows of each contact (gateway/chains.py), keyed by its address (E.164, or a
# LID chat id): its latest published message -- the link the next one carries as its
# ``previous_message_id``, so that the agent can tell when an earlier message has not reached it
# yet --, the provider's own chat id (replies go exactly there), when it last wrote (Meta's
# 24-hour window) and the options of the latest message sent to it (a typed number picks one).
# Moved in the ingest transaction that stages the messages.
contact_chains = Table(
    "contact_chains",
    metadata,
    Column("phone", String(40), primary_key=True),
    Column("last_message_id", String(200), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("provider", String(20), nullable=True),
    Column("chat_id", String(200), nullable=True),
    Column("last_inbound_at", UtcDateTime, nullable=True),
    Column("choices", Text, nullable=True),  # JSON [{"id", "title", "description"}] of the latest message sent
)

# Files the gateway keeps: what prospects sent (served to managers at GET /media/{key}) and what
# the sandbox "sent". The bytes live in the media store (MEDIA_DIR), named by ``key``.
media_files = Table(
    "media_files",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("phone", String(40), nullable=False),  # the contact's address (erasure deletes its files)
    Column("direction", String(10), nullable=False),  # inbound | outbound
    Column("message_id", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("mime_type", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("file_name", String(500), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_media_files_phone", "phone"),
    Index("ix_media_files_created_at", "created_at"),
)

# Files uploaded to a provider that sends by media id (Meta): an upload is reused by its content
# while the provider keeps it (META_MEDIA_REUSE_DAYS).
provider_media = Table(
    "provider_media",
    metadata,
    Column("provider", String(20), primary_key=True),
    Column("account", String(200), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("media_id", String(200), nullable=False),
    Column("uploaded_at", UtcDateTime, nullable=False),
)

# What the sandbox provider "delivered": read back over GET /sandbox/outbox (demo chat, tests).
sandbox_outbox = Table(
    "sandbox_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("correlation_id", String(200), nullable=False),
    Column("phone", String(40), nullable=False),
    Column("text", Text, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("in_reply_to", Text, nullable=False),  # JSON list of inbound message ids
    Column("created_at", UtcDateTime, nullable=False),
    Column("media", Text, nullable=True),  # JSON {"kind", "file_name", "mime_type", "size", "key"} of a file sent
    Column("choices", Text, nullable=True),  # JSON of the options offered (Choices)
    Index("ix_sandbox_outbox_phone_id", "phone", "id"),
)
