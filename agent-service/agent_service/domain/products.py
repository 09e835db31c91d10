"""Products named by their model codes, in documents and in prospects' messages (pure).

A model code is a run of capitalised Latin words and numbers that holds a letter-digit token
("V-20", "RO-5", "S1"), a CamelCase name ("LiftDesk", "AquaPure") or a capitalised word with a
number ("Basic 100"): "ErgoPro 300", "LiftDesk Duo", "AquaPure RO-5". Documents write codes
capitalised; prospects may not, so a code is looked for in a message case-insensitively and
with or without its spaces and hyphens ("ergopro300", "v 20").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

_I = re.IGNORECASE
_RUN = re.compile(r"(?<![\w-])((?:[A-Z][\w-]*|\d+[A-Za-z]?\b)(?:[ -](?:[A-Z][\w-]*|\d+[\w-]*))*)")
_STRONG = re.compile(r"^(?:[A-Za-z]+-?\d+[A-Za-z]*|\d+[A-Za-z]+|[A-Z][a-z]+[A-Z]\w*|[A-Z]{2,}\d*)$")


_CALENDAR = re.compile(
    r"^(?:mon|tues|wednes|thurs|fri|satur|sun)day$|^(?:january|february|march|april|may|june|july|august|september|"
    r"october|november|december)$",
    _I,
)


def _is_code(words: list[str]) -> bool:
    if any(_STRONG.match(w) for w in words):
        return True
    # "Basic 100", "Forum 240": a name and a number -- not "Abay Avenue 150" (an address) or "Friday 10"
    return len(words) == 2 and words[0][0].isupper() and words[1].isdigit() and not _CALENDAR.match(words[0])


def code_runs(text: str) -> Iterable[tuple[int, str, tuple[str, ...]]]:
    """Each model code in a document's text: (where it starts, the code, its letter-digit aliases)."""
    for match in _RUN.finditer(text):
        words = match.group(1).split()[:3]
        if _is_code(words):
            aliases = tuple(w for w in words if re.search(r"[A-Za-z]", w) and re.search(r"\d", w))
            yield match.start(), " ".join(words), aliases


@functools.lru_cache(maxsize=4096)
def mention_pattern(*names: str) -> re.Pattern[str]:
    """A pattern finding any of these names in a message, whatever its case, spaces and hyphens."""
    ordered = sorted(set(names), key=len, reverse=True)
    spelled = "|".join(r"[\s-]?".join(re.escape(part) for part in re.split(r"[\s-]+", name)) for name in ordered)
    return re.compile(rf"(?<![\w-])(?:{spelled})(?![\w-])", _I)


def names_product(text: str, code: str, aliases: Iterable[str] = ()) -> bool:
    return mention_pattern(code, *aliases).search(text) is not None


# The product a document line is about: its first code, unless a preposition ties that code to
# something else ("cartridge set for the Trio T-3", "installation of the Trio T-3").
_TIED = re.compile(r"(?:\bfor|\bof|\bto|\bwith|\bдля|\bк|\bот)\s+(?:the\s+)?$", _I)


def product_of(line: str) -> tuple[str, tuple[str, ...]] | None:
    """The product a catalogue line is about: (code, aliases), or None."""
    for start, code, aliases in code_runs(line):
        if _TIED.search(line[:start]):
            return None
        return code, aliases
    return None
