"""The moderator's rules: client or not, how sure, and what that means for a contact (pure).

Categories (``db/tables.py``): ``prospect`` (a client), and for non-clients ``spam``,
``personal``, ``supplier``, ``job_seeker``, ``wrong_number``, ``other``. The rules look for
clear signals; without any, a new contact is a prospect with low confidence, so the agent
answers (a silent real customer is the worse mistake) and classifies again on the next turns
while the confidence stays below the threshold (at most ``max_turns`` times). A manager's
classification (``classified_by = manager``) is final. What a verdict means for the conversation
(classify again? stay silent?) is the :class:`ModerationPolicy`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent_service.domain.contact import ContactView
from agent_service.domain.intents import FACT_INTENTS, Intent, detect_intents, word_starts
from agent_service.domain.profile import BusinessProfile
from agent_service.domain.vocabulary import (
    CLIENT,
    NON_CLIENT,
    UNKNOWN,
    ClientCategory,
    InboundStatus,
    Verdict,
)

_I = re.IGNORECASE


def _signals(*pairs: tuple[int, str]) -> tuple[tuple[int, re.Pattern[str]], ...]:
    return tuple((weight, re.compile(pattern, _I)) for weight, pattern in pairs)


# Per category, (weight, pattern): 3 for a sender saying outright what they are ("wrong number"),
# 2 for a phrase that settles it on its own ("you won a prize", "looking for a job"), 1 for a hint
# ("http://", "ты"). English, Russian and Kazakh; words of a kind, not fixed sentences.
_SIGNALS: dict[ClientCategory, tuple[tuple[int, re.Pattern[str]], ...]] = {
    "spam": _signals(
        # prizes, lotteries, gambling
        (
            2,
            r"you(?:'ve| have)? (?:been )?(?:won|selected|chosen)|\bwin up to\b|\bwinner\b|"
            r"claim (?:your )?(?:prize|reward|gift)|\blotter|\bjackpot|\bgiveaway|\bprize\b|free spins?\b|"
            r"wheel of fortune|\bcasino|\bbetting|\bbets?\b on|"
            r"выиграл|выигрыш|победил\w* в|розыгрыш|лотере|разыгрыва|\bприз\w*\b|джекпот|колес\w* фортуны|"
            r"стал\w* обладател|сертификат на \d|казино|ставки на|букмекер|бонус \d+% на|"
            r"ұтып ал|ұтыс|жүлде|жеңімпаз",
        ),
        (1, r"congratulations|поздравляем|құттықтаймыз|сыйлық|cashback|кешбэк"),
        # phishing, account threats, approved loans
        (
            2,
            r"(?:verify|confirm|update|unlock|unblock|restore) (?:your )?"
            r"(?:account|card|details|identity|payment|number)|"
            r"(?:account|card|whatsapp|number) (?:has been |was |is |will be )?(?:temporarily )?"
            r"(?:suspended|blocked|locked|limited|deactivated|deleted|closed)|confirm here|customs fee|"
            r"parcel (?:could not|couldn't|can't) be|card number|(?:pre-?)?approved (?:for )?(?:a )?(?:loan|credit)|"
            r"(?:карт|аккаунт|учётн|учетн|номер|whatsapp)\w* (?:была |был |будет |временно )?"
            r"(?:заблокирован|деактивирован|удал[её]н)|подозрительн\w* операц|служб\w* безопасности|код из смс|"
            r"данные карты|разблокир|(?:вам )?одобрен\w* (?:кредит|займ)|кредит\w* одобрен|"
            r"бұғатталды|несие мақұлданды|мақұлданды|unclaimed (?:reward|prize|bonus)|reward (?:is )?waiting|"
            r"начислен\w* \d[\d ]* бонус|бонус\w* начислен",
        ),
        # cold marketing and advertising offers
        (
            2,
            r"\bseo\b|\bсео\b|\bsmm\b|\bсмм\b|social media (?:manager|marketing|agency)|followers|\blikes\b|"
            r"first page of google|google maps|instagram promotion|promotion services|advertising agency|"
            r"(?:grow|boost|increase|double) your (?:sales|business|followers|revenue|audience|page)|"
            r"more (?:clients|customers|leads|followers)|lead generation|digital marketing|marketing agency|"
            r"target(?:ed|ing) (?:ads|advertising)|(?:build|make|create) (?:modern |beautiful )?websites|"
            r"websites? (?:and|for) (?:online|business)|positive reviews|\btiktok\b|mass (?:mailing|messaging)|"
            r"your page has|top of google|google search results|в топ (?:google|гугл|яндекс)|"
            r"рекламн\w* (?:ролик|кампани|баннер)|"
            r"продвижени|раскрутк|таргет|подписчик|лайк|охват\w*|реклам\w* агентств|разместим (?:вашу )?реклам|"
            r"настро\w* реклам|реклам\w* (?:в google|в инстаграм|в instagram|для вашего|на билборд)|билборд|"
            r"разработк\w* сайт|создани\w* сайт|сделаем (?:вам )?(?:\w+ )?сайт|сайт\w* под ключ|лендинг|лидогенерац|"
            r"\d+ (?:заявок|клиентов) в месяц|привед\w* \d+ (?:заявок|клиентов)|отзыв\w* и рейтинг|\b2гис|"
            r"яндекс карт|рассылк\w* (?:по|на)|баз\w* (?:клиентов|контактов|данных)|"
            r"жарнама|сайт жасаймыз|клиенттер саны|клиенттер тартамыз|жазылушы",
        ),
        # money offers, schemes, scams
        (
            2,
            r"crypto|bitcoin|\bforex\b|trading signals|earn \$?\d+|make \$?\d+ a day|earn money|passive income|"
            r"guaranteed (?:profit|income)|investment opportunit|financial freedom|network marketing|\bmlm\b|"
            r"inheritance|\bloans?\b|"
            r"криптовалют|крипт|биткоин|заработ\w* (?:в интернете|от|до|без)|пассивный доход|доходност\w* \d+|"
            r"инвестиц\w* в|\bзайм|без справок|без залога|без вложений|сетев\w* (?:бизнес|маркетинг)|"
            r"получите \d+ ?гб|табыс табу|несие|қаржылық еркіндік",
        ),
        (
            2,
            r"(?:order|buy|shop) (?:via|on|at|from) our (?:website|site|store|shop)|заказывайте на нашем сайте|"
            r"переходите на наш сайт|за полцены|half price",
        ),
        # links and calls to act: hints only (a prospect may send a link to what they want)
        (
            1,
            r"https?://|www\.|bit\.ly|t\.me/|\b[\w-]+\.(?:top|xyz|online|click|info|site|shop|kz|com|ru|net)\b|"
            r"сілтеме|по ссылке|перейдите в|пишите в личку|пиши \+|write plus|no experience needed|from home|"
            r"only today|today only|limited offer|\d+% off\b|только сегодня|успейте|бүгін ғана|акция!|tap the link|"
            r"before midnight|распродаж|брендов\w*|скидки до \d+|first (?:month|video|one) (?:is )?free|"
            r"перв\w* (?:ролик|месяц) бесплатно|бірінші ай тегін|from every sale",
        ),
    ),
    "job_seeker": _signals(
        (
            2,
            r"are you hiring|you are hiring|hiring (?:a |an )?\w+|(?:open |vacant )?(?:positions?|vacanc\w*|openings?) "
            r"(?:for|still|open)|position (?:is )?still open|job (?:opening|as|application|offer)|"
            r"looking for (?:a )?(?:job|work|position)|(?:my|send you my) (?:cv|resume)|internship|"
            r"apply for (?:a|the) (?:job|position)|(?:do you need|need) (?:an? )?(?:employee|worker|assistant|"
            r"accountant|driver|designer|loader|seller|cleaner)|do you need one\?|could i work with you|"
            r"join your team|work for you|work as an? |if you (?:ever )?need someone|"
            r"ваканси|резюме|ищу (?:работу|подработку)|подработк|устроиться|трудоустро|возьм[её]те (?:меня|на работу)|"
            r"(?:нужны|нужен|требуются|требуется) (?:ли )?(?:вам )?(?:сотрудник|работник|сборщик|грузчик|продав|"
            r"водител|курьер|менеджер|бухгалтер|уборщ)|рассмотрите мою кандидатуру|кандидатур|стажировк|"
            r"на практику|хочу работать|работать у вас|на должность|могу работать|"
            r"работать (?:курьером|водителем|продавцом|грузчиком|сборщиком|менеджером|бухгалтером)|"
            r"набираете ли вы|набор сотрудников|"
            r"жұмыс іздеп|жұмысқа орналас|жұмыс бар ма|жұмысшы керек|түйіндеме|жұмыс істей аламын|"
            r"жұмыс істегім келеді|болып жұмыс|лауазым|бос орын",
        ),
        (
            1,
            r"years of (?:\w+ )?experience|\bportfolio\b|с опытом|опыт \d+ (?:лет|год)|опыт работы|"
            r"категори\w* [a-eаbвсд]\b|тәжірибе",
        ),
    ),
    "supplier": _signals(
        (
            2,
            r"we (?:are|'re) (?:a |an |the )?(?:\w+ ){0,4}(?:manufacturer|factory|producers?|supplier|distributor|"
            r"wholesaler|logistics company|transport company|printing house)|"
            r"we (?:manufacture|produce|supply|distribute)|"
            r"factory in|looking for (?:distributors|dealers|partners)|become your (?:partner|supplier)|"
            r"dealer prices|\bwholesale\b|\bmoq\b|purchasing (?:manager|department)|send (?:you )?samples|"
            r"(?:partnership|cooperation) (?:proposal|offer)|commercial offer|official distributor|"
            r"(?:can|could|would like to) (?:make|offer|provide|supply|produce|print|service|clean) .{0,60}"
            r"for your (?:company|business|office|shop|showroom|staff|employees)|may we offer you|"
            r"we (?:rent out|sell|provide|supply|produce|install|print) [\w ,-]{3,60}\b(?:for|to) "
            r"(?:warehouses|companies|businesses|offices|shops|retailers)|"
            r"производ(?:им|итель|ство)|фабрика|завод|поставщик|поставк|поставля\w*|оптом|интересно рассмотреть|"
            r"\bдилер|дистрибьют|ищ(?:ем|ет) партн|"
            r"сотрудничеств|коммерческ\w* предложени|транспортная компания|грузоперевоз|перевозим грузы|"
            r"упаковочн|по ценам завода|изготовим|по вашим чертежам|образц\w*|отдел\w* закупок|"
            r"предлага\w* (?:вам |вашей компании )?(?:услуг|обслуживани|сотрудничеств|поставк)|"
            r"для вашей компании|для вашего (?:бизнеса|офиса|шоурума)|"
            r"өндіреміз|өндіруші|серіктес|ынтымақтастық|жеткізуші|көтерме|тасымалдау компания|тасымалдаймыз|"
            r"логистикалық компания|компаниямыз|жұмыс істеуге дайынбыз|көтерме бағамен",
        ),
        (1, r"клининг|warehouse storage|last-mile|price list attached|прайс для|at good prices for your"),
    ),
    "personal": _signals(
        (
            2,
            r"\b(?:mom|mum|mommy|dad|daddy|honey|darling|babe|bro|sis|aunt|auntie|uncle|grandma|grandpa|cousin)\b|"
            r"love you|miss you|are we still on|dinner tonight|happy (?:birthday|new year)|pick me up|i'?m outside|"
            r"did you see what|see you (?:at \d|tonight|tomorrow|then|soon|later)|don'?t be late|"
            r"where are you\?\?|we'?re (?:all )?waiting (?:for you|at)|thanks for yesterday|so much fun|"
            r"\bмам[аы]?\b|\bпап[аы]?\b|сынок|доченька|тётя|тетя|дядя|бабушк|дедушк|дорог(?:ая|ой),|любим(?:ая|ый)|"
            r"братан|люблю тебя|скучаю|как ты\??|ты где|где ты|не жди|задержусь|не опаздывай|увидимся|заеду за|"
            r"с днём рождения|с днем рождения|поздравляю с|давно не виделись|скинь\b|фотки|шашлык|на футбол|"
            r"собрани\w* родител|у тебя есть|"
            r"на свадьбе|привет,? это [А-ЯЁ]|"
            r"қалайсың|кездесеміз|\bапа\b|\bәке\b|\bәже\w*|бауырым|жаным|досым|барасың|келесің|келе жатырмын|"
            r"туған күн|балалар|сабақтан",
        ),
        (
            1,
            r"\b(?:ты|тебя|тебе|твой|твоя|тобой)\b|\bсен\b|саған|hey man|\blol\b|haha|😂|😄|\bэто я\b|"
            r"\b(?:hey|hi),? it'?s [A-Z][a-z]+|\bmy (?:jacket|keys|phone|bag|charger)\b|"
            r"^[A-ZА-ЯЁ][a-zа-яё]+, (?:во сколько|ты|где|когда|привет)",
        ),
    ),
    "wrong_number": _signals(
        (
            3,
            r"wrong (?:number|chat|person|contact)|не тот номер|ошиб\w* номером|не туда (?:написал|попал)|"
            r"қате нөмір|қате жаз",
        ),
        (
            2,
            r"who(?:'s| is) this|who are you|you called me|is (?:this|that) you\b|trying to reach|"
            r"is this (?:mr|mrs|ms|dr)\.? \w+|(?:isn'?t|is not|no longer) \w+'s number|not \w+'s number|"
            r"не вам (?:отправил|написал)|записывал\w* к вам на|\w+(?:дың|дің|тың|тің|ның|нің) нөмірі ма|"
            r"is this (?:the )?(?:\w+ )?(?:clinic|service|shop|store|pharmacy|restaurant|salon|taxi|pizza|hotel|"
            r"school|reception|office of)|"
            r"не туда|не вам пис|вы кто|кто это|кто вы\??$|пришло сообщение с этого номера|номер сменил|это ты\?|"
            r"это (?:стоматолог|салон|аптека|автосервис|такси|клиника|больниц|ресторан|пиццер|школа|садик|жкх|"
            r"поликлиник|банк|гостиниц|отель)|кімсіз|бұл кім|дәріхана|емхана",
        ),
        (1, r"is this [A-Z][a-z]+\?|we met at|хабарлама келді|мне пришло сообщение"),
    ),
    "other": _signals(
        (
            2,
            r"verification code|one-?time (?:password|code)|your code is|код подтверждения|ваш код|"
            r"пункт выдачи|заказ №\s?\d+|order #\d+|код для входа|никому не сообщайте|"
            r"do not share (?:it|this code)",
        ),
    ),
}
# "Is this the hotel?" / "Это ЖКХ?" / "Бұл дәріхана ма?": asking for another business (see _asks_for_another).
_IS_THIS = re.compile(
    r"(?:^|[.!?]\s*)(?:hi|hello|здравствуйте|добрый день|алло|сәлеметсіз бе)?\W*"
    r"(?:is this(?: the)?|это(?: не)?|бұл)\s+((?:[\w-]{2,25}\s?){1,3}?)\s?(?:ма|ме)?\?",
    _I,
)
# Buying signals without a business file (the business's own words come from ``profile.products``).
_GENERIC_BUYING = re.compile(r"\b(?:order|buy|purchase|catalog\w*|заказ\w*|купить|покупк\w*|каталог\w*|тапсырыс)", _I)
_BUYING_INTENTS = FACT_INTENTS | {Intent.OVERVIEW, Intent.CALL, Intent.ORDER}


@dataclass(frozen=True)
class Classification:
    status: Verdict
    category: ClientCategory
    reason: str
    confidence: float


def _product_hits(text: str, products: Sequence[str]) -> int:
    """How many of the business's product words the text uses."""
    if not products:
        return 0
    return len({match.group(0).lower() for match in word_starts(tuple(products)).finditer(text)})


