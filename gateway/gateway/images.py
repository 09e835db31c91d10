"""Images in a form every provider accepts (Pillow; CPU work, run off the event loop).

Meta refuses WebP images (WebP goes only as a sticker): a WebP image is converted to PNG when it
has transparency, else to JPEG. Everything else is sent as it is.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError

WEBP = "image/webp"


class ImageError(ValueError):
    """Bytes that are not the image they claim to be."""


def _is_webp(data: bytes, mime: str) -> bool:
    return mime.split(";")[0].strip().lower() == WEBP or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _convert(data: bytes, file_name: str) -> tuple[bytes, str, str]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            transparent = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            out = io.BytesIO()
            if transparent:
                image.convert("RGBA").save(out, format="PNG", optimize=True)
                mime, suffix = "image/png", ".png"
            else:
                image.convert("RGB").save(out, format="JPEG", quality=90)
                mime, suffix = "image/jpeg", ".jpg"
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f"not a readable image ({type(exc).__name__})") from None
    return out.getvalue(), mime, str(PurePosixPath(file_name).with_suffix(suffix))


async def without_webp(data: bytes, mime: str, file_name: str) -> tuple[bytes, str, str]:
    """(bytes, MIME type, file name) of the image, converted from WebP when it is one."""
    if not _is_webp(data, mime):
        return data, mime, file_name
    return await asyncio.to_thread(_convert, data, file_name)
