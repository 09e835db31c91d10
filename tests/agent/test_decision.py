"""The typed decision: what a model may propose, validated in Python before anything is written."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_service.domain.decision import AgentDecision, DecisionError, next_stage, parse_decision

TZ = "Asia/Almaty"
IDS = ["catalogue.pdf:p2:c1", "catalogue.pdf:p4:c1"]


def raw(**fields: Any) -> str:
    data = {"reply": "Hello!", "spin_stage": "problem", "outcome": "open", "action": "none", "language": "en"}
    data.update(fields)
    return json.dumps(data)


def test_a_valid_decision_is_read_with_local_call_time_and_known_passages_only() -> None:
    decision = parse_decision(
        raw(
            action="schedule_call",
            outcome="agreed",
            proposed_call_time="2026-01-06T11:00",
            passages_used=["catalogue.pdf:p2:c1", "invented:p9", "catalogue.pdf:p2:c1"],
            language="ru-RU",
        ),
        timezone=TZ,
        passage_ids=IDS,
    )
    assert decision.action == "schedule_call" and decision.language == "ru"
    assert decision.proposed_call_time is not None
    assert decision.proposed_call_time.isoformat() == "2026-01-06T11:00:00+05:00"
    assert decision.passages_used == ["catalogue.pdf:p2:c1"]


def test_a_call_time_without_a_call_and_a_reason_without_a_handoff_are_dropped() -> None:
    decision = parse_decision(
        raw(proposed_call_time="2026-01-06T11:00", handoff_reason="x"), timezone=TZ, passage_ids=IDS
    )
    assert decision.proposed_call_time is None and decision.handoff_reason is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "empty"),
        ("", "empty"),
        ("not json", "not JSON"),
        ('{"reply": ' + "[" * 100_000 + "]" * 100_000 + "}", "not JSON"),  # deeper than the parser goes
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"reply": "hi"}), "spin_stage"),
        (raw(spin_stage="closing"), "spin_stage"),
        (raw(outcome="won"), "outcome"),
        (raw(action="send_discount"), "action"),
        (raw(reply="   "), "reply"),
        (raw(language="fr"), "language"),
        (raw(reply="x" * 5000), "reply"),
        (raw(action="schedule_call", outcome="declined"), "declined"),
        (raw(action="schedule_call", outcome="agreed", proposed_call_time="tomorrow"), "ISO"),
    ],
)
def test_invalid_model_output_is_refused_with_a_reason(text: str | None, message: str) -> None:
    with pytest.raises(DecisionError, match=message):
        parse_decision(text, timezone=TZ, passage_ids=IDS)


def test_the_model_itself_refuses_inconsistent_decisions() -> None:
    with pytest.raises(ValidationError):
        AgentDecision(reply="ok", spin_stage="problem", outcome="open", proposed_call_time=datetime.now().astimezone())
    with pytest.raises(ValidationError):
        AgentDecision(reply="ok", spin_stage="problem", outcome="open", extra_field=1)  # type: ignore[call-arg]


def test_spin_stages_move_forward_and_stop_at_need_payoff() -> None:
    assert [next_stage(s) for s in ("situation", "problem", "implication", "need_payoff", "junk")] == [
        "problem",
        "implication",
        "need_payoff",
        "need_payoff",
        "problem",
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=15), children, max_size=6),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(
            [
                "reply",
                "spin_stage",
                "outcome",
                "action",
                "proposed_call_time",
                "language",
                "passages_used",
                "handoff_reason",
                "x",
            ]
        ),
        JSON,
    )
)
def test_any_json_object_gives_a_decision_or_a_decision_error(data: dict[str, Any]) -> None:
    try:
        decision = parse_decision(json.dumps(data), timezone=TZ, passage_ids=IDS)
    except DecisionError:
        return
    assert decision.reply.strip() and set(decision.passages_used) <= set(IDS)
