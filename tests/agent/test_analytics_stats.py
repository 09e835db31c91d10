"""``GET /stats`` of the agent service: database counts, turns in flight, outbox and queue depths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert

from agent_service.app import create_app
from agent_service.db import tables
from agent_service.settings import AgentSettings
from parley_shared.clock import ManualClock
from parley_shared.contracts import OutgoingMessage
from parley_shared.service import RUNTIME
from parley_shared.topology import CAMPAIGN, WORK_QUEUES
from tests.support import infra

TOKEN = "stats-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)


async def test_stats_count_what_the_agent_holds_and_has_in_flight(amqp_url: str, database_url: str) -> None:
    app = create_app(
        AgentSettings(amqp_url=amqp_url, database_url=database_url, api_token=TOKEN), clock=ManualClock(NOW)
    )
    async with TestClient(TestServer(app)) as client:
        empty = await client.get("/stats", headers=AUTH)
        body = await empty.json()
        assert empty.status == 200, body
        assert body["contacts"] == {"total": 0, "by_client_status": {}, "needs_human": 0, "owned_by_human": 0}
        assert body["queues_error"] is None
        expected_queues = {q.name for q in WORK_QUEUES} | {q.dead_letter_queue for q in WORK_QUEUES}
        assert set(body["queues"]) == expected_queues
        assert body["queues"][CAMPAIGN.name]["messages"] == 0

        later = NOW + timedelta(days=30)  # nothing here falls due while the test runs

        def contact(phone: str, status: str, **values: object) -> dict[str, object]:
            row = {"phone": phone, "client_status": status, "turn_due_at": None, "needs_human": False, "owner": "ai"}
            return row | {"first_seen_at": NOW, "created_at": NOW, "updated_at": NOW} | values

        async with app[RUNTIME].sessions() as session, session.begin():
            ids = (
                await session.execute(
                    insert(tables.contacts).returning(tables.contacts.c.id, sort_by_parameter_order=True),
                    [
                        contact("+77010000001", "client", turn_due_at=later),
                        contact("+77010000002", "client", needs_human=True),
                        contact("+77010000003", "non_client", owner="human"),
                        contact("+77010000004", "unknown"),
                    ],
                )
            ).scalars()
            first, second, *_ = list(ids)
            message = {"kind": "text", "created_at": NOW}
            await session.execute(
                insert(tables.messages),
                [
                    {"contact_id": first, "direction": "in", "status": "pending", "message_id": "a", **message},
                    {"contact_id": first, "direction": "in", "status": "pending", "message_id": "b", **message},
                    {"contact_id": second, "direction": "in", "status": "handled", "message_id": "c", **message},
                    {"contact_id": second, "direction": "out", "status": "delivered", "message_id": "d", **message},
                    {"contact_id": second, "direction": "out", "status": "failed", "message_id": "e", **message},
                ],
            )
            touch = {"contact_id": second, "sequence_no": 1, "strategy": "reminder", "due_at": later}
            await session.execute(
                insert(tables.follow_ups),
                [
                    {"touch": 1, "status": "sent", "created_at": NOW, "updated_at": NOW, **touch},
                    {"touch": 2, "status": "pending", "created_at": NOW, "updated_at": NOW, **touch},
                ],
            )
            await session.execute(
                insert(tables.scheduled_calls),
                [
                    {
                        "contact_id": second,
                        "scheduled_at": later,
                        "timezone": "Asia/Almaty",
                        "status": "pending",
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                ],
            )
        # A message waiting in a queue nobody in this test consumes.
        await app[RUNTIME].broker.publish(
            CAMPAIGN,
            OutgoingMessage(
                message_id="stats-1",
                correlation_id="c-1",
                kind="follow_up",
                phone="+77010000002",
                text="hello",
                created_at=NOW,
            ),
        )

        body = await (await client.get("/stats", headers=AUTH)).json()
        assert body["contacts"] == {
            "total": 4,
            "by_client_status": {"client": 2, "non_client": 1, "unknown": 1},
            "needs_human": 1,
            "owned_by_human": 1,
        }
        assert body["messages"] == {"in": {"handled": 1, "pending": 2}, "out": {"delivered": 1, "failed": 1}}
        assert body["turns"] == {"contacts_waiting": 1, "messages_pending": 2}
        assert body["follow_ups"] == {"pending": 1, "sent": 1}
        assert body["scheduled_calls"] == {"pending": 1}
        assert body["outbox_pending"] == 0
        assert body["queues"][CAMPAIGN.name]["messages"] == 1
        await infra.drain(amqp_url, CAMPAIGN.name)

        assert (await client.get("/stats")).status == 401
