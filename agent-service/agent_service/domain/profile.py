"""The business profile: the few facts the agent may state without a document (pure)."""

from __future__ import annotations

from dataclasses import dataclass

_DAY_NAMES = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "ru": ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
}
_TO = {"en": " to ", "ru": "-"}


@dataclass(frozen=True)
class BusinessProfile:
    name: str
    description: str
    timezone: str
    start_hour: int = 10
    end_hour: int = 18
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # 0 = Monday

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
        """What the grounding guard accepts as stated by the business itself (both languages)."""
        return "\n".join(
            [
                f"{self.name}: {self.description}.",
                f"Working hours: {self.hours_text('en')} ({self.timezone}).",
                f"Часы работы: {self.hours_text('ru')} ({self.timezone}).",
            ]
        )
