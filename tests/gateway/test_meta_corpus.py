"""Each fixture of the real Meta webhook corpus, replayed signed through the webhook route: every
message becomes the ``IncomingMessage`` of its kind (files through the media worker first), every
status moves its outgoing message, and whatever is not forwarded -- other webhook fields, a status
of no state we report, a placeholder sender -- is counted and logged with the provider id."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from parley_shared.topology import INCOMING
from tests.gateway.helpers import META_SECRET, eventually, meta_settings, queue_size, running, take
from tests.support.corpus import JPEG, NOTHING, REFUSED, corpus, files, rewrite
from tests.support.fake_meta import FakeMeta, body_bytes, sign


@pytest.fixture
async def graph() -> AsyncIterator[FakeMeta]:
    fake = await FakeMeta().start()
    fake.media["65463453"] = (JPEG, "image/jpeg")
    yield fake
    await fake.close()


def _skipped(reason: str) -> float:
    return REGISTRY.get_sample_value("parley_gateway_skipped_total", {"provider": "meta", "reason": reason}) or 0.0


@pytest.mark.parametrize("fixture", files())
async def test_each_corpus_fixture_through_the_webhook(
    amqp_url: str, tmp_path: Path, graph: FakeMeta, fixture: str
) -> None:
    now = int(time.time())
    replays = [rewrite(f, e, p, n, now) for n, (f, e, p) in enumerate(corpus(fixture))]
    forwarded = [r for r in replays if r.outcome not in (NOTHING, REFUSED)]
    settings = meta_settings(
        amqp_url,
        f"sqlite+aiosqlite:///{tmp_path}/g.db",
        graph,
        media_dir=str(tmp_path / "media"),
        media_download_attempts=1,
    )
    before = {reason: _skipped(reason) for reason in ("other_field", "status_ignored", "not_a_phone")}
    async with running(settings) as client:
        with capture_logs() as logs:
            for replay in replays:
                body = body_bytes(replay.payload)
                response = await client.post(
                    "/webhook", data=body, headers={"X-Hub-Signature-256": sign(META_SECRET, body)}
                )
                assert response.status == 200, await response.text()
            published = await take(amqp_url, INCOMING.name, len(forwarded)) if forwarded else []
        by_wamid = {m["provider_message_id"]: m for m in published}
        assert set(by_wamid) == {r.message_ids[0] for r in forwarded}
        for replay in forwarded:
            message = by_wamid[replay.message_ids[0]]
            assert message["phone"] == f"+{replay.senders[0]}" and message["chat_id"] == replay.senders[0]
            assert message["kind"] == (replay.kind or "text"), replay.name
            assert message["v"] == 3
        skipped = [entry for entry in logs if entry["event"] == "ingest.skipped"]
        for replay in replays:
            if replay.outcome == REFUSED:  # a placeholder sender: refused cleanly, with its id in the log
                assert any(e["provider_message_id"] == replay.message_ids[0] for e in skipped)
                assert _skipped("not_a_phone") > before["not_a_phone"]
        fields = {e["detail"] for e in skipped if e["reason"] == "other_field"}
        if fixture.split("/")[-1].startswith(("account_", "template_", "call_connect", "call_status", "call_term")):
            assert fields and _skipped("other_field") > before["other_field"]
        if fixture.endswith("message_status.json") and "18.0" not in fixture:
            assert {e["detail"] for e in skipped if e["reason"] == "status_ignored"} == {"status played", "status read"}

        async def drained() -> bool:
            return await queue_size(amqp_url, INCOMING.name) == 0

        await eventually(drained, what="nothing else published")
