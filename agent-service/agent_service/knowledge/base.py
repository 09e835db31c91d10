"""The knowledge base: load ``knowledge_base/``, index it, answer searches.

* Loading reads the files in a thread (pypdf is CPU-bound), chunks them and builds a BM25
  index; with an embedder (Gemini key set, ``KNOWLEDGE_EMBEDDINGS`` on) it also embeds every
  chunk. A reload builds a complete new snapshot and swaps it in at once, so a search never
  sees half an index. Problems (encrypted, scanned, corrupt files; embeddings failing) are
  recorded and reported by ``GET /knowledge``; they never stop the service.
* :meth:`KnowledgeBase.search` is BM25, or -- when chunk vectors exist -- reciprocal rank
  fusion of BM25 and cosine similarity with the query's embedding. If embedding the query
  fails, the search quietly falls back to BM25.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from agent_service.domain.quote import PriceList, read_price_list
from agent_service.domain.text import BASE_SYNONYMS, Synonyms
from agent_service.knowledge.bm25 import BM25Index
from agent_service.knowledge.chunking import Chunk, chunk_document
from agent_service.knowledge.embeddings import dot
from agent_service.knowledge.loader import Document, Problem, load_directory
from agent_service.knowledge.screening import screen
from parley_shared.clock import Clock, SystemClock

log = structlog.get_logger(__name__)

RRF_K = 60
CANDIDATES = 50
FULL_SCAN_LIMIT = 4000  # above this many chunks, vectors rerank the BM25 candidates only
QUERY_CACHE = 2048


class Embedder(Protocol):
    async def embed(self, texts: list[str], *, query: bool = False) -> list[list[float]]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk: where it comes from, its text, and its retrieval score."""

    doc: str
    page: int
    chunk_id: str
    text: str
    score: float

    def ref(self) -> dict[str, Any]:
        return {"doc": self.doc, "page": self.page, "chunk": self.chunk_id}


@dataclass(frozen=True)
class _Snapshot:
    documents: list[Document] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    bm25: BM25Index = field(default_factory=lambda: BM25Index([]))
    vectors: list[list[float]] | None = None
    loaded_at: Any = None
    load_ms: float = 0.0
    prices: PriceList = field(default_factory=PriceList)


