"""The console in a real browser (Playwright driving Debian's Chromium), against the real processes.

One stack for the module: the gateway on its sandbox provider and two agent-service replicas on
one PostgreSQL database and one RabbitMQ vhost. The prospect writes through the sandbox and
reads what the sandbox delivered, as in ``make demo``; the managers use Chromium.

``PARLEY_CONSOLE_SCREENSHOTS=<dir>`` keeps the screenshots of each page there (the docs' images
are made this way: ``PARLEY_CONSOLE_SCREENSHOTS=docs/images``); otherwise they go to a temporary
directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from agent_service.domain.call_slots import propose
from agent_service.settings import AgentSettings
from parley_demo.client import ParleyClient
from parley_dev.processes import ServiceProcess, free_port
from parley_shared.clock import SystemClock
from parley_shared.db import create_engine
from tests.support import infra
from tests.support.stack import ROOT, Stack

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]
expect.set_options(timeout=15_000)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "browser-test-session-secret-0123456789"
ADMIN = ("boss", "boss-password-1")
DANA = ("dana", "dana-password-1")
TIMEOUT_MS = 15_000
NOTIFICATIONS = """
window.parleyNotes = [];
window.Notification = class {
  constructor(title, options) { window.parleyNotes.push({title: title, body: options.body}); }
  static get permission() { return "granted"; }
  static requestPermission() { return Promise.resolve("granted"); }
};
"""


@dataclass
class ConsoleStack:
    stack: Stack
    replica: ServiceProcess  # a second agent-service replica (same database, same vhost)
    client: ParleyClient
    shots: Path

    @property
    def first(self) -> str:
        return self.stack.agent.url

    @property
    def second(self) -> str:
        return self.replica.url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ConsoleStack]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    workdir = tmp_path_factory.mktemp("console-browser")
    vhost = f"{infra.VHOST}_browser"
    infra.ensure_vhost(vhost)
    amqp_url = infra.amqp_url(vhost)
    await infra.reset_topology(amqp_url)
    agent_db = await infra.recreate_database("console_browser")
    agent_env = {
        "CONSOLE_SESSION_SECRET": SECRET,
        "CONSOLE_ADMIN_LOGIN": ADMIN[0],
        "CONSOLE_ADMIN_PASSWORD": ADMIN[1],
        "CONSOLE_ADMIN_NAME": "Boss",
        "LLM_ENGINE": "offline",
        "KNOWLEDGE_EMBEDDINGS": "false",
        "BUFFER_WINDOW_S": "0.2",
        "TURN_SWEEP_INTERVAL_S": "0.5",
    }
    stack = Stack(
        workdir,
        amqp_url,
        gateway_db=f"sqlite+aiosqlite:///{workdir}/gateway.db",
        agent_db=agent_db,
        agent_env=agent_env,
    )
    port = free_port()
    replica = ServiceProcess(
        "agent-2",
        "agent_service",
        {**stack.agent.env, "AGENT_HTTP_PORT": str(port)},
        port,
        workdir / "agent-2.log",
        cwd=ROOT,
    )
    await stack.start()
    await replica.start()
    shots = Path(os.environ.get("PARLEY_CONSOLE_SCREENSHOTS") or tempfile.mkdtemp(prefix="console-shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    try:
        async with aiohttp.ClientSession() as session:
            client = ParleyClient(stack.gateway.url, stack.agent.url, stack.token, session)
            yield ConsoleStack(stack, replica, client, shots)
    finally:
        await replica.stop()
        await stack.stop()
        infra.delete_vhost(vhost)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@contextlib.asynccontextmanager
async def browser_context(
    chromium: Browser, base_url: str, *, phone: bool = False
) -> AsyncIterator[tuple[BrowserContext, Page]]:
    size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 860}
    context = await chromium.new_context(base_url=base_url, viewport=size, is_mobile=phone, has_touch=phone)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        yield context, page
    finally:
        await context.close()
    # No page broke the Content-Security-Policy (an inline script or style would be reported here).
    csp = [e for e in errors if "Content Security Policy" in e]
    assert csp == [], csp


async def sign_in(page: Page, login: str, password: str, *, path: str = "/console/inbox") -> None:
    await page.goto(path)
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await page.get_by_label("Login").fill(login)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(re.escape(path.split("?")[0])))


async def screenshot(page: Page, shots: Path, name: str, *, full: bool = True) -> None:
    if full:  # from the top: the sticky header stays where it belongs
        await page.evaluate("window.scrollTo(0, 0)")
    # caret="initial": hiding the caret would inject a style, which the page's CSP (rightly) refuses
    await page.screenshot(path=str(shots / f"console-{name}.png"), full_page=full, caret="initial")


async def read_outbox(client: ParleyClient, phone: str, kind: str, text: str) -> dict[str, Any]:
    """What the sandbox delivered to the prospect: the first message of this kind and text."""
    after = 0
    for _ in range(20):
        messages, after = await client.outbox(phone, after=after, wait=2)
        for message in messages:
            if message["kind"] == kind and message["text"] == text:
                return message
    raise AssertionError(f"the prospect did not receive {text!r}")


async def book_call(agent_db: str, phone: str) -> None:
    """A pending call at the next free slot (what the AI books when a prospect agrees to one)."""
    from sqlalchemy import select

    from agent_service.db import tables

    rules = AgentSettings().call_rules()
    now = SystemClock().now()
    engine = create_engine(agent_db)
    try:
        async with engine.begin() as conn:
            contact_id = await conn.scalar(select(tables.contacts.c.id).where(tables.contacts.c.phone == phone))
            await conn.execute(
                tables.scheduled_calls.insert().values(
                    contact_id=contact_id,
                    scheduled_at=propose(now, rules)[0],
                    timezone=rules.hours.tz.key,
                    status="pending",
                    notes="Prospect agreed to a call about 12 chairs",
                    created_at=now,
                    updated_at=now,
                )
            )
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------------- the tests


async def test_a_manager_answers_a_prospect(console_stack: ConsoleStack, chromium: Browser) -> None:
    client, shots = console_stack.client, console_stack.shots
    # The admin (from the environment) adds Dana.
    async with browser_context(chromium, console_stack.first) as (_, admin):
        await admin.goto("/console/sign-in")
        await screenshot(admin, shots, "sign-in")
        await sign_in(admin, *ADMIN, path="/console/managers")
        await admin.get_by_label("Login", exact=True).fill(DANA[0])
        await admin.get_by_label("Display name").fill("Dana")
        await admin.get_by_label("Password (8 characters or more)").fill(DANA[1])
        await admin.get_by_role("button", name="Add").click()
        await expect(admin.get_by_text("Added dana.")).to_be_visible()
        await screenshot(admin, shots, "managers")

    async with browser_context(chromium, console_stack.first) as (context, page):
        # The browser's notifications, recorded (as if the manager had allowed them).
        await context.add_init_script(NOTIFICATIONS)
        await sign_in(page, *DANA)
        await expect(page.locator("body")).to_have_attribute("sse-connect", "/console/events")
        # A prospect writes in the sandbox: the conversation appears without a reload.
        await client.send_text("+77010000101", "Hello! How much is the ErgoPro 300 chair?", "Aru")
        await expect(page.locator(".row .name", has_text="Aru")).to_be_visible()
        # Another one asks what the catalogue does not cover: the AI hands over, the row stands out.
        await client.send_text("+77010000102", "Do you sell coffee machines?", "Bolat")
        await expect(page.locator(".row.needs-human .name", has_text="Bolat")).to_be_visible()
        await expect(page).to_have_title(re.compile(r"^\(1\) "))
        notes = await page.evaluate("window.parleyNotes")
        assert notes == [{"title": "A conversation needs a human", "body": "Bolat"}]
        await client.send_text("+77010000103", "Hi, I need 20 desks for a new office", "Chen")
        await expect(page.locator(".row .name", has_text="Chen")).to_be_visible()
        await screenshot(page, shots, "inbox")

        # Keyboard: "/" searches, "j" walks the rows, Enter opens one.
        await page.keyboard.press("/")
        await expect(page.locator("#q")).to_be_focused()
        await page.keyboard.type("Aru")
        await page.keyboard.press("Enter")
        await expect(page.locator(".row")).to_have_count(1)
        await page.keyboard.press("j")
        await expect(page.locator(".row-link").first).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(re.compile(r"/console/c/\d+$"))
        conversation_url = page.url

        # The AI's reply, and the knowledge behind it.
        await expect(page.locator(".entry.out", has_text="89 900")).to_be_visible()
        await page.get_by_text("Knowledge used (1)").click()
        await expect(page.locator(".passage").first).to_contain_text("ErgoPro 300")

        # Take over and reply: the prospect gets it in the sandbox.
        await page.get_by_role("button", name="Take over").click()
        await expect(page.get_by_text("You hold this conversation")).to_be_visible()
        await page.get_by_label(re.compile("Reply to")).fill("Hi Aru, Dana here. 12 chairs?")
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator(".entry.kind-operator", has_text="Dana here")).to_be_visible()
        await expect(page.get_by_label(re.compile("Reply to"))).to_have_value("")
        delivered = await read_outbox(client, "+77010000101", "operator", "Hi Aru, Dana here. 12 chairs?")
        assert delivered["kind"] == "operator"

        # While Dana holds it the AI drafts; the draft is offered, editable, not sent.
        await client.send_text("+77010000101", "Yes, 12 chairs. Do you deliver to Astana?", "Aru")
        await expect(page.get_by_text("The AI's draft")).to_be_visible()
        await page.get_by_role("button", name="Use this draft").click()
        await expect(page.get_by_label(re.compile("Reply to"))).not_to_have_value("")
        await screenshot(page, shots, "conversation")

        # The session expires while a reply is being typed: sign in again, the reply is still there.
        await page.get_by_label(re.compile("Reply to")).fill("A reply typed before the session expired")
        await context.clear_cookies()
        await page.get_by_role("button", name="Send").click()
        await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
        await page.get_by_label("Login").fill(DANA[0])
        await page.get_by_label("Password").fill(DANA[1])
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(conversation_url)
        await expect(page.get_by_label(re.compile("Reply to"))).to_have_value(
            "A reply typed before the session expired"
        )

        # Override the classification, then hand back.
        await page.get_by_text("Override").click()
        await page.get_by_label("Status").select_option("non_client")
        await page.get_by_label("Category").select_option("supplier")
        await page.get_by_label("Reason").fill("sells us paper, not a buyer")
        await page.get_by_role("button", name="Save classification").click()
        await expect(page.locator("#classification")).to_have_text("Non-client · Supplier")
        await expect(page.locator(".entry.audit", has_text="changed the classification")).to_be_visible()
        await page.get_by_role("button", name="Hand back to the AI").click()
        await expect(page.get_by_text("The AI answers.")).to_be_visible()
        contact = await client.contact("+77010000101")
        assert contact["contact"]["classified_by"] == "manager" and contact["contact"]["owner"] == "ai"

        # Calls: a pending call is confirmed from the calls page.
        await book_call(console_stack.stack.agent_db, "+77010000103")
        await page.get_by_role("link", name="Calls").click()
        await expect(page.locator(".call.status-pending", has_text="Chen")).to_be_visible()
        await screenshot(page, shots, "calls")
        await page.locator(".call", has_text="Chen").get_by_role("button", name="Confirm").click()
        await expect(page.locator(".call.status-confirmed", has_text="Chen")).to_be_visible()
        calls = (await client.contact("+77010000103"))["calls"]
        assert [c["status"] for c in calls] == ["confirmed"]

    # On a phone-sized screen.
    async with browser_context(chromium, console_stack.first, phone=True) as (_, phone):
        await sign_in(phone, *DANA)
        await expect(phone.locator(".row .name", has_text="Bolat")).to_be_visible()
        await screenshot(phone, shots, "inbox-phone", full=False)
        await phone.locator(".row-link", has_text="Bolat").click()
        await expect(phone.get_by_role("button", name="Take over")).to_be_visible()
        width = await phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "no sideways scrolling on a phone"
        await screenshot(phone, shots, "conversation-phone", full=False)


async def test_access_rules(console_stack: ConsoleStack, chromium: Browser) -> None:
    async with browser_context(chromium, console_stack.first) as (_, page):
        # Sign-in throttling: after five failures for a login, even a right password waits.
        await page.goto("/console/sign-in")
        for _ in range(5):
            await page.get_by_label("Login").fill("mallory")
            await page.get_by_label("Password").fill("guess-guess")
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.locator("#sign-in-error")).to_have_text("Wrong login or password.")
        await page.get_by_label("Login").fill("mallory")
        await page.get_by_label("Password").fill("guess-guess")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#sign-in-error")).to_contain_text("Too many failed sign-ins")

        # A manager is not an admin.
        await sign_in(page, *DANA)
        await expect(page.get_by_role("link", name="Managers")).to_have_count(0)
        response = await page.goto("/console/managers")
        assert response is not None and response.status == 403
        await expect(page.get_by_text("Only an admin can do this.")).to_be_visible()

        # A forged CSRF token: refused, and nothing changes.
        await page.goto("/console/inbox")
        await page.locator(".row-link", has_text="Bolat").click()
        await page.evaluate("document.body.setAttribute('hx-headers', JSON.stringify({'X-CSRF-Token': 'forged'}))")
        await page.get_by_role("button", name="Take over").click()
        await expect(page.locator("#flash")).to_contain_text("security token")
        await expect(page.get_by_text("The AI answers.")).to_be_visible()
        assert (await console_stack.client.contact("+77010000102"))["contact"]["owner"] == "ai"


async def test_two_replicas_show_the_same_live_event_and_a_stream_survives_a_restart(
    console_stack: ConsoleStack, chromium: Browser
) -> None:
    client = console_stack.client
    async with (
        browser_context(chromium, console_stack.first) as (_, on_first),
        browser_context(chromium, console_stack.second) as (_, on_second),
    ):
        await sign_in(on_first, *DANA)
        await sign_in(on_second, *ADMIN)
        await client.send_text("+77010000104", "Hello, do you have standing desks?", "Dilnaz")
        for page in (on_first, on_second):
            await expect(page.locator(".row .name", has_text="Dilnaz")).to_be_visible()
        # The second replica restarts (SIGTERM: its streams end): its manager's page reconnects and
        # catches up with what happened meanwhile. (Both watch the conversation: an inbox row's
        # preview would show the AI's answer a moment later.)
        for page in (on_first, on_second):
            await page.locator(".row-link", has_text="Dilnaz").click()
            await expect(page.get_by_role("button", name="Take over")).to_be_visible()
        assert await console_stack.replica.stop() == 0
        await client.send_text("+77010000104", "Hello? Anyone there?", "Dilnaz")  # while it is down
        await expect(on_first.locator(".entry.in", has_text="Anyone there")).to_be_visible()
        await console_stack.replica.start()
        # (the browser retries with a growing pause while the replica is down: allow for a slow start)
        await expect(on_second.locator(".entry.in", has_text="Anyone there")).to_be_visible(timeout=45_000)
        # And live again on the restarted replica.
        await on_first.get_by_role("button", name="Take over").click()
        await expect(on_second.get_by_text("Held by Dana")).to_be_visible()
