"""Reading the business file (``BUSINESS_FILE``, ``business.toml`` by default) into a
:class:`~agent_service.domain.profile.BusinessProfile`.

The file holds everything that is the business's own -- its name, a description, what it
sells and to whom (per language), the words its customers use, the SPIN question bank and
the wording of the fixed sentences that speak of what it sells -- so that setting up another
business means replacing this file and the ``knowledge_base/`` folder beside it, not code or
prompts. docs/agent.md ("Setting up a business") describes every key. The file is read when
the service starts; a file that cannot be used stops the start with a message that names the
key at fault.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent_service.domain.decision import validation_summary
from agent_service.domain.profile import About, BusinessProfile
from agent_service.domain.text import synonym_table
from agent_service.domain.vocabulary import SPIN_STAGES
from parley_shared.settings import ConfigurationError

if TYPE_CHECKING:
    from agent_service.settings import AgentSettings

Language = Literal["en", "ru", "kk"]
Topic = Literal["overview", "price", "availability", "delivery", "payment", "warranty", "discount", "location"]
_DIGIT = re.compile(r"\d")


def _no_digits(texts: list[str], where: str) -> None:
    """A number in a fixed sentence would be a claim no document grounds (the guard would stop it)."""
    for text in texts:
        if _DIGIT.search(text):
            raise ValueError(f"{where}: keep digits out of fixed sentences ({text[:60]!r})")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AboutSection(_Strict):
    description: str = Field(min_length=1, max_length=1000)
    offering: str = Field("", max_length=2000)
    audience: str = Field("", max_length=2000)


class SpinSection(_Strict):
    situation: list[str] = Field(default_factory=list)
    problem: list[str] = Field(default_factory=list)
    implication: list[str] = Field(default_factory=list)
    need_payoff: list[str] = Field(default_factory=list)
    after: dict[Topic, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _plain(self) -> SpinSection:
        _no_digits([q for stage in SPIN_STAGES for q in getattr(self, stage)] + list(self.after.values()), "spin")
        return self


class VocabularySection(_Strict):
    products: list[str] = Field(default_factory=list)
    topics: dict[Topic, list[str]] = Field(default_factory=dict)
    synonyms: dict[str, str] = Field(default_factory=dict)

    @field_validator("products")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [w.strip().lower() for w in value if w.strip()]


class BusinessFile(_Strict):
    name: str = Field(min_length=1, max_length=200)
    about: dict[Language, AboutSection]
    vocabulary: VocabularySection = VocabularySection()
    spin: dict[Language, SpinSection]
    phrases: dict[Language, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> BusinessFile:
        if not self.about:
            raise ValueError("about: describe the business in at least one language ([about.en])")
        if not any(all(getattr(s, stage) for stage in SPIN_STAGES) for s in self.spin.values()):
            raise ValueError("spin: one language needs questions for every stage (situation ... need_payoff)")
        for language, table in self.phrases.items():
            _no_digits(list(table.values()), f"phrases.{language}")
        return self


def parse_business(
    raw: str, *, timezone: str, start_hour: int, end_hour: int, days: tuple[int, ...]
) -> BusinessProfile:
    """The profile from the file's text (raises ``ValueError`` naming what is wrong)."""
    try:
        data = BusinessFile.model_validate(tomllib.loads(raw))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ValueError(validation_summary(exc, limit=5)) from None
    about: dict[str, About] = {lang: About(a.description, a.offering, a.audience) for lang, a in data.about.items()}
    english = about.get("en") or next(iter(about.values()))
    return BusinessProfile(
        name=data.name,
        description=english.description,
        timezone=timezone,
        start_hour=start_hour,
        end_hour=end_hour,
        days=days,
        about=about,
        products=tuple(data.vocabulary.products),
        topic_words={topic: tuple(w.lower() for w in words) for topic, words in data.vocabulary.topics.items()},
        synonyms=synonym_table(data.vocabulary.synonyms),
        spin={lang: {stage: tuple(getattr(s, stage)) for stage in SPIN_STAGES} for lang, s in data.spin.items()},
        spin_after={lang: {topic: line for topic, line in s.after.items()} for lang, s in data.spin.items()},
        phrases={lang: dict(table) for lang, table in data.phrases.items()},
    )


def load_business(settings: AgentSettings) -> BusinessProfile:
    """The business profile from ``BUSINESS_FILE`` and the working hours (refuses to start on a bad file)."""
    path = Path(settings.business_file)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"BUSINESS_FILE {path}: cannot read it ({type(exc).__name__})") from None
    try:
        return parse_business(
            raw,
            timezone=settings.working_tz,
            start_hour=settings.working_hours_start,
            end_hour=settings.working_hours_end,
            days=tuple(settings.working_days),
        )
    except ValueError as exc:
        raise ConfigurationError(f"BUSINESS_FILE {path}: {exc}") from None
