"""The agent's prompt files (``PROMPTS_DIR``): editable text, re-read within a second of a change.

* ``sales_agent_prompt.txt`` / ``moderator_prompt.txt`` / ``first_contact_prompt.txt``: Gemini
  system instructions with ``{placeholders}`` (``str.format``; write literal braces as ``{{ }}``).
  A contact not classified yet gets all three in one call: the reply and the classification.
* ``agent_phrases.toml``: fixed sentences (greetings, the safe "let me check with a manager",
  fallbacks) per language.

All of them are business-neutral: what is the business's own (its description, the SPIN
question bank, sentences that name what it sells) comes from the business file, whose
``[phrases.<language>]`` override the sentences of ``agent_phrases.toml`` key by key.
Missing languages fall back ``kk -> ru -> en``.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_service.domain.language import fallbacks
from agent_service.domain.profile import BusinessProfile

SALES_PROMPT = "sales_agent_prompt.txt"
MODERATOR_PROMPT = "moderator_prompt.txt"
FIRST_CONTACT_PROMPT = "first_contact_prompt.txt"  # the sales and moderator tasks in one call
PHRASES = "agent_phrases.toml"
# How long a file read stays trusted before its modification time is looked at again (every
# turn reads several: a system call each would cost more than the rest of the lookup).
RECHECK_S = 1.0


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass
class _Read:
    mtime: float
    value: Any
    checked: float  # monotonic time of the last look at the file


class PromptBook:
    def __init__(self, directory: Path | str, business: BusinessProfile | None = None) -> None:
        self.directory = Path(directory)
        self.business = business
        self._cache: dict[str, _Read] = {}

    def _read(self, name: str, parse: bool) -> Any:
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - cached.checked < RECHECK_S:
            return cached.value
        path = self.directory / name
        mtime = path.stat().st_mtime
        if cached is not None and cached.mtime == mtime:
            cached.checked = now
            return cached.value
        raw = path.read_text(encoding="utf-8")
        value = tomllib.loads(raw) if parse else raw
        self._cache[name] = _Read(mtime, value, now)
        return value

    def text(self, name: str, values: Mapping[str, Any]) -> str:
        """A prompt file with its placeholders filled (unknown placeholders stay as written)."""
        return str(self._read(name, parse=False)).format_map(_Defaults(values))

    def phrase(self, language: str, key: str, **values: Any) -> str:
        """A fixed sentence in the language (or its fallback): the business's wording first."""
        data = self._read(PHRASES, parse=True)
        own = self.business.phrases if self.business is not None else {}
        for code in fallbacks(language):
            for table in (own.get(code, {}), data.get(code, {})):
                template = table.get(key)
                if isinstance(template, str):
                    return template.format_map(_Defaults(values)).strip()
        raise KeyError(f"{PHRASES} has no phrase {key!r}")

    def phrase_texts(self, key: str) -> list[str]:
        """Every language's version of a phrase (to recognise it in a conversation)."""
        data = self._read(PHRASES, parse=True)
        own = list(self.business.phrases.values()) if self.business is not None else []
        tables = [*own, *(t for t in data.values() if isinstance(t, dict))]
        return [table[key] for table in tables if isinstance(table.get(key), str)]
