"""Benchmark 2: a slow model. Gemini (the fake, through the real SDK) takes 1 s per call; 2,000
prospects write at once; how long until every one of them is answered?

Each prospect writes two messages back to back (a burst, as people write) at the same moment
as everyone else. With the default ``BUFFER_WINDOW_S`` (3 s) the burst is one turn, and a new
contact's turn is one model call: the sales decision carries the sender's classification, so an
answer takes at least window + 1 s. Checked per prospect: exactly one answer, and it answers both
messages in the order they were sent (``in_reply_to``). Reported: time from the first message
to the last answer, answer-time percentiles, model calls (in all and per prospect) and the peak
of calls in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench import profile
from bench.common import BackendCpu, CpuMeter, peak_rss_mib, percentile
from bench.load import Retries, phone, post
from bench.pipeline import parley_stack

MODEL_DELAY_S = 1.0
TEXTS = ("Hello! Do you sell office chairs?", "How much is the ErgoPro 300?")


def decision(call: Any) -> dict[str, Any]:
    """The sales decision; with the sender's classification when the call asks for one (a new contact)."""
    ids = [line[1:].split("]")[0] for line in call.prompt.splitlines() if line.startswith("[")]
    answer: dict[str, Any] = {
        "reply": "Hello! Yes, we sell office chairs; tell me about your office.",
        "spin_stage": "situation",
        "outcome": "open",
        "action": "none",
        "language": "en",
        "passages_used": ids[:1],
    }
    if "classification" in ((call.response_schema or {}).get("properties") or {}):
        answer["classification"] = {
            "status": "client",
            "category": "prospect",
            "reason": "asks about chairs",
            "confidence": 0.95,
        }
    return answer


