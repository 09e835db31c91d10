from __future__ import annotations

import json
import logging

import pytest
import structlog

from parley_shared.logging import configure_logging


@pytest.fixture
def capture(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def run(log_content: bool) -> list[dict]:  # type: ignore[type-arg]
        configure_logging(fmt="json", log_content=log_content, service="test")
        log = structlog.get_logger("t")
        structlog.contextvars.bind_contextvars(correlation_id="corr-1")
        log.info("inbound", phone="+77010000001", text="my card is 4111", note="call me at +7 701 000 00 01")
        log.info("ids", message_id="d5ae0316-1234-5678-ac1d-e9350fe17522", digest="ab91234567890cd")
        logging.getLogger("aio_pika").warning("connection to 77010000001@c.us lost")
        try:
            raise ValueError("bad number 77010000001")
        except ValueError:
            log.exception("failed", api_token="secret-token")
        structlog.contextvars.clear_contextvars()
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]

    return run


def test_phones_masked_bodies_hidden_secrets_dropped(capture) -> None:  # type: ignore[no-untyped-def]
    lines = capture(False)
    raw = json.dumps(lines)
    assert "77010000001" not in raw and "701 000 00 01" not in raw
    assert "my card is" not in raw and "secret-token" not in raw
    assert lines[0]["phone"] == "+770******01" and lines[0]["text"] == "[15 chars]"
    assert lines[0]["correlation_id"] == "corr-1" and lines[0]["service"] == "test"
    assert any(line.get("logger") == "aio_pika" for line in lines)
    ids = next(line for line in lines if line["event"] == "ids")
    assert ids["message_id"] == "d5ae0316-1234-5678-ac1d-e9350fe17522"  # ids stay readable
    assert ids["digest"] == "ab91234567890cd"


def test_bodies_only_when_switched_on(capture) -> None:  # type: ignore[no-untyped-def]
    lines = capture(True)
    assert lines[0]["text"] == "my card is 4111"
    assert "77010000001" not in json.dumps(lines)


async def test_database_errors_carry_no_bound_values(database_url: str) -> None:
    """A failing statement's exception (logged with its traceback) must not show phones or texts."""
    from sqlalchemy import Column, MetaData, String, Table
    from sqlalchemy.exc import IntegrityError

    from parley_shared.db import create_engine

    engine = create_engine(database_url)
    table = Table("t", MetaData(), Column("phone", String(20), primary_key=True), Column("text", String(100)))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(table.metadata.create_all)
            await conn.execute(table.insert().values(phone="+77010000001", text="my secret order"))
        with pytest.raises(IntegrityError) as info:
            async with engine.begin() as conn:
                await conn.execute(table.insert().values(phone="+77010000001", text="my secret order"))
        assert "77010000001" not in str(info.value) and "secret order" not in str(info.value)
        assert "hidden due to hide_parameters" in str(info.value)
    finally:
        await engine.dispose()
