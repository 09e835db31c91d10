"""Whatever text comes from outside, the console's templates show it escaped (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from agent_service.console.conversation import Entry
from agent_service.console.templating import configure
from agent_service.domain.working_hours import WorkingHours

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("agent_service.console", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)
configure(ENV, WorkingHours.build("Asia/Almaty", 10, 18), lambda name: f"/console/static/{name}")
AT = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
outside = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=300)
hostile = st.sampled_from(["<script>x</script>", '"><img src=x onerror=y>', "\u202e<b>", "'&\"<>"])
texts = st.one_of(outside, hostile, st.tuples(outside, hostile).map("".join))


def contact(name: str, text: str) -> dict[str, Any]:
    return {
        "id": 7,
        "phone": "+77010000001",
        "name": name,
        "client_status": "client",
        "client_category": "prospect",
        "classification_reason": text,
        "classification_confidence": 0.9,
        "classified_by": "moderator",
        "spin_stage": "problem",
        "outcome": "open",
        "owner": "human",
        "owner_name": name,
        "owner_manager_id": 3,
        "needs_human": True,
        "needs_human_reason": text,
        "language": "en",
        "notes": text,
        "follow_ups_stopped": False,
        "follow_ups_stop_reason": None,
        "updated_at": AT,
    }


def message(text: str, **values: Any) -> dict[str, Any]:
    return {
        "id": 11,
        "direction": "in",
        "kind": "image",
        "status": "handled",
        "text": text,
        "transcribed": False,
        "error": None,
        "author": None,
        "created_at": AT,
        **values,
    }


def assert_escaped(html: str, value: str) -> None:
    assert str(escape(value)) in html


@settings(max_examples=60, deadline=None)
@given(name=texts, text=texts)
def test_inbox_and_thread_escape_every_outside_text(name: str, text: str) -> None:
    row = contact(name, text)
    inbox = ENV.get_template("_inbox_list.html").render(
        rows=[row],
        last={7: message(text)},
        unread={7: 2},
        manager={"id": 1},
        list_src="/console/inbox/list",
        next_cursor=None,
        query=None,
        preview=lambda m: m["text"],
    )
    assert_escaped(inbox, name)
    assert "<bdi>" + str(escape(name)) + "</bdi>" in inbox
    reply = message(text, direction="out", kind="operator", author=name, status="sent")
    audit = {
        "id": 3,
        "actor_name": name,
        "action": "classification",
        "created_at": AT,
        "detail": {"to": "client", "category": "prospect", "reason": text},
    }
    thread = ENV.get_template("_thread.html").render(
        contact=row,
        entries=[Entry(AT, message=message(text)), Entry(AT, message=reply), Entry(AT, audit=audit)],
        older_before=None,
        first_id=11,
        suggestion=reply,
    )
    for value in (name, text):
        assert_escaped(thread, value)
    assert "<script>x" not in inbox + thread and "<img src=x" not in inbox + thread
