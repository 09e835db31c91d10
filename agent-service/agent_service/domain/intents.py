"""What a prospect's message asks for, by rules (pure; English, Russian, some Kazakh).

Used by the offline engine to pick an answer and by the moderator for buying signals. A
message can carry several intents ("how much is it and do you deliver?"). The patterns are
business-neutral; a business adds its own words per topic in its business file (``kaspi`` for
payment, ``showroom`` for location), passed in as ``extra``.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping, Sequence

from agent_service.domain.text import tokens


class Intent(enum.StrEnum):
    GREETING = "greeting"
    PRICE = "price"
    AVAILABILITY = "availability"
    DELIVERY = "delivery"
    PAYMENT = "payment"
    WARRANTY = "warranty"
    DISCOUNT = "discount"
    LOCATION = "location"
    OVERVIEW = "overview"  # what do you sell / what do you have
    ORDER = "order"  # a confirmed order ("we'll take it, send the invoice")
    CALL = "call"
    HUMAN = "human"
    YES = "yes"
    NO = "no"
    MAYBE = "maybe"
    THANKS = "thanks"
    QUESTION = "question"


FACT_INTENTS = frozenset(
    {
        Intent.PRICE,
        Intent.AVAILABILITY,
        Intent.DELIVERY,
        Intent.PAYMENT,
        Intent.WARRANTY,
        Intent.DISCOUNT,
        Intent.LOCATION,
    }
)

_I = re.IGNORECASE
PATTERNS: dict[Intent, re.Pattern[str]] = {
    Intent.GREETING: re.compile(
        r"^\W*(hi|hello|hey|good (morning|afternoon|evening)|greetings|здравствуй\w*|привет\w*"
        r"|добр\w+ (день|утро|вечер)|доброго|салем|сәлем\w*|ассалаумағалейкум)\b",
        _I,
    ),
    Intent.PRICE: re.compile(
        r"\bprice|\bcost|how much|pricing|\btotal\b|altogether|in total|сколько стоит|сколько будет|сколько выйдет|"
        r"\bцен[аыуе]?\b|стоимост|почем|почём|прайс|\bстоит\b|\bитог|всего выйдет|в сумме|общая сумма|"
        r"баға|қанша тұрады|қанша болады|барлығы",
        _I,
    ),
    Intent.AVAILABILITY: re.compile(
        r"in stock|available|availability|have you got|do you (have|sell)|do you carry|в наличии|наличи|есть ли|"
        r"у вас есть|есть у вас|продаете|продаёте|бар ма|сатасыз",
        _I,
    ),
    Intent.DELIVERY: re.compile(r"deliver|shipping|\bship\b|доставк|доставит|доставля|привез|жеткіз", _I),
    Intent.PAYMENT: re.compile(
        r"\bpay|payment|installment|instalment|invoice|credit|оплат|рассрочк|\bсчет|\bсчёт|кредит|төле|бөліп",
        _I,
    ),
    Intent.WARRANTY: re.compile(r"warrant|guarantee|\breturn|гаранти|возврат|вернуть|кепілдік", _I),
    Intent.DISCOUNT: re.compile(r"discount|\bsale\b|cheaper|\bpromo|скидк|дешевле|акци|жеңілдік", _I),
    Intent.LOCATION: re.compile(
        r"address|where are you|location|opening hours|working hours|are you open|when are you open|адрес|"
        r"где вы|где находит|часы работы|режим работы|работаете ли|по субботам|мекенжай|қай жерде",
        _I,
    ),
    Intent.OVERVIEW: re.compile(
        r"what do you (sell|offer|have|make|do)\b|"
        r"what (kind|kinds|sort|sorts|type|types) of \w+( \w+)? (do you|have you|"
        r"you|are)|what (products|goods|items|services)|what can you offer|your (range|assortment|catalog)|"
        r"что (вы )?(продаете|продаёте|предлагаете|продаётся|продается)|что у вас (есть|продается|продаётся)|"
        r"как(ая|ие|ой|ую) (у вас )?\w+ (у вас )?(есть|бывает|продаете|продаёте)|какие (у вас )?(товары|продукция)|"
        r"какой (у вас )?ассортимент|чем (вы )?торгуете|ваш ассортимент|"
        r"не сатасыз|не ұсынасыз|қандай (тауар|өнім)",
        _I,
    ),
    Intent.ORDER: re.compile(
        r"we'?ll take (it|them)|i'?ll take (it|them)|(place|confirm) the order|send (me |us )?the invoice|"
        r"let'?s (do|place) the order|оформляем|оформляйте|давайте оформ|выставляйте сч|\bберём|"
        r"тапсырыс беремін|рәсімдейік",
        _I,
    ),
    Intent.CALL: re.compile(
        r"call me|give me a call|phone call|\bcall back|can you call|could you call|schedule a call|a call\b|"
        r"\bcall on\b|can we talk|let'?s talk|have a call|позвон|перезвон|созвон|звонок|звонк|"
        r"қоңырау|хабарласыңыз|сөйлесейік|сөйлесейiк",
        _I,
    ),
    Intent.HUMAN: re.compile(
        r"(talk|speak|chat|connect|transfer|put)\w*\s+(me\s+)?(to|with)\s+(a\s+|your\s+)?(human|real person|person|"
        r"manager|operator|someone)|real person|\bhuman\b|живой человек|живым человеком|с менеджером|"
        r"позовите|соедините|оператор|менеджер(а|у|ом)?\b",
        _I,
    ),
    Intent.YES: re.compile(
        r"^\W*(yes|yeah|yep|sure|of course|ok|okay|agreed|sounds good|let'?s do it|deal|go ahead|"
        r"да|ага|конечно|давайте|давай|хорошо|согласен|согласна|договорились|отлично|подходит|иә|иа|жарайды)\b",
        _I,
    ),
    Intent.NO: re.compile(
        r"^\W*(no|nope|not interested|no thanks|no, thanks|нет|не надо|не нужно|не интересно|неинтересно|жоқ|жок)\b"
        r"|not interested|не интересует|не актуально|уже купили|already bought",
        _I,
    ),
    Intent.MAYBE: re.compile(
        r"\bmaybe\b|\bperhaps\b|i'?ll think|think about it|not sure|let me think|later|может быть|\bвозможно\b|"
        r"подумаю|подумаем|не знаю|посмотрим|не уверен|позже|мүмкін|ойланамын",
        _I,
    ),
    Intent.THANKS: re.compile(r"\bthank|\bthanks|спасибо|благодар|рахмет", _I),
    Intent.QUESTION: re.compile(
        r"\?|^\W*(how|what|which|when|where|why|who|do you|can i|can you|could you|is there|are there|"
        r"сколько|какой|какая|какие|каков|когда|где|почему|можно|есть ли|как|нужно ли|қанша|қашан|қайда)\b",
        _I,
    ),
}

# Words that say what kind of question it is, not what it is about: they do not count when
# checking whether the documents answer the question.
INTENT_VOCABULARY = frozenset(
    tokens(
        """
        price prices cost costs much pricing how many available availability stock sell sells have got carry total
        altogether
        deliver delivery delivering shipping ship pay payment installment installments invoice warranty guarantee
        return discount sale cheaper showroom address location open hours working
        buy order need want looking interested tell know offer recommend options option
        цена цены цену стоимость стоит сколько почем почём прайс наличие наличии есть продаете продаёте доставка
        доставку доставки доставить доставляете привезти оплата оплату оплаты рассрочка рассрочку счет счёт
        гарантия гарантию возврат скидка скидку скидки дешевле акция шоурум адрес купить заказать заказ нужно нужен
        нужна нужны хочу интересует подскажите расскажите посоветуйте вариант варианты всего итого выйдет сумма
        баға қанша бар сатасыз сатасыздар сатасыңдар ұсынасыз ұсынасыздар жеткізу төлеу тұрады болады
        kind kinds sort type types product products goods item items range assortment catalog catalogue
        вид виды тип типы товар товары продукция ассортимент каталог
        """
    )
)
# Words around a question that say nothing about its subject: apologies, urgency, small talk.
FILLER_WORDS = frozenset(
    tokens(
        """
        sorry apologies urgent urgently asap away busy back again quick question wondering btw actually still late
        reply replied delay delayed missed earlier anyway also
        извините простите извиняюсь сорри срочно срочный пропал пропала отходил отходила занят занята был была
        вопрос вопросик кстати снова опять ещё еще поздно ответ
        кешіріңіз кешір жедел сәлеметсіз сәлем салем қайырлы күн
        """
    )
)
_TAG = re.compile(r"\[[^\]]{0,40}\]|\([^)]{0,25}\)")
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def detect_intents(text: str | None, extra: Mapping[str, Sequence[str]] | None = None) -> set[Intent]:
    """The intents of a message; ``extra``: a business's own words per topic (intent value)."""
    if not text:
        return set()
    words = tuple((topic, tuple(ws)) for topic, ws in (extra or {}).items() if topic in _TOPIC_INTENTS and ws)
    return set(_intents(text, words))  # a turn asks for the same message's intents several times


