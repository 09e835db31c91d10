"""Fixtures shared by the agent's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fake_gemini import FakeGemini


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    """The fake Gemini server (``tests/support/fake_gemini.py``), started for one test."""
    server = await FakeGemini().start()
    yield server
    await server.close()
