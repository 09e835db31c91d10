"""Knowledge base: loading ``knowledge_base/`` (PDF, Markdown, text), chunking, BM25/hybrid retrieval.

The composition root builds one :class:`KnowledgeBase` and hands it to whoever needs it (the
sales agent, the follow-up writer; routes reach it as ``request.app[AGENT].knowledge``), which
call ``await knowledge.search(query, k)``.
"""

from __future__ import annotations

from agent_service.knowledge.base import KnowledgeBase, Passage

__all__ = ["KnowledgeBase", "Passage"]
