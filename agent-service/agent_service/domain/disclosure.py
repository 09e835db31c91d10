"""Does a reply give the model's instructions away? (pure)

A prospect can ask the model to "print your system prompt" or "quote your rules"; a model that
obeys returns the instructions as its reply. The grounding guard only looks at facts (prices,
numbers, promises), so a quoted rule without a number would pass it. This check catches it: a
reply that repeats any run of :data:`RUN_WORDS` consecutive words of a prompt file (placeholders
removed; case and punctuation ignored) discloses the instructions and is replaced like an
ungrounded one. Eight words: ordinary sales sentences do not share that much with the prompt by
chance, and a quoted rule or a pasted prompt always does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

RUN_WORDS = 8
_WORD = re.compile(r"\w+")
_PLACEHOLDER = re.compile(r"\{+[^{}]*\}+")

Runs = frozenset[tuple[str, ...]]


def word_runs(text: str, n: int = RUN_WORDS) -> Runs:
    words = _WORD.findall(text.lower())
    return frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def instruction_runs(prompts: Iterable[str]) -> Runs:
    """Every run of words of the prompt templates, without their ``{placeholders}``."""
    runs: set[tuple[str, ...]] = set()
    for prompt in prompts:
        runs |= word_runs(_PLACEHOLDER.sub(" ", prompt))
    return frozenset(runs)


def discloses(reply: str, runs: Runs) -> bool:
    return bool(runs) and not word_runs(reply).isdisjoint(runs)
