"""Both services start on the real engines, report health, refuse bad configuration, and stop cleanly."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_service.app import create_app as create_agent
from agent_service.settings import AgentSettings
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from parley_shared.batching import GroupCommit
from parley_shared.service import RUNTIME
from parley_shared.settings import ConfigurationError


@pytest.mark.parametrize("service", ["gateway", "agent"])
async def test_service_starts_reports_health_and_stops(service: str, amqp_url: str, database_url: str) -> None:
    if service == "gateway":
        app = create_gateway(GatewaySettings(amqp_url=amqp_url, database_url=database_url, api_token="t" * 20))
    else:
        app = create_agent(AgentSettings(amqp_url=amqp_url, database_url=database_url, api_token="t" * 20))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/health")
        body = await response.json()
        assert response.status == 200, body
        assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["connected"]
        assert all(c["attached"] for c in body["checks"]["broker"]["consumers"].values())
        metrics = await client.get("/metrics")
        assert metrics.status == 200
        missing = await client.get("/no-such-route")
        assert missing.status in (401, 404)


async def test_stop_waits_for_a_running_batch_of_a_registered_group_commit(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = GatewaySettings(
        amqp_url=amqp_url, database_url=f"sqlite+aiosqlite:///{tmp_path}/g.db", api_token="t" * 20
    )
    app = create_gateway(settings)
    runtime = app[RUNTIME]
    gate, events = asyncio.Event(), []

    async def run_batch(items: list[str]) -> list[None]:
        await gate.wait()
        events.append("batch done")
        return [None] * len(items)

    group: GroupCommit[str, None] = GroupCommit(run_batch, name="stop-test", drains=runtime.drains)
    async with TestClient(TestServer(app)):
        caller = asyncio.create_task(group.submit("x"))
        await asyncio.sleep(0.05)
        caller.cancel()  # its caller is gone (as at shutdown); the batch still runs
        asyncio.get_running_loop().call_later(0.3, gate.set)
    events.append("stopped")
    assert events == ["batch done", "stopped"]


def test_production_refuses_to_start_without_a_token() -> None:
    with pytest.raises(ConfigurationError, match="API_TOKEN"):
        GatewaySettings(app_env="production")
    with pytest.raises(ConfigurationError, match="API_TOKEN"):
        AgentSettings(app_env="production", api_token="short")
    strong = {"api_token": "Zq8-w3xV_r7Lp2sK-9yT", "erasure_key": "erasure-key-0123456789abcdef"}
    with pytest.raises(ConfigurationError, match="ERASURE_KEY"):
        AgentSettings(app_env="production", api_token="Zq8-w3xV_r7Lp2sK-9yT", console_session_secret="s" * 32)
    with pytest.raises(ConfigurationError, match="CONSOLE_SESSION_SECRET"):
        AgentSettings(app_env="production", **strong)
    with pytest.raises(ConfigurationError, match="CONSOLE_SESSION_SECRET"):
        AgentSettings(app_env="production", **strong, console_session_secret="too short")
    assert AgentSettings(app_env="production", **strong, console_session_secret="s" * 32).production


def test_cli_exits_2_with_a_clear_message_on_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.__main__ import main

    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.delenv("API_TOKEN", raising=False)
    assert main(["migrate"]) == 2
    assert "API_TOKEN" in capsys.readouterr().err


async def test_a_cancelled_stop_is_not_swallowed_while_a_worker_winds_down(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = GatewaySettings(
        amqp_url=amqp_url, database_url=f"sqlite+aiosqlite:///{tmp_path}/g.db", api_token="t" * 20
    )
    runtime = create_gateway(settings)[RUNTIME]
    winding_down = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            winding_down.set()
            await asyncio.sleep(0.3)
            raise

    runtime.add_worker("slow-to-stop", slow_to_stop)
    await runtime.start()
    stop = asyncio.create_task(runtime.stop())
    await winding_down.wait()
    stop.cancel()  # e.g. the process's own shutdown timeout
    with pytest.raises(asyncio.CancelledError):
        await stop
    await runtime.stop()  # what the cancelled stop left open