async def model_call_cpu(calls: int = 300) -> dict[str, float]:
    """CPU per model call in the agent's process, against the fake server answering at once: the
    sales decision as the Gemini engine makes it (the SDK's request converted once,
    ``engines/gemini_request.py``), as a plain google-genai ``generate_content`` call, and as a
    plain aiohttp POST, measured alternately. All include the in-process fake server's share."""
    from google import genai
    from google.genai import types

    from agent_service.engines.gemini import DecisionWire, _response_schema
    from agent_service.engines.gemini_request import JsonRequest
    from tests.support.fake_gemini import FakeGemini, FakeReply

    fake = await FakeGemini().start()

    async def respond(call: Any) -> FakeReply:
        return FakeReply.json(decision(call), prompt_tokens=400, output_tokens=40)

    fake.responder = respond
    system, content = "You are the sales agent of a furniture store. " * 60, "[c1] ErgoPro 300: 89 900 KZT. " * 60
    options = types.HttpOptions(base_url=fake.url, timeout=20_000, retry_options=types.HttpRetryOptions(attempts=1))
    client = genai.Client(api_key="bench-key", http_options=options)
    body = {
        "contents": [{"role": "user", "parts": [{"text": content}]}],
        "systemInstruction": {"parts": [{"text": system}]},
        "generationConfig": {"temperature": 0.3, "responseMimeType": "application/json"},
    }

    async def sdk() -> None:
        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=0.3,
            response_mime_type="application/json",
            response_schema=_response_schema(DecisionWire),
        )
        await client.aio.models.generate_content(model="gemini-2.5-flash", contents=content, config=config)

    request = JsonRequest(
        client,
        model="gemini-2.5-flash",
        config=types.GenerateContentConfig(
            temperature=0.3, response_mime_type="application/json", response_schema=_response_schema(DecisionWire)
        ),
    )

    async def engine() -> None:
        await request.generate(system, content)

    async def raw(http: aiohttp.ClientSession) -> None:
        url = f"{fake.url}/v1/models/gemini-2.5-flash:generateContent"
        async with http.post(url, json=body, headers={"x-goog-api-key": "bench-key"}) as r:
            await r.read()

    async def cpu_ms(ways: dict[str, Callable[[], Awaitable[None]]]) -> dict[str, float]:
        for call in ways.values():
            await call()  # warm up
        spent = dict.fromkeys(ways, 0.0)
        for _ in range(calls // 50):
            for name, call in ways.items():  # alternately: load from elsewhere hits each alike
                started = time.process_time()
                await asyncio.gather(*(call() for _ in range(50)))
                spent[name] += time.process_time() - started
        return {name: round(s * 1000 / (calls // 50 * 50), 2) for name, s in spent.items()}

    try:
        async with aiohttp.ClientSession() as http:
            return await cpu_ms(
                {
                    "engine_call_cpu_ms": engine,
                    "sdk_call_cpu_ms": sdk,
                    "raw_http_call_cpu_ms": lambda: raw(http),
                }
            )
    finally:
        await fake.close()


async def run(workdir: Path, *, prospects: int = 2000, deadline_s: float = 240.0) -> dict[str, Any]:
    from tests.support.fake_gemini import FakeGemini, FakeReply

    fake = await FakeGemini().start()

    async def respond(call: Any) -> FakeReply:
        return FakeReply.json(decision(call), prompt_tokens=400, output_tokens=40, delay_s=MODEL_DELAY_S)

    fake.responder = respond
    agent_env = {
        "LLM_ENGINE": "gemini",
        "GEMINI_API_KEY": "bench-key",
        "GEMINI_BASE_URL": fake.url,
        "KNOWLEDGE_EMBEDDINGS": "false",
        "BUFFER_WINDOW_S": "3.0",
    }
    sent: dict[str, list[str]] = defaultdict(list)
    answers: dict[str, list[tuple[float, list[str]]]] = defaultdict(list)
    all_answered = asyncio.Event()
    answered_ids: set[str] = set()
    retries = Retries()
    try:
        async with (
            parley_stack(workdir, "slowmodel", agent_env=agent_env) as stack,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=prospects + 10), timeout=aiohttp.ClientTimeout(total=deadline_s)
            ) as http,
        ):

            async def read() -> None:
                cursor = 0
                while True:
                    params = {"after": str(cursor), "limit": "500", "wait": "10"}
                    async with http.get(
                        f"{stack.gateway.url}/sandbox/outbox", params=params, headers=stack.headers
                    ) as r:
                        page = await r.json()
                    now = time.perf_counter()
                    for message in page["messages"]:
                        answers[message["to"]].append((now, message["in_reply_to"]))
                        answered_ids.update(message["in_reply_to"])
                    cursor = page["next_cursor"]
                    if len(answered_ids) >= len(TEXTS) * prospects:  # every message answered
                        all_answered.set()

            async def prospect(index: int) -> None:
                to = phone(index)
                for k, text in enumerate(TEXTS):
                    body = {"from": to, "text": text, "id": f"slow-{to}-{k}"}
                    url = f"{stack.gateway.url}/sandbox/inbound"
                    answer = await post(http, url, body, headers=stack.headers, retries=retries)
                    sent[to].append(str(answer["message_id"]))

            reader = asyncio.create_task(read())
            assert stack.gateway.process and stack.agent.process
            pids = {"gateway": stack.gateway.process.pid, "agent": stack.agent.process.pid}
            meter = CpuMeter(groups={k: [v] for k, v in pids.items()})
            backends = BackendCpu([stack.gateway_db, stack.agent_db])
            await backends.start()
            meter.start()
            started = time.perf_counter()
            async with profile.recording(pids):
                await asyncio.gather(*(prospect(i) for i in range(prospects)))
                written_s = time.perf_counter() - started
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_answered.wait(), deadline_s)
                answered_s = time.perf_counter() - started
            await asyncio.sleep(1.0)  # anything sent twice would show up now
            cpu = meter.stop()
            cpu["postgresql"] = await backends.stop()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            memory = {k: peak_rss_mib(v) for k, v in pids.items()}
    finally:
        await fake.close()
    # When each message's answer arrived, counted from the moment everyone started writing.
    answer_times = [at - started for a in answers.values() for at, ids in a for _ in ids]
    # In order: the answers, in the order they arrived, answer the prospect's messages in the order sent.
    in_order = sum(1 for to, ids in sent.items() if [i for a in answers.get(to, []) for i in a[1]] == ids)
    replies = sum(len(a) for a in answers.values())
    model_calls = [c for c in fake.calls if c.method == "generateContent"]
    return {
        **await model_call_cpu(),
        "prospects": prospects,
        "messages": sum(len(v) for v in sent.values()),
        "buffer_window_s": 3.0,
        "model_delay_s": MODEL_DELAY_S,
        "writes_done_s": round(written_s, 2),
        "all_answered_s": round(answered_s, 2) if all_answered.is_set() else None,
        "messages_answered": len(answered_ids),
        "answered": len(answers),
        "answered_in_order": in_order,
        "replies": replies,
        "prospects_with_two_turns": sum(1 for a in answers.values() if len(a) > 1),
        "answer_p50_s": round(percentile(answer_times, 50), 2),
        "answer_p99_s": round(percentile(answer_times, 99), 2),
        "model_calls": len(model_calls),
        "model_calls_per_prospect": round(len(model_calls) / prospects, 2),
        "classified_in_the_decision_call": sum(
            1 for c in model_calls if "classification" in ((c.response_schema or {}).get("properties") or {})
        ),
        "peak_model_calls_in_flight": fake.peak_in_flight,
        "target_s": 10.0,
        "http_retries": retries.statuses,
        "cpu_s": cpu,
        "peak_rss_mib": memory,
    }
