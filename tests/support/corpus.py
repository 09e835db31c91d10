"""The real Meta webhook corpus (``../shared/corpus/meta-webhooks``), made replayable: each example
with its own message ids and senders (the corpus uses one of each everywhere; senders from a dozen
countries) and the time of the replay (the gateway skips messages older than Meta's 7 days of
retries), and what each kind should become."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "meta-webhooks"
# Senders from many countries; several start with 8, the digit an old rule read as Russia's trunk prefix.
PREFIXES = itertools.cycle(["85291", "85362", "85512", "8491", "8131", "97254", "1650", "4477", "4915", "7701", "5511"])
JPEG = b"\xff\xd8\xff\xe0" + b"0" * 64
PDF = b"%PDF-1.4\n" + b"0" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"0" * 32

ANSWERED = "answered"  # recorded, and the sender gets a reply on its own number
SILENT = "silent"  # recorded, never answered
REFUSED = "refused"  # a placeholder sender: counted and logged, not recorded
NOTHING = "nothing"  # a status or another webhook field: no message at all

EXPECTED: dict[tuple[str, str], str] = {
    ("message.json", "reaction"): SILENT,
    ("message.json", "unreaction_empty"): SILENT,
    ("message.json", "unreaction_no_emoji"): SILENT,
    ("edited_message.json", "image"): SILENT,
    ("system.json", "phone_number_change"): SILENT,
    ("message.json", "system"): SILENT,  # 18.0's number change
    ("system.json", "identity_change"): SILENT,
    ("chat_opened.json", "chat_opened"): SILENT,
    ("call_permission_update.json", "accept"): SILENT,
    ("call_permission_update.json", "reject"): SILENT,
    ("deleted_message.json", "revoke"): REFUSED,
}
KINDS: dict[tuple[str, str], str] = {
    ("message.json", "image"): "image",
    ("message.json", "media_with_url"): "image",
    ("message.json", "video"): "video",
    ("message.json", "document"): "document",
    ("message.json", "static_sticker"): "sticker",
    ("message.json", "animated_sticker"): "sticker",
    ("message.json", "audio"): "audio",
    ("message.json", "voice"): "voice",
    ("message.json", "current_location"): "location",
    ("message.json", "chosen_location"): "location",
    ("message.json", "contacts"): "contact",
    ("message.json", "order"): "order",
    ("message.json", "unsupported"): "unsupported",
    ("message.json", "unsupported_with_type"): "unsupported",
    ("message.json", "interactive_message_with_err"): "unsupported",
    ("message.json", "reaction"): "reaction",
    ("message.json", "unreaction_empty"): "reaction",
    ("message.json", "unreaction_no_emoji"): "reaction",
    ("call_permission_update.json", "accept"): "system",
    ("call_permission_update.json", "reject"): "system",
    ("deleted_message.json", "revoke"): "revoke",
    ("callback_button.json", "button"): "interactive",
    ("callback_button.json", "quick_reply"): "interactive",
    ("callback_button.json", "quick_reply_without_context"): "interactive",
    ("callback_selection.json", "callback"): "interactive",
    ("callback_selection.json", "description"): "interactive",
    ("flow_completion.json", "completion"): "interactive",
    ("flow_completion.json", "without_flow_token"): "interactive",
    ("edited_message.json", "image"): "edit",
    ("system.json", "identity_change"): "system",
    ("system.json", "phone_number_change"): "system",
    ("message.json", "system"): "system",
    ("chat_opened.json", "chat_opened"): "system",
}


@dataclass
class Replay:
    """One example made unique."""

    file: str
    name: str
    payload: dict[str, Any]
    senders: list[str]  # the wa_id of each message
    message_ids: list[str]  # their wamids
    outcome: str
    moved_to: str | None = None  # a number change: the contact carries on under this number

    @property
    def contact(self) -> str:
        return self.moved_to or self.senders[0]

    @property
    def key(self) -> tuple[str, str]:
        return self.file.split("/")[-1], self.name

    @property
    def kind(self) -> str | None:
        """The kind the message is recorded as (None: text, or no message)."""
        return KINDS.get(self.key)


def files() -> list[str]:
    """Every fixture file, relative to the corpus (``message.json``, ``18.0/message.json`` ...)."""
    paths = sorted(CORPUS.glob("*.json")) + sorted(CORPUS.glob("18.0/*.json"))
    return [str(path.relative_to(CORPUS)) for path in paths]


def corpus(only: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(file, example, envelope) of every example, or of one file's."""
    for name in files():
        if only is None or name == only:
            for example, payload in json.loads((CORPUS / name).read_text()).items():
                yield name, example, payload


def rewrite(file: str, example: str, payload: dict[str, Any], n: int, now: int) -> Replay:
    """The example with its own ids and senders, sent now."""
    payload = copy.deepcopy(payload)
    senders, wamids = [], []
    outcome = NOTHING
    moved_to = None
    for e, entry in enumerate(payload["entry"]):
        for c, change in enumerate(entry["changes"]):
            value = change["value"]
            if change.get("field") != "messages":
                continue
            sender = f"{next(PREFIXES)}{n:05d}{e}{c}"
            for contact in value.get("contacts", []):
                contact["wa_id"] = sender
            for s, status in enumerate(value.get("statuses", [])):
                status["id"] = f"wamid.status.{n}.{s}"
                status["timestamp"] = str(now)
            for m, message in enumerate(value.get("messages", [])):
                wamid = f"wamid.corpus.{n}.{e}.{c}.{m}"
                message["id"] = wamid
                message["timestamp"] = str(now)
                placeholder = message.get("from", "").startswith("<")
                if not placeholder:
                    message["from"] = sender
                if message.get("type") == "system" and "wa_id" in message.get("system", {}):
                    moved_to = message["system"]["wa_id"] = f"{sender}9"  # the new number
                senders.append(sender)
                wamids.append(wamid)
                outcome = EXPECTED.get((file.split("/")[-1], example), ANSWERED)
                if placeholder:
                    outcome = REFUSED
    return Replay(file, example, payload, senders, wamids, outcome, moved_to)
