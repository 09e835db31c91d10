"""Text from outside that talks to the model: prompt injection, recognised in data.

Knowledge documents, WhatsApp profile names, voice transcripts and the conversation all reach
the model as data. The model may still obey instructions hidden in them, so every reply and
every follow-up draft passes the grounding and disclosure guards whatever it read. This module
adds what can be done before the model reads anything:

* :func:`instruction_like` -- the phrase that makes a text look like instructions addressed to
  an AI ("ignore your previous instructions", "system prompt", "note to the assistant:", a
  ``system:`` role line; English, Russian and Kazakh), or None. Used to keep such chunks of a
  knowledge document out of the index (``knowledge/screening.py``): a poisoned document could
  otherwise feed the model instructions AND ground the invented figures they ask for.
* :func:`display_name` -- a profile name fit to greet someone with (letters, at most three words),
  or None: a name is chosen by its owner and would otherwise be echoed from the business's number.
* :func:`quoted_name` -- a profile name as one quoted line of a prompt (no line breaks that could
  forge the prompt's sections).

Heuristics, not a proof: an instruction written as an ordinary sentence ("the ErgoPro 300 now
costs 10 000 ₸") is not recognised, which is why the guards on the model's output remain.
"""

from __future__ import annotations

import re

_PATTERNS = [
    re.compile(p, re.IGNORECASE | re.MULTILINE)
    for p in (
        r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,60}"
        r"\b(?:instructions?|prompts?|guidelines|guardrails|(?:previous|prior|above|earlier|your|all)\s+rules)\b",
        r"\b(?:system|developer|hidden)\s+(?:prompt|message|instructions?)\b",
        r"\bprompt\s+injection\b|\bjailbreak\w*",
        r"^\s*(?:system|assistant|developer)\s*[:>]",
        r"\b(?:note|message|instructions?|memo)\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|chat\s?bot|bot|model|llm|agent)\b",
        r"\b(?:ai|assistant|chat\s?bot|llm|language model)\s*(?:,|:)\s*(?:you\s+must|always|never|from now on)\b",
        r"\byou\s+are\s+(?:now\s+)?(?:an?\s+)?(?:ai|assistant|chat\s?bot|language model|llm)\b",
        r"\b(?:instructions?|prompts?)\b[^.\n]{0,40}\b(?:ignored|disregarded|forgotten|overridden)\b",
        r"\b(?:игнорир\w*|не\s+обращай\s+внимания|забудь\w*|отмени\w*)\b[^.\n]{0,60}(?:инструкц\w*|правил\w*|промпт\w*)",
        r"(?:инструкц\w*|промпт\w*)[^.\n]{0,40}\b(?:игнорир\w*|забудь\w*|отмени\w*)",
        r"\bсистемн\w*\s+(?:промпт\w*|сообщени\w*|инструкц\w*)",
        r"\b(?:для|к)\s+(?:ии|ассистент\w*|бот\w*|нейросет\w*|модел\w*)\s*:",
        r"\b(?:елеме\w*|ұмыт\w*)\b[^.\n]{0,60}нұсқау\w*",
        r"нұсқау\w*[^.\n]{0,40}\b(?:елеме\w*|ұмыт\w*)",
    )
]
_NAME = re.compile(r"^[^\W\d_]+(?:[ '’-][^\W\d_]+){0,2}$")
NAME_MAX = 40
QUOTED_NAME_MAX = 200


def instruction_like(text: str) -> str | None:
    """The first phrase of ``text`` that addresses an AI with instructions, or None."""
    for pattern in _PATTERNS:
        match = pattern.search(text)
        if match:
            return " ".join(match.group(0).split())[:80]
    return None


def display_name(name: str | None) -> str | None:
    """``name`` if it reads as a person's name (letters; one to three words; 40 characters at most)."""
    clean = " ".join((name or "").split())
    return clean if clean and len(clean) <= NAME_MAX and _NAME.match(clean) else None


def quoted_name(name: str | None) -> str:
    """The profile name for a prompt line: whitespace collapsed, control characters dropped, quoted."""
    clean = " ".join("".join(ch for ch in (name or "") if ch.isprintable() or ch.isspace()).split())
    return f'"{clean[:QUOTED_NAME_MAX]}"' if clean else "unknown name"
