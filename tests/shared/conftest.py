"""Fixtures of the shared pieces' tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from parley_shared.broker import Broker


@pytest.fixture
async def publisher(amqp_url: str) -> AsyncIterator[Broker]:
    """A broker connection that publishes the test's messages."""
    broker = Broker(amqp_url, service="test-publisher")
    await broker.connect()
    yield broker
    await broker.close()
