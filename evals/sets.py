"""The labelled sets (``evals/sets/*.toml``): what each message is, what each turn must do.

Classification sets: ``[[message]]`` with ``text``, ``label`` (``prospect`` or a non-client
category), ``lang`` and optionally ``business``. Conversation sets: ``[[conversation]]`` with
``id``, ``business``, ``now`` (local time) and optionally ``name``, and ``[[conversation.turn]]``
with ``say`` and the expectations described in ``conversations_dev.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SETS = Path(__file__).resolve().parent / "sets"
ROOT = SETS.parents[1]
# The sample businesses: their business file (knowledge_base/ beside it).
BUSINESSES = {
    "komfortoffice": ROOT / "business.toml",
    "tazasu": ROOT / "samples" / "tazasu" / "business.toml",
}
CLASSIFICATION_SETS = ("dev", "holdout", "round1", "round2", "blind")
CONVERSATION_SETS = ("dev", "holdout", "blind")
# The targets are held on the sets the rules were written against (dev, and the held-out and round
# sets that were measured once and then used to broaden the rules); the blind sets, written after
# the rules were final and measured once, say how they do on messages their author had not seen.
TARGET_SETS = ("dev", "holdout", "round1", "round2")


@dataclass(frozen=True)
class LabelledMessage:
    text: str
    label: str
    language: str
    business: str
    split: str

    @property
    def status(self) -> str:
        return "client" if self.label == "prospect" else "non_client"


@dataclass(frozen=True)
class Turn:
    say: str
    facts: tuple[tuple[str, ...], ...] = ()  # each: any one of these must appear
    handoff: bool | None = None
    booking: str | None = None  # "YYYY-MM-DDTHH:MM" (local) or "slots"
    outcome: str | None = None
    stage: str | None = None
    avoid_stage: str | None = None
    no_question: bool = False
    absent: tuple[str, ...] = ()


@dataclass(frozen=True)
class Conversation:
    id: str
    business: str
    now: str
    split: str
    name: str | None = None
    turns: tuple[Turn, ...] = field(default_factory=tuple)


def classification(split: str) -> list[LabelledMessage]:
    path = SETS / f"classification_{split}.toml"
    if not path.exists():
        return []
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [
        LabelledMessage(m["text"], m["label"], m["lang"], m.get("business", "komfortoffice"), split)
        for m in data.get("message", [])
    ]


def conversations(split: str) -> list[Conversation]:
    data = tomllib.loads((SETS / f"conversations_{split}.toml").read_text(encoding="utf-8"))
    out = []
    for c in data.get("conversation", []):
        turns = tuple(
            Turn(
                say=t["say"],
                facts=tuple((f,) if isinstance(f, str) else tuple(f) for f in t.get("facts", [])),
                handoff=t.get("handoff"),
                booking=t.get("booking"),
                outcome=t.get("outcome"),
                stage=t.get("stage"),
                avoid_stage=t.get("avoid_stage"),
                no_question=bool(t.get("no_question", False)),
                absent=tuple(t.get("absent", [])),
            )
            for t in c["turn"]
        )
        out.append(Conversation(c["id"], c["business"], c["now"], split, c.get("name"), turns))
    return out
