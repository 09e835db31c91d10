"""What the demo chat shows, read off an emulated terminal (tests/demo/terminal.py): outside text
verbatim and inert, replies apart from the prompt, the managers' views as tables, the start banner.

The data are built through the services' own response models and serialised as they send them,
so a change of a response's shape shows here.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit import PromptSession
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from pydantic import BaseModel

from agent_service.api.analytics import AnalyticsOut
from agent_service.api.conversation import Conversation
from gateway.providers.sandbox import Delivered
from parley_demo import render
from parley_demo.__main__ import main
from parley_demo.chat import ChatApp
from parley_demo.client import ParleyClient
from parley_demo.terminal import emit, piped_lines, prompt_lines
from tests.demo.terminal import Terminal
from tests.gateway.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+77010000001"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOSTILE = "[urgent] Sorry \x1b[2J\x1b[31mred\x1b]0;owned\x07 :smile: [bold]x[/bold]\rend"
HOSTILE_SHOWN = "[urgent] Sorry ␛[2J␛[31mred␛]0;owned␇ :smile: [bold]x[/bold]␍end"


def wire(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as the service sends it: validated by its response model, serialised as JSON."""
    return dict(json.loads(model.model_validate(data).model_dump_json()))


def delivered(text: str, kind: str = "reply", cursor: int = 1) -> dict[str, Any]:
    return wire(
        Delivered,
        {
            "cursor": cursor,
            "message_id": f"m{cursor}",
            "provider_message_id": f"sandbox-{cursor}",
            "correlation_id": f"c{cursor}",
            "to": PHONE,
            "text": text,
            "kind": kind,
            "in_reply_to": [],
            "sent_at": T0,
        },
    )


def message(n: int, direction: str, kind: str, text: str | None) -> dict[str, Any]:
    return {
        "id": n,
        "direction": direction,
        "kind": kind,
        "status": "sent" if direction == "out" else "received",
        "text": text,
        "message_id": f"m{n}",
        "correlation_id": None,
        "turn_id": None,
        "transcribed": False,
        "knowledge_refs": None,
        "model": None,
        "tokens_in": None,
        "tokens_out": None,
        "latency_ms": None,
        "error": None,
        "sent_at": T0 + timedelta(minutes=n),
        "created_at": T0 + timedelta(minutes=n),
    }


def conversation(name: str, messages: list[dict[str, Any]], older_before: int | None = None) -> dict[str, Any]:
    return wire(
        Conversation,
        {
            "contact": {
                "id": 1,
                "phone": PHONE,
                "name": name,
                "client_status": "client",
                "client_category": "prospect",
                "classification_reason": "asks about [prices]",
                "classification_confidence": 0.9,
                "classified_by": "moderator",
                "spin_stage": "problem",
                "outcome": "open",
                "owner": "ai",
                "owner_name": None,
                "needs_human": False,
                "needs_human_reason": None,
                "language": "en",
                "provider": "sandbox",
                "notes": None,
                "follow_ups_stopped": False,
                "follow_ups_stop_reason": None,
                "first_seen_at": T0,
                "last_inbound_at": T0,
                "last_outbound_at": T0,
                "created_at": T0,
                "updated_at": T0,
            },
            "messages": messages,
            "older_before": older_before,
            "follow_ups": [
                {
                    "id": i,
                    "sequence_no": 1,
                    "touch": i,
                    "strategy": "check_in",
                    "due_at": T0 + timedelta(days=i),
                    "status": "sent" if i == 1 else "pending",
                    "reason": None,
                    "replied": False,
                    "sent_at": None,
                }
                for i in (1, 2, 3)
            ],
            "calls": [],
        },
    )


@pytest.fixture
async def chat() -> AsyncIterator[ChatApp]:
    """A chat whose client is never called (the tests hand it what the services would send)."""
    async with aiohttp.ClientSession() as session:
        client = ParleyClient("http://127.0.0.1:9", "http://127.0.0.1:9", "token", session)
        yield ChatApp(client, Terminal().console(), PHONE, "Aigerim")


def show(renderable: Any, columns: int = 100) -> Terminal:
    terminal = Terminal(columns)
    terminal.console().print(renderable)
    return terminal


