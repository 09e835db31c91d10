"""Hypothesis against the live HTTP edges (real app, SQLite, RabbitMQ): junk gets a 4xx, never a 5xx.

* the Meta webhook with a VALID signature over arbitrary bytes and arbitrary JSON (so the parser,
  not the signature check, meets the junk), and with arbitrary signature headers;
* the sandbox inbound route and the ignore list with arbitrary JSON.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.helpers import AUTH, gateway_settings, running
from tests.support.fake_meta import envelope, sign

SECRET = "fuzz-secret"
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=15), c, max_size=5),
    max_leaves=30,
)
message_like = st.fixed_dictionaries(
    {
        "from": st.one_of(st.just("77010000001"), st.text(max_size=20), json_values),
        "id": st.one_of(st.text(min_size=1, max_size=300), json_values),
        "timestamp": st.one_of(st.integers(min_value=-(2**40), max_value=2**40).map(str), json_values),
        "type": st.sampled_from(["text", "audio", "image", "interactive", "button", "location", "contacts", "x"]),
    },
    optional={
        "text": st.one_of(st.fixed_dictionaries({"body": st.text(max_size=5000)}), json_values),
        "audio": json_values,
        "image": json_values,
        "interactive": json_values,
        "button": json_values,
    },
)
status_like = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(min_size=1, max_size=50), json_values),
        "status": st.sampled_from(["sent", "delivered", "read", "failed", "deleted"]),
        "timestamp": st.one_of(st.integers(min_value=0, max_value=2**34).map(str), json_values),
    },
    optional={"errors": json_values, "recipient_id": json_values},
)


@pytest.fixture
async def meta_client(amqp_url: str, tmp_path: Any) -> AsyncIterator[TestClient]:
    config = gateway_settings(
        amqp_url,
        f"sqlite+aiosqlite:///{tmp_path}/fuzz.db",
        whatsapp_provider="meta",
        meta_graph_base_url="http://127.0.0.1:9",
        meta_access_token="t",
        meta_phone_number_id="1",
        meta_app_secret=SECRET,
        meta_verify_token="v",
    )
    async with running(config) as client:
        yield client


@pytest.fixture
async def sandbox_client(amqp_url: str, tmp_path: Any) -> AsyncIterator[TestClient]:
    async with running(gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/fuzz.db")) as client:
        yield client


async def signed_post(client: TestClient, body: bytes) -> int:
    response = await client.post("/webhook", data=body, headers={"X-Hub-Signature-256": sign(SECRET, body)})
    return response.status


@FUZZ
@given(body=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode()))
async def test_meta_webhook_junk_with_a_valid_signature_is_a_4xx(meta_client: TestClient, body: bytes) -> None:
    assert await signed_post(meta_client, body) in (200, 400)


@FUZZ
@given(
    messages=st.lists(message_like | json_values, max_size=4),
    statuses=st.lists(status_like | json_values, max_size=3),
    contacts=json_values,
)
async def test_meta_webhook_envelopes_with_junk_inside_never_fail(
    meta_client: TestClient, messages: list[Any], statuses: list[Any], contacts: Any
) -> None:
    payload = envelope(messages=messages, statuses=statuses)
    payload["entry"][0]["changes"][0]["value"]["contacts"] = contacts
    body = json.dumps(payload, ensure_ascii=True).encode()
    assert await signed_post(meta_client, body) == 200


@FUZZ
@given(header=st.text(max_size=100), body=st.binary(max_size=200))
async def test_meta_webhook_refuses_every_signature_but_the_right_one(
    meta_client: TestClient, header: str, body: bytes
) -> None:
    headers = {"X-Hub-Signature-256": header} if header.isprintable() and header.isascii() else {}
    response = await meta_client.post("/webhook", data=body, headers=headers)
    expected = (401,) if not header.strip() or not headers else (401, 403)
    assert response.status in expected


@FUZZ
@given(
    body=json_values
    | st.fixed_dictionaries(
        {"from": json_values},
        optional={"text": json_values, "id": json_values, "name": json_values, "voice_base64": json_values},
    )
)
async def test_sandbox_inbound_junk_is_a_4xx(sandbox_client: TestClient, body: Any) -> None:
    response = await sandbox_client.post("/sandbox/inbound", data=json.dumps(body), headers=AUTH)
    assert response.status in (202, 400)


@FUZZ
@given(body=json_values, phone=st.text(min_size=1, max_size=30).filter(lambda p: "/" not in p))
async def test_ignore_list_junk_is_a_4xx(sandbox_client: TestClient, body: Any, phone: str) -> None:
    added = await sandbox_client.post("/ignore-list", data=json.dumps(body), headers=AUTH)
    assert added.status in (200, 201, 400)
    removed = await sandbox_client.delete(f"/ignore-list/{phone}", headers=AUTH)
    assert removed.status in (204, 400, 404, 405)
