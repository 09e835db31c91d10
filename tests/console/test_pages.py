"""The console's pages and fragments, over HTTP on the real RabbitMQ (SQLite, PostgreSQL where it matters).

Each page is driven like a browser does: cookies, the CSRF token read from the page, the
``HX-Request`` header of htmx. What a page shows is checked in its HTML; what an action did is
checked through the JSON API and the audit trail.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from agent_service.context import AGENT
from agent_service.db import tables
from agent_service.domain.call_slots import propose
from parley_shared.contracts import OutgoingKind
from parley_shared.service import RUNTIME
from tests.agent.conversation_support import AUTH
from tests.console.support import ADMIN, MANAGER, Browser, Console, running_console
from tests.gateway.helpers import eventually

PHONE = "+77010000061"


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/console.db"


async def audit_actions(console: Console, contact_id: int) -> list[tuple[str, str]]:
    a = tables.audit_log.c
    async with console.app[RUNTIME].sessions() as session:
        rows = await session.execute(select(a.actor_name, a.action).where(a.contact_id == contact_id).order_by(a.id))
    return [(r.actor_name, r.action) for r in rows]


async def signed_in(console: Console, who: tuple[str, str, str] = MANAGER) -> Browser:
    browser = console.browser()
    response = await browser.sign_in(who[0], who[2])
    assert response.status == 303, await response.text()
    return browser


async def book_call(console: Console, contact_id: int) -> int:
    desk = console.app[AGENT].desk
    now = desk.clock.now()
    slot = propose(now, desk.booker.rules)[0]
    async with console.app[RUNTIME].sessions() as session, session.begin():
        result = await session.execute(
            tables.scheduled_calls.insert().values(
                contact_id=contact_id,
                scheduled_at=slot,
                timezone=desk.booker.rules.hours.tz.key,
                status="pending",
                notes="call me <b>please</b>",
                created_at=now,
                updated_at=now,
            )
        )
        return int(result.inserted_primary_key[0])


# ---------------------------------------------------------------------------- accounts and access


async def test_sign_in_out_and_where_a_signed_out_request_goes(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        browser = console.browser()
        # Not signed in: a page goes to sign-in (remembering where it was), htmx gets 401 + HX-Redirect.
        page = await browser.get("/console/inbox?show=mine", allow_redirects=False)
        location = urlsplit(page.headers["Location"])
        assert page.status == 303 and location.path == "/console/sign-in"
        assert parse_qs(location.query)["next"] == ["/console/inbox?show=mine"]
        fragment = await browser.get(
            "/console/inbox/list", headers={"HX-Request": "true", "HX-Current-URL": "http://x/console/c/5"}
        )
        assert fragment.status == 401 and fragment.headers["HX-Redirect"] == "/console/sign-in?next=/console/c/5"
        stream = await browser.get("/console/events", headers={"Accept": "text/event-stream"})
        assert stream.status == 401
        assert (await browser.get("/", allow_redirects=False)).headers["Location"] == "/console/inbox"

        wrong = await browser.sign_in(MANAGER[0], "not-the-password")
        assert wrong.status == 401 and "Wrong login or password" in await wrong.text()
        unknown = await browser.sign_in("nobody", "whatever-password")
        assert unknown.status == 401 and "Wrong login or password" in await unknown.text()
        # "next" only ever leads to a console page of this site.
        for evil in ("https://evil.example/", "//evil.example/console/", "/console\\@evil"):
            response = await browser.sign_in(MANAGER[0].upper(), MANAGER[2], next_path=evil)
            assert response.status == 303 and response.headers["Location"] == "/console/inbox", evil
        response = await browser.sign_in(MANAGER[0], MANAGER[2], next_path="/console/calls")
        assert response.headers["Location"] == "/console/calls"
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # not in production (the test server speaks plain HTTP)
        who = await (await browser.get("/console/whoami")).json()
        assert who["name"] == MANAGER[1] and who["role"] == "manager"

        out = await browser.post("/console/sign-out", htmx=False)
        assert out.status == 303 and out.headers["Location"] == "/console/sign-in"
        assert (await browser.get("/console/whoami", headers={"HX-Request": "true"})).status == 401


async def test_production_cookies_are_secure(amqp_url: str, tmp_path: Path) -> None:
    overrides = {
        "app_env": "production",
        "api_token": "Zq8-w3xV_r7Lp2sK-9yT-production",
        "erasure_key": "erasure-key-0123456789abcdef",
    }
    async with running_console(amqp_url, sqlite(tmp_path), **overrides) as console:
        # The sign-in page starts an anonymous session (for its CSRF token): its cookie is Secure already,
        # so this plain-HTTP test client does not even send it back.
        response = await console.browser().get("/console/sign-in")
        assert response.status == 200 and "; Secure" in response.headers["Set-Cookie"]


async def test_sign_in_is_throttled_per_login_and_per_address(amqp_url: str, tmp_path: Path) -> None:
    overrides = {"console_sign_in_max_failures": 3, "console_sign_in_max_failures_per_address": 5}
    async with running_console(amqp_url, sqlite(tmp_path), **overrides) as console:
        browser = console.browser()
        for _ in range(3):
            assert (await browser.sign_in(MANAGER[0], "wrong-password")).status == 401
        # The login is locked: even the right password is refused, without being checked.
        locked = await browser.sign_in(MANAGER[0], MANAGER[2])
        assert locked.status == 429 and "Too many failed sign-ins" in await locked.text()
        assert int(locked.headers["Retry-After"]) > 0
        # Another login from the same address still works until the address's own limit.
        assert (await browser.sign_in(ADMIN[0], ADMIN[2])).status == 303
        for _ in range(2):
            assert (await browser.sign_in("somebody-else", "wrong-password")).status == 401
        assert (await browser.sign_in(ADMIN[0], ADMIN[2])).status == 429
        # The window passes (the clock moves on): sign-in opens again.
        rows = tables.sign_in_failures
        an_hour_ago = console.app[AGENT].desk.clock.now() - timedelta(hours=1)
        async with console.app[RUNTIME].sessions() as session, session.begin():
            await session.execute(rows.update().values(created_at=an_hour_ago))
        assert (await browser.sign_in(MANAGER[0], MANAGER[2])).status == 303


async def test_csrf_missing_or_forged_is_refused_and_changes_nothing(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        await console.agent.say(PHONE, "Hello")
        contact_id = await console.contact_id(PHONE)
        browser = await signed_in(console)
        for token in ("", "forged-token", browser.csrf + "x"):
            for path, data in (
                (f"/console/c/{contact_id}/takeover", {}),
                (f"/console/c/{contact_id}/reply", {"text": "hi"}),
                (f"/console/c/{contact_id}/classification", {"client_status": "non_client", "reason": "x"}),
            ):
                response = await browser.post(path, data, csrf=token)
                assert response.status == 403, (path, token)
                assert "security token" in await response.text()
                form = await browser.post(path, {**data, "csrf_token": token}, htmx=False, csrf="")
                assert form.status == 403
        convo = await console.agent.conversation(PHONE)
        assert convo["contact"]["owner"] == "ai" and convo["contact"]["client_status"] != "non_client"
        assert [m["kind"] for m in convo["messages"]] == ["text", "reply"]
        assert await audit_actions(console, contact_id) == []
        # An expired session: the reply being sent goes to sign-in (the page keeps the text), nothing is sent.
        browser.forget_session()
        here = {"HX-Current-URL": f"http://console.example/console/c/{contact_id}"}
        expired = await browser.post(f"/console/c/{contact_id}/reply", {"text": "kept"}, headers=here)
        assert expired.status == 401
        assert expired.headers["HX-Redirect"] == f"/console/sign-in?next=/console/c/{contact_id}"
        assert [m["kind"] for m in (await console.agent.conversation(PHONE))["messages"]] == ["text", "reply"]
        # Signing in needs the token too (no login CSRF).
        response = await console.browser().client.post(
            "/console/sign-in", data={"login": MANAGER[0], "password": MANAGER[2]}
        )
        assert response.status == 403


async def test_admin_only_pages_and_a_disabled_accounts_sessions(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        manager = await signed_in(console)
        assert (await manager.get("/console/managers")).status == 403
        new = {"login": "eve", "display_name": "Eve", "password": "eve-password-1", "role": "admin"}
        assert (await manager.post("/console/managers", new, htmx=False)).status == 403
        assert "eve" not in [m.login for m in await console.accounts.list()]

        admin = await signed_in(console, ADMIN)
        page = await admin.page("/console/managers")
        assert "dana" in page and "boss" in page and 'href="/console/managers"' in page
        added = await admin.post("/console/managers", {**new, "role": "manager"}, htmx=False)
        assert added.status == 200 and "Added eve." in await added.text()
        duplicate = await admin.post("/console/managers", {**new, "role": "manager"}, htmx=False)
        assert duplicate.status == 400 and "taken" in await duplicate.text()
        short = await admin.post("/console/managers", {**new, "login": "eve2", "password": "short"}, htmx=False)
        assert short.status == 400 and "8 to 200" in await short.text()

        # Disabling Dana ends her open session at its next request.
        dana = next(m for m in await console.accounts.list() if m.login == MANAGER[0])
        assert (await manager.get("/console/inbox", allow_redirects=False)).status == 200
        response = await admin.post(f"/console/managers/{dana.id}/disable", htmx=False)
        assert response.status == 200 and "Disabled dana" in await response.text()
        assert (await manager.get("/console/inbox", allow_redirects=False)).status == 303
        assert (await console.browser().sign_in(MANAGER[0], MANAGER[2])).status == 401
        assert (await admin.post(f"/console/managers/{dana.id}/enable", htmx=False)).status == 200
        manager = await signed_in(console)
        # A new password ends the sessions signed in with the old one.
        response = await admin.post(f"/console/managers/{dana.id}/password", {"password": "new-password-9"}, htmx=False)
        assert "sessions ended" in await response.text()
        assert (await manager.get("/console/inbox", allow_redirects=False)).status == 303
        assert (await console.browser().sign_in(MANAGER[0], "new-password-9")).status == 303
        # An admin cannot lock themselves out.
        me = next(m for m in await console.accounts.list() if m.login == ADMIN[0])
        response = await admin.post(f"/console/managers/{me.id}/disable", htmx=False)
        assert response.status == 400 and "your own account" in await response.text()


# ---------------------------------------------------------------------------- the inbox


async def test_inbox_filters_search_unread_counts_and_badge(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        agent = console.agent
        await agent.say("+77010000071", "Hello, how much is the ErgoPro 300 chair?", name="Aigerim")
        await agent.say("+77010000072", "Do you sell coffee machines?", name="Bolat")  # the manager handoff
        await agent.say("+77010000073", "Hello", name="Chen")
        await agent.say("+77010000074", "Hello", name="Darkhan")
        ids = {
            name: await console.contact_id(phone)
            for name, phone in (
                ("Aigerim", "+77010000071"),
                ("Bolat", "+77010000072"),
                ("Chen", "+77010000073"),
                ("Darkhan", "+77010000074"),
            )
        }
        dana = await signed_in(console)
        admin = await signed_in(console, ADMIN)
        assert (await dana.post(f"/console/c/{ids['Chen']}/takeover")).status == 200
        assert (await admin.post(f"/console/c/{ids['Darkhan']}/takeover")).status == 200
        patch = {"client_status": "non_client", "client_category": "supplier", "reason": "offers paper"}
        await agent.client.patch("/contacts/%2B77010000073", json={"outcome": "agreed"}, headers=AUTH)
        await agent.client.patch("/contacts/%2B77010000074", json=patch, headers=AUTH)

        def names(html: str) -> list[str]:
            return re.findall(r'<span class="name"><bdi>([^<]+)</bdi>', html)

        inbox = await dana.page("/console/inbox")
        assert names(inbox) == ["Darkhan", "Chen", "Bolat", "Aigerim"]  # latest activity first
        assert 'class="row needs-human' in inbox and "Needs a human" in inbox
        assert re.search(r'id="needs-badge" class="badge alert"[^>]*data-count="1"', inbox)
        assert names(await dana.page("/console/inbox?show=needs_human")) == ["Bolat"]
        assert names(await dana.page("/console/inbox?show=mine")) == ["Chen"]
        assert names(await dana.page("/console/inbox?show=others")) == ["Darkhan"]
        assert names(await admin.page("/console/inbox?show=mine")) == ["Darkhan"]
        assert names(await dana.page("/console/inbox?show=ai")) == ["Bolat", "Aigerim"]
        assert names(await dana.page("/console/inbox?show=non_clients")) == ["Darkhan"]
        assert names(await dana.page("/console/inbox?outcome=agreed")) == ["Chen"]
        assert names(await dana.page("/console/inbox?q=aig")) == ["Aigerim"]
        assert names(await dana.page("/console/inbox?q=%2B7%20701%20000%2000%2072")) == ["Bolat"]
        assert names(await dana.page("/console/inbox?show=bogus&outcome=nonsense")) == names(inbox)
        fragment = await dana.page("/console/inbox/list?show=mine")
        assert (
            fragment.startswith('<section id="inbox-list"')
            and 'data-live-src="/console/inbox/list?show=mine"' in fragment
        )

        # Unread: per manager; opening the conversation reads it.
        unread = re.search(rf'id="c-{ids["Aigerim"]}".*?</a>', inbox, re.S)
        assert unread and 'aria-label="1 unread"' in unread.group(0)
        await dana.page(f"/console/c/{ids['Aigerim']}")
        row = re.search(rf'id="c-{ids["Aigerim"]}".*?</a>', await dana.page("/console/inbox"), re.S)
        assert row and "unread" not in row.group(0)
        row = re.search(rf'id="c-{ids["Aigerim"]}".*?</a>', await admin.page("/console/inbox"), re.S)
        assert row and 'aria-label="1 unread"' in row.group(0)

        badge = await dana.page("/console/badge")
        assert 'data-count="1"' in badge
        await dana.post(f"/console/c/{ids['Bolat']}/takeover")  # a human has it now
        assert 'data-count="0"' in await dana.page("/console/badge")


# ---------------------------------------------------------------------------- the conversation


async def test_conversation_takeover_reply_handback_override_and_the_audit_trail(
    amqp_url: str, pg_database_url: str
) -> None:
    async with running_console(amqp_url, pg_database_url, enable_follow_ups=True) as console:
        agent = console.agent
        await agent.say(PHONE, "Hello! How much is the ErgoPro 300 chair?", name="Aru")
        contact_id = await console.contact_id(PHONE)
        dana = await signed_in(console)
        page = await dana.page(f"/console/c/{contact_id}")
        assert "89 900 ₸" in page and "Knowledge used (1)" in page and "komfortoffice_catalogue.pdf" in page
        assert "The AI answers." in page and "Follow-ups" in page and "Asia/Almaty" in page
        assert '<section id="thread"' in page and '<aside id="panel"' in page
        assert "pending" in page  # the follow-up sequence planned after the AI's reply

        # Take over: the API shows the manager; the follow-ups are cancelled; the timeline says so.
        response = await dana.post(f"/console/c/{contact_id}/takeover")
        body = await response.text()
        assert response.status == 200 and 'hx-swap-oob="outerHTML"' in body
        assert "You hold this conversation" in body
        assert "Dana</bdi></span> took the conversation over" in body
        contact = (await agent.conversation(PHONE))["contact"]
        assert (contact["owner"], contact["owner_name"]) == ("human", "Dana")
        assert {t["status"] for t in (await agent.conversation(PHONE))["follow_ups"]} == {"cancelled"}

        # Reply: it reaches the prospect as an operator message, once per client message id.
        form = {"text": "Hi Aru, Dana here.", "client_message_id": "m-1"}
        response = await dana.post(f"/console/c/{contact_id}/reply", form)
        assert response.status == 200 and response.headers["HX-Trigger"] == "parley:sent"
        assert (await dana.post(f"/console/c/{contact_id}/reply", form)).status == 200
        [operator] = [m for m in await agent.replies.wait_for(2, phone=PHONE) if m.kind is OutgoingKind.OPERATOR]
        assert operator.text == "Hi Aru, Dana here."
        thread = await dana.page(f"/console/c/{contact_id}/thread")
        assert (
            thread.count("Hi Aru, Dana here.") == 1 and '<span class="who"><bdi>Dana</bdi></span> · manager' in thread
        )
        blank = await dana.post(f"/console/c/{contact_id}/reply", {"text": "   "})
        assert blank.status == 400 and blank.headers["HX-Retarget"] == "#flash"
        long = await dana.post(f"/console/c/{contact_id}/reply", {"text": "x" * 5000})
        assert long.status == 400 and "at most 4096" in await long.text()

        # While Dana holds it the AI drafts; the draft is offered, never sent.
        await console.prospect_says(PHONE, "Do you deliver to Astana?")

        async def drafted() -> bool:
            return "The AI's draft" in await dana.page(f"/console/c/{contact_id}/thread")

        await eventually(drafted, what="the AI's draft")
        thread = await dana.page(f"/console/c/{contact_id}/thread")
        assert "data-use-suggestion=" in thread and "draft, not sent" in thread
        assert not [m for m in agent.replies.to(PHONE) if m.kind is OutgoingKind.REPLY][1:]

        # Override the classification (a reason is required) and the outcome.
        missing = await dana.post(f"/console/c/{contact_id}/classification", {"client_status": "non_client"})
        assert missing.status == 400 and "needs a reason" in await missing.text()
        override = {"client_status": "non_client", "client_category": "supplier", "reason": "sells us paper"}
        assert (await dana.post(f"/console/c/{contact_id}/classification", override)).status == 200
        assert (await dana.post(f"/console/c/{contact_id}/classification", {"outcome": "declined"})).status == 200
        contact = (await agent.conversation(PHONE))["contact"]
        assert (contact["client_status"], contact["classified_by"], contact["outcome"]) == (
            "non_client",
            "manager",
            "declined",
        )
        panel = await dana.page(f"/console/c/{contact_id}/panel")
        assert "Non-client · Supplier" in panel and "sells us paper" in panel and "Declined" in panel

        # Follow-ups: stop and resume.
        assert (await dana.post(f"/console/c/{contact_id}/follow-ups/cancel")).status == 200
        assert (await agent.conversation(PHONE))["contact"]["follow_ups_stopped"] is True
        assert (await dana.post(f"/console/c/{contact_id}/follow-ups/resume")).status == 200
        assert (await agent.conversation(PHONE))["contact"]["follow_ups_stopped"] is False

        # Hand back; the bearer-token API acts as "api" in the same trail.
        assert (await dana.post(f"/console/c/{contact_id}/handback")).status == 200
        assert (
            await agent.client.post(f"/contacts/{PHONE}/takeover", json={"manager": "Ops"}, headers=AUTH)
        ).status == 200
        assert await audit_actions(console, contact_id) == [
            ("Dana", "takeover"),
            ("Dana", "message"),
            ("Dana", "classification"),
            ("Dana", "outcome"),
            ("Dana", "follow_ups_cancelled"),
            ("Dana", "follow_ups_resumed"),
            ("Dana", "handback"),
            ("api", "takeover"),
        ]
        page = await dana.page(f"/console/c/{contact_id}")
        assert "api</bdi></span> took the conversation over" in page and "handed the conversation back" in page
        assert "changed the classification: Non-client (Supplier)" in page

        # Without htmx an action redirects back to the page; unknown conversations are 404 pages.
        response = await dana.post(f"/console/c/{contact_id}/handback", {"csrf_token": dana.csrf}, htmx=False)
        assert response.status == 303 and response.headers["Location"] == f"/console/c/{contact_id}"
        for path in ("/console/c/999999", "/console/c/abc", "/console/c/99999999999999999999/panel"):
            missing_page = await dana.get(path)
            assert missing_page.status == 404 and "Not found" in await missing_page.text(), path


async def test_older_messages_page_and_every_message_kind_is_shown(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        await console.agent.say(PHONE, "Hello")
        contact_id = await console.contact_id(PHONE)
        now = console.app[AGENT].desk.clock.now()
        rows: list[dict[str, Any]] = [
            {"kind": "voice", "text": "transcribed words", "transcribed": True, "direction": "in", "status": "silent"},
            {"kind": "voice", "text": None, "error": "no_transcriber", "direction": "in", "status": "silent"},
            {"kind": "image", "text": "a photo caption", "direction": "in", "status": "silent"},
            {
                "kind": "reply",
                "text": "Let me check with a manager.",
                "error": "ungrounded: price 1 000 ₸",
                "direction": "out",
                "status": "sent",
            },
            {"kind": "follow_up", "text": "Just checking in", "direction": "out", "status": "sent"},
        ]
        rows += [{"kind": "text", "text": f"filler {i}", "direction": "in", "status": "silent"} for i in range(120)]
        async with console.app[RUNTIME].sessions() as session, session.begin():
            for i, row in enumerate(rows):
                await session.execute(
                    tables.messages.insert().values(
                        contact_id=contact_id, message_id=f"seed-{i}", created_at=now + timedelta(seconds=i), **row
                    )
                )
        dana = await signed_in(console)
        page = await dana.page(f"/console/c/{contact_id}")
        assert "filler 119" in page and "filler 0" not in page and "Older messages" in page
        older = re.search(r'hx-get="(/console/c/\d+/thread\?before=\d+)"', page)
        assert older
        chunk = await dana.page(older.group(1))
        assert "filler 0" in chunk and "Transcript" in chunk and "transcribed words" in chunk
        assert "No transcript: no_transcriber" in chunk and "Caption" in chunk and "a photo caption" in chunk
        assert "Replaced by the grounding guard" in chunk and "price 1 000 ₸" in chunk
        assert "follow-up" in chunk and "Just checking in" in chunk
        # The live reload keeps what is on screen: from the first message shown.
        first = re.search(r'id="m-(\d+)"', chunk)
        assert first
        kept = await dana.page(f"/console/c/{contact_id}/thread?from={first.group(1)}")
        assert "Transcript" in kept and "filler 119" in kept and "Older messages" not in kept


# ---------------------------------------------------------------------------- calls


async def test_calls_page_confirm_cancel_and_reschedule_inside_working_hours(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        await console.agent.say(PHONE, "Hello", name="Aru")
        contact_id = await console.contact_id(PHONE)
        first, second = await book_call(console, contact_id), await book_call(console, contact_id)
        dana = await signed_in(console)
        page = await dana.page("/console/calls")
        assert page.count('class="call status-pending"') == 2 and f'href="/console/c/{contact_id}"' in page
        assert "call me &lt;b&gt;please&lt;/b&gt;" in page
        fragment = await dana.page("/console/calls/list")
        assert fragment.startswith('\n<section id="calls-list"') or '<section id="calls-list"' in fragment

        confirmed = await dana.post(f"/console/calls/{first}/confirm", headers={"HX-Target": "calls-list"})
        body = await confirmed.text()
        assert confirmed.status == 200 and '<section id="calls-list"' in body and "status-confirmed" in body
        # A time outside working hours is refused with free slots; nothing changes.
        desk = console.app[AGENT].desk
        hours = desk.booker.rules.hours
        night = hours.local(desk.clock.now() + timedelta(days=1)).replace(hour=3, minute=0)
        refused = await dana.post(f"/console/calls/{second}/reschedule", {"when": night.strftime("%Y-%m-%dT%H:%M")})
        assert (
            refused.status == 400
            and "cannot be booked" in await refused.text()
            and "Free slots" in await refused.text()
        )
        bad = await dana.post(f"/console/calls/{second}/reschedule", {"when": "tomorrow"})
        assert bad.status == 400
        slot = propose(desk.clock.now(), desk.booker.rules)[1]
        moved = await dana.post(
            f"/console/calls/{second}/reschedule", {"when": hours.local(slot).strftime("%Y-%m-%dT%H:%M")}
        )
        assert moved.status == 200 and "You hold" not in await moved.text()  # from the conversation: its parts
        cancelled = await dana.post(f"/console/calls/{first}/cancel")
        assert cancelled.status == 200
        again = await dana.post(f"/console/calls/{first}/confirm")
        assert again.status == 409 and "cancelled" in await again.text()
        assert (await dana.post("/console/calls/424242/confirm")).status == 404
        calls = {c["id"]: c for c in (await console.agent.conversation(PHONE))["calls"]}
        assert calls[first]["status"] == "cancelled" and calls[second]["scheduled_at"] == slot.isoformat().replace(
            "+00:00", "Z"
        )
        assert await audit_actions(console, contact_id) == [
            ("Dana", "call_confirmed"),
            ("Dana", "call_rescheduled"),
            ("Dana", "call_cancelled"),
        ]
        page = await dana.page(f"/console/c/{contact_id}")
        assert "moved a call to" in page and "confirmed a call" in page


# ---------------------------------------------------------------------------- bad input and page hygiene

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "\u202eevil\u202c name",
)


async def test_text_from_outside_is_escaped_everywhere(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        long_text = "long " + "y" * 9995
        phones = [f"+7701000008{i}" for i in range(len(HOSTILE))]
        for phone, hostile in zip(phones, HOSTILE, strict=True):
            await console.agent.say(phone, hostile + " how much is the chair?", name=hostile)
        await console.agent.say("+77010000089", long_text, name="y" * 200)
        contact_id = await console.contact_id(phones[0])
        await book_call(console, contact_id)
        dana = await signed_in(console)
        await dana.post(f"/console/c/{contact_id}/reply", {"text": HOSTILE[1]})
        await dana.post(
            f"/console/c/{contact_id}/classification",
            {"client_status": "client", "reason": HOSTILE[0]},
        )
        pages = [
            await dana.page("/console/inbox"),
            await dana.page("/console/inbox?q=%3Cscript"),
            await dana.page("/console/calls"),
            *[await dana.page(f"/console/c/{await console.contact_id(p)}") for p in phones],
            await dana.page(f"/console/c/{await console.contact_id('+77010000089')}"),
        ]
        for html in pages:
            assert "<script>alert" not in html and "<img src=x" not in html and "onerror=alert(2)>" not in html
        inbox = pages[0]
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in inbox
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in inbox
        assert "<bdi>\u202eevil\u202c name</bdi>" in inbox  # isolated: it cannot reorder the page around it
        convo = pages[3]
        assert convo.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # name, message, reason
        long_page = pages[-1]
        assert long_text in long_page  # shown whole (wrapped by the style sheet), escaped
        assert "<bdi>" + "y" * 200 + "</bdi>" in pages[0]  # a long name, whole


async def test_pages_carry_a_strict_csp_and_no_inline_script(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        await console.agent.say(PHONE, "Hello")
        contact_id = await console.contact_id(PHONE)
        await book_call(console, contact_id)
        admin = await signed_in(console, ADMIN)
        inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=|javascript:", re.I)
        for path in (
            "/console/sign-in",
            "/console/inbox",
            "/console/inbox/list",
            "/console/badge",
            f"/console/c/{contact_id}",
            f"/console/c/{contact_id}/thread",
            f"/console/c/{contact_id}/panel",
            "/console/calls",
            "/console/calls/list",
            "/console/managers",
        ):
            response = await admin.get(path)
            html = await response.text()
            assert response.status == 200, path
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Cache-Control"] == "no-store", path
            assert not inline.search(html), (path, inline.search(html))
        page = await admin.page("/console/inbox")
        for src in re.findall(r'<script defer src="([^"]+)"', page):
            asset = await admin.get(src)
            assert asset.status == 200 and "immutable" in asset.headers["Cache-Control"], src
        assert re.findall(r'src="/console/static/([^"?]+)', page) == [
            "htmx-2.0.11.min.js",
            "console.js",
            "htmx-ext-sse-2.2.4.min.js",
        ]
        assert (await admin.get("/console/static/../settings.py")).status == 404
        assert (await admin.get("/console/static/nothing.js")).status == 404


async def test_the_json_api_document_leaves_the_console_out(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, sqlite(tmp_path)) as console:
        doc = await (await console.agent.client.get("/openapi.json")).json()
        assert not [p for p in doc["paths"] if p.startswith("/console") or p == "/"]
        count = await console.agent.client.get("/console/inbox", allow_redirects=False)
        assert count.status == 303  # no bearer token needed for a page: it signs in with a session
        async with console.app[RUNTIME].sessions() as session:
            assert await session.scalar(select(func.count()).select_from(tables.managers)) == 2
