"""The management API's tokens: production refuses weak ones (16 spaces passed before); several
named tokens each open the API, one can be revoked alone, and actions are logged per name."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from agent_service.settings import AgentSettings
from gateway.settings import GatewaySettings
from parley_shared.settings import ConfigurationError
from tests.gateway.helpers import gateway_settings, running

STRONG = "Zq8-w3xV_r7Lp2sK-9yT"
KEY = "erasure-key-0123456789abcdef"  # production needs ERASURE_KEY too
CONSOLE_SECRET = "console-session-secret-0123456789abcdef"
DANA = "dana-0f3a9c71e5b2d84a"
REPORTS = "reports-7e21b9d0c4f6a3"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (" " * 16, "blank"),
        ("\t" * 20, "blank"),
        ("x" * 32, "different characters"),
        ("ab" * 16, "different characters"),
        ("short-Token-1", "shorter than 16"),
        ("has a space in it 0123456789", "spaces or control"),
        ("control\x07char-0123456789", "spaces or control"),
    ],
)
def test_production_refuses_a_blank_short_or_low_variety_token(token: str, problem: str) -> None:
    for settings in (AgentSettings, GatewaySettings):
        with pytest.raises(ConfigurationError, match=problem) as caught:
            settings(app_env="production", api_token=token)  # type: ignore[call-arg]
        assert token not in str(caught.value) or not token.strip()
    named = "empty" if not token.strip() else rf"API_TOKENS \(ops\).*{problem}"  # a blank one is no token
    with pytest.raises(ConfigurationError, match=named):
        AgentSettings(app_env="production", api_tokens=f"dana:{DANA},ops:{token}")  # type: ignore[call-arg]
    assert AgentSettings(app_env="development", api_token=token).api_clients() == {"default": token}  # type: ignore[call-arg]


def test_named_tokens_are_read_with_api_token_as_default_and_malformed_lists_are_refused() -> None:
    settings = AgentSettings(  # type: ignore[call-arg]
        app_env="production",
        api_token=STRONG,
        api_tokens=f" dana:{DANA} , reports:{REPORTS},",
        erasure_key=KEY,
        console_session_secret=CONSOLE_SECRET,
    )
    assert settings.api_clients() == {"dana": DANA, "reports": REPORTS, "default": STRONG}
    only_named = AgentSettings(  # type: ignore[call-arg]
        app_env="production", api_tokens=f"dana:{DANA}", erasure_key=KEY, console_session_secret=CONSOLE_SECRET
    )
    assert only_named.api_clients() == {"dana": DANA}
    for bad, problem in (
        (f"dana {DANA}", "not name:token"),
        (f"da na:{DANA}", "not name:token"),
        (f"dana:{DANA},dana:{REPORTS}", "given twice"),
        ("dana:", "empty"),
        (f"dana:{DANA},reports:{DANA}", "share one token"),
        (f"default:{DANA}", "API_TOKEN goes by"),
    ):
        with pytest.raises(ConfigurationError, match=problem) as caught:
            AgentSettings(api_token=STRONG, api_tokens=bad)  # type: ignore[call-arg]
        assert DANA not in str(caught.value)
    with pytest.raises(ConfigurationError, match="API_TOKEN or API_TOKENS"):
        GatewaySettings(app_env="production")  # type: ignore[call-arg]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_each_named_token_opens_the_api_and_its_actions_are_logged_under_its_name(
    amqp_url: str, tmp_path: Any
) -> None:
    config = gateway_settings(
        amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", api_token=None, api_tokens=f"dana:{DANA}"
    )
    async with running(config) as client:
        with capture_logs() as logs:
            added = await client.post("/ignore-list", json={"phone": "+77010000009"}, headers=bearer(DANA))
            listed = await client.get("/ignore-list", headers=bearer(DANA))
        assert added.status in (200, 201) and listed.status == 200
        assert (await client.get("/ignore-list", headers=bearer(REPORTS))).status == 401  # not (or no longer) a token
    [action] = [e for e in logs if e["event"] == "api.action"]  # reads are not actions
    assert (action["api_client"], action["method"], action["route"]) == ("dana", "POST", "/ignore-list")
    assert action["status"] == added.status

    both = gateway_settings(
        amqp_url, f"sqlite+aiosqlite:///{tmp_path}/h.db", api_tokens=f"dana:{DANA},reports:{REPORTS}"
    )
    async with running(both) as client:
        for token in (DANA, REPORTS, str(both.api_token.get_secret_value())):  # type: ignore[union-attr]
            assert (await client.get("/ignore-list", headers=bearer(token))).status == 200
        with capture_logs() as logs:
            refused = await client.delete("/ignore-list/%2B77010000404", headers=bearer(REPORTS))
        [action] = [e for e in logs if e["event"] == "api.action"]
        assert (action["api_client"], action["route"], action["status"]) == (
            "reports",
            "/ignore-list/{phone}",
            refused.status,
        )
