"""The management API's bearer tokens: several named ones, so that one can be revoked alone and
every action is recorded under the name of the token that made it.

``API_TOKENS=dana:<token>,reporting:<token>`` names each token; ``API_TOKEN`` is one more, named
``default``. In production every token must be strong: at least 16 characters, no spaces or
control characters, at least 8 different characters (16 spaces, or ``aaaa...``, are refused).
Pure functions; the middleware that checks requests is in ``parley_shared.http``.
"""

from __future__ import annotations

import re

DEFAULT_NAME = "default"  # the name API_TOKEN goes by
MIN_LENGTH = 16
MIN_DISTINCT = 8
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def parse_named_tokens(text: str) -> dict[str, str]:
    """``name:token,name:token`` as {name: token}; ValueError naming the first bad entry (never the token)."""
    tokens: dict[str, str] = {}
    for position, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, token = entry.partition(":")
        name = name.strip()
        if not sep or not _NAME.match(name):
            raise ValueError(f"entry {position} is not name:token (a name of letters, digits, '_', '.', '-')")
        if name in tokens:
            raise ValueError(f"the name {name!r} is given twice")
        if not token.strip():
            raise ValueError(f"the token named {name!r} is empty")
        tokens[name] = token.strip()
    return tokens


def weakness(token: str) -> str | None:
    """Why ``token`` is too weak to guard a production API, or None."""
    if not token.strip():
        return "is blank"
    if any(char.isspace() or not char.isprintable() for char in token):
        return "contains spaces or control characters"
    if len(token) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    if len(set(token)) < MIN_DISTINCT:
        return f"has fewer than {MIN_DISTINCT} different characters"
    return None
