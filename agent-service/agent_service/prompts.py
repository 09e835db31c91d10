"""The agent's prompt files (``PROMPTS_DIR``): editable text, re-read when a file changes.

* ``sales_agent_prompt.txt`` / ``moderator_prompt.txt``: Gemini system instructions with
  ``{placeholders}`` (``str.format``; write literal braces as ``{{ }}``).
* ``spin_questions.toml``: the offline engine's SPIN questions per language and stage.
* ``agent_phrases.toml``: fixed sentences (greetings, the safe "let me check with a manager",
  fallbacks) per language.

Missing languages fall back ``kk -> ru -> en``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SALES_PROMPT = "sales_agent_prompt.txt"
MODERATOR_PROMPT = "moderator_prompt.txt"
SPIN_QUESTIONS = "spin_questions.toml"
PHRASES = "agent_phrases.toml"
FALLBACK_LANGUAGES = {"kk": ("kk", "ru", "en"), "ru": ("ru", "en"), "en": ("en",)}
LANGUAGE_NAMES = {"en": "English", "ru": "Russian", "kk": "Kazakh"}


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class PromptBook:
    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._cache: dict[str, tuple[float, Any]] = {}

    def _read(self, name: str, parse: bool) -> Any:
        path = self.directory / name
        mtime = path.stat().st_mtime
        cached = self._cache.get(name)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        raw = path.read_text(encoding="utf-8")
        value = tomllib.loads(raw) if parse else raw
        self._cache[name] = (mtime, value)
        return value

    def text(self, name: str, values: Mapping[str, Any]) -> str:
        """A prompt file with its placeholders filled (unknown placeholders stay as written)."""
        return str(self._read(name, parse=False)).format_map(_Defaults(values))

    def _table(self, name: str, language: str) -> dict[str, Any]:
        data = self._read(name, parse=True)
        merged: dict[str, Any] = {}
        for code in reversed(FALLBACK_LANGUAGES.get(language, ("en",))):
            merged.update(data.get(code, {}))
        return merged

    def phrase(self, language: str, key: str, **values: Any) -> str:
        template = self._table(PHRASES, language).get(key)
        if not isinstance(template, str):
            raise KeyError(f"{PHRASES} has no phrase {key!r}")
        return template.format_map(_Defaults(values)).strip()

    def phrase_texts(self, key: str) -> list[str]:
        """Every language's version of a phrase (to recognise it in a conversation)."""
        data = self._read(PHRASES, parse=True)
        return [table[key] for table in data.values() if isinstance(table, dict) and isinstance(table.get(key), str)]

    def spin_questions(self, language: str, stage: str) -> list[str]:
        questions = self._table(SPIN_QUESTIONS, language).get(stage, [])
        return [q for q in questions if isinstance(q, str) and q.strip()]
