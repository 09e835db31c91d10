"""Language detection, intent rules and call-time requests (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_service.domain.call_request import requested_call_time
from agent_service.domain.intents import Intent, detect_intents, question_focus
from agent_service.domain.language import detect_language

MONDAY_NOON_ALMATY = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "previous", "expected"),
    [
        ("Hello, how much is a chair?", None, "en"),
        ("Здравствуйте, сколько стоит кресло?", None, "ru"),
        ("Сәлеметсіз бе, орындық бағасы қанша?", None, "kk"),
        ("Рахмет, жаксы", None, "kk"),
        ("ok", "ru", "ru"),
        ("👍", "kk", "kk"),
        ("Сколько стоит ErgoPro 300?", "en", "ru"),
        ("", None, "en"),
    ],
)
def test_language(text: str, previous: str | None, expected: str) -> None:
    assert detect_language(text, previous) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi! How much is the LiftDesk?", {Intent.GREETING, Intent.PRICE, Intent.QUESTION}),
        ("Do you have chairs in stock?", {Intent.AVAILABILITY, Intent.QUESTION}),
        ("Сколько стоит доставка?", {Intent.PRICE, Intent.DELIVERY, Intent.QUESTION}),
        ("Можно в рассрочку через Kaspi?", {Intent.PAYMENT, Intent.QUESTION}),
        ("What's your address?", {Intent.LOCATION, Intent.QUESTION}),
        ("What do you sell?", {Intent.OVERVIEW, Intent.AVAILABILITY, Intent.QUESTION}),
        ("Хорошо, оформляем, выставляйте счёт", {Intent.ORDER, Intent.PAYMENT, Intent.YES}),
        ("I'd like to speak to a manager", {Intent.HUMAN}),
        ("Соедините с менеджером", {Intent.HUMAN}),
        ("Yes, call me tomorrow at 11", {Intent.YES, Intent.CALL}),
        ("no thanks", {Intent.NO, Intent.THANKS}),
        ("Нет, не интересно", {Intent.NO}),
        ("Maybe later, I'll think about it", {Intent.MAYBE}),
        ("Подумаю", {Intent.MAYBE}),
        ("Is there no discount at all?", {Intent.DISCOUNT, Intent.QUESTION}),
    ],
)
def test_intents(text: str, expected: set[Intent]) -> None:
    assert detect_intents(text) == expected


def test_a_business_adds_its_own_words_to_a_topic() -> None:
    words = {"location": ("showroom", "шоурум"), "payment": ("kaspi",)}
    assert Intent.LOCATION not in detect_intents("Where is your showroom?")
    assert Intent.LOCATION in detect_intents("Where is your showroom?", words)
    assert Intent.PAYMENT in detect_intents("Kaspi?", words)


def test_a_currency_alone_asks_no_price() -> None:
    assert Intent.PRICE not in detect_intents("Вы выиграли приз! Для получения 100 000 тенге перейдите по ссылке")
    assert Intent.PRICE in detect_intents("Сколько стоит в тенге?")


@pytest.mark.parametrize(
    ("text", "focus"),
    [
        ("[urgent] Sorry, I was away. What does the P-3 pedestal cost?", "What does the P-3 pedestal cost?"),
        ("Hello! How much is the V-20?", "How much is the V-20?"),
        ("How much is the V-20", "How much is the V-20"),
    ],
)
def test_the_focus_of_a_message_is_the_sentence_that_asks(text: str, focus: str) -> None:
    assert question_focus(text).strip() == focus


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call me tomorrow at 11", "2026-01-06T11:00:00+05:00"),
        ("завтра в 15:30", "2026-01-06T15:30:00+05:00"),
        ("on Wednesday at 3 pm", "2026-01-07T15:00:00+05:00"),
        ("в пятницу в 3", "2026-01-09T15:00:00+05:00"),
        ("today at 16:00", "2026-01-05T16:00:00+05:00"),
        ("at 11", "2026-01-06T11:00:00+05:00"),  # 11:00 has passed today: tomorrow
        ("on Monday at 10", "2026-01-12T10:00:00+05:00"),  # said on a Monday: next week
        ("позвоните мне", None),
        ("tomorrow", None),
        ("Давайте созвонимся завтра в 11.", "2026-01-06T11:00:00+05:00"),
        ("Спасибо! Нас 12 человек, давайте созвонимся завтра в 11, удобно?", "2026-01-06T11:00:00+05:00"),
        ("Можно созвониться с менеджером завтра в 11?", "2026-01-06T11:00:00+05:00"),
        ("завтра в 11 утра", "2026-01-06T11:00:00+05:00"),
        ("в 8 вечера", "2026-01-05T20:00:00+05:00"),
        ("завтра после обеда", "2026-01-06T14:00:00+05:00"),
        ("в понедельник в 3", "2026-01-12T15:00:00+05:00"),
        ("ертең сағат 11-де", "2026-01-06T11:00:00+05:00"),
        ("дүйсенбі күні сағат 3-те", "2026-01-12T15:00:00+05:00"),
        ("ертең түстен кейін", "2026-01-06T14:00:00+05:00"),
        ("tomorrow afternoon", "2026-01-06T14:00:00+05:00"),
        ("Thursday around 4", "2026-01-08T16:00:00+05:00"),
        ("на 5 человек, позвоните через 2 дня", None),
        ("в 11 декабря", None),
    ],
)
def test_requested_call_time_in_the_business_timezone(text: str, expected: str | None) -> None:
    when = requested_call_time(text, MONDAY_NOON_ALMATY, "Asia/Almaty")
    assert (when.isoformat() if when else None) == expected


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_rules_never_fail_on_any_text(text: str) -> None:
    detect_intents(text)
    assert detect_language(text) in ("en", "ru", "kk")
    when = requested_call_time(text, MONDAY_NOON_ALMATY, "Asia/Almaty")
    assert when is None or when.tzinfo is not None