def _asks_for_another(text: str, profile: BusinessProfile | None) -> bool:
    """The sender asks whether we are some other business or person (not us, not what we sell)."""
    ours = [profile.name.lower(), *profile.products] if profile else []
    for match in _IS_THIS.finditer(text):
        named = match.group(1).lower()
        if named.strip() in ("вы", "you", "it", "он", "она") or any(word in named for word in ours):
            continue
        return True
    return False


def classify_rules(texts: Sequence[str], profile: BusinessProfile | None = None) -> Classification:
    """Classify from the contact's messages so far (oldest first); ``profile`` adds the business's words.

    Non-client signals are weighed against buying signals (questions about prices, delivery,
    payment ...; the business's product words; asking for a call). A currency or an amount alone
    is no buying signal: prize spam quotes amounts too.
    """
    text = "\n".join(t for t in texts if t)
    intents = detect_intents(text, profile.topic_words if profile else None)
    matched = {
        category: [w for w, pattern in signals if pattern.search(text)] for category, signals in _SIGNALS.items()
    }
    if _asks_for_another(text, profile):
        matched["wrong_number"].append(2)
    # A sender who says outright what they are ("wrong number") is taken at their word.
    category, weights = max(matched.items(), key=lambda item: (3 in item[1], sum(item[1])))
    strength = sum(weights)
    if max(weights, default=0) >= 2:
        # A clear offer, prize or job request: the product words in it are its own ("we produce office
        # chairs"), and only a question can still make it a customer's message.
        # ("у вас есть вакансии?" is no question about stock: "do you have" alone does not count then).
        buying = len(intents & (_BUYING_INTENTS - {Intent.AVAILABILITY})) if Intent.QUESTION in intents else 0
    else:
        products = profile.products if profile else ()
        buying = len(intents & _BUYING_INTENTS) + _product_hits(text, products) + len(_GENERIC_BUYING.findall(text))
    if strength and strength > buying:
        confidence = min(0.95, 0.5 + 0.15 * (strength - buying))
        return Classification(NON_CLIENT, category, f"{category.replace('_', ' ')} signals in the messages", confidence)
    if buying:
        confidence = min(0.95, 0.6 + 0.15 * buying)
        return Classification(CLIENT, "prospect", "asks about products, prices or terms", confidence)
    return Classification(CLIENT, "prospect", "no clear signal yet; treated as a prospect", 0.5)


