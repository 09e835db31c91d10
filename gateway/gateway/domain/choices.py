"""Options to tap, for providers that have buttons and for those that do not (pure).

A message may offer :class:`~parley_shared.contracts.Choices` (reply buttons or a list). Meta
shows them as buttons; a provider without buttons (Wappi, the sandbox) gets them as numbered
lines under the text (:func:`numbered`). Either way the gateway remembers the options of the
latest message sent to a contact, and a message that is nothing but one of those numbers
(``2``, ``2.``, `` 2) ``) is read as a tap on that option (:func:`as_tap`) -- on every provider,
since people type numbers at buttons too.
"""

from __future__ import annotations

import dataclasses
import re

from gateway.domain.admission import InboundEvent
from parley_shared.contracts import Choices, InteractiveReply, MessageKind

_TYPED = re.compile(r"^\s*#?\s*(\d{1,2})\s*[.)]?\s*$")


def numbered(text: str, choices: Choices) -> str:
    """The text with its options as numbered lines (``1. Title — description``)."""
    lines = [
        f"{n}. {option.title}" + (f" — {option.description}" if option.description else "")
        for n, option in enumerate(choices.options, start=1)
    ]
    return f"{text}\n\n" + "\n".join(lines)


def typed_number(text: str | None) -> int | None:
    """The option number a text is, if it is nothing but one."""
    if text is None:
        return None
    match = _TYPED.match(text)
    return int(match.group(1)) if match else None


def as_tap(event: InboundEvent, choices: Choices | None) -> InboundEvent:
    """A text that is one of the offered numbers, as the tap it stands for (else the event as is)."""
    if choices is None or event.kind is not MessageKind.TEXT:
        return event
    number = typed_number(event.text)
    if number is None or not 1 <= number <= len(choices.options):
        return event
    option = choices.options[number - 1]
    tap = InteractiveReply(type="typed_number", id=option.id, title=option.title, description=option.description)
    return dataclasses.replace(event, kind=MessageKind.INTERACTIVE, text=option.title, interactive=tap)
