"""Managers' follow-up routes: the active touches, cancelling a contact's sequence, resuming it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.support.followups import START, Rig, auth, make_rig


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    rig = await make_rig(database_url)
    yield rig
    await rig.close()


async def test_active_touches_cancel_and_resume(rig: Rig) -> None:
    aigerim = await rig.add_contact("+77010000001", name="Aigerim")
    boris = await rig.add_contact("+77010000002")
    await rig.agent_replies(aigerim)
    await rig.agent_replies(boris, at=START + timedelta(minutes=5))
    async with TestClient(TestServer(rig.app)) as client:
        assert (await client.get("/follow-ups/active")).status == 401
        page = await (await client.get("/follow-ups/active", headers=auth())).json()
        assert page["total"] == 10 and page["timezone"] == "Asia/Almaty"
        first = next(i for i in page["items"] if i["contact_id"] == aigerim and i["touch"] == 1)
        assert (first["phone"], first["name"], first["strategy"]) == ("+77010000001", "Aigerim", "reminder")
        assert first["due_at"].endswith("Z") or first["due_at"].endswith("+00:00")
        assert first["due_at_local"].startswith("2026-01-06T10:") and first["due_at_local"].endswith("+05:00")
        dues = [item["due_at"] for item in page["items"]]
        assert dues == sorted(dues)

        only = await (
            await client.get("/follow-ups/active", params={"phone": "+77010000002", "limit": 2}, headers=auth())
        ).json()
        assert only["total"] == 5 and [i["touch"] for i in only["items"]] == [1, 2]
        assert (await client.get("/follow-ups/active", params={"limit": 0}, headers=auth())).status == 400
        assert (await client.get("/follow-ups/active", params={"phone": "abc"}, headers=auth())).status == 400

        # The manager stops Boris's follow-ups (the phone in any WhatsApp format).
        stopped = await client.delete("/contacts/77010000002/follow-ups", headers=auth())
        assert stopped.status == 200
        assert await stopped.json() == {"phone": "+77010000002", "cancelled": 5, "follow_ups_stopped": True}
        page = await (await client.get("/follow-ups/active", headers=auth())).json()
        assert {i["phone"] for i in page["items"]} == {"+77010000001"}
        await rig.agent_replies(boris)
        assert [t for t in await rig.touches(boris) if t["status"] == "pending"] == [], "stopped for good"

        resumed = await client.post("/contacts/%2B77010000002/follow-ups/resume", headers=auth())
        assert resumed.status == 200 and (await resumed.json())["follow_ups_stopped"] is False
        await rig.agent_replies(boris)
        assert len([t for t in await rig.touches(boris) if t["status"] == "pending"]) == 5

        # Only this sequence: a later AI message may start a new one.
        once = await client.delete("/contacts/77010000001/follow-ups", params={"permanent": "false"}, headers=auth())
        assert await once.json() == {"phone": "+77010000001", "cancelled": 5, "follow_ups_stopped": False}
        await rig.agent_replies(aigerim)
        assert len([t for t in await rig.touches(aigerim) if t["status"] == "pending"]) == 5

        assert (await client.delete("/contacts/77019999999/follow-ups", headers=auth())).status == 404
        assert (await client.delete("/contacts/not-a-phone/follow-ups", headers=auth())).status == 400