class KnowledgeBase:
    def __init__(
        self,
        directory: Path | str,
        *,
        embedder: Embedder | None = None,
        embed_timeout_s: float = 10.0,
        clock: Clock | None = None,
        synonyms: Synonyms = BASE_SYNONYMS,
    ) -> None:
        self.directory = Path(directory)
        self.synonyms = synonyms  # the business's words for what the documents call otherwise
        self.embedder = embedder
        self.embed_timeout_s = embed_timeout_s
        self.clock = clock or SystemClock()
        self._snapshot = _Snapshot()
        self._by_id: dict[str, int] = {}
        self._loaded = False
        self._lock = asyncio.Lock()
        self._query_vectors: OrderedDict[str, list[float]] = OrderedDict()

    # ---------------------------------------------------------------- loading
    async def ensure_loaded(self) -> None:
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    await self._load_locked()

    async def reload(self) -> dict[str, Any]:
        async with self._lock:
            await self._load_locked()
        return self.summary()

    async def _load_locked(self) -> None:
        started = time.perf_counter()
        documents, problems, chunks, bm25, prices = await asyncio.to_thread(self._read_and_index)
        vectors = None
        if self.embedder is not None and chunks:
            try:
                vectors = await self.embedder.embed([c.text for c in chunks])
            except Exception as exc:  # embeddings are an improvement, never a requirement
                problems = [*problems, Problem("(embeddings)", "embeddings_failed", type(exc).__name__)]
                log.warning("knowledge.embeddings_failed", error=type(exc).__name__)
        snapshot = _Snapshot(
            documents=documents,
            problems=problems,
            chunks=chunks,
            bm25=bm25,
            vectors=vectors,
            loaded_at=self.clock.now(),
            load_ms=round((time.perf_counter() - started) * 1000, 1),
            prices=prices,
        )
        self._snapshot = snapshot
        self._by_id = {c.chunk_id: i for i, c in enumerate(chunks)}
        self._query_vectors.clear()
        self._loaded = True
        log.info(
            "knowledge.loaded",
            documents=len(documents),
            chunks=len(chunks),
            problems=len(problems),
            hybrid=vectors is not None,
            ms=snapshot.load_ms,
        )

    def _read_and_index(self) -> tuple[list[Document], list[Problem], list[Chunk], BM25Index, PriceList]:
        documents, problems = load_directory(self.directory)
        chunks = [chunk for document in documents for chunk in chunk_document(document)]
        chunks, left_out = screen(chunks)  # passages that address the model with instructions
        prices = read_price_list((c.chunk_id, c.text) for c in chunks)
        index = BM25Index([c.text for c in chunks], synonyms=self.synonyms)
        return documents, [*problems, *left_out], chunks, index, prices

    def load_sync(self) -> None:
        """Load without embeddings, outside any event loop (benchmarks, scripts)."""
        documents, problems, chunks, bm25, prices = self._read_and_index()
        self._snapshot = _Snapshot(documents, problems, chunks, bm25, None, self.clock.now(), prices=prices)
        self._by_id = {c.chunk_id: i for i, c in enumerate(chunks)}
        self._loaded = True

    async def close(self) -> None:
        if self.embedder is not None:
            await self.embedder.close()

    # ---------------------------------------------------------------- searching
    @property
    def price_list(self) -> PriceList:
        """The documents' prices and discount rules, for totals computed in code (``domain.quote``)."""
        return self._snapshot.prices

    def all_text(self) -> str:
        """Every chunk's text (what the documents say, for checks over the whole knowledge base)."""
        return "\n".join(c.text for c in self._snapshot.chunks)

    @property
    def hybrid(self) -> bool:
        return self._snapshot.vectors is not None

    def lexical_search(self, query: str, k: int = 4) -> list[Passage]:
        """BM25 only (synchronous, no I/O)."""
        snapshot = self._snapshot
        return [self._passage(snapshot, i, score) for i, score in snapshot.bm25.search(query, k)]

    async def search(self, query: str, k: int = 4) -> list[Passage]:
        """The ``k`` passages most relevant to ``query``, best first (hybrid when vectors exist)."""
        await self.ensure_loaded()
        snapshot = self._snapshot
        if snapshot.vectors is None or not query.strip():
            return self.lexical_search(query, k)
        query_vector = await self._query_vector(query)
        if query_vector is None:
            return self.lexical_search(query, k)
        lexical = snapshot.bm25.search(query, CANDIDATES)
        if len(snapshot.chunks) <= FULL_SCAN_LIMIT:
            candidates: Any = range(len(snapshot.chunks))
        else:
            candidates = [i for i, _ in lexical]
        semantic = sorted(candidates, key=lambda i: -dot(snapshot.vectors[i], query_vector))[:CANDIDATES]  # type: ignore[index]
        fused: dict[int, float] = {}
        for rank, (i, _) in enumerate(lexical):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
        for rank, i in enumerate(semantic):
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
        return [self._passage(snapshot, i, round(score, 6)) for i, score in best]

    async def _query_vector(self, query: str) -> list[float] | None:
        cached = self._query_vectors.get(query)
        if cached is not None:
            self._query_vectors.move_to_end(query)
            return cached
        assert self.embedder is not None
        try:
            vectors = await asyncio.wait_for(self.embedder.embed([query], query=True), self.embed_timeout_s)
        except Exception as exc:
            log.warning("knowledge.query_embedding_failed", error=type(exc).__name__)
            return None
        self._query_vectors[query] = vectors[0]
        if len(self._query_vectors) > QUERY_CACHE:
            self._query_vectors.popitem(last=False)
        return vectors[0]

    @staticmethod
    def _passage(snapshot: _Snapshot, index: int, score: float) -> Passage:
        chunk = snapshot.chunks[index]
        return Passage(chunk.doc, chunk.page, chunk.chunk_id, chunk.text, score)

    def passage(self, chunk_id: str) -> Passage | None:
        index = self._by_id.get(chunk_id)
        return None if index is None else self._passage(self._snapshot, index, 0.0)

    # ---------------------------------------------------------------- reporting
    def chunk_list(self, preview_chars: int = 120) -> list[dict[str, Any]]:
        return [
            {
                "chunk_id": c.chunk_id,
                "doc": c.doc,
                "page": c.page,
                "chars": len(c.text),
                "preview": c.text[:preview_chars].replace("\n", " "),
            }
            for c in self._snapshot.chunks
        ]

    def summary(self) -> dict[str, Any]:
        s = self._snapshot
        per_doc: dict[str, int] = {}
        for chunk in s.chunks:
            per_doc[chunk.doc] = per_doc.get(chunk.doc, 0) + 1
        return {
            "directory": str(self.directory),
            "loaded_at": s.loaded_at.isoformat() if s.loaded_at else None,
            "load_ms": s.load_ms,
            "retrieval": "hybrid" if s.vectors is not None else "bm25",
            "documents": [
                {
                    "name": d.name,
                    "kind": d.kind,
                    "pages": len(d.pages) + len(d.empty_pages),
                    "pages_with_text": len(d.pages),
                    "chunks": per_doc.get(d.name, 0),
                    "size_bytes": d.size_bytes,
                }
                for d in s.documents
            ],
            "totals": {
                "documents": len(s.documents),
                "pages": sum(len(d.pages) for d in s.documents),
                "chunks": len(s.chunks),
                "terms": s.bm25.vocabulary,
            },
            "problems": [{"document": p.document, "problem": p.problem, "detail": p.detail} for p in s.problems],
        }
