"""The business profile: what the business file says about the business, plus its working hours (pure).

Everything that is the business's own lives here, read from the business file (see
:mod:`agent_service.business`): its name, a description, what it sells and to whom (per
language), the vocabulary its customers use, the SPIN question bank and the wording of the
fixed sentences that mention what it sells. The prompts stay business-neutral; they get these
facts through placeholders and the turn's context.

The profile is also a source for the grounding guard: the agent may state what it says about
the business (:meth:`BusinessProfile.source_text`) without a document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_service.domain.language import pick
from agent_service.domain.text import Synonyms

_DAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ru": ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
}
_TO = {"en": " to ", "ru": "-"}


@dataclass(frozen=True)
class About:
    """The business in one language: a description, what it sells, and to whom."""

    description: str
    offering: str = ""
    audience: str = ""


@dataclass(frozen=True)
class BusinessProfile:
    name: str
    description: str  # one line in English (``about["en"].description`` when the file has it)
    timezone: str
    start_hour: int = 10
    end_hour: int = 18
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # 0 = Monday
    about: Mapping[str, About] = field(default_factory=dict)  # language -> the business in it
    # Words that show a sender asks about what the business sells ("chair", "кресл"): buying signals.
    products: tuple[str, ...] = ()
    # Extra words per topic (intent), in the words the customers and the documents use ("kaspi").
    topic_words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    synonyms: Synonyms = field(default_factory=dict)
    # language -> stage -> questions (asked in order, never twice); language -> topic -> question.
    spin: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    spin_after: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    phrases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # language -> key -> sentence

    def about_in(self, language: str | None) -> About:
        return pick(self.about, language) or About(self.description)

    def spin_questions(self, language: str | None, stage: str) -> list[str]:
        """The bank's questions for a stage, in the language (or its fallback)."""
        table = pick({k: v for k, v in self.spin.items() if v.get(stage)}, language) or {}
        return [q for q in table.get(stage, ()) if q.strip()]

    def question_after(self, language: str | None, topic: str) -> str | None:
        """The bank's question that follows a prospect's question about ``topic``, if it has one."""
        table = pick({k: v for k, v in self.spin_after.items() if v.get(topic)}, language) or {}
        return table.get(topic) or None

    def phrase(self, language: str | None, key: str) -> str | None:
        """The business's own wording of a fixed sentence (None: the prompts' neutral one)."""
        table = pick({k: v for k, v in self.phrases.items() if key in v}, language)
        return table.get(key) if table else None

    def hours_text(self, language: str = "en") -> str:
        lang = "ru" if language in ("ru", "kk") else "en"
        names = _DAY_NAMES[lang]
        ranges: list[list[int]] = []
        for day in sorted(self.days):
            if ranges and day == ranges[-1][-1] + 1:
                ranges[-1].append(day)
            else:
                ranges.append([day])
        parts = [
            names[r[0]] if len(r) == 1 else f"{names[r[0]]}{_TO[lang] if len(r) > 2 else ', '}{names[r[-1]]}"
            for r in ranges
        ]
        return f"{', '.join(parts)} {self.start_hour:02d}:00-{self.end_hour:02d}:00"

    def source_text(self) -> str:
        """What the grounding guard accepts as stated by the business itself (every language)."""
        lines = [f"{self.name}: {self.description}."]
        for about in self.about.values():
            lines += [f"{self.name}: {about.description}.", about.offering, about.audience]
        lines += [
            f"Working hours: {self.hours_text('en')} ({self.timezone}).",
            f"Часы работы: {self.hours_text('ru')} ({self.timezone}).",
        ]
        return "\n".join(line for line in lines if line)
