"""Benchmark 3: the knowledge base on a generated 1,000-page catalogue PDF.

Run in its own process (``python -m bench.knowledge``, started by ``bench/__main__.py``) so
its memory figures are the knowledge base's alone. The PDF is generated into a temporary
folder (fpdf2, core fonts) and never committed. Measured: ingest time through the agent's own
loader (pypdf text extraction, chunking, BM25 index -- exactly what start-up and
``POST /knowledge/reload`` run), pages per second, and the latency of 1,000 distinct queries
through ``KnowledgeBase.search`` (BM25; no embedder, as without a Gemini key).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import peak_rss_mib, percentile, rss_mib

FAMILIES = ["ErgoPro", "Basic", "Lux", "Nord", "Astana", "Alatau", "Steppe", "Vector", "Orion", "Sigma", "Terra",
            "Atlas", "Vega", "Kaspi", "Tengri", "Arman", "Zhibek", "Baiterek", "Samal", "Medeu"]  # fmt: skip
KINDS = ["office chair", "executive chair", "desk", "height-adjustable desk", "meeting table", "cabinet",
         "bookcase", "phone booth", "sofa", "reception desk", "pedestal", "locker", "coat stand",
         "whiteboard", "monitor arm", "footrest", "stool", "bench", "partition", "lamp"]  # fmt: skip
MATERIALS = ["oak veneer", "walnut", "white laminate", "steel frame", "mesh back", "genuine leather",
             "eco-leather", "fabric", "glass top", "birch plywood", "aluminium base", "chrome legs"]  # fmt: skip
COLOURS = ["black", "grey", "white", "graphite", "beige", "blue", "green", "red", "sand", "anthracite"]
TOPICS = ["delivery", "assembly", "warranty", "returns", "payment", "installments", "invoice", "showroom",
          "stock", "made to order", "discount", "corporate", "layout", "samples", "care"]  # fmt: skip
LINES_PER_PAGE = 14


def product(rng: random.Random, page: int, n: int) -> tuple[str, str]:
    family, kind = rng.choice(FAMILIES), rng.choice(KINDS)
    model = f"{family} {100 + (page * 7 + n * 13) % 900}"
    price = rng.randrange(9_900, 990_000, 100)
    stock = rng.randrange(0, 120)
    line = f"{model} {kind}, {rng.choice(MATERIALS)}, {rng.choice(COLOURS)}: {price:,} KZT. In stock: {stock} pcs."
    note = (
        f"{rng.choice(TOPICS).capitalize()}: {model} ships in {rng.randrange(1, 30)} days; "
        f"{rng.choice(TOPICS)} and {rng.choice(TOPICS)} on request, warranty {rng.randrange(1, 6)} years."
    )
    return line, note


def generate_pdf(path: Path, pages: int, seed: int = 8) -> float:
    """A catalogue of ``pages`` pages of product lines and notes; returns the seconds it took."""
    from fpdf import FPDF

    started = time.perf_counter()
    rng = random.Random(seed)
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pdf.set_font("Helvetica", size=9)
    for page in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=12)
        pdf.cell(0, 8, f"Catalogue section {page}: {rng.choice(KINDS)}s and {rng.choice(KINDS)}s")
        pdf.ln(10)
        pdf.set_font("Helvetica", size=9)
        for n in range(LINES_PER_PAGE // 2):
            line, note = product(rng, page, n)
            pdf.cell(0, 5, line)
            pdf.ln(5)
            pdf.cell(0, 5, note)
            pdf.ln(7)
    pdf.output(str(path))
    return time.perf_counter() - started


def queries(count: int, seed: int = 9) -> list[str]:
    """Distinct questions a prospect might ask (the search caches repeated queries)."""
    rng = random.Random(seed)
    templates = [
        "How much is the {family} {kind}?",
        "Do you have a {colour} {kind} in stock?",
        "What is the price of {family} {number}?",
        "{kind} with {material}, how long is delivery?",
        "Is there a warranty on the {family} {kind}?",
        "Can I pay in installments for a {kind}?",
        "сколько стоит {kind} {family}?",
        "{family} {number} {material} {colour} available?",
    ]
    out: set[str] = set()
    while len(out) < count:
        out.add(
            rng.choice(templates).format(
                family=rng.choice(FAMILIES),
                kind=rng.choice(KINDS),
                colour=rng.choice(COLOURS),
                material=rng.choice(MATERIALS),
                number=rng.randrange(100, 1000),
            )
        )
    return sorted(out)


async def measure(pages: int, query_count: int) -> dict[str, Any]:
    from agent_service.knowledge.base import KnowledgeBase

    with tempfile.TemporaryDirectory(prefix="parley-bench-kb-") as tmp:
        folder = Path(tmp)
        generate_s = generate_pdf(folder / "catalogue.pdf", pages)
        size_mib = (folder / "catalogue.pdf").stat().st_size / 2**20
        rss_before = rss_mib_self()
        kb = KnowledgeBase(folder)
        started = time.perf_counter()
        summary = await kb.reload()
        ingest_s = time.perf_counter() - started
        rss_after = rss_mib_self()
        latencies, cpu = [], []
        hits = 0
        for q in queries(query_count):
            t0, c0 = time.perf_counter(), time.thread_time()
            found = await kb.search(q, 4)
            latencies.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            hits += bool(found)
        await kb.close()
    totals = summary.get("totals", {})
    return {
        "pages": totals.get("pages", pages),
        "chunks": totals.get("chunks"),
        "pdf_mib": round(size_mib, 1),
        "generate_s": round(generate_s, 2),
        "ingest_s": round(ingest_s, 2),
        "pages_per_s": round(pages / ingest_s, 1),
        "queries": len(latencies),
        "queries_with_results": hits,
        "retrieval_p50_ms": round(percentile(latencies, 50) * 1000, 3),
        "retrieval_p99_ms": round(percentile(latencies, 99) * 1000, 3),
        "retrieval_max_ms": round(max(latencies) * 1000, 3),
        # CPU time of the search itself: what the code costs, whatever else runs on the machine.
        "retrieval_cpu_p50_ms": round(percentile(cpu, 50) * 1000, 3),
        "retrieval_cpu_p99_ms": round(percentile(cpu, 99) * 1000, 3),
        "target_p99_ms": 10.0,
        "rss_before_mib": rss_before,
        "rss_after_ingest_mib": rss_after,
        "index_rss_mib": round(rss_after - rss_before, 1),
        "peak_rss_mib": peak_rss_mib_self(),
    }


def rss_mib_self() -> float:
    import os

    return rss_mib(os.getpid())


def peak_rss_mib_self() -> float:
    import os

    return peak_rss_mib(os.getpid())


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.knowledge")
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.pages, args.queries))))


if __name__ == "__main__":
    main()