# ---------------------------------------------------------------------------- outside text
async def test_a_reply_shows_its_brackets_and_its_escape_sequences_as_text(chat: ChatApp) -> None:
    terminal = Terminal()
    chat.console = terminal.console()
    chat.console.print("an earlier line")
    chat.show(delivered(HOSTILE))
    chat.show(delivered("Hello, [Aigerim]!", kind="follow_up", cursor=2))
    chat.show(delivered("Dana here.", kind="operator", cursor=3))
    chat.show({**delivered("Our prices", cursor=4), "media": {"kind": "document", "file_name": "[x]\x1b[2J.pdf"}})
    chat.show({**delivered("ErgoPro 300", cursor=5), "media": {"kind": "image", "file_name": "chair.jpg"}})
    assert terminal.rows == [
        "an earlier line",  # not cleared by the reply's ESC[2J
        f"Parley: {HOSTILE_SHOWN}",
        "Parley · follow-up: Hello, [Aigerim]!",
        "Manager: Dana here.",
        "Parley: [document: [x]␛[2J.pdf] Our prices",
        "Parley: [image: chair.jpg] ErgoPro 300",
    ]
    assert terminal.screen.title == ""  # the OSC sequence did not retitle the window


def test_the_card_shows_names_kinds_and_texts_verbatim() -> None:
    data = conversation(
        "[bold]Aigerim[/bold] :smile:",
        [
            message(1, "in", "text", "[urgent] Sorry, how much is the ErgoPro 300?"),
            message(2, "out", "reply", "89 900 ₸ [in stock]\x1b[2J"),
            message(3, "in", "voice", None),
        ],
    )
    terminal = show(render.card(data))
    assert terminal.rows[-4:] == [
        "  → [text] [urgent] Sorry, how much is the ErgoPro 300?",
        "  ← [reply] 89 900 ₸ [in stock]␛[2J",
        "  → [voice]",
        "  follow-up touches: pending 2 · sent 1",
    ]
    assert terminal.rows[0].strip() == f"Contact {PHONE}"
    assert terminal.has_cells("name", "[bold]Aigerim[/bold] :smile:")
    assert terminal.has_cells("classification_reason", "asks about [prices]")
    assert terminal.has_cells("owner_name", "")


def test_contacts_list_names_verbatim() -> None:
    item = conversation("[b]Dana[/b]\x1b[2J", [])["contact"]
    terminal = show(render.contacts({"items": [item], "next_cursor": None}), columns=120)
    assert terminal.has_cells(*render.CONTACT_COLUMNS)
    assert terminal.has_cells(PHONE, "[b]Dana[/b]␛[2J", "client", "problem", "open", "ai", "False")


@given(st.text())
def test_visible_text_holds_no_control_character_and_keeps_every_other(text: str) -> None:
    shown = render.visible(text)
    controls = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]} - {"\n", "\t"}
    assert not controls & set(shown)
    if not controls & set(text):
        assert shown == text


def test_an_error_message_from_a_service_is_shown_as_text() -> None:
    terminal = show(render.plain("not a phone number: [red]+7 701\x1b[2J"))
    assert terminal.rows == ["not a phone number: [red]+7 701␛[2J"]


