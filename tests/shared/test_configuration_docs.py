"""Every setting is documented in docs/configuration.md and listed in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from agent_service.settings import AgentSettings
from gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]


def env_names(settings_cls: type) -> set[str]:
    names = set()
    for name, field in settings_cls.model_fields.items():
        alias = field.validation_alias
        names.add(alias.choices[0] if isinstance(alias, AliasChoices) else name.upper())
    return names


def test_every_setting_is_documented_once_and_in_env_example() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    documented = re.findall(r"^\|\s*`([A-Z0-9_]+)`\s*\|", doc, flags=re.M)
    example = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    expected = env_names(GatewaySettings) | env_names(AgentSettings)
    assert sorted(expected - set(documented)) == [], "add these to docs/configuration.md"
    assert sorted(set(documented) - expected) == [], "documented but not a setting"
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    assert sorted(expected - example) == [], "add these to .env.example"
