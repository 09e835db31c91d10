"""What the demo chat shows, as rich renderables (no I/O: the chat and the launcher print them).

Everything that comes from outside -- a prospect's name and words, a model's reply, a message
kind, an error message, any value the services return -- goes in as a plain ``Text`` (never parsed
as rich markup, so "[urgent]" shows as typed) with its control characters replaced by visible
symbols (so an escape sequence in a reply shows as "␛[2J" instead of clearing the terminal).
Only the fixed labels written here are styled.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

PROMPT = "you › "
PROMPT_STYLE = "bold cyan"
KIND_LABEL = {"reply": "Parley", "follow_up": "Parley · follow-up", "operator": "Manager"}
SPIN_STAGES = ("situation", "problem", "implication", "need_payoff")

# C0 controls (but newline and tab) and DEL as the Unicode "control pictures" (ESC -> ␛), C1 controls
# (which some terminals obey as ESC sequences too) as \x hex.
_VISIBLE = str.maketrans(
    {
        **{code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"},
        0x7F: "\u2421",
        **{code: f"\\x{code:02x}" for code in range(0x80, 0xA0)},
    }
)


def visible(value: object) -> str:
    """``value`` as text a terminal shows but never obeys (control characters as visible symbols)."""
    return str(value).replace("\r\n", "\n").translate(_VISIBLE)


def plain(value: object, style: str = "") -> Text:
    """Outside text, verbatim: no markup, no emoji codes, no control characters."""
    return Text(visible(value), style=style)


def cell(value: object) -> Text:
    return plain("" if value is None else value)


# ---------------------------------------------------------------------------- the conversation
def reply_line(kind: object, text: object, media: Mapping[str, Any] | None = None) -> Text:
    """A message the business sent, as the prospect sees it arrive: ``Parley: ...``; a file it
    carries as ``[image: chair.jpg]`` before its caption."""
    label = KIND_LABEL.get(str(kind), "Parley")
    parts: list[str | tuple[str, str]] = [(f"{label}:", "bold green"), " "]
    if media:
        parts += [(f"[{visible(media.get('kind', 'file'))}: {visible(media.get('file_name', ''))}]", "cyan"), " "]
    return Text.assemble(*parts, visible(text or ""))


def prospect_line(text: object, kind: object = "text") -> Text:
    """A line the prospect wrote, after the prompt (a voice note or other kind is labelled)."""
    label = "" if kind == "text" else f"[{visible(kind)}] "
    return Text.assemble((PROMPT, PROMPT_STYLE), (label, "dim"), visible(text or ""))


def conversation_line(message: Mapping[str, Any]) -> Text:
    """One stored message (``GET /contacts/{phone}``) as the chat shows it."""
    if message.get("direction") == "in":
        return prospect_line(message.get("text"), message.get("kind", "text"))
    return reply_line(message.get("kind"), message.get("text"))


def history(name: str, phone: str, messages: Sequence[Mapping[str, Any]], more: bool, shown: int) -> Group:
    """The end of an earlier conversation, with how much of it there is."""
    count = f"more than {len(messages)}" if more else str(len(messages))
    last = messages[-shown:]
    head = f"Earlier with {name} ({phone}): {count} messages" + (
        f", the last {len(last)}:" if len(last) < len(messages) or more else ":"
    )
    return Group(plain(head, "dim"), *(conversation_line(m) for m in last))


def you_are(name: str, phone: str) -> Text:
    return plain(f"You are {name} ({phone}).", "dim")


# ---------------------------------------------------------------------------- the managers' view
def card(data: Mapping[str, Any], lines: int = 12) -> Group:
    """``GET /contacts/{phone}``: the contact's fields, the end of its conversation, touches, calls."""
    contact = data.get("contact", {})
    table = Table(title=plain(f"Contact {contact.get('phone', '')}"), show_header=False)
    for key, value in contact.items():
        if not isinstance(value, (dict, list)):
            table.add_row(plain(key), cell(value))
    parts: list[RenderableType] = [table]
    for message in list(data.get("messages") or [])[-lines:]:
        arrow = "→" if message.get("direction") == "in" else "←"
        parts.append(
            Text.assemble(
                f"  {arrow} ", (f"[{visible(message.get('kind', ''))}]", "dim"), " ", visible(message.get("text") or "")
            )
        )
    for key, title in (("follow_ups", "follow-up touches"), ("calls", "calls")):
        if data.get(key):
            parts.append(plain(f"  {title}: {_by_status(data[key])}"))
    return Group(*parts)


