"""Which files the gateway keeps (pure): the type a file says it is must fit the kind of message
it came with, and for the types whose first bytes are known, the bytes must agree.

A document may be of any type (prospects send spreadsheets, archives, scans); every file is
served to managers as a download (``Content-Disposition: attachment``, ``nosniff``), never shown
inline, so a file that claims to be a page cannot run in the console's origin.
"""

from __future__ import annotations

from parley_shared.contracts import MessageKind

FAMILIES: dict[MessageKind, str] = {
    MessageKind.IMAGE: "image/",
    MessageKind.STICKER: "image/",
    MessageKind.VIDEO: "video/",
    MessageKind.VOICE: "audio/",
    MessageKind.AUDIO: "audio/",
}
# The first bytes of the types that have a fixed signature.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
    "audio/ogg": (b"OggS",),
}
_RIFF = {"image/webp": b"WEBP"}
OCTET_STREAM = "application/octet-stream"


def base_type(mime: str | None) -> str:
    """``audio/ogg; codecs=opus`` -> ``audio/ogg`` (lower case); unknown -> octet-stream."""
    value = (mime or "").split(";", 1)[0].strip().lower()
    return value if "/" in value else OCTET_STREAM


def refusal(kind: MessageKind, mime: str | None, data: bytes) -> str | None:
    """Why a file of this type and content is not kept for a message of this kind (None: it is)."""
    if not data:
        return "the file is empty"
    declared = base_type(mime)
    family = FAMILIES.get(kind)
    if family is not None and not declared.startswith(family):
        return f"a {kind.value} message carried a file of type {declared}"
    if declared in _RIFF and not (data[:4] == b"RIFF" and data[8:12] == _RIFF[declared]):
        return f"the file is not the {declared} it claims to be"
    signatures = SIGNATURES.get(declared)
    if signatures is not None and not data.startswith(signatures):
        return f"the file is not the {declared} it claims to be"
    return None
