"""What a prospect's message asks for, by rules (pure; English, Russian, some Kazakh).

Used by the offline engine to pick an answer and by the moderator for buying signals. A
message can carry several intents ("how much is it and do you deliver?").
"""

from __future__ import annotations

import enum
import re

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
        r"\bprice|\bcost|how much|pricing|сколько стоит|сколько будет|\bцен[аыуе]?\b|стоимост|почем|почём|прайс|"
        r"\bстоит\b|баға|қанша тұрады|\bтенге\b|₸",
        _I,
    ),
    Intent.AVAILABILITY: re.compile(
        r"in stock|available|availability|have you got|do you (have|sell)|do you carry|в наличии|наличи|есть ли|"
        r"у вас есть|есть у вас|продаете|продаёте|бар ма|сатасыз",
        _I,
    ),
    Intent.DELIVERY: re.compile(r"deliver|shipping|\bship\b|доставк|доставит|доставля|привез|жеткіз", _I),
    Intent.PAYMENT: re.compile(
        r"\bpay|payment|installment|instalment|invoice|credit|kaspi|оплат|рассрочк|\bсчет|\bсчёт|кредит|төле|бөліп",
        _I,
    ),
    Intent.WARRANTY: re.compile(r"warrant|guarantee|\breturn|гаранти|возврат|вернуть|кепілдік", _I),
    Intent.DISCOUNT: re.compile(r"discount|\bsale\b|cheaper|скидк|дешевле|акци|жеңілдік", _I),
    Intent.LOCATION: re.compile(
        r"showroom|address|where are you|location|opening hours|working hours|are you open|шоурум|адрес|"
        r"где вы|где находит|часы работы|режим работы|мекенжай",
        _I,
    ),
    Intent.CALL: re.compile(
        r"call me|give me a call|phone call|\bcall back|can you call|could you call|schedule a call|a call\b|"
        r"позвон|перезвон|созвон|звонок|звонк|қоңырау",
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
        price prices cost costs much pricing how many available availability stock sell sells have got carry
        deliver delivery delivering shipping ship pay payment installment installments invoice warranty guarantee
        return discount sale cheaper showroom address location open hours working
        buy order need want looking interested tell know offer recommend options option
        цена цены цену стоимость стоит сколько почем почём прайс наличие наличии есть продаете продаёте доставка
        доставку доставки доставить доставляете привезти оплата оплату оплаты рассрочка рассрочку счет счёт
        гарантия гарантию возврат скидка скидку скидки дешевле акция шоурум адрес купить заказать заказ нужно нужен
        нужна нужны хочу интересует подскажите расскажите посоветуйте вариант варианты
        баға қанша бар сатасыз жеткізу төлеу
        """
    )
)


def detect_intents(text: str | None) -> set[Intent]:
    if not text:
        return set()
    found = {intent for intent, pattern in PATTERNS.items() if pattern.search(text)}
    if Intent.NO in found and Intent.QUESTION in found and not PATTERNS[Intent.NO].match(text):
        found.discard(Intent.NO)  # "no" inside a question is not a refusal
    return found
