"""Knowledge base: loading ``knowledge_base/`` (PDF, Markdown, text), chunking, BM25/hybrid retrieval.

Other parts of the service reach it through the application: ``request.app[KNOWLEDGE]`` (or
the instance handed to them in ``app.py``) and call ``await knowledge.search(query, k)``.
"""

from __future__ import annotations

from aiohttp import web

from agent_service.knowledge.base import KnowledgeBase, Passage

KNOWLEDGE = web.AppKey("knowledge", KnowledgeBase)

__all__ = ["KNOWLEDGE", "KnowledgeBase", "Passage"]
