"""The knowledge base: loading (problems reported, never fatal), chunking with references, BM25 and
hybrid retrieval, its speed, and the ``/knowledge`` routes."""

from __future__ import annotations

import importlib.util
import re
import statistics
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from fpdf import FPDF
from pypdf import PdfReader

from agent_service.knowledge import KnowledgeBase
from agent_service.knowledge.bm25 import BM25Index
from agent_service.knowledge.chunking import MAX_CHARS, chunk_document
from agent_service.knowledge.embeddings import GeminiEmbedder
from agent_service.knowledge.loader import Document, Page, load_directory
from agent_service.settings import AgentSettings
from parley_shared.gemini import make_client
from tests.agent.conversation_support import AUTH, ROOT, running_agent
from tests.support.fake_gemini import FakeGemini


def pdf(path: Path, pages: list[str], *, password: str | None = None) -> None:
    doc = FPDF()
    doc.set_font("helvetica", size=11)
    for text in pages:
        doc.add_page()
        if text:
            doc.multi_cell(0, 6, text)
        else:
            doc.rect(10, 10, 80, 60)  # a "scanned" page: drawing, no text
    if password:
        doc.set_encryption(owner_password="owner", user_password=password)
    doc.output(str(path))


def folder(tmp_path: Path) -> Path:
    kb = tmp_path / "kb"
    kb.mkdir()
    pdf(kb / "prices.pdf", ["Oak desk: 50 000 KZT. In stock: 4 pcs.", "", "Walnut desk: 70 000 KZT."])
    pdf(kb / "locked.pdf", ["secret"], password="pw")
    pdf(kb / "scan.pdf", ["", ""])
    (kb / "broken.pdf").write_bytes(b"%PDF-1.4\n" + b"\x00garbage" * 50)
    (kb / "empty.txt").write_text("")
    (kb / "notes.docx").write_bytes(b"PK\x03\x04")
    (kb / "faq.md").write_text("# Delivery\nWe deliver in two days.\n\n# Returns\nReturns within fourteen days.\n")
    (kb / "terms.txt").write_text("Payment by card.\fWarranty two years.")
    (kb / ".hidden.md").write_text("# hidden")
    (kb / "_drafts").mkdir()
    (kb / "_drafts" / "draft.md").write_text("# draft")
    return kb


def test_every_readable_file_loads_and_every_other_is_reported(tmp_path: Path) -> None:
    documents, problems = load_directory(folder(tmp_path))
    assert {d.name: len(d.pages) for d in documents} == {"faq.md": 2, "prices.pdf": 2, "terms.txt": 2}
    assert {(p.document, p.problem) for p in problems} == {
        ("locked.pdf", "encrypted"),
        ("scan.pdf", "no_text"),
        ("broken.pdf", "corrupt"),
        ("empty.txt", "empty"),
        ("notes.docx", "unsupported"),
        ("prices.pdf", "partial_text"),
    }
    prices = next(d for d in documents if d.name == "prices.pdf")
    assert [p.number for p in prices.pages] == [1, 3] and prices.empty_pages == [2]
    assert load_directory(tmp_path / "missing")[1][0].problem == "unreadable"


def test_chunks_keep_document_and_page_and_rejoin_wrapped_lines() -> None:
    long_line = " ".join(f"Sentence number {i} about office chairs." for i in range(60))
    document = Document(
        "cat.pdf",
        "pdf",
        [Page(3, "Price list\nErgo chair costs 10 000 KZT and comes\nwith a warranty.\n" + long_line)],
        1,
    )
    chunks = chunk_document(document)
    assert chunks[0].chunk_id == "cat.pdf:p3:c1" and {c.page for c in chunks} == {3}
    assert "Ergo chair costs 10 000 KZT and comes with a warranty." in chunks[0].text
    assert len(chunks) > 1 and all(len(c.text) <= MAX_CHARS for c in chunks)
    assert [c.chunk_id for c in chunks] == [c.chunk_id for c in chunk_document(document)]  # stable ids


