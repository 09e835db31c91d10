"""Pages into retrievable chunks that remember where they came from (pure).

Wrapped lines are joined back into sentences (a line that continues with a lower-case letter
belongs to the previous one), whitespace is collapsed, and each page is cut at line boundaries
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


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc: str
    page: int
    text: str


def clean_lines(text: str, *, markdown: bool = False) -> list[str]:
    """Non-empty lines with wrapped sentences re-joined and spaces collapsed."""
    out: list[str] = []
    for raw in text.splitlines():
        line = _MARKDOWN_NOISE.sub("", raw) if markdown else raw
        line = _SPACES.sub(" ", line).strip()
        if not line:
            continue
        if out and line[0].islower() and not out[-1].endswith((".", "!", "?", ":")):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return out


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