# ---------------------------------------------------------------------------- the prompt
async def test_a_reply_arriving_while_the_prospect_types_goes_above_the_prompt(chat: ChatApp) -> None:
    terminal = Terminal(columns=60, lines=12)
    typed: list[str] = []

    async def handle(line: str) -> bool:
        typed.append(line)
        return line != "/quit"

    async def shows(*rows: str, what: str) -> None:
        """Wait until the screen's last rows are ``rows``."""

        async def ends_so() -> bool:
            return terminal.rows[-len(rows) :] == list(rows)

        try:
            await eventually(ends_so, timeout=10, what=what)
        except AssertionError:
            raise AssertionError(f"{what}: the screen shows\n{terminal.text}") from None

    with create_pipe_input() as keys, create_app_session(input=keys, output=terminal.output()):
        chat.console = terminal.console()
        chat.print(render.you_are("Aigerim", PHONE))
        reading = asyncio.create_task(prompt_lines(handle, PromptSession()))
        keys.send_text("Hello, I need ten ch")
        await shows("You are Aigerim (+77010000001).", "you › Hello, I need ten ch", what="the prompt")

        chat.show(delivered("Good morning! [bot]"))  # a reply arrives mid-line
        chat.show(delivered("How can I help?", cursor=2))
        await shows(
            "You are Aigerim (+77010000001).",
            "Parley: Good morning! [bot]",
            "Parley: How can I help?",
            "you › Hello, I need ten ch",  # redrawn below, with what was typed
            what="the replies above the redrawn prompt",
        )

        keys.send_text("airs\r")
        await shows("Parley: How can I help?", "you › Hello, I need ten chairs", "you ›", what="the line sent")
        assert typed == ["Hello, I need ten chairs"]
        chat.show(delivered("Ten ErgoPro 300? 899 000 ₸.", cursor=3))
        await shows(
            "you › Hello, I need ten chairs", "Parley: Ten ErgoPro 300? 899 000 ₸.", "you ›", what="the next reply"
        )
        keys.send_text("/quit\r")
        await asyncio.wait_for(reading, 10)
    assert typed == ["Hello, I need ten chairs", "/quit"]


async def test_without_a_terminal_lines_are_read_and_echoed_after_the_prompt() -> None:
    terminal = Terminal()
    console = terminal.console()
    typed: list[str] = []

    async def handle(line: str) -> bool:
        typed.append(line)
        emit(console, render.reply_line("reply", f"got {len(typed)}"))
        return line != "/quit"

    await asyncio.wait_for(piped_lines(handle, console, io.StringIO("[hi] there\r\n\n/quit\nnever read\n")), 10)
    assert typed == ["[hi] there", "", "/quit"]
    assert terminal.rows == ["you › [hi] there", "Parley: got 1", "Parley: got 2", "you › /quit", "Parley: got 3"]


# ---------------------------------------------------------------------------- history
def test_an_earlier_conversation_shows_its_count_and_its_last_lines() -> None:
    messages = [
        message(n, "in" if n % 2 else "out", "text" if n % 2 else "reply", f"line {n} [x]") for n in range(1, 15)
    ]
    data = conversation("Aigerim", messages)
    terminal = show(render.history("Aigerim", PHONE, data["messages"], more=False, shown=4))
    assert terminal.rows == [
        f"Earlier with Aigerim ({PHONE}): 14 messages, the last 4:",
        "you › line 11 [x]",
        "Parley: line 12 [x]",
        "you › line 13 [x]",
        "Parley: line 14 [x]",
    ]
    terminal = show(render.history("Aigerim", PHONE, data["messages"][:2], more=False, shown=4))
    assert terminal.rows[0] == f"Earlier with Aigerim ({PHONE}): 2 messages:"
    terminal = show(render.history("Aigerim", PHONE, data["messages"], more=True, shown=4))
    assert terminal.rows[0] == f"Earlier with Aigerim ({PHONE}): more than 14 messages, the last 4:"


# ---------------------------------------------------------------------------- analytics
def analytics_sample() -> dict[str, Any]:
    per_day = [{"date": f"2026-03-{d:02d}", "in": 0, "out": 0} for d in range(1, 31)]
    per_day[6] = {"date": "2026-03-07", "in": 3, "out": 3}
    per_day[7] = {"date": "2026-03-08", "in": 2, "out": 3}
    return wire(
        AnalyticsOut,
        {
            "period": {"from": T0, "to": T0 + timedelta(days=30), "timezone": "Asia/Almaty", "days": 30},
            "funnel": {
                "contacts": 2,
                "clients": 2,
                "non_clients": 0,
                "unclassified": 0,
                "stages": {"situation": 1, "problem": 1, "implication": 0, "need_payoff": 0},
                "reached": {"situation": 2, "problem": 1, "implication": 0, "need_payoff": 0},
                "agreed": 0,
                "declined": 0,
                "outcomes": {"open": 2, "agreed": 0, "declined": 0, "uncertain": 0},
            },
            "non_client_share": 0.0,
            "messages": {
                "in": 5,
                "out": 6,
                "by_kind": {"in": {"text": 4, "voice": 1}, "out": {"follow_up": 1, "operator": 1, "reply": 4}},
                "per_day": per_day,
            },
            "first_response": {"answered": 2, "unanswered": 0, "p50_s": 0.326, "p90_s": 0.333},
            "follow_ups": {
                "sent": 1,
                "replied": 0,
                "reply_rate": 0.0,
                "per_touch": [{"touch": 1, "sent": 1, "replied": 0, "reply_rate": 0.0}],
            },
            "calls": {"requested": 0, "confirmed": 0, "by_status": {}},
            "handoffs": {"needs_human": 0, "owned_by_human": 0, "operator_messages": 1},
            "tokens": {"in": 0, "out": 0, "by_model": {}},
        },
    )


