"""The prompt files are read once and looked at again at most every ``RECHECK_S``: an edit shows
within that time, and the turns in between read no file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent_service import prompts
from agent_service.prompts import PHRASES, PromptBook

ROOT = Path(__file__).resolve().parents[2]


def test_an_edited_phrase_file_shows_after_the_recheck_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(ROOT / "prompts" / PHRASES, tmp_path / PHRASES)
    now = [1000.0]
    monkeypatch.setattr(prompts.time, "monotonic", lambda: now[0])
    book = PromptBook(tmp_path)
    before = book.phrase("en", "fallback")
    stats = []
    real_stat = Path.stat

    def counting_stat(self: Path, *args: object, **kwargs: object) -> os.stat_result:
        stats.append(self.name)
        return real_stat(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "stat", counting_stat)
    text = (tmp_path / PHRASES).read_text(encoding="utf-8")
    (tmp_path / PHRASES).write_text(text.replace(before, "Edited fallback."), encoding="utf-8")
    mtime = (tmp_path / PHRASES).stat().st_mtime
    os.utime(tmp_path / PHRASES, (mtime + 5, mtime + 5))  # a later modification time, whatever the file system's
    stats.clear()
    now[0] += prompts.RECHECK_S / 2
    assert book.phrase("en", "fallback") == before  # within the recheck time: not looked at
    assert stats == []
    now[0] += prompts.RECHECK_S
    assert book.phrase("en", "fallback") == "Edited fallback."
    assert stats == [PHRASES]
    assert book.phrase("en", "fallback") == "Edited fallback."
    assert stats == [PHRASES]  # trusted again for the next second
