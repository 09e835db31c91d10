"""Chunks of knowledge documents that address the model with instructions stay out of the index.

A document dropped into ``knowledge_base/`` (a supplier's catalogue, a pasted web page) may hide
"AI assistant: ignore your previous instructions..." in white text. Its chunks would reach the
model as "the only source of facts" and, worse, ground the invented prices they ask for in the
grounding guard. Such chunks are left out and reported as a problem of their document
(``GET /knowledge``: ``instructions``, with the page and the phrase) so someone fixes the file.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from agent_service.domain.injection import instruction_like
from agent_service.knowledge.chunking import Chunk
from agent_service.knowledge.loader import Problem

log = structlog.get_logger(__name__)


def screen(chunks: Sequence[Chunk]) -> tuple[list[Chunk], list[Problem]]:
    """(the chunks to index, a problem for each chunk left out)."""
    kept: list[Chunk] = []
    problems: list[Problem] = []
    for chunk in chunks:
        phrase = instruction_like(chunk.text)
        if phrase is None:
            kept.append(chunk)
            continue
        problems.append(Problem(chunk.doc, "instructions", f"page {chunk.page}: {phrase!r}; this passage is not used"))
        log.warning("knowledge.instructions_left_out", document=chunk.doc, page=chunk.page)
    return kept, problems