def test_lines_a_pdf_broke_inside_a_sentence_are_joined_and_prices_stay_whole(tmp_path: Path) -> None:
    """A narrow column breaks "Price:" from "164,500 KZT" and a sentence at a capitalised word."""
    doc = FPDF()
    doc.set_font("helvetica", size=10)
    doc.add_page()
    doc.multi_cell(0, 6, "Filters and systems")
    for text in (
        "AquaPure RO-5 reverse osmosis system with five filtration stages and a 12-litre tank, for hard tap water. "
        "Price: 164,500 KZT. In stock.",
        "Delivery to other cities of Kazakhstan takes 2-6 working days by courier, from Astana and Almaty.",
    ):
        doc.multi_cell(51, 5, text)
        doc.ln(2)
    doc.output(str(tmp_path / "list.pdf"))
    raw = PdfReader(tmp_path / "list.pdf").pages[0].extract_text().splitlines()
    assert "tank, for hard tap water. Price:" in raw and "Kazakhstan takes 2-6 working" in raw  # where it broke
    [chunk] = chunk_document(load_directory(tmp_path)[0][0])
    lines = chunk.text.splitlines()
    assert lines[0] == "Filters and systems"
    assert any(re.search(r"for hard tap water\. Price: 164,500 KZT\. In stock\.$", line) for line in lines)
    assert "Delivery to other cities of Kazakhstan takes 2-6 working days by courier, from Astana and Almaty." in lines


def test_the_second_sample_price_list_reads_whole_product_lines() -> None:
    kb = KnowledgeBase(ROOT / "samples" / "tazasu" / "knowledge_base")
    kb.load_sync()
    assert kb.summary()["problems"] == []
    text = "\n".join(p.text for p in kb.lexical_search("AquaPure RO-5 price", 2))
    assert re.search(r"AquaPure RO-5 reverse osmosis system .+ Price: 164,500 KZT\. In stock\.", text)


def test_bm25_ranks_the_chunk_that_matches_best() -> None:
    index = BM25Index(
        [
            "Oak desk 50 000 KZT",
            "Walnut desk and an oak chair, with a long note on materials and colours",
            "Delivery terms in Almaty",
            "",
        ]
    )
    assert [i for i, _ in index.search("oak desk price", 3)] == [0, 1]
    assert index.search("доставка", 3) == [] and index.search("", 3) == []
    assert [i for i, _ in BM25Index(["доставка по Алматы", "кресла"]).search("Доставки", 2)] == [0]


async def test_the_knowledge_base_searches_with_references_and_reports(tmp_path: Path) -> None:
    kb = KnowledgeBase(folder(tmp_path))
    passages = await kb.search("walnut desk price", 2)
    assert passages[0].doc == "prices.pdf" and passages[0].page == 3 and "70 000" in passages[0].text
    assert passages[0].chunk_id == "prices.pdf:p3:c1" and passages[0].score > 0
    summary = kb.summary()
    assert summary["retrieval"] == "bm25" and summary["totals"]["documents"] == 3
    assert len(summary["problems"]) == 6


def test_bm25_over_a_thousand_page_catalogue_is_fast(tmp_path: Path) -> None:
    """The benchmark wants p99 < 10 ms per query over 1,000 pages; measured here with margin for CI noise."""
    words = "chair desk table cabinet lamp sofa shelf booth pedestal stool".split()
    pages = []
    for n in range(1000):
        lines = [
            f"Model {words[n % 10].title()} {n}: {10_000 + n * 37:,} KZT. In stock: {n % 50} pcs.".replace(",", " ")
            for _ in range(3)
        ]
        lines.append(f"The {words[n % 10]} {n} has warranty {n % 5 + 1} years and delivery in Almaty in two days.")
        pages.append("\n".join(lines))
    (tmp_path / "big.txt").write_text("\f".join(pages))
    kb = KnowledgeBase(tmp_path)
    kb.load_sync()
    assert kb.summary()["totals"]["pages"] == 1000
    queries = [f"how much is the {words[i % 10]} {i * 7 % 1000} and delivery" for i in range(400)]
    timings = []
    for query in queries:
        started = time.perf_counter()
        found = kb.lexical_search(query, 5)
        timings.append((time.perf_counter() - started) * 1000)
        assert found
    p99 = statistics.quantiles(timings, n=100)[98]
    assert p99 < 25, f"p99 {p99:.2f} ms"


# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates (a warning, an error under -W error).
async def test_hybrid_retrieval_with_gemini_embeddings_and_fallback_to_bm25(tmp_path: Path) -> None:
    fake = await FakeGemini().start()
    try:
        settings = AgentSettings(gemini_api_key="k", gemini_base_url=fake.url)
        kb = KnowledgeBase(folder(tmp_path), embedder=GeminiEmbedder(make_client(settings, timeout_s=5), "emb"))
        passages = await kb.search("walnut desk", 3)
        assert kb.summary()["retrieval"] == "hybrid" and passages
        assert "prices.pdf" in {p.doc for p in passages}
        methods = [c.method for c in fake.calls]
        assert methods.count("batchEmbedContents") >= 2  # the chunks, then the query
        calls = len(fake.calls)
        await kb.search("walnut desk", 3)
        assert len(fake.calls) == calls  # the query vector is cached
        broken = AgentSettings(gemini_api_key="k", gemini_base_url="http://127.0.0.1:9")
        (tmp_path / "x").mkdir()
        kb2 = KnowledgeBase(folder(tmp_path / "x"), embedder=GeminiEmbedder(make_client(broken, timeout_s=2), "emb"))
        assert (await kb2.search("walnut desk", 1))[0].doc == "prices.pdf"
        summary = kb2.summary()
        assert summary["retrieval"] == "bm25" and "embeddings_failed" in {p["problem"] for p in summary["problems"]}
    finally:
        await fake.close()


async def test_knowledge_routes_list_and_reload(amqp_url: str, tmp_path: Path) -> None:
    kb = folder(tmp_path)
    async with running_agent(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/a.db", knowledge_dir=str(kb)) as agent:
        client: TestClient = agent.client
        assert (await client.get("/knowledge")).status == 401
        body = await (await client.get("/knowledge", headers=AUTH)).json()
        assert {d["name"] for d in body["documents"]} == {"faq.md", "prices.pdf", "terms.txt"}
        assert {p["problem"] for p in body["problems"]} >= {"encrypted", "no_text", "corrupt"}
        assert body["chunks"] is None
        listed = await (await client.get("/knowledge", params={"chunks": "true"}, headers=AUTH)).json()
        assert len(listed["chunks"]) == body["totals"]["chunks"]
        walnut = next(c for c in listed["chunks"] if c["chunk_id"] == "prices.pdf:p3:c1")
        assert (walnut["doc"], walnut["page"]) == ("prices.pdf", 3) and "Walnut desk" in walnut["preview"]
        assert (await client.get("/knowledge", params={"chunk": "1"}, headers=AUTH)).status == 400
        (kb / "new.md").write_text("# Chairs\nThe Mesh chair costs 30 000 KZT.")
        reloaded = await (await client.post("/knowledge/reload", headers=AUTH)).json()
        assert "new.md" in {d["name"] for d in reloaded["documents"]}
        assert reloaded["totals"]["chunks"] == body["totals"]["chunks"] + 1


def test_the_shipped_catalogue_loads_in_both_languages() -> None:
    kb = KnowledgeBase(ROOT / "knowledge_base")
    kb.load_sync()
    summary = kb.summary()
    assert summary["problems"] == [] and summary["documents"][0]["pages"] == 10
    assert "89 900 ₸" in kb.lexical_search("ErgoPro 300 price", 1)[0].text
    assert "Эргономичное" in kb.lexical_search("кресло ErgoPro 300 цена", 1)[0].text


@pytest.mark.parametrize(
    ("script", "shipped"),
    [
        ("knowledge_base/_source/build_catalogue.py", "knowledge_base/komfortoffice_catalogue.pdf"),
        (
            "samples/tazasu/knowledge_base/_source/build_price_list.py",
            "samples/tazasu/knowledge_base/tazasu_price_list.pdf",
        ),
    ],
)
def test_the_shipped_catalogues_are_what_their_scripts_build(tmp_path: Path, script: str, shipped: str) -> None:
    spec = importlib.util.spec_from_file_location("build_catalogue", ROOT / script)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    if not (script.FONT_DIR / "DejaVuSans.ttf").exists():
        pytest.skip("DejaVu fonts are not installed here")
    built = script.build(tmp_path / "catalogue.pdf")

    def text(path: Path) -> list[str]:
        return [page.extract_text() for page in PdfReader(path).pages]

    assert text(built) == text(ROOT / shipped)
