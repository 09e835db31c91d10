"""Fixtures of the gateway tests that talk to provider fakes directly (no running app)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.gateway.helpers import StartedProviders
from tests.support.raw_http import RawServers


@pytest.fixture
async def providers() -> AsyncIterator[StartedProviders]:
    started = StartedProviders()
    yield started
    await started.close()


@pytest.fixture
async def raw_servers() -> AsyncIterator[RawServers]:
    servers = RawServers()
    yield servers
    await servers.close()
