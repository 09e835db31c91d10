"""Files the agent can send from the knowledge base: the price list and product pictures.

* **The price list** is a PDF of the knowledge base: ``PRICE_LIST_FILE`` when set, else the first
  PDF whose name says it is one (price, прайс, catalog, каталог), else the only PDF.
* **Product pictures** are image files beside the documents (``ergopro-300.jpg``: linked to the
  product its file name names) and the images inside PDF pages (linked to the product lines of
  their page: the n-th image of a page to its n-th product line, or to the whole page when the
  counts differ). A product line is a line with a price, as in the catalogue.

Read off the event loop (pypdf, file I/O) once, and again when a file changed. Pure matching
lives in ``domain/attachments.py``.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

import structlog
from pypdf import PdfReader

from agent_service.domain.attachments import Picture
from agent_service.knowledge.loader import IMAGE_SUFFIXES, PDF_SUFFIXES, _files

log = structlog.get_logger(__name__)
MAX_FILE_BYTES = 6 * 1024 * 1024  # what an outgoing message carries inline (base64 under 8 MiB)
_PRICE_LIST_NAME = re.compile(r"price|прайс|catalog|каталог", re.IGNORECASE)
_PRODUCT_LINE = re.compile(r"\d[\d \u00a0\u202f]*\s?(?:₸|тг|тенге|kzt|\$|€|руб)", re.IGNORECASE)


@dataclass(frozen=True)
class FileToSend:
    kind: str  # image | document
    file_name: str
    mime_type: str
    data: bytes
    title: str  # what it shows: the product, or the document's name


@dataclass(frozen=True)
class _Library:
    stamp: tuple[tuple[str, float], ...]
    price_list: FileToSend | None
    pictures: tuple[tuple[Picture, FileToSend], ...]


class MediaLibrary:
    def __init__(self, directory: str | Path, price_list_file: str = "") -> None:
        self.directory = Path(directory)
        self.price_list_file = price_list_file
        self._library: _Library | None = None
        self._lock = asyncio.Lock()

    async def price_list(self) -> FileToSend | None:
        return (await self._current()).price_list

    async def pictures(self) -> list[tuple[Picture, FileToSend]]:
        return list((await self._current()).pictures)

    async def _current(self) -> _Library:
        async with self._lock:
            stamp = await asyncio.to_thread(self._stamp)
            if self._library is None or self._library.stamp != stamp:
                self._library = await asyncio.to_thread(self._read, stamp)
            return self._library

    def _stamp(self) -> tuple[tuple[str, float], ...]:
        if not self.directory.is_dir():
            return ()
        paths = [p for p in self.directory.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
        return tuple(sorted((p.as_posix(), p.stat().st_mtime) for p in paths))

    def _read(self, stamp: tuple[tuple[str, float], ...]) -> _Library:
        if not self.directory.is_dir():
            return _Library(stamp, None, ())
        pdfs = sorted(p for p in _files(self.directory) if p.suffix.lower() in PDF_SUFFIXES)
        images = sorted(
            p
            for p in self.directory.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith((".", "_")) for part in p.relative_to(self.directory).parts)
        )
        pictures: list[tuple[Picture, FileToSend]] = []
        for path in images:
            data = _read_small(path)
            if data is not None:
                name = path.stem.replace("-", " ").replace("_", " ")
                mime = mimetypes.guess_type(path.name)[0] or "image/jpeg"
                pictures.append((Picture.named(name), FileToSend("image", path.name, mime, data, name)))
        for path in pdfs:
            pictures.extend(_pdf_pictures(path))
        return _Library(stamp, self._price_list(pdfs), tuple(pictures))

    def _price_list(self, pdfs: list[Path]) -> FileToSend | None:
        chosen: Path | None = None
        if self.price_list_file:
            candidate = self.directory / self.price_list_file
            chosen = candidate if candidate.is_file() else None
            if chosen is None:
                log.warning("media.price_list_missing", file=self.price_list_file)
        else:
            named = [p for p in pdfs if _PRICE_LIST_NAME.search(p.name)]
            chosen = named[0] if named else (pdfs[0] if len(pdfs) == 1 else None)
        if chosen is None:
            return None
        data = _read_small(chosen)
        if data is None:
            return None
        return FileToSend("document", chosen.name, "application/pdf", data, chosen.stem)


def _read_small(path: Path) -> bytes | None:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            log.warning("media.file_too_large", file=path.name)
            return None
        return path.read_bytes()
    except OSError as exc:
        log.warning("media.file_unreadable", file=path.name, error=type(exc).__name__)
        return None


def _pdf_pictures(path: Path) -> list[tuple[Picture, FileToSend]]:
    """The images inside a PDF's pages, each linked to its page's product lines."""
    data = _read_small(path)
    if data is None:
        return []
    out: list[tuple[Picture, FileToSend]] = []
    try:
        reader = PdfReader(io.BytesIO(data))
        for number, page in enumerate(reader.pages, start=1):
            images = list(page.images)
            if not images:
                continue
            text = page.extract_text() or ""
            products = [line.strip() for line in text.splitlines() if _PRODUCT_LINE.search(line)]
            for index, image in enumerate(images):
                label = products[index] if len(products) == len(images) else text
                title = _PRODUCT_LINE.split(label)[0].strip(" :-—") or f"{path.stem} p.{number}"
                mime = _mime_of(image.name)  # pypdf names an image by its encoding: Im1.jpg, Im2.png
                file_name = f"{path.stem}-p{number}-{index + 1}{Path(image.name).suffix or '.png'}"
                out.append((Picture.named(label), FileToSend("image", file_name, mime, image.data, title[:200])))
    except Exception as exc:  # a mangled PDF must not stop the agent
        log.warning("media.pdf_images_unreadable", file=path.name, error=type(exc).__name__)
    return out


def _mime_of(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "image/png"
