"""What each kind of inbound message means to the agent (pure).

* **Conversational kinds** (text, voice, media, location, contact cards, taps, orders,
  unsupported) are answered in a turn; what the model reads of each is its ``text`` (the gateway
  writes the structured content out as text too: "Order: 3 x ...", "Shared contacts: ...").
* **Events** (:data:`SILENT_KINDS`) are recorded and never answered: a reaction lands on the
  message it reacts to, an edit corrects its message's text (the turn that has not run yet reads
  the corrected text), a revoke marks its message deleted (left out of what the model is given),
  a system notice (a number change moves the contact to the new number) is kept for managers.
"""

from __future__ import annotations

from typing import Any

from parley_shared.contracts import IncomingMessage, MessageKind

SILENT_KINDS = frozenset({MessageKind.REACTION, MessageKind.EDIT, MessageKind.REVOKE, MessageKind.SYSTEM})
EVENT_KINDS = frozenset({MessageKind.REACTION.value, MessageKind.EDIT.value, MessageKind.REVOKE.value})
_DETAILS = ("interactive", "location", "contacts", "order", "referral", "system", "unsupported", "reaction")


def is_silent(message: IncomingMessage) -> bool:
    return message.kind in SILENT_KINDS


def media_of(message: IncomingMessage) -> dict[str, Any] | None:
    """What the records keep of a file: type, size, name, checksum, the gateway's key, or why not."""
    if message.media is None:
        return None
    kept = message.media.model_dump(
        include={"mime_type", "size", "file_name", "sha256", "stored", "error", "media_id"}, exclude_none=True
    )
    return kept or None


def details_of(message: IncomingMessage) -> dict[str, Any] | None:
    """The structured content of the message's kind, as JSON-able data."""
    data = message.model_dump(mode="json", include=set(_DETAILS), exclude_none=True)
    data = {k: v for k, v in data.items() if v not in ([], "", None) or k == "reaction"}
    if message.kind is MessageKind.EDIT and message.text is not None:
        data["text"] = message.text  # the corrected text, for the message it corrects
    return data or None


def text_of(message: IncomingMessage) -> str | None:
    """The words of the message (a file's caption when it has no text). An event has none of its own:
    an edit's new text goes to the message it corrects."""
    if message.kind in SILENT_KINDS:
        return None
    return message.text if message.text is not None else message.caption


def order_lines(details: dict[str, Any] | None) -> list[str]:
    """A catalogue order's product lines as the prospect sees them echoed: ``3 x HAMBURGER — 30 ILS``,
    and the total when every line has a price in one currency."""
    order = (details or {}).get("order") or {}
    items = [i for i in order.get("items") or [] if isinstance(i, dict)]
    lines = []
    for item in items:
        price = item.get("item_price")
        currency = item.get("currency") or ""
        shown = f" — {price:g} {currency}".rstrip() if isinstance(price, int | float) else ""
        lines.append(f"{item.get('quantity', 1)} x {item.get('product_id', '?')}{shown}")
    currencies = {i.get("currency") for i in items}
    if items and len(currencies) == 1 and all(isinstance(i.get("item_price"), int | float) for i in items):
        total = sum(float(i["item_price"]) * int(i.get("quantity") or 0) for i in items)
        lines.append(f"= {total:g} {currencies.pop() or ''}".rstrip())
    return lines
