"""``python -m evals`` (``make eval``): run the labelled sets and print the accuracy tables.

    python -m evals                    # every set, on the configured engine (gemini with GEMINI_API_KEY, else offline)
    python -m evals --engine offline   # the deterministic engine, as CI runs it
    python -m evals --failures         # also list what went wrong, turn by turn
    python -m evals --json out.json    # the figures as JSON

Exit status 1 when a target is missed on the target sets (classification >= 95%, answerable facts
>= 90%, bookings >= 90%) or a number is invented on any set. The blind sets are printed beside them
(see docs/agent.md, "Measuring the agent").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from evals.harness import Report, evaluate
from evals.sets import CLASSIFICATION_SETS, CONVERSATION_SETS, TARGET_SETS
from parley_shared.logging import configure_logging

TARGETS = {"classification_status": 0.95, "facts_right": 0.90, "booking_right": 0.90}


def missed(report: Report) -> list[str]:
    totals = report.totals(TARGET_SETS)
    out = [f"{name} {totals[name]:.1%} < {target:.0%}" for name, target in TARGETS.items() if totals[name] < target]
    invented = report.totals()["invented_numbers"]
    if invented:
        out.append(f"{invented} invented number(s)")
    return out


def tables(report: Report) -> str:
    lines = [f"Engine: {report.engine}", "", "Classification (a new contact's first message)"]
    lines.append(f"{'set / language':<22} {'messages':>8} {'client?':>8} {'category':>9}")
    for group, count, status, category in report.classification_rows():
        lines.append(f"{group:<22} {count:>8} {status:>8.1%} {category:>9.1%}")
    lines += ["", "Conversations (scripted turns)"]
    header = f"{'set / business':<26} {'facts':>9} {'handoffs':>9} {'bookings':>9} {'shape':>9} {'invented':>9}"
    lines.append(header)
    for group, counts, invented in report.conversation_rows():
        cells = [f"{r}/{n}" if n else "-" for r, n in (counts[k] for k in ("facts", "handoff", "booking", "shape"))]
        lines.append(f"{group:<26} " + " ".join(f"{c:>9}" for c in cells) + f" {invented:>9}")
    for title, splits in (("target sets", list(TARGET_SETS)), ("blind sets", _blind(report))):
        totals = report.totals(splits)
        if splits and (totals["classification_messages"] or totals["turns"]):
            lines += [
                "",
                f"{title}: classification {totals['classification_status']:.1%} (target >= 95%), "
                f"answerable facts {totals['facts_right']:.1%} (>= 90%), "
                f"bookings {totals['booking_right']:.1%} (>= 90%)",
            ]
    lines.append(f"invented numbers, every set: {report.totals()['invented_numbers']} (target 0)")
    return "\n".join(lines)


def _blind(report: Report) -> list[str]:
    splits = {v.message.split for v in report.verdicts} | {t.conversation.split for t in report.turns}
    return sorted(splits - set(TARGET_SETS))


def failures(report: Report) -> str:
    lines = ["", "Misclassified:"]
    for v in report.verdicts:
        if not v.category_right:
            lines.append(
                f"  [{v.message.split}] {v.message.label} -> {v.category} ({v.confidence:.2f}): {v.message.text}"
            )
    lines.append("Turns that missed:")
    for t in report.turns:
        if t.failed or t.invented:
            what = ", ".join(t.failed + ([f"invented {t.invented}"] if t.invented else []))
            lines.append(f"  [{t.conversation.id} #{t.index + 1}] {what}: {t.turn.say!r}")
            lines.append(f"      -> {t.reply!r}")
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m evals", description="Parley's evaluation harness")
    parser.add_argument("--engine", choices=["auto", "offline", "gemini"], default="auto")
    parser.add_argument("--classification", nargs="*", default=list(CLASSIFICATION_SETS), metavar="SET")
    parser.add_argument("--conversations", nargs="*", default=list(CONVERSATION_SETS), metavar="SET")
    parser.add_argument("--failures", action="store_true", help="list every miss")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="console", service="evals")  # the tables, not every turn's log line
    report = asyncio.run(
        evaluate(args.engine, classification_splits=args.classification, conversation_splits=args.conversations)
    )
    print(tables(report))
    if args.failures:
        print(failures(report))
    if args.json:
        args.json.write_text(json.dumps(report.totals(), indent=2) + "\n")
    problems = missed(report)
    if problems:
        print("\nMissed: " + "; ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    cli()