@pytest.mark.parametrize("columns", [80, 160])
def test_analytics_is_a_set_of_tables(columns: int) -> None:
    terminal = show(render.analytics(analytics_sample()), columns=columns)
    assert "{" not in terminal.text and "['" not in terminal.text, terminal.text  # no Python dict or list
    assert terminal.rows[0] == "Analytics: 2026-03-02T09:00:00Z → 2026-04-01T09:00:00Z (30 days, Asia/Almaty)"
    for cells in [
        ("contacts", "2"),
        ("non-client share", "0%"),
        ("outcome open", "2"),
        ("stage", "now", "reached"),
        ("situation", "1", "2"),
        ("problem", "1", "1"),
        ("kind", "in", "out"),
        ("all", "5", "6"),
        ("text", "4", ""),
        ("reply", "", "4"),
        ("2026-03-07", "3", "3"),
        ("2026-03-08", "2", "3"),
        ("median", "0.3 s"),
        ("touch", "sent", "replied", "reply rate"),
        ("1", "1", "0", "0%"),
        ("managers' messages", "1"),
    ]:
        assert terminal.has_cells(*cells), f"{cells} not in\n{terminal.text}"
    assert "2026-03-01" not in terminal.text  # days without messages are left out


# ---------------------------------------------------------------------------- the launcher
def test_the_banner_gives_both_addresses_and_a_line_for_the_readme_examples() -> None:
    banner = render.banner("http://127.0.0.1:41001", "http://127.0.0.1:41002", "tok-123_abc", "data/demo", True)
    assert show(banner, columns=160).rows == [
        "Parley runs on the sandbox: gateway http://127.0.0.1:41001 · agent http://127.0.0.1:41002 · data and logs in "
        "data/demo",
        "The managers' API from another shell (the README's curl examples read $A and $H):",
        "  export A=http://127.0.0.1:41002 H='Authorization: Bearer tok-123_abc'",
        '  curl -s -H "$H" "$A/contacts?needs_human=true"',
        "Continuing with the conversations kept in data/demo; to start fresh: make demo DEMO_ARGS=--fresh "
        "(or --fresh).",
    ]
    fresh = show(render.banner("http://g", "http://a", "t", "data/demo", False, sign_in=("demo", "pw")), columns=160)
    assert "Continuing" not in fresh.text
    assert fresh.rows[-1] == (
        "Managers' console: http://a/console/ · sign in as demo / pw and answer as a manager in the browser"
    )


@pytest.mark.parametrize("token", ["tok-123_abc", 'it\'s a "$token" with `spaces`'])
def test_the_export_line_sets_what_the_readme_examples_use(token: str) -> None:
    line = render.api_exports("http://127.0.0.1:41002", token)
    shell = subprocess.run(
        ["bash", "-c", f'{line}; printf "%s\\n" "$A" "$H"'], capture_output=True, text=True, check=True, timeout=10
    )
    assert shell.stdout.splitlines() == ["http://127.0.0.1:41002", f"Authorization: Bearer {token}"]
    readme = (ROOT / "README.md").read_text()
    examples = [line for line in readme.splitlines() if line.startswith("curl ")]
    assert examples and all('-H "$H"' in example and '"$A/' in example for example in examples)


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text
    assert "--fresh" in text and "--agent-port" in text and "make demo DEMO_ARGS=--fresh" in text
