"""HTTP client for what the demo chat does: the gateway's sandbox and the managers' API."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp


class ParleyError(RuntimeError):
    """A service answered with an error (its status and JSON message are kept)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class ParleyClient:
    def __init__(self, gateway_url: str, agent_url: str, token: str | None, session: aiohttp.ClientSession) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.agent_url = agent_url.rstrip("/")
        self.session = session
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, method: str, url: str, *, timeout: float = 15.0, **kwargs: Any) -> Any:
        async with self.session.request(
            method, url, headers=self.headers, timeout=aiohttp.ClientTimeout(total=timeout), **kwargs
        ) as response:
            if response.content_type == "application/json":
                body = await response.json()
            else:
                body = await response.text()
            if response.status >= 400:
                message = body.get("error", {}).get("message") if isinstance(body, dict) else str(body)[:200]
                raise ParleyError(response.status, str(message))
            return body

    # ---------------------------------------------------------------- the prospect's side (sandbox)
    async def send_text(self, phone: str, text: str, name: str | None = None) -> str:
        body = await self._call(
            "POST", f"{self.gateway_url}/sandbox/inbound", json={"from": phone, "text": text, "name": name}
        )
        return str(body["message_id"])

    async def send_voice(self, phone: str, audio: bytes, mime_type: str, name: str | None = None) -> str:
        payload = {
            "from": phone,
            "voice_base64": base64.b64encode(audio).decode(),
            "mime_type": mime_type,
            "name": name,
        }
        body = await self._call("POST", f"{self.gateway_url}/sandbox/inbound", json=payload, timeout=60)
        return str(body["message_id"])

    async def outbox(
        self, phone: str, after: int = 0, wait: int = 0, limit: int = 100
    ) -> tuple[list[dict[str, Any]], int]:
        params = {"to": phone, "after": str(after), "wait": str(wait), "limit": str(limit)}
        body = await self._call("GET", f"{self.gateway_url}/sandbox/outbox", params=params, timeout=wait + 15)
        return list(body["messages"]), int(body["next_cursor"])

    # ---------------------------------------------------------------- the manager's side
    async def contact(self, phone: str, limit: int = 100) -> dict[str, Any]:
        """The contact, its last ``limit`` messages (oldest first), its follow-up touches and calls."""
        params = {"limit": str(limit)}
        return dict(await self._call("GET", f"{self.agent_url}/contacts/{phone}", params=params))

    async def contacts(self, **filters: str) -> dict[str, Any]:
        return dict(await self._call("GET", f"{self.agent_url}/contacts", params=filters))

    async def analytics(self) -> dict[str, Any]:
        return dict(await self._call("GET", f"{self.agent_url}/analytics"))

    async def takeover(self, phone: str, manager: str = "demo-manager") -> dict[str, Any]:
        return dict(await self._call("POST", f"{self.agent_url}/contacts/{phone}/takeover", json={"manager": manager}))

    async def handback(self, phone: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"{self.agent_url}/contacts/{phone}/handback", json={}))

    async def operator_message(self, phone: str, text: str) -> dict[str, Any]:
        return dict(await self._call("POST", f"{self.agent_url}/contacts/{phone}/messages", json={"text": text}))

    async def fast_forward(self, hours: float) -> dict[str, Any]:
        return dict(await self._call("POST", f"{self.agent_url}/demo/clock", json={"advance_hours": hours}))