def _by_status(rows: Iterable[Mapping[str, Any]]) -> str:
    counts = Counter(str(row.get("status")) for row in rows)
    return " · ".join(f"{status} {n}" for status, n in sorted(counts.items()))


CONTACT_COLUMNS = ("phone", "name", "client_status", "spin_stage", "outcome", "owner", "needs_human")


def contacts(data: Mapping[str, Any]) -> Table:
    """``GET /contacts``: the first page, newest first."""
    caption = "the first page; the managers' API pages on" if data.get("next_cursor") else None
    table = Table(title="Contacts", caption=caption)
    for column in CONTACT_COLUMNS:
        table.add_column(column)
    for item in data.get("items", []):
        table.add_row(*(cell(item.get(column)) for column in CONTACT_COLUMNS))
    return table


def analytics(data: Mapping[str, Any], days: int = 7) -> Group:
    """``GET /analytics`` as a few small tables, laid side by side as the width allows."""
    period = data.get("period", {})
    title = plain(
        f"Analytics: {period.get('from')} → {period.get('to')} ({period.get('days')} days, {period.get('timezone')})",
        "bold",
    )
    funnel = data.get("funnel", {})
    messages = data.get("messages", {})
    tables = [
        _pairs(
            "Contacts",
            [
                ("contacts", funnel.get("contacts")),
                ("clients", funnel.get("clients")),
                ("non-clients", funnel.get("non_clients")),
                ("unclassified", funnel.get("unclassified")),
                ("non-client share", _share(data.get("non_client_share"))),
                *((f"outcome {k}", v) for k, v in dict(funnel.get("outcomes") or {}).items()),
            ],
        ),
        _spin(funnel),
        _messages(messages),
        _per_day(messages.get("per_day") or [], days),
        _pairs(
            "First response",
            [
                ("answered", data.get("first_response", {}).get("answered")),
                ("unanswered", data.get("first_response", {}).get("unanswered")),
                ("median", _seconds(data.get("first_response", {}).get("p50_s"))),
                ("90th percentile", _seconds(data.get("first_response", {}).get("p90_s"))),
            ],
        ),
        _follow_ups(data.get("follow_ups", {})),
        _pairs(
            "Calls and handoffs",
            [
                ("calls requested", data.get("calls", {}).get("requested")),
                ("calls confirmed", data.get("calls", {}).get("confirmed")),
                *((f"calls {k}", v) for k, v in dict(data.get("calls", {}).get("by_status") or {}).items()),
                ("needs a manager", data.get("handoffs", {}).get("needs_human")),
                ("held by a manager", data.get("handoffs", {}).get("owned_by_human")),
                ("managers' messages", data.get("handoffs", {}).get("operator_messages")),
            ],
        ),
        _tokens(data.get("tokens", {})),
    ]
    return Group(title, Columns(tables))


