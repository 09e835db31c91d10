"""The evaluation harness on the offline engine, as `make eval` runs it, holding the targets: the
moderator classifies at least 95% of the labelled first messages right, at least 90% of the
answerable questions get their facts with no invented number, and at least 90% of the calls asked
for are booked as asked (or get slots when the time cannot be booked). The sets and the figures
are described in docs/agent.md ("Measuring the agent")."""

from __future__ import annotations

from evals.__main__ import TARGETS, missed, tables
from evals.harness import evaluate
from evals.sets import CLASSIFICATION_SETS, CONVERSATION_SETS, classification, conversations


def test_the_labelled_sets_are_large_varied_and_cover_both_businesses() -> None:
    messages = [m for split in CLASSIFICATION_SETS for m in classification(split)]
    assert len(messages) >= 150 and {m.language for m in messages} == {"en", "ru", "kk"}
    assert {m.label for m in messages} >= {"prospect", "spam", "personal", "supplier", "job_seeker", "wrong_number"}
    turns = [(c, t) for split in CONVERSATION_SETS for c in conversations(split) for t in c.turns]
    assert len(turns) >= 60 and {c.business for c, _ in turns} == {"komfortoffice", "tazasu"}
    assert sum(1 for _, t in turns if t.facts) >= 30 and sum(1 for _, t in turns if t.booking) >= 10


async def test_the_offline_engine_meets_the_targets_on_every_set() -> None:
    report = await evaluate("offline", classification_splits=CLASSIFICATION_SETS, conversation_splits=CONVERSATION_SETS)
    print("\n" + tables(report))
    totals = report.totals()
    assert totals["engine"] == "offline" and set(TARGETS) <= set(totals)
    assert missed(report) == [], tables(report)
    assert totals["invented_numbers"] == 0
