"""RabbitMQ topology, declared once: exchanges, work queues, dead-letter queues.

Design (works on RabbitMQ 3.10 and 4.x alike):

* One durable direct exchange ``parley``; each work queue is bound with its own name as the
  routing key, so a publisher names the queue it means.
* Every work queue is a **quorum** queue with ``x-delivery-limit``: a message that keeps failing
  (or keeps killing its consumer) is dead-lettered instead of looping for ever. Dead-lettering is
  ``at-least-once`` (which needs ``x-overflow=reject-publish``): a dead letter is never dropped.
* Each work queue has its own ``<name>.dlq`` behind the ``parley.dead-letter`` exchange.
* Live events for the managers' console travel on the ``parley.live`` **fanout** exchange: each
  agent-service replica binds a queue of its own (``parley.live.<replica>``: exclusive,
  auto-deleted with its connection, a short message TTL and a length cap), so every replica's
  managers see every replica's events. These queues come and go with the replicas, so the
  definitions file holds only the exchange.
* Priority without ``x-max-priority`` (quorum queues on 3.10 refuse it): conversational replies
  and operator messages go to ``outgoing_messages``; follow-up campaign traffic goes to
  ``outgoing_campaign``. The sender serves the first before the second.

``deploy/rabbitmq/definitions.json`` is generated from this module
(``python -m parley_shared.topology``) and a test keeps the two equal. It holds the vhost and the
topology, never a user: a password hash in git would be a shared default password. The compose
broker seeds its one (non-administrator) user from ``.env`` instead, and the services declare
this topology themselves on connect (:func:`parley_shared.broker.declare_topology`), so the file
is for importing into a broker by hand (``rabbitmqctl import_definitions``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from parley_shared.contracts import (
    ContactErasure,
    Contract,
    DeliveryStatus,
    InboundMedia,
    IncomingMessage,
    OutgoingKind,
    OutgoingMessage,
    VoiceTranscriptionRequest,
)

EXCHANGE = "parley"
VHOST = "parley"  # the vhost of the shipped deployment (compose, definitions.json)
DEAD_LETTER_EXCHANGE = "parley.dead-letter"
DEFAULT_DELIVERY_LIMIT = 10
LIVE_EXCHANGE = "parley.live"
LIVE_QUEUE_PREFIX = "parley.live."


def live_queue_arguments() -> dict[str, Any]:
    """A replica's live-event queue: classic (exclusive), events older than a minute or beyond
    10,000 waiting are dropped (a replica that far behind resynchronises its screens instead)."""
    return {"x-message-ttl": 60_000, "x-max-length": 10_000, "x-overflow": "drop-head"}


@dataclass(frozen=True)
class WorkQueue:
    name: str
    contract: type[Contract]
    description: str
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT

    @property
    def routing_key(self) -> str:
        return self.name

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    def arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.dead_letter_queue,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    @staticmethod
    def dead_letter_arguments() -> dict[str, Any]:
        return {"x-queue-type": "quorum"}


INCOMING = WorkQueue("incoming_messages", IncomingMessage, "Normalised inbound messages, gateway -> agent service")
VOICE = WorkQueue(
    "voice_transcription",
    VoiceTranscriptionRequest,
    "Voice notes waiting for transcription, gateway -> gateway transcription worker",
)
MEDIA = WorkQueue(
    "inbound_media",
    InboundMedia,
    "Images, videos, documents and stickers waiting to be fetched and kept, gateway -> gateway media worker",
)
OUTGOING = WorkQueue(
    "outgoing_messages",
    OutgoingMessage,
    "Conversational replies and operator messages, agent service -> gateway sender (served first)",
)
CAMPAIGN = WorkQueue(
    "outgoing_campaign",
    OutgoingMessage,
    "Follow-up campaign touches, agent service -> gateway sender (served after replies)",
)
STATUS = WorkQueue("delivery_status", DeliveryStatus, "Delivery outcomes of outgoing messages, gateway -> agent")
ERASURE = WorkQueue(
    "contact_erasure", ContactErasure, "Erase one contact's data at the gateway too, agent service -> gateway"
)

WORK_QUEUES: tuple[WorkQueue, ...] = (INCOMING, VOICE, MEDIA, OUTGOING, CAMPAIGN, STATUS, ERASURE)
BY_NAME: dict[str, WorkQueue] = {q.name: q for q in WORK_QUEUES}


def outgoing_queue(message: OutgoingMessage) -> WorkQueue:
    """Replies and operator messages overtake campaign traffic by travelling on their own queue."""
    return CAMPAIGN if message.kind is OutgoingKind.FOLLOW_UP else OUTGOING


@dataclass(frozen=True)
class Definitions:
    """The topology as a RabbitMQ definitions document (management import / load_definitions)."""

    vhost: str = VHOST
    users: list[dict[str, Any]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        queues = []
        bindings = []
        for q in WORK_QUEUES:
            queues.append(_queue_def(q.name, self.vhost, q.arguments()))
            queues.append(_queue_def(q.dead_letter_queue, self.vhost, q.dead_letter_arguments()))
            bindings.append(_binding(EXCHANGE, q.name, q.routing_key, self.vhost))
            bindings.append(_binding(DEAD_LETTER_EXCHANGE, q.dead_letter_queue, q.dead_letter_queue, self.vhost))
        return {
            "rabbit_version": "3.10.8",
            "users": self.users,
            "vhosts": [{"name": self.vhost}],
            # A user given here gets rights on this vhost only.
            "permissions": [
                {"user": u["name"], "vhost": self.vhost, "configure": ".*", "write": ".*", "read": ".*"}
                for u in self.users
            ],
            "policies": [],
            "exchanges": [
                _exchange_def(EXCHANGE, self.vhost),
                _exchange_def(DEAD_LETTER_EXCHANGE, self.vhost),
                _exchange_def(LIVE_EXCHANGE, self.vhost, "fanout"),
            ],
            "queues": queues,
            "bindings": bindings,
        }


def _queue_def(name: str, vhost: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": arguments}


def _exchange_def(name: str, vhost: str, kind: str = "direct") -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "type": kind,
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }


def _binding(source: str, queue: str, key: str, vhost: str) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": queue,
        "destination_type": "queue",
        "routing_key": key,
        "arguments": {},
    }


def shipped_definitions() -> dict[str, Any]:
    """What ``deploy/rabbitmq/definitions.json`` holds: the vhost and the topology, no user."""
    return Definitions().document()


def main() -> None:
    json.dump(shipped_definitions(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
