"""The files the gateway keeps: one file per key in ``MEDIA_DIR`` (a local directory by default),
written atomically, with a ``media_files`` row each (whose it is, its type, size and name).

The key of a prospect's file is its message's id; of a file the sandbox "sent", an id derived from
the outgoing message's. Managers fetch a file at ``GET /media/{key}``; erasing a contact deletes
its rows and files.
"""

from __future__ import annotations

import asyncio
import os
import re
from datetime import datetime
from pathlib import Path

from gateway.db import tables
from gateway.domain.media_policy import base_type
from parley_shared.contracts import MediaRef
from parley_shared.db import Session, insert_ignore

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class MediaStore:
    """Files by key in one directory (created on first use)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError("not a media key")
        return self.directory / key

    async def write(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self.path(key), data)

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)  # a reader never sees half a file

    async def read(self, key: str) -> bytes | None:
        path = self.path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        path = self.path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def record_file(
    session: Session,
    *,
    key: str,
    phone: str,
    direction: str,
    message_id: str,
    kind: str,
    ref: MediaRef,
    now: datetime,
) -> None:
    """The ``media_files`` row of a kept file (once per key)."""
    await insert_ignore(
        session,
        tables.media_files,
        {
            "key": key,
            "phone": phone,
            "direction": direction,
            "message_id": message_id,
            "kind": kind,
            "mime_type": base_type(ref.mime_type),
            "size": ref.size or 0,
            "sha256": ref.sha256 or "",
            "file_name": ref.file_name,
            "created_at": now,
        },
        ["key"],
    )
