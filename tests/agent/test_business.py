"""The business file: what it holds, how a bad one is reported, and that prompts/ stay business-neutral."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent_service.business import load_business, parse_business
from agent_service.settings import AgentSettings
from parley_shared.settings import ConfigurationError
from tests.agent.conversation_support import BUSINESS_FILES, ROOT, sample_business

HOURS = {"timezone": "Asia/Almaty", "start_hour": 10, "end_hour": 18, "days": (0, 1, 2, 3, 4)}
MINIMAL = """
name = "Bakery Nan"
[about.en]
description = "a bakery in Shymkent"
[spin.en]
situation = ["Is it for a family or an event?"]
problem = ["What was missing from the bread you bought before?"]
implication = ["How often does that spoil a meal?"]
need_payoff = ["Would fresh bread delivered each morning help?"]
"""


@pytest.mark.parametrize("business", list(BUSINESS_FILES))
def test_each_sample_business_file_is_complete(business: str) -> None:
    profile = sample_business(business)
    assert profile.name and set(profile.about) == {"en", "ru", "kk"} and profile.products
    for language in ("en", "ru", "kk"):
        for stage in ("situation", "problem", "implication", "need_payoff"):
            assert profile.spin_questions(language, stage), (language, stage)
    assert profile.phrase("en", "declined") and profile.about_in("kk").offering
    assert profile.name in profile.source_text() and profile.about_in("ru").description in profile.source_text()


def test_a_minimal_business_file_is_enough_and_missing_languages_fall_back() -> None:
    profile = parse_business(MINIMAL, **HOURS)
    assert profile.name == "Bakery Nan" and profile.description == "a bakery in Shymkent"
    assert profile.spin_questions("kk", "problem") == ["What was missing from the bread you bought before?"]
    assert profile.phrase("ru", "declined") is None and profile.question_after("en", "price") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name = ", "not valid TOML"),
        (MINIMAL.replace("[about.en]", "[about.de]"), "about"),
        (MINIMAL.replace('need_payoff = ["Would fresh bread delivered each morning help?"]', ""), "every stage"),
        (MINIMAL + '[phrases.en]\ndeclined = "Call 555 0101 any time"\n', "digits"),
        (MINIMAL + "colour = 'red'\n", "colour"),
    ],
)
def test_a_bad_business_file_names_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_business(text, **HOURS)


def test_the_service_refuses_to_start_on_a_missing_or_bad_business_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_business(AgentSettings(business_file=str(tmp_path / "none.toml")))
    bad = tmp_path / "business.toml"
    bad.write_text("name = 1\n")
    with pytest.raises(ConfigurationError, match=r"business\.toml"):
        load_business(AgentSettings(business_file=str(bad)))


def test_the_knowledge_base_sits_beside_the_business_file_unless_set() -> None:
    assert AgentSettings(business_file="samples/tazasu/business.toml").knowledge_path == Path(
        "samples/tazasu/knowledge_base"
    )
    assert AgentSettings(knowledge_dir="/srv/docs").knowledge_path == Path("/srv/docs")


def test_the_prompts_name_no_business() -> None:
    """Everything business-specific lives in the business files: the prompts mention none of it."""
    words = set()
    for business in BUSINESS_FILES:
        profile = sample_business(business)
        words |= {profile.name.lower(), *(w for w in profile.products if len(w) > 4)}
    for path in (ROOT / "prompts").iterdir():
        lines = path.read_text(encoding="utf-8").lower().splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))  # comments may explain
        found = sorted(w for w in words if re.search(r"\b" + re.escape(w), text))
        assert found == [], f"{path.name} speaks of {found}"
