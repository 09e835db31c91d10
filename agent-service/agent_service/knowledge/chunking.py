"""Pages into retrievable chunks that remember where they came from (pure).

Lines broken inside a sentence are joined back (see :func:`clean_lines`: a PDF's text layer
breaks wherever the column ends, even between "Price:" and "164,500 KZT"), whitespace is
collapsed, and each page is cut at line boundaries
into chunks of at most ``max_chars`` (a single longer line is cut at sentence ends). A chunk id
is ``<document>:p<page>:c<n>`` -- stable across reloads of the same files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from agent_service.knowledge.loader import Document

MAX_CHARS = 800
_SPACES = re.compile(r"[ \t\u00a0\u2009\u202f]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MARKDOWN_NOISE = re.compile(r"^\s{0,3}(?:#{1,6}\s+|[-*+]\s+|>\s?)|\*\*|__|`")
_CURRENCY_START = re.compile(r"(?:₸|\$|€|₽|kzt\b|тг\b|тенге|теңге|usd\b)", re.IGNORECASE)
# A line ending in a preposition, an article or a conjunction ("Delivery to other cities of") goes on.
_OPEN_END = re.compile(
    r"\b(?:of|to|and|or|the|a|an|for|with|from|in|on|at|by|и|или|в|на|по|с|для|от|до|к|за|из)$", re.IGNORECASE
)
_LIST_ITEM = re.compile(r"(?:[-*•–]\s|\d{1,2}[.)]\s)")


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc: str
    page: int
    text: str


def clean_lines(text: str, *, markdown: bool = False) -> list[str]:
    """Non-empty lines, with lines broken inside a sentence joined again and spaces collapsed.

    A line continues the one before it -- unless that one ends a sentence (``.``, ``!``, ``?``)
    or a blank line separates them -- when it starts with a lower-case letter, a digit or a
    currency ("Price:" / "164,500 KZT"), when the line before ends with a comma, a hyphen, a
    preposition, an article or a conjunction ("... cities of" / "Kazakhstan ..."), or
    when the line before filled the column (at least 80% of the page's widest line: the text ran
    out of room, it did not end) and this one does not start a list item.
    """
    lines = [_SPACES.sub(" ", _MARKDOWN_NOISE.sub("", raw) if markdown else raw).strip() for raw in text.splitlines()]
    widest = max((len(line) for line in lines), default=0)
    out: list[str] = []
    blank_before = True
    for line in lines:
        if not line:
            blank_before = True
            continue
        if out and not blank_before and _continues(out[-1], line, widest):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
        blank_before = False
    return out


def _continues(previous: str, line: str, widest: int) -> bool:
    if previous.endswith((".", "!", "?")):
        return False
    if line[0].islower() or line[0].isdigit() or _CURRENCY_START.match(line):
        return True
    if previous.endswith((",", "-", "\u2013")) or _OPEN_END.search(previous):
        return True
    wrapped = widest >= 40 and len(previous) >= 0.8 * widest and not previous.endswith(":")
    return wrapped and not _LIST_ITEM.match(line)


def _pieces(lines: Iterable[str], max_chars: int) -> Iterable[str]:
    for line in lines:
        if len(line) <= max_chars:
            yield line
            continue
        current = ""
        for sentence in _SENTENCE_END.split(line):
            while len(sentence) > max_chars:  # a run-on "sentence": hard cut
                yield sentence[:max_chars]
                sentence = sentence[max_chars:]
            if current and len(current) + 1 + len(sentence) > max_chars:
                yield current
                current = ""
            current = f"{current} {sentence}".strip()
        if current:
            yield current


def chunk_document(document: Document, max_chars: int = MAX_CHARS) -> list[Chunk]:
    chunks: list[Chunk] = []
    for page in document.pages:
        lines = clean_lines(page.text, markdown=document.kind == "markdown")
        groups: list[list[str]] = []
        size = 0
        for piece in _pieces(lines, max_chars):
            if not groups or size + len(piece) + 1 > max_chars:
                groups.append([])
                size = 0
            groups[-1].append(piece)
            size += len(piece) + 1
        for number, group in enumerate(groups, start=1):
            chunk_id = f"{document.name}:p{page.number}:c{number}"
            chunks.append(Chunk(chunk_id, document.name, page.number, "\n".join(group)))
    return chunks
