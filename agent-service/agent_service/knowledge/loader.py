"""Reading ``knowledge_base/``: PDF (pypdf), Markdown and plain text into pages of text.

Synchronous and CPU-bound: :class:`~agent_service.knowledge.base.KnowledgeBase` runs it in a
thread. Nothing here raises for a bad file: an encrypted, scanned (no text layer), empty,
corrupt or unsupported file becomes a :class:`Problem` and the rest still loads.

Pages: a PDF page is a page; a Markdown file is split into sections at headings (section N is
"page" N); a text file is split at form feeds. Folders and files whose names start with ``.``
or ``_`` are skipped (``_source/`` holds the script that builds the sample catalogue).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError

PDF_SUFFIXES = frozenset({".pdf"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".text"})
SUPPORTED = PDF_SUFFIXES | MARKDOWN_SUFFIXES | TEXT_SUFFIXES
# Product pictures beside the documents: not read as text, sent as they are (``knowledge/media.py``).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif"})
MAX_FILE_BYTES = 50 * 1024 * 1024
_HEADING = re.compile(r"^#{1,6}\s+\S")


@dataclass(frozen=True)
class Page:
    number: int  # 1-based
    text: str


@dataclass(frozen=True)
class Document:
    name: str  # path relative to the knowledge folder, with forward slashes
    kind: str  # pdf | markdown | text
    pages: list[Page]
    size_bytes: int
    empty_pages: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    document: str
    # encrypted | no_text | corrupt | empty | unsupported | too_large | unreadable | partial_text | instructions
    problem: str
    detail: str


def load_directory(root: Path) -> tuple[list[Document], list[Problem]]:
    """Every supported file under ``root`` (sorted by name), and what went wrong with the others."""
    documents: list[Document] = []
    problems: list[Problem] = []
    if not root.is_dir():
        return [], [Problem(str(root), "unreadable", "the knowledge folder does not exist")]
    for path in sorted(_files(root)):
        name = path.relative_to(root).as_posix()
        document, problem = load_file(path, name)
        if document is not None:
            documents.append(document)
        if problem is not None:
            problems.append(problem)
    return documents, problems


def _files(root: Path) -> list[Path]:
    out = []
    for path in root.rglob("*"):
        parts = path.relative_to(root).parts
        if any(part.startswith((".", "_")) for part in parts):
            continue
        if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
            out.append(path)
    return out


def load_file(path: Path, name: str) -> tuple[Document | None, Problem | None]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        return None, Problem(name, "unsupported", f"{suffix or 'no extension'}: only PDF, Markdown and text are read")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, Problem(name, "too_large", f"{size} bytes; the limit is {MAX_FILE_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        return None, Problem(name, "unreadable", type(exc).__name__)
    if not data.strip():
        return None, Problem(name, "empty", "the file is empty")
    if suffix in PDF_SUFFIXES:
        return _load_pdf(data, name)
    text = data.decode("utf-8", errors="replace")
    if suffix in MARKDOWN_SUFFIXES:
        pages = _markdown_sections(text)
        return Document(name, "markdown", pages, len(data)), None
    pages = [Page(i + 1, part) for i, part in enumerate(text.split("\f")) if part.strip()]
    return Document(name, "text", pages, len(data)), None


def _load_pdf(data: bytes, name: str) -> tuple[Document | None, Problem | None]:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except (FileNotDecryptedError, PdfReadError, NotImplementedError) as exc:
                return None, Problem(name, "encrypted", f"cannot decrypt: {type(exc).__name__}")
            if not decrypted:
                return None, Problem(name, "encrypted", "password protected: save it without a password")
        pages: list[Page] = []
        empty: list[int] = []
        for index, page in enumerate(reader.pages, start=1):
            text = page.extract_text() or ""
            if text.strip():
                pages.append(Page(index, text))
            else:
                empty.append(index)
    except FileNotDecryptedError:
        return None, Problem(name, "encrypted", "password protected: save it without a password")
    except Exception as exc:
        # pypdf raises PdfReadError subclasses for broken files, but a mangled object can surface
        # as almost any exception (KeyError, TypeError, RecursionError, a warning turned error);
        # none of them may stop the service.
        return None, Problem(name, "corrupt", f"not a readable PDF: {type(exc).__name__}")
    if not pages:
        return None, Problem(name, "no_text", "no text layer (a scanned document?): run OCR or add a text version")
    problem = None
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        problem = Problem(name, "partial_text", f"pages without text (scanned?): {shown}")
    return Document(name, "pdf", pages, len(data), empty_pages=empty), problem


def _markdown_sections(text: str) -> list[Page]:
    sections: list[list[str]] = [[]]
    for line in text.splitlines():
        if _HEADING.match(line) and any(s.strip() for s in sections[-1]):
            sections.append([])
        sections[-1].append(line)
    joined = ["\n".join(lines).strip() for lines in sections]
    return [Page(i + 1, part) for i, part in enumerate(p for p in joined if p)]
