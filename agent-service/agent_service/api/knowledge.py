"""``GET /knowledge`` (documents, pages, chunks, problems) and ``POST /knowledge/reload``."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from agent_service.context import AGENT
from parley_shared.http import json_response, read_query
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


class KnowledgeChunk(BaseModel):
    chunk_id: str
    doc: str
    page: int
    chars: int
    preview: str


class KnowledgeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunks: bool = Field(False, description="Also list the chunks (id, document, page, size, first words)")


class KnowledgeSummary(BaseModel):
    """What the agent answers from, and what it could not read."""

    directory: str
    loaded_at: str | None
    load_ms: float
    retrieval: str
    documents: list[KnowledgeDocument]
    totals: KnowledgeTotals
    problems: list[KnowledgeProblem]
    chunks: list[KnowledgeChunk] | None = None


@describe(
    "The knowledge base: documents, pages, chunks, problems",
    query=KnowledgeQuery,
    responses={200: KnowledgeSummary},
    tags=("knowledge",),
)
async def get_knowledge(request: web.Request) -> web.Response:
    query = await read_query(request, KnowledgeQuery)
    knowledge = request.app[AGENT].knowledge
    await knowledge.ensure_loaded()
    summary = knowledge.summary()
    if query.chunks:
        summary["chunks"] = knowledge.chunk_list()
    return json_response(KnowledgeSummary.model_validate(summary))


@describe(
    "Reindex the knowledge folder",
    description="Reads every file again; unreadable files are listed under problems, never fatal.",
    responses={200: KnowledgeSummary},
    tags=("knowledge",),
)
async def reload_knowledge(request: web.Request) -> web.Response:
    summary = await request.app[AGENT].knowledge.reload()
    return json_response(KnowledgeSummary.model_validate(summary))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/knowledge", get_knowledge)
    app.router.add_post("/knowledge/reload", reload_knowledge)
