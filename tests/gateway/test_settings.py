"""Gateway settings: the provider is chosen by its credentials, production refuses a provider
without them, and IGNORED_NUMBERS accepts any phone format."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings, ProviderName
from parley_shared.settings import ConfigurationError

TOKEN = "gateway-settings-token-0123"
ERASURE_KEY = "gateway-settings-erasure-key-0123"
WAPPI = {"wappi_token": "w", "wappi_profile_id": "p"}
META = {"meta_access_token": "m", "meta_phone_number_id": "1", "meta_app_secret": "s", "meta_verify_token": "v"}


@pytest.mark.parametrize(
    ("values", "provider"),
    [
        ({}, ProviderName.SANDBOX),
        (WAPPI, ProviderName.WAPPI),
        (META, ProviderName.META),
        ({**WAPPI, **META}, ProviderName.WAPPI),
        ({**WAPPI, "whatsapp_provider": "meta"}, ProviderName.META),
        ({**META, "whatsapp_provider": "sandbox"}, ProviderName.SANDBOX),
        ({"whatsapp_provider": "  "}, ProviderName.SANDBOX),
    ],
)
def test_provider_choice(values: dict[str, str], provider: ProviderName) -> None:
    assert GatewaySettings(**values).provider is provider


def test_production_refuses_a_provider_without_its_credentials() -> None:
    with pytest.raises(ConfigurationError, match="WAPPI_TOKEN, WAPPI_PROFILE_ID"):
        GatewaySettings(app_env="production", api_token=TOKEN, erasure_key=ERASURE_KEY, whatsapp_provider="wappi")
    with pytest.raises(ConfigurationError, match="META_APP_SECRET"):
        GatewaySettings(
            app_env="production", api_token=TOKEN, erasure_key=ERASURE_KEY, **{**META, "meta_app_secret": None}
        )
    assert (
        GatewaySettings(app_env="production", api_token=TOKEN, erasure_key=ERASURE_KEY, **META).missing_credentials()
        == []
    )
    development = GatewaySettings(whatsapp_provider="meta")
    assert development.missing_credentials() == [
        "META_ACCESS_TOKEN",
        "META_PHONE_NUMBER_ID",
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
    ]


def test_ignored_numbers_in_any_format() -> None:
    settings = GatewaySettings(ignored_numbers="8 701 000 00 01, 77010000002@c.us;+7 (701) 000-00-03\n")
    assert settings.ignored_phones() == {"+77010000001", "+77010000002", "+77010000003"}
    assert GatewaySettings().ignored_phones() == set()
    with pytest.raises(ConfigurationError, match="IGNORED_NUMBERS"):
        GatewaySettings(ignored_numbers="+77010000001, call me")


def test_cli_refuses_production_without_provider_credentials(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.__main__ import main

    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.setenv("ERASURE_KEY", ERASURE_KEY)
    monkeypatch.setenv("WHATSAPP_PROVIDER", "wappi")
    monkeypatch.delenv("WAPPI_TOKEN", raising=False)
    assert main(["migrate"]) == 2
    assert "WAPPI_TOKEN" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "slots"),
    [({}, 16), ({"send_concurrency": 4}, 4), ({**WAPPI, "send_concurrency": 8}, 1)],
)
def test_an_accounts_call_slots_are_send_concurrency_and_one_for_wappi(
    values: dict[str, object],
    slots: int,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from gateway.app import create_app
    from gateway.context import GATEWAY

    database_url = f"sqlite+aiosqlite:///{tmp_path}/g.db"
    settings = GatewaySettings(app_env="test", database_url=database_url, **values)  # type: ignore[call-arg, arg-type]
    assert create_app(settings)[GATEWAY].pacer.concurrency == slots