def _pairs(title: str, rows: Iterable[tuple[str, object]]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column()
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(plain(key), cell(value))
    return table


def _figures(title: str, first: str, *figures: str) -> Table:
    """A table whose first column names the row and whose other columns are figures (right-aligned)."""
    table = Table(title=title)
    table.add_column(first)
    for name in figures:
        table.add_column(name, justify="right")
    return table


def _spin(funnel: Mapping[str, Any]) -> Table:
    table = _figures("SPIN funnel (clients)", "stage", "now", "reached")
    stages = dict(funnel.get("stages") or {})
    reached = dict(funnel.get("reached") or {})
    for stage in [*SPIN_STAGES, *(s for s in {**stages, **reached} if s not in SPIN_STAGES)]:
        table.add_row(plain(stage), cell(stages.get(stage, 0)), cell(reached.get(stage, 0)))
    table.add_row("agreed", cell(funnel.get("agreed")), "")
    table.add_row("declined", cell(funnel.get("declined")), "")
    return table


def _messages(messages: Mapping[str, Any]) -> Table:
    table = _figures("Messages", "kind", "in", "out")
    table.add_row("all", cell(messages.get("in")), cell(messages.get("out")), style="bold")
    by_kind = dict(messages.get("by_kind") or {})
    incoming, outgoing = dict(by_kind.get("in") or {}), dict(by_kind.get("out") or {})
    for kind in [*sorted(incoming), *sorted(k for k in outgoing if k not in incoming)]:
        table.add_row(plain(kind), cell(incoming.get(kind, "")), cell(outgoing.get(kind, "")))
    return table


def _per_day(per_day: Sequence[Mapping[str, Any]], days: int) -> Table:
    busy = [d for d in per_day if d.get("in") or d.get("out")][-days:]
    title = "Days with messages" if len(busy) < days else f"The last {days} days with messages"
    table = _figures(title, "date", "in", "out")
    for day in busy:
        table.add_row(cell(day.get("date")), cell(day.get("in")), cell(day.get("out")))
    return table


def _follow_ups(follow_ups: Mapping[str, Any]) -> Table:
    table = _figures("Follow-ups", "touch", "sent", "replied", "reply rate")
    for touch in follow_ups.get("per_touch") or []:
        table.add_row(cell(touch.get("touch")), cell(touch.get("sent")), cell(touch.get("replied")), _rate(touch))
    table.add_row("all", cell(follow_ups.get("sent")), cell(follow_ups.get("replied")), _rate(follow_ups), style="bold")
    return table


def _tokens(tokens: Mapping[str, Any]) -> Table:
    table = _figures("Model tokens", "model", "in", "out", "messages")
    for model, count in dict(tokens.get("by_model") or {}).items():
        table.add_row(plain(model), cell(count.get("in")), cell(count.get("out")), cell(count.get("messages")))
    table.add_row("all", cell(tokens.get("in")), cell(tokens.get("out")), "", style="bold")
    return table


def _rate(row: Mapping[str, Any]) -> Text:
    return _share(row.get("reply_rate"))


def _share(value: object) -> Text:
    return plain("–" if not isinstance(value, (int, float)) else f"{value:.0%}")


def _seconds(value: object) -> Text:
    return plain("–" if not isinstance(value, (int, float)) else f"{value:.1f} s")


# ---------------------------------------------------------------------------- the launcher
def api_exports(agent_url: str, token: str) -> str:
    """A shell line that sets what the README's managers' API examples use: ``$A`` and ``$H``."""
    return f"export A={shlex.quote(agent_url)} H={shlex.quote(f'Authorization: Bearer {token}')}"


FRESH = "make demo DEMO_ARGS=--fresh"


def banner(
    gateway_url: str,
    agent_url: str,
    token: str,
    data_dir: str,
    resumed: bool,
    *,
    sign_in: tuple[str, str] | None = None,
) -> Group:
    """What the launcher prints once both services answer: where they are and how to reach them
    (``sign_in``: the managers' console account the demo created)."""
    parts: list[RenderableType] = [
        Text.assemble(
            "Parley runs on the sandbox: gateway ",
            (visible(gateway_url), "bold"),
            " · agent ",
            (visible(agent_url), "bold"),
            " · data and logs in ",
            visible(data_dir),
        ),
        plain("The managers' API from another shell (the README's curl examples read $A and $H):", "dim"),
        plain(f"  {api_exports(agent_url, token)}"),
        plain('  curl -s -H "$H" "$A/contacts?needs_human=true"'),
    ]
    if sign_in is not None:
        parts.append(
            Text.assemble(
                ("Managers' console: ", "bold"),
                visible(f"{agent_url}/console/"),
                " · sign in as ",
                (visible(sign_in[0]), "bold"),
                " / ",
                (visible(sign_in[1]), "bold"),
                " and answer as a manager in the browser",
            )
        )
    if resumed:
        parts.append(
            Text.assemble(
                "Continuing with the conversations kept in ",
                visible(data_dir),
                "; to start fresh: ",
                (FRESH, "bold"),
                " (or --fresh).",
            )
        )
    return Group(*parts)
