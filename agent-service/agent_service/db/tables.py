"""The agent service's own database. Every change here comes with a migration in ``db/migrations``.

Vocabulary (string columns, validated in the domain layer):

* ``contacts.client_status``: ``unknown`` | ``client`` | ``non_client``; ``client_category``:
  ``prospect`` | ``spam`` | ``personal`` | ``supplier`` | ``job_seeker`` | ``wrong_number`` | ``other``;
  ``classified_by``: ``moderator`` | ``manager``.
* ``contacts.spin_stage``: ``situation`` | ``problem`` | ``implication`` | ``need_payoff``.
* ``contacts.outcome``: ``open`` | ``agreed`` | ``declined`` | ``uncertain``.
* ``contacts.owner``: ``ai`` | ``human``.
* ``contacts.turn_due_at``: set while inbound messages wait for a turn (newest + buffer window);
  ``turn_lease_owner``/``turn_lease_until``: the worker running the contact's turn right now.
* ``contacts.phone``: the contact's address -- E.164, or for a WhatsApp chat that shows no number
  its LID chat id (``...@lid``); ``chat_id``: the provider's own chat id it last wrote from.
* ``messages.direction``: ``in`` | ``out``; ``kind`` (in): ``text`` | ``voice`` | ``image`` | ... (the
  kinds of ``IncomingMessage``); ``kind`` (out): ``reply`` | ``follow_up`` | ``operator``;
  ``status`` (in): ``pending`` | ``handled`` | ``silent`` (recorded, no AI turn: a manager holds the
  contact, a settled non-client, a reaction, an edit, a revoke, a system notice); (out):
  ``queued`` | ``sent`` | ``delivered`` | ``read`` | ``failed`` | ``suppressed``.
* ``messages.media``: what the gateway kept of a file -- ``{"mime_type", "size", "file_name",
  "sha256", "stored" (GET /media/{stored} at the gateway), "error"}``; ``details``: the structured
  content of the kind (``interactive``, ``location``, ``contacts``, ``order``, ``referral``,
  ``system``, ``unsupported``, ``reaction``); a reaction, an edit or a revoke names its message in
  ``target_message_id`` and lands on it: ``reaction``, ``edited_at`` (the text is the corrected
  one), ``deleted_at`` (left out of what the model is given).
* ``follow_ups.status``: ``pending`` | ``sent`` | ``cancelled`` | ``skipped``.
* ``scheduled_calls.status``: ``pending`` | ``confirmed`` | ``cancelled`` | ``done``.
* ``managers.role``: ``admin`` | ``manager``. ``audit_log.actor_kind``: ``manager`` | ``api``;
  ``audit_log.action``: see ``agent_service/audit.py``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from parley_shared.db import UtcDateTime, new_metadata
from parley_shared.outbox import inbox_table, outbox_table
from parley_shared.privacy import erasures_table

metadata = new_metadata()

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
erasures = erasures_table(metadata)  # one row per erased contact: its phone's keyed hash, who, when, what went

_pk = BigInteger().with_variant(Integer, "sqlite")

managers = Table(
    "managers",
    metadata,
    Column("id", _pk, primary_key=True, autoincrement=True),
    Column("login", String(100), nullable=False, unique=True),  # stored lower-case
    Column("display_name", String(100), nullable=False),
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("role", String(10), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    # Bumped by disable and set-password: every session signed in before then stops working.
    Column("session_epoch", Integer, nullable=False, server_default="0"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_sign_in_at", UtcDateTime, nullable=True),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", _pk, primary_key=True, autoincrement=True),
    Column("phone", String(40), nullable=False, unique=True),  # the address: E.164, or a LID chat id
    Column("name", String(200), nullable=True),
    Column("client_status", String(20), nullable=False, server_default="unknown"),
    Column("client_category", String(20), nullable=True),
    Column("classification_reason", String(500), nullable=True),
    Column("classification_confidence", Float, nullable=True),
    Column("classified_by", String(20), nullable=True),
    Column("classified_turns", Integer, nullable=False, server_default="0"),
    Column("spin_stage", String(20), nullable=False, server_default="situation"),
    Column("outcome", String(20), nullable=False, server_default="open"),
    Column("owner", String(10), nullable=False, server_default="ai"),
    Column("owner_name", String(100), nullable=True),
    # The console manager who holds the conversation (migration 0005); None for the API or the AI.
    Column("owner_manager_id", _pk, ForeignKey("managers.id", ondelete="SET NULL"), nullable=True),
    Column("needs_human", Boolean, nullable=False, server_default=text("false")),
    Column("needs_human_reason", String(500), nullable=True),
    Column("language", String(10), nullable=True),
    Column("provider", String(20), nullable=True),  # provider of the last inbound message (Meta's 24 h window)
    Column("chat_id", String(200), nullable=True),  # the provider's own chat id of the last inbound message
    # The ad or post the conversation started from (click-to-WhatsApp), the first one seen: analytics.
    Column("referral", JSON(none_as_null=True), nullable=True),
    Column("ad_source_id", String(200), nullable=True),
    Column("notes", Text, nullable=True),
    Column("follow_ups_stopped", Boolean, nullable=False, server_default=text("false")),
    Column("follow_ups_stop_reason", String(200), nullable=True),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_inbound_at", UtcDateTime, nullable=True),
    Column("last_outbound_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Turn scheduling (migration 0003): when the buffered messages become due, and the short lease
    # that lets exactly one worker (of any replica) run this contact's turn.
    Column("turn_due_at", UtcDateTime, nullable=True),
    Column("turn_lease_owner", String(100), nullable=True),
    Column("turn_lease_until", UtcDateTime, nullable=True),
    Index("ix_contacts_updated_at", "updated_at"),
    Index("ix_contacts_client_status", "client_status"),
    Index(
        "ix_contacts_turn_due_at",
        "turn_due_at",
        postgresql_where=text("turn_due_at IS NOT NULL"),
        sqlite_where=text("turn_due_at IS NOT NULL"),
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", _pk, primary_key=True, autoincrement=True),
    Column("contact_id", _pk, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("text", Text, nullable=True),
    Column("message_id", String(200), nullable=False, unique=True),  # queue idempotency key
    Column("provider_message_id", String(200), nullable=True),
    Column("correlation_id", String(200), nullable=True),
    Column("turn_id", String(200), nullable=True),
    # (in) the message the gateway published for this contact just before this one: a turn waits
    # while it has not arrived (workers/turns.py); None for the first or an older gateway.
    Column("previous_message_id", String(200), nullable=True),
    Column("transcribed", Boolean, nullable=False, server_default=text("false")),
    Column("knowledge_refs", JSON, nullable=True),  # passages used: [{"doc", "page", "chunk"}]
    Column("model", String(100), nullable=True),
    Column("tokens_in", Integer, nullable=True),
    Column("tokens_out", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("author", String(100), nullable=True),  # (operator) who wrote it: a manager's name, or "api"
    Column("sent_at", UtcDateTime, nullable=True),  # provider time (in) / delivery time (out)
    Column("created_at", UtcDateTime, nullable=False),
    Column("caption", Text, nullable=True),
    Column("media", JSON(none_as_null=True), nullable=True),
    Column("details", JSON(none_as_null=True), nullable=True),
    Column("target_message_id", String(200), nullable=True),
    Column("reaction", String(50), nullable=True),
    Column("edited_at", UtcDateTime, nullable=True),
    Column("deleted_at", UtcDateTime, nullable=True),
    Index("ix_messages_contact_created", "contact_id", "created_at"),
    Index("ix_messages_target", "target_message_id"),
    Index(
        "ix_messages_pending",
        "contact_id",
        "id",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index("ix_messages_created_at", "created_at"),
)

follow_ups = Table(
    "follow_ups",
    metadata,
    Column("id", _pk, primary_key=True, autoincrement=True),
    Column("contact_id", _pk, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("sequence_no", Integer, nullable=False),  # which sequence of this contact (1, 2, ...)
    Column("touch", Integer, nullable=False),  # 1..N within the sequence
    Column("strategy", String(30), nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("message_id", String(200), nullable=True),  # the outgoing message once sent
    Column("replied", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("claim_token", String(64), nullable=True),  # a scheduler's lease on a due row (while writing the text)
    Column("claimed_until", UtcDateTime, nullable=True),
    UniqueConstraint("contact_id", "sequence_no", "touch", name="uq_follow_ups_contact_sequence_touch"),
    Index(
        "ix_follow_ups_due",
        "due_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index("ix_follow_ups_contact", "contact_id", "status"),
)

scheduled_calls = Table(
    "scheduled_calls",
    metadata,
    Column("id", _pk, primary_key=True, autoincrement=True),
    Column("contact_id", _pk, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("scheduled_at", UtcDateTime, nullable=False),  # stored UTC; shown in the business timezone
    Column("timezone", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("notes", Text, nullable=True),
    Column("source_turn_id", String(200), nullable=True, unique=True),  # a redelivered turn books once
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_scheduled_calls_at", "scheduled_at"),
    Index("ix_scheduled_calls_contact", "contact_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _pk, primary_key=True, autoincrement=True),
    Column("contact_id", _pk, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=True),
    Column("actor_kind", String(10), nullable=False),
    Column("manager_id", _pk, ForeignKey("managers.id", ondelete="SET NULL"), nullable=True),
    Column("actor_name", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("detail", JSON, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_audit_log_contact", "contact_id", "id"),
    Index("ix_audit_log_created_at", "created_at"),
)

# Failed console sign-ins, for throttling per login and per address across replicas.
sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("id", _pk, primary_key=True, autoincrement=True),
    Column("login", String(100), nullable=False),
    Column("address", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_sign_in_failures_login", "login", "created_at"),
    Index("ix_sign_in_failures_address", "address", "created_at"),
)

# How far each manager has read each conversation (the inbox's unread counts).
manager_reads = Table(
    "manager_reads",
    metadata,
    Column("manager_id", _pk, ForeignKey("managers.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", _pk, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("last_read_message_id", _pk, nullable=False),
    Column("read_at", UtcDateTime, nullable=False),
)
