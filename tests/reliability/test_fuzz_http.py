"""Hostile HTTP input against the running services, driven by their own OpenAPI descriptions.

Three real processes on one RabbitMQ vhost: the gateway with the sandbox provider, a second
gateway with the Meta provider (for the signed webhook), and the agent service (offline engine).
For every operation of each ``/openapi.json``, schemathesis generates schema-valid (positive) and
schema-breaking (negative) requests, sent with the bearer token, and checks every answer: no
5xx, status codes, content types and bodies as documented. Not checked (``EXCLUDED_CHECKS``):
"valid data accepted" and "invalid data rejected", which misfire here (see there). Afterwards
each process must still be up and healthy.

Then the edges every route shares: a body over ``MAX_BODY_BYTES`` gets 413, a missing or wrong
bearer token 401 on every non-public operation, a missing webhook signature 401 and a wrong one 403.

Examples per operation and mode: ``PARLEY_FUZZ_EXAMPLES`` (default 12 in the normal suite;
``make chaos`` runs 100). The figures (cases tried, answers by status class) are printed with ``-s``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from gateway.domain.meta import sign
from parley_dev.processes import ServiceProcess, free_port
from tests.support import infra
from tests.support.stack import Stack

EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "12"))
MAX_BODY = 65536
META_SECRET = "fuzz-meta-app-secret-0123"
# "Schema-valid data accepted": the schemas say "a string" where the code wants a phone number, so
# {"phone": "0"} is rightly a 400. "Schema-breaking data rejected": a query string carries no JSON
# types, so a "negative" array or null for ?from= arrives as "" -- a valid (empty) string.
EXCLUDED_CHECKS = [positive_data_acceptance, negative_data_rejection]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(110 if EXAMPLES <= 20 else 900)]


@dataclass
class FuzzReport:
    service: str
    cases: int = 0
    by_class: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: dict[str, str] = field(default_factory=dict)  # "METHOD /path [mode] check" -> example

    def figures(self) -> dict[str, Any]:
        return {"cases": self.cases, "answers": dict(sorted(self.by_class.items())), "failures": len(self.failures)}


@dataclass
class Services:
    token: str
    urls: dict[str, str]  # service name -> base URL
    processes: list[ServiceProcess]


def fuzz_service(name: str, base_url: str, token: str, examples: int) -> FuzzReport:
    """Run schemathesis over every operation of ``base_url``'s OpenAPI description (blocking)."""
    raw = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(raw)
    report = FuzzReport(name)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(report, operation, mode, base_url, token, examples)()
            except Unsatisfiable:
                pass  # e.g. no schema-breaking request exists for an operation without parameters
    return report


