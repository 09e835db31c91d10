"""``GET /knowledge`` (documents, pages, chunks, problems) and ``POST /knowledge/reload``."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from agent_service.knowledge import KNOWLEDGE
from parley_shared.http import json_response
from parley_shared.openapi import describe


class KnowledgeDocument(BaseModel):
    name: str
    kind: str
    pages: int
    pages_with_text: int
    chunks: int
    size_bytes: int


class KnowledgeProblem(BaseModel):
    document: str
    problem: str
    detail: str


class KnowledgeTotals(BaseModel):
    documents: int
    pages: int
    chunks: int
    terms: int


class KnowledgeSummary(BaseModel):
    """What the agent answers from, and what it could not read."""

    directory: str
    loaded_at: str | None
    load_ms: float
    retrieval: str
    documents: list[KnowledgeDocument]
    totals: KnowledgeTotals
    problems: list[KnowledgeProblem]


@describe(
    "The knowledge base: documents, pages, chunks, problems", responses={200: KnowledgeSummary}, tags=("knowledge",)
)
async def get_knowledge(request: web.Request) -> web.Response:
    knowledge = request.app[KNOWLEDGE]
    await knowledge.ensure_loaded()
    return json_response(KnowledgeSummary.model_validate(knowledge.summary()))


@describe(
    "Reindex the knowledge folder",
    description="Reads every file again; unreadable files are listed under problems, never fatal.",
    responses={200: KnowledgeSummary},
    tags=("knowledge",),
)
async def reload_knowledge(request: web.Request) -> web.Response:
    summary = await request.app[KNOWLEDGE].reload()
    return json_response(KnowledgeSummary.model_validate(summary))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/knowledge", get_knowledge)
    app.router.add_post("/knowledge/reload", reload_knowledge)