@dataclass(frozen=True)
class ModerationPolicy:
    """What the moderator's verdict means for a contact: when to classify (again), when the AI
    stays silent, and whether a verdict still gets a sales reply. Recording (``workers/incoming``),
    the turn (``workers/turns``) and the sales agent (``sales.py``) all ask this one object.

    ``min_confidence``/``max_turns``: a verdict below the confidence is re-judged on the next turns,
    at most that many; ``drafts_when_held``: while a manager holds a contact the AI still drafts an
    answer for the manager (stored ``suppressed``, never sent)."""

    min_confidence: float = 0.7
    max_turns: int = 3
    drafts_when_held: bool = False

    def needs_classification(self, contact: ContactView) -> bool:
        """Classify on the first turn, and again while unsure, up to ``max_turns`` turns."""
        if contact.classified_by == "manager":
            return False
        if contact.client_status == UNKNOWN:
            return True
        confidence = contact.classification_confidence or 0.0
        return confidence < self.min_confidence and contact.classified_turns < self.max_turns

    def is_settled_non_client(self, contact: ContactView) -> bool:
        """A non-client the agent stays silent with (the moderator is sure, or a manager said so)."""
        if contact.client_status != NON_CLIENT:
            return False
        return contact.classified_by == "manager" or not self.needs_classification(contact)

    def ai_answers(self, contact: ContactView) -> bool:
        """Whether a reply of the AI may reach the prospect now: not while a manager holds the
        contact, not to a settled non-client."""
        return contact.owner != "human" and not self.is_settled_non_client(contact)

    def ai_thinks(self, contact: ContactView) -> bool:
        """Whether a turn calls the model at all: to answer, or to draft for the manager who holds it."""
        if contact.owner == "human":
            return self.drafts_when_held and not self.is_settled_non_client(contact)
        return self.ai_answers(contact)

    def inbound_status(self, contact: ContactView) -> InboundStatus:
        """``pending`` (a turn will handle it) or ``silent`` (recorded only)."""
        return "pending" if self.ai_thinks(contact) else "silent"

    def answers_as_client(self, classification: Classification) -> bool:
        """Whether this turn gets a sales reply: unsure non-client verdicts still get one."""
        return classification.status == CLIENT or classification.confidence < self.min_confidence


def classification_update(contact: ContactView, result: Classification) -> dict[str, Any]:
    """Column values for a new moderator verdict (nothing when a manager classified the contact)."""
    if contact.classified_by == "manager":
        return {}
    return {
        "client_status": result.status,
        "client_category": result.category,
        "classification_reason": result.reason[:500],
        "classification_confidence": round(result.confidence, 3),
        "classified_by": "moderator",
        "classified_turns": contact.classified_turns + 1,
    }
