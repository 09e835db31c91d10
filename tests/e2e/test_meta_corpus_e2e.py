"""Every payload of the real Meta webhook corpus (``../shared/corpus/meta-webhooks``), replayed signed
through the gateway's webhook route with the agent service running: each kind has its expected
outcome, no message goes unrecorded, nothing answers a status or a system event, and every sender
is answered on its own number -- senders from a dozen countries, none of them moved to +7.

Each example gets its own message ids and sender and the time of the replay (``tests/support/corpus.py``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_service.app import create_app as create_agent
from parley_shared.contracts import stable_id
from tests.agent.conversation_support import AUTH as AGENT_AUTH
from tests.agent.conversation_support import settings_for
from tests.gateway.helpers import AUTH as GATEWAY_AUTH
from tests.gateway.helpers import META_SECRET, eventually, meta_settings, running
from tests.support.corpus import ANSWERED, JPEG, PDF, SILENT, Replay, corpus, rewrite
from tests.support.fake_meta import FakeMeta, body_bytes, sign


@pytest.fixture
async def graph() -> AsyncIterator[FakeMeta]:
    fake = await FakeMeta().start()
    # Files the corpus names: some are served (kept), the rest answer 404 (recorded with the reason).
    fake.media["65463453"] = (JPEG, "image/jpeg")
    fake.media["1234567890987654321"] = (PDF, "application/pdf")
    yield fake
    await fake.close()


@asynccontextmanager
async def stack(amqp_url: str, tmp_path: Path, graph: FakeMeta) -> AsyncIterator[tuple[TestClient, TestClient]]:
    gateway = meta_settings(
        amqp_url,
        f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        graph,
        media_dir=str(tmp_path / "media"),
        media_download_attempts=2,
    )
    agent_app = create_agent(settings_for(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/agent.db", buffer_window_s=0.05))
    async with running(gateway) as gw, TestClient(TestServer(agent_app)) as agent:
        yield gw, agent


async def conversation(agent: TestClient, wa_id: str) -> dict[str, Any] | None:
    response = await agent.get(f"/contacts/%2B{wa_id}", headers=AGENT_AUTH, params={"limit": "50"})
    return await response.json() if response.status == 200 else None


async def test_the_whole_corpus_replayed_through_the_webhook(amqp_url: str, tmp_path: Path, graph: FakeMeta) -> None:
    now = int(time.time())
    replays = [rewrite(f, e, p, n, now) for n, (f, e, p) in enumerate(corpus())]
    assert len(replays) > 100
    async with stack(amqp_url, tmp_path, graph) as (gateway, agent):
        for replay in replays:
            body = body_bytes(replay.payload)
            response = await gateway.post(
                "/webhook", data=body, headers={"X-Hub-Signature-256": sign(META_SECRET, body)}
            )
            assert response.status == 200, (replay.file, replay.name, await response.text())

        recorded = [r for r in replays if r.outcome in (ANSWERED, SILENT)]
        answered = {s for r in replays if r.outcome == ANSWERED for s in r.senders}

        missing: list[tuple[str, str]] = []

        async def all_recorded() -> bool:
            missing.clear()
            for replay in recorded:
                convo = await conversation(agent, replay.contact)
                ids = {m["message_id"] for m in (convo or {}).get("messages", [])}
                if stable_id("in", "meta", replay.message_ids[0]) not in ids:
                    missing.append((replay.file, replay.name))
            return not missing

        async def all_answered() -> bool:
            return answered <= {call.to for call in graph.sends}

        try:
            await eventually(all_recorded, timeout=90, what="every message recorded by the agent")
        except AssertionError:
            raise AssertionError(f"not recorded: {missing}") from None
        try:
            await eventually(all_answered, timeout=90, what="a reply to every conversational message")
        except AssertionError:
            sent = {call.to for call in graph.sends}
            unanswered = [(r.file, r.name) for r in replays if r.outcome == ANSWERED and not set(r.senders) <= sent]
            raise AssertionError(f"not answered: {unanswered}") from None

        # Every reply went to a sender of the corpus on its own number; none to a silent one.
        silent = {s for r in replays if r.outcome != ANSWERED for s in r.senders}
        assert {call.to for call in graph.sends} <= answered
        assert not {call.to for call in graph.sends} & silent

        for replay in recorded:
            convo = await conversation(agent, replay.contact)
            assert convo is not None and convo["contact"]["phone"] == f"+{replay.contact}"
            [message] = [
                m for m in convo["messages"] if m["message_id"] == stable_id("in", "meta", replay.message_ids[0])
            ]
            assert message["kind"] == (replay.kind or "text"), (replay.file, replay.name)
            expected_status = "silent" if replay.outcome == SILENT else "handled"
            assert message["status"] == expected_status, (replay.file, replay.name, message)
            _check_content(replay, message)

        stats = await (await gateway.get("/stats", headers=GATEWAY_AUTH)).json()
        assert stats["outbox_pending"] == 0
        metrics = await (await gateway.get("/metrics")).text()
        assert 'parley_gateway_skipped_total{provider="meta",reason="not_a_phone"}' in metrics
        assert 'parley_gateway_skipped_total{provider="meta",reason="other_field"}' in metrics
        assert 'parley_gateway_skipped_total{provider="meta",reason="status_ignored"}' in metrics
        assert 'parley_gateway_inbound_kinds_total{kind="unsupported",provider="meta"}' in metrics


def _check_content(replay: Replay, message: dict[str, Any]) -> None:
    """What the records keep of each kind."""
    key = replay.key
    details = message["details"] or {}
    if key == ("message.json", "image"):
        assert message["media"]["stored"] and message["media"]["size"] == len(JPEG)
        assert message["media"]["mime_type"] == "image/jpeg"
    elif key == ("message.json", "document"):
        assert message["media"]["file_name"] == "filename.pdf" and message["caption"] == "caption"
        assert message["media"]["size"] == len(PDF)
    elif key == ("message.json", "video"):
        assert message["media"]["error"].startswith("not_found")  # the fake has no such file
        assert message["caption"] == "caption"
    elif key == ("message.json", "contacts"):
        assert "+1 555-555-5555" in message["text"] and len(details["contacts"]) == 3
    elif key == ("message.json", "order"):
        assert [i["product_id"] for i in details["order"]["items"]] == ["HAMBURGER", "FRENCH_FRIES", "SODA"]
    elif key == ("flow_completion.json", "completion"):
        answers = details["interactive"]["data"]
        assert answers["delivery_rating"] == "4" and "flow_token" not in answers
    elif key == ("callback_selection.json", "description"):
        assert details["interactive"] == {
            "type": "list",
            "id": "callback_data",
            "title": "title",
            "description": "description",
        }
    elif key == ("message.json", "referral"):
        assert details["referral"]["source_id"] == "ADID"
    elif key == ("message.json", "reaction"):
        assert details["reaction"] == "😮" and message["target_message_id"] == stable_id("in", "meta", "wamid.yzxyzx=")
    elif key == ("message.json", "unsupported_with_type"):
        assert "pool" in details["unsupported"]