def _fuzz_operation(
    report: FuzzReport, operation: Any, mode: GenerationMode, base_url: str, token: str, examples: int
) -> Any:
    headers = {"Authorization": f"Bearer {token}"}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=examples <= 20,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        if isinstance(case.query, dict) and "wait" in case.query:
            case.query["wait"] = 0  # the sandbox's long poll would hold the request up to 30 s
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        report.cases += 1
        report.by_class[f"{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)
        except BaseException as exc:  # schemathesis raises a FailureGroup (an exception group)
            key = f"{operation.label} [{mode.value}] {str(exc).splitlines()[0][:120]}"
            report.failures.setdefault(key, f"{response.status_code} {case.as_curl_command()[:400]}")

    return run


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def services(amqp_vhost: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Services]:
    await infra.reset_topology(amqp_vhost)
    workdir = tmp_path_factory.mktemp("fuzz")
    limit = {"MAX_BODY_BYTES": str(MAX_BODY)}
    stack = Stack(
        workdir,
        amqp_vhost,
        gateway_db=f"sqlite+aiosqlite:///{workdir}/gateway.db",
        agent_db=f"sqlite+aiosqlite:///{workdir}/agent.db",
        env=limit,
        gateway_env={"WHATSAPP_PROVIDER": "sandbox"},
        agent_env={"LLM_ENGINE": "offline"},
    )
    port = free_port()
    meta = ServiceProcess(
        "gateway-meta",
        "gateway",
        {
            **stack.gateway.env,
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/gateway-meta.db",
            "GATEWAY_HTTP_PORT": str(port),
            "WHATSAPP_PROVIDER": "meta",
            "META_GRAPH_BASE_URL": "http://127.0.0.1:9",  # nothing listens: sends would fail, none happen
            "META_ACCESS_TOKEN": "fuzz-meta-access-token",
            "META_PHONE_NUMBER_ID": "1234567890",
            "META_APP_SECRET": META_SECRET,
            "META_VERIFY_TOKEN": "fuzz-verify-token",
        },
        port,
        workdir / "gateway-meta.log",
        cwd=stack.gateway.cwd,
    )
    await asyncio.gather(stack.start(), meta.start())
    try:
        yield Services(
            stack.token,
            {"gateway": stack.gateway.url, "gateway-meta": meta.url, "agent": stack.agent.url},
            [stack.gateway, meta, stack.agent],
        )
    finally:
        await asyncio.gather(stack.stop(), meta.stop())


async def _openapi(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/openapi.json") as r:
        return dict(await r.json())


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, methods in doc["paths"].items() for method, op in methods.items()]


def _concrete(path: str) -> str:
    return path.replace("{phone}", "%2B77010000001").replace("{id}", "1").replace("{key}", "a-file-key")


@pytest.mark.asyncio(loop_scope="module")
async def test_schemathesis_finds_no_5xx_and_no_departure_from_the_schemas(services: Services) -> None:
    reports = []
    for name, url in services.urls.items():
        reports.append(await asyncio.to_thread(fuzz_service, name, url, services.token, EXAMPLES))
    figures = {r.service: r.figures() for r in reports}
    figures["total_cases"] = sum(r.cases for r in reports)  # type: ignore[assignment]
    print(f"\nOpenAPI fuzzing ({EXAMPLES} examples per operation and mode):\n{json.dumps(figures, indent=2)}")
    if os.environ.get("PARLEY_FUZZ_FIGURES"):
        Path(os.environ["PARLEY_FUZZ_FIGURES"]).write_text(json.dumps(figures, indent=2) + "\n")
    failures = {f"{r.service}: {k}": v for r in reports for k, v in r.failures.items()}
    assert failures == {}, json.dumps(failures, indent=2)
    assert all(r.by_class["5xx"] == 0 for r in reports)
    assert all(r.cases >= EXAMPLES for r in reports)
    for process in services.processes:  # no crash: every process still up and healthy
        assert process.process is not None and process.process.returncode is None, process.name
        await process.wait_healthy(timeout=10)  # returns on a 200 only


@pytest.mark.asyncio(loop_scope="module")
async def test_every_body_over_the_limit_gets_413(services: Services) -> None:
    too_big = b'{"text": "' + b"x" * MAX_BODY + b'"}'
    headers = {"Authorization": f"Bearer {services.token}", "Content-Type": "application/json"}
    tried = []
    async with aiohttp.ClientSession() as session:
        for url in services.urls.values():
            for path, method, _op in _operations(await _openapi(session, url)):
                if method not in ("post", "patch", "put"):
                    continue
                async with session.request(method, url + _concrete(path), data=too_big, headers=headers) as r:
                    tried.append((path, method, r.status))
        async with session.post(
            services.urls["gateway-meta"] + "/webhook", data=too_big, headers={"X-Hub-Signature-256": "sha256=0"}
        ) as r:
            tried.append(("/webhook", "post", r.status))
    assert len(tried) >= 10
    assert [t for t in tried if t[2] != 413] == []


@pytest.mark.asyncio(loop_scope="module")
async def test_every_protected_operation_needs_the_token(services: Services) -> None:
    checked = 0
    async with aiohttp.ClientSession() as session:
        for url in services.urls.values():
            for path, method, op in _operations(await _openapi(session, url)):
                if not op.get("security"):
                    continue  # public: health, metrics, openapi.json, the signed webhook
                for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic x"}):
                    async with session.request(method, url + _concrete(path), headers=headers, json={}) as r:
                        assert r.status == 401, (method, path, headers, r.status)
                        body = await r.json()
                        assert body["error"]["status"] == 401
                checked += 1
    assert checked >= 20


@pytest.mark.asyncio(loop_scope="module")
async def test_webhook_signatures_missing_401_wrong_403_right_200(services: Services) -> None:
    url = services.urls["gateway-meta"] + "/webhook"
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body) as r:
            assert r.status == 401
        for wrong in (sign(b"another-secret", body), sign(META_SECRET.encode(), b"{}")):  # well-formed, wrong
            async with session.post(url, data=body, headers={"X-Hub-Signature-256": wrong}) as r:
                assert r.status == 403
        for junk in ("sha256=", "sha1=abc", "garbage", "sha256=zz"):
            async with session.post(url, data=body, headers={"X-Hub-Signature-256": junk}) as r:
                assert r.status in (401, 403), junk
        async with session.post(url, data=body, headers={"X-Hub-Signature-256": sign(META_SECRET.encode(), body)}) as r:
            assert r.status == 200


@pytest.mark.asyncio(loop_scope="module")
async def test_integers_beyond_64_bits_are_a_4xx(services: Services) -> None:
    """Found by the fuzzer: ``offset=2517534931839299354624`` overflowed the SQL integer (a 500)."""
    huge = str(2**64 + 1)
    gateway, agent = services.urls["gateway"], services.urls["agent"]
    headers = {"Authorization": f"Bearer {services.token}"}
    calls = [
        ("get", f"{agent}/scheduled-calls?offset={huge}"),
        ("get", f"{agent}/follow-ups/active?offset={huge}"),
        ("get", f"{agent}/contacts/%2B77010000001?before={huge}"),
        ("patch", f"{agent}/scheduled-calls/{huge}"),
        ("get", f"{gateway}/sandbox/outbox?after={huge}"),
    ]
    async with aiohttp.ClientSession() as session:
        for method, url in calls:
            async with session.request(method, url, headers=headers, json={"notes": "x"}) as r:
                assert 400 <= r.status < 500, (method, url, r.status, await r.text())
