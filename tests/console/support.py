"""A running agent service with the console, and a browser-like client for its pages (cookies,
the CSRF token read from the page, htmx headers)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import ClientResponse

from agent_service.console.accounts import Accounts, Role
from agent_service.console.routes import COOKIE
from parley_shared.service import RUNTIME
from tests.agent.conversation_support import Agent, inbound, running_agent

ADMIN = ("boss", "Boss Admin", "boss-password-1")
MANAGER = ("dana", "Dana", "dana-password-1")
SECRET = "console-test-secret-0123456789-abcdefghij"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Browser:
    """One manager's browser: its own cookie jar on the shared test server."""

    client: aiohttp.ClientSession
    csrf: str = ""

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.client.get(path, **kwargs)

    async def page(self, path: str, status: int = 200) -> str:
        response = await self.client.get(path)
        text = await response.text()
        assert response.status == status, (path, response.status, text[:500])
        if 'name="csrf_token"' in text:
            self.csrf = csrf_of(text)
        return text

    async def sign_in(self, login: str, password: str, *, next_path: str = "") -> ClientResponse:
        self.csrf = csrf_of(await self.page("/console/sign-in"))
        form = {"login": login, "password": password, "csrf_token": self.csrf, "next": next_path}
        response = await self.client.post("/console/sign-in", data=form, allow_redirects=False)
        if response.status == 303:
            await self.page(response.headers["Location"])  # a fresh session: a fresh token
        return response

    async def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        htmx: bool = True,
        csrf: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> ClientResponse:
        """A form post: by htmx (its headers, the token in ``X-CSRF-Token``) or plain (the token in the form)."""
        sent = {"HX-Request": "true"} if htmx else {}
        token = self.csrf if csrf is None else csrf
        form = dict(data or {})
        if token and htmx:
            sent["X-CSRF-Token"] = token
        elif token:
            form.setdefault("csrf_token", token)
        return await self.client.post(path, data=form, headers={**sent, **(headers or {})}, allow_redirects=False)

    def forget_session(self) -> None:
        self.client.cookie_jar.clear(lambda cookie: cookie.key == COOKIE)


@dataclass
class Console:
    agent: Agent
    accounts: Accounts
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def app(self) -> Any:
        return self.agent.app

    def browser(self) -> Browser:
        """A new browser (a cookie jar of its own), closed with the console."""
        base = str(self.agent.client.make_url("/"))
        session = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.sessions.append(session)
        return Browser(session)

    async def contact_id(self, phone: str) -> int:
        convo = await self.agent.conversation(phone)
        return int(convo["contact"]["id"])

    async def prospect_says(self, phone: str, text: str, *, name: str | None = None) -> None:
        await self.agent.send(inbound(phone, text, name=name))


@contextlib.asynccontextmanager
async def running_console(amqp_url: str, database_url: str, **overrides: Any) -> AsyncIterator[Console]:
    values = {
        "console_session_secret": SECRET,
        "console_admin_login": ADMIN[0],
        "console_admin_name": ADMIN[1],
        "console_admin_password": ADMIN[2],
        **overrides,
    }
    async with running_agent(amqp_url, database_url, **values) as agent:
        runtime = agent.app[RUNTIME]
        accounts = Accounts(runtime.sessions, runtime.clock)
        await accounts.add(MANAGER[0], MANAGER[1], MANAGER[2], Role.MANAGER)
        console = Console(agent, accounts)
        try:
            yield console
        finally:
            for session in console.sessions:
                await session.close()