@functools.lru_cache(maxsize=2048)
def _intents(text: str, extra: tuple[tuple[str, tuple[str, ...]], ...]) -> frozenset[Intent]:
    found = {intent for intent, pattern in PATTERNS.items() if pattern.search(text)}
    for topic, words in extra:
        if word_starts(words).search(text):
            found.add(Intent(topic))
    if Intent.NO in found and Intent.QUESTION in found and not PATTERNS[Intent.NO].match(text):
        found.discard(Intent.NO)  # "no" inside a question is not a refusal
    return frozenset(found)


_TOPIC_INTENTS = frozenset(i.value for i in (*FACT_INTENTS, Intent.OVERVIEW))


@functools.lru_cache(maxsize=256)
def word_starts(words: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for a list of words or word beginnings ("кресл" finds "кресла"), case-insensitive."""
    ordered = sorted(set(words), key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in ordered) + ")", _I)


def question_focus(text: str) -> str:
    """The part of a message that asks: tags such as "[urgent]" dropped, and when some sentences
    ask (a question mark) and others do not ("Sorry, I was away. What does it cost?"), the asking ones."""
    cleaned = _TAG.sub(" ", text)
    sentences = [s.strip() for s in _SENTENCES.split(cleaned) if s.strip()]
    asking = [s for s in sentences if "?" in s]
    return "\n".join(asking) if asking and len(asking) < len(sentences) else cleaned
