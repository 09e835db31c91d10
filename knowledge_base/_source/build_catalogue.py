"""Build the sample catalogue ``knowledge_base/komfortoffice_catalogue.pdf`` (English and Russian).

KomfortOffice is an invented office-furniture business in Almaty: products with prices in KZT,
stock, delivery, assembly, payment and warranty terms, and an FAQ. The agent's offline engine
and its tests quote from this file, so every price is written exactly once per language and
each product's price sits on one line with its name.

Run from the repository root (needs fpdf2 from requirements-dev.txt and a Unicode TTF font,
DejaVu Sans by default; set CATALOGUE_FONT_DIR to use another directory):

    .venv/bin/python knowledge_base/_source/build_catalogue.py

The loader skips folders whose names start with ``_``, so this script is not indexed.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "knowledge_base" / "komfortoffice_catalogue.pdf"
FONT_DIR = Path(os.environ.get("CATALOGUE_FONT_DIR", "/usr/share/fonts/truetype/dejavu"))

# Each page: a title and blocks; a block is ("h", heading) | ("p", paragraph) | ("l", one line).
EN: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "KomfortOffice - office furniture in Almaty",
        [
            (
                "p",
                "KomfortOffice sells and delivers office furniture for companies and home offices in Almaty "
                "and across Kazakhstan. We furnish open spaces, meeting rooms and executive offices.",
            ),
            ("h", "Showroom and contacts"),
            ("l", "Showroom address: Almaty, Abay Avenue 150, 2nd floor."),
            ("l", "Showroom hours: Monday to Friday 10:00-18:00, Saturday 11:00-16:00."),
            ("l", "Managers answer WhatsApp messages on working days from 10:00 to 18:00."),
            ("h", "What we offer"),
            ("l", "Ergonomic chairs, desks, height-adjustable desks, meeting tables, storage and phone booths."),
            ("l", "Free 3D layout of your office for orders from 1 000 000 KZT."),
            ("l", "Corporate clients get one account manager and a VAT invoice."),
            (
                "p",
                "All prices in this catalogue are in Kazakhstani tenge (KZT, ₸) and include VAT. "
                "Prices are valid until 31 December 2026.",
            ),
        ],
    ),
    (
        "Price list: chairs",
        [
            ("l", "ErgoPro 300 ergonomic office chair: 89 900 ₸. In stock: 25 pcs."),
            (
                "p",
                "Mesh back, adjustable lumbar support, 3D armrests, seat depth adjustment, load up to 130 kg. "
                "Warranty 3 years.",
            ),
            ("l", "ErgoPro 500 executive chair (genuine leather): 159 900 ₸. In stock: 8 pcs."),
            (
                "p",
                "High back with headrest, synchronous tilt mechanism, aluminium base, load up to 150 kg. "
                "Warranty 3 years.",
            ),
            ("l", "Basic 100 operator chair: 34 900 ₸. In stock: 60 pcs."),
            ("p", "Fabric seat, gas lift, fixed armrests, load up to 110 kg. Warranty 1 year."),
            ("l", "V-20 visitor chair: 19 900 ₸. In stock: 120 pcs."),
            ("p", "Chrome frame, stackable up to 6 chairs, fabric or eco-leather seat. Warranty 1 year."),
        ],
    ),
    (
        "Price list: desks, tables, storage, booths",
        [
            ("l", "Standard 140 office desk (140 x 70 cm): 64 900 ₸. In stock: 40 pcs."),
            ("p", "Laminated top 25 mm, metal frame, cable tray. Colours: white, oak, graphite. Warranty 2 years."),
            ("l", "LiftDesk Duo height-adjustable desk (160 x 80 cm): 249 000 ₸. In stock: 12 pcs."),
            (
                "p",
                "Electric frame with two motors, height 62-127 cm, memory for 4 positions. "
                "Warranty 5 years on the frame.",
            ),
            ("l", "Forum 240 meeting table (240 x 110 cm, 8-10 seats): 189 000 ₸. Made to order in 14 working days."),
            ("l", "Archive 80 storage cabinet (80 x 42 x 200 cm): 74 500 ₸. In stock: 18 pcs."),
            ("l", "P-3 mobile pedestal (3 drawers, central lock): 29 900 ₸. In stock: 50 pcs."),
            ("l", "SilentPod S1 acoustic phone booth: 1 290 000 ₸. Made to order in 21 working days."),
            ("p", "SilentPod S1 has ventilation, LED lighting, a power socket and noise reduction up to 30 dB."),
        ],
    ),
    (
        "Delivery, assembly, payment, warranty",
        [
            ("h", "Delivery"),
            ("l", "Delivery in Almaty takes 1-2 working days for items in stock."),
            ("l", "Delivery in Almaty is free for orders from 300 000 ₸; smaller orders cost 5 000 ₸."),
            ("l", "Delivery to other cities of Kazakhstan: by transport company in 3-7 working days."),
            ("l", "The cost of delivery to other cities is calculated by a manager at the carrier's rates."),
            ("h", "Assembly"),
            ("l", "Assembly by our team costs 5% of the order value, minimum 7 000 ₸."),
            ("h", "Payment"),
            ("l", "Payment: bank transfer with a VAT invoice, Kaspi QR or a bank card."),
            ("l", "Kaspi installments: 0-0-12, twelve months without overpayment."),
            ("l", "Made-to-order items require a 50% prepayment."),
            ("l", "Volume discount: 5% for orders from 1 000 000 ₸, 7% for orders from 3 000 000 ₸."),
            ("h", "Warranty and returns"),
            ("l", "Warranty periods are listed with each product; warranty repair takes up to 10 working days."),
            ("l", "Returns: unused items in original packaging within 14 days of delivery."),
        ],
    ),
    (
        "Frequently asked questions",
        [
            ("l", "Can I try the chairs before buying? Yes, all chairs in stock are on display in the showroom."),
            ("l", "Do you work with companies? Yes, we issue a VAT invoice and sign a supply contract."),
            ("l", "Can I choose the colour of a desk? Standard 140 comes in white, oak and graphite."),
            ("l", "Is there a discount for large orders? Yes, 5% from 1 000 000 ₸ and 7% from 3 000 000 ₸."),
            ("l", "What if an item arrives damaged? We replace it free of charge within 3 working days."),
            ("l", "Do you deliver on Saturdays? Yes, in Almaty, by prior arrangement."),
            ("l", "Can you furnish a whole office? Yes, we make a free 3D layout for orders from 1 000 000 ₸."),
        ],
    ),
]

RU: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "KomfortOffice - офисная мебель в Алматы",
        [
            (
                "p",
                "KomfortOffice продаёт и доставляет офисную мебель для компаний и домашних офисов в Алматы "
                "и по всему Казахстану. Обставляем опенспейсы, переговорные и кабинеты руководителей.",
            ),
            ("h", "Шоурум и контакты"),
            ("l", "Адрес шоурума: Алматы, проспект Абая 150, 2 этаж."),
            ("l", "Часы работы шоурума: понедельник-пятница 10:00-18:00, суббота 11:00-16:00."),
            ("l", "Менеджеры отвечают в WhatsApp в рабочие дни с 10:00 до 18:00."),
            ("h", "Что мы предлагаем"),
            ("l", "Эргономичные кресла, столы, столы с регулировкой высоты, переговорные столы, шкафы, кабины."),
            ("l", "Бесплатная 3D-планировка офиса при заказе от 1 000 000 ₸."),
            ("l", "Корпоративным клиентам - персональный менеджер и счёт-фактура с НДС."),
            (
                "p",
                "Все цены в каталоге указаны в казахстанских тенге (₸) с НДС. Цены действуют до 31 декабря 2026 года.",
            ),
        ],
    ),
    (
        "Прайс-лист: кресла и стулья",
        [
            ("l", "Эргономичное офисное кресло ErgoPro 300: 89 900 ₸. В наличии: 25 шт."),
            (
                "p",
                "Сетчатая спинка, регулируемая поясничная поддержка, 3D-подлокотники, регулировка глубины "
                "сиденья, нагрузка до 130 кг. Гарантия 3 года.",
            ),
            ("l", "Кресло руководителя ErgoPro 500 (натуральная кожа): 159 900 ₸. В наличии: 8 шт."),
            (
                "p",
                "Высокая спинка с подголовником, синхромеханизм, алюминиевая крестовина, нагрузка до 150 кг. "
                "Гарантия 3 года.",
            ),
            ("l", "Кресло оператора Basic 100: 34 900 ₸. В наличии: 60 шт."),
            ("p", "Тканевое сиденье, газлифт, неподвижные подлокотники, нагрузка до 110 кг. Гарантия 1 год."),
            ("l", "Стул для посетителей V-20: 19 900 ₸. В наличии: 120 шт."),
            ("p", "Хромированный каркас, штабелируется до 6 стульев, сиденье из ткани или экокожи. Гарантия 1 год."),
        ],
    ),
    (
        "Прайс-лист: столы, шкафы, кабины",
        [
            ("l", "Офисный стол Standard 140 (140 x 70 см): 64 900 ₸. В наличии: 40 шт."),
            (
                "p",
                "Столешница ЛДСП 25 мм, металлический каркас, кабель-канал. Цвета: белый, дуб, графит. "
                "Гарантия 2 года.",
            ),
            ("l", "Стол с регулировкой высоты LiftDesk Duo (160 x 80 см): 249 000 ₸. В наличии: 12 шт."),
            (
                "p",
                "Электрический каркас с двумя моторами, высота 62-127 см, память на 4 положения. "
                "Гарантия 5 лет на каркас.",
            ),
            ("l", "Переговорный стол Forum 240 (240 x 110 см, 8-10 мест): 189 000 ₸. Под заказ за 14 рабочих дней."),
            ("l", "Шкаф для документов Archive 80 (80 x 42 x 200 см): 74 500 ₸. В наличии: 18 шт."),
            ("l", "Мобильная тумба P-3 (3 ящика, центральный замок): 29 900 ₸. В наличии: 50 шт."),
            ("l", "Акустическая кабина SilentPod S1: 1 290 000 ₸. Под заказ за 21 рабочий день."),
            ("p", "В кабине SilentPod S1 есть вентиляция, LED-освещение, розетка и шумоподавление до 30 дБ."),
        ],
    ),
    (
        "Доставка, сборка, оплата, гарантия",
        [
            ("h", "Доставка"),
            ("l", "Доставка по Алматы - 1-2 рабочих дня для товаров в наличии."),
            ("l", "Доставка по Алматы бесплатна при заказе от 300 000 ₸; для меньших заказов - 5 000 ₸."),
            ("l", "Доставка в другие города Казахстана: транспортной компанией за 3-7 рабочих дней."),
            ("l", "Стоимость доставки в другие города рассчитывает менеджер по тарифам перевозчика."),
            ("h", "Сборка"),
            ("l", "Сборка нашей командой стоит 5% от суммы заказа, минимум 7 000 ₸."),
            ("h", "Оплата"),
            ("l", "Оплата: безналичный расчёт со счётом-фактурой, Kaspi QR или банковская карта."),
            ("l", "Рассрочка Kaspi: 0-0-12, двенадцать месяцев без переплаты."),
            ("l", "Для товаров под заказ нужна предоплата 50%."),
            ("l", "Скидка за объём: 5% при заказе от 1 000 000 ₸, 7% при заказе от 3 000 000 ₸."),
            ("h", "Гарантия и возврат"),
            ("l", "Гарантийный срок указан у каждого товара; гарантийный ремонт - до 10 рабочих дней."),
            ("l", "Возврат: неиспользованный товар в оригинальной упаковке в течение 14 дней после доставки."),
        ],
    ),
    (
        "Частые вопросы",
        [
            ("l", "Можно ли посидеть в кресле до покупки? Да, все кресла в наличии выставлены в шоуруме."),
            ("l", "Вы работаете с юрлицами? Да, выставляем счёт-фактуру с НДС и заключаем договор поставки."),
            ("l", "Можно выбрать цвет стола? Standard 140 бывает белым, дуб и графит."),
            ("l", "Есть скидка на большой заказ? Да, 5% от 1 000 000 ₸ и 7% от 3 000 000 ₸."),
            ("l", "Что если товар пришёл повреждённым? Заменим бесплатно в течение 3 рабочих дней."),
            ("l", "Доставляете ли вы по субботам? Да, по Алматы, по предварительной договорённости."),
            ("l", "Можете обставить весь офис? Да, делаем бесплатную 3D-планировку при заказе от 1 000 000 ₸."),
        ],
    ),
]


def build(output: Path = OUTPUT) -> Path:
    regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
    if not regular.exists() or not bold.exists():
        sys.exit(f"Unicode TTF fonts not found in {FONT_DIR} (set CATALOGUE_FONT_DIR)")
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime(2026, 1, 5))  # reproducible output
    pdf.set_title("KomfortOffice catalogue 2026")
    pdf.set_author("KomfortOffice")
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold))
    pdf.set_auto_page_break(auto=True, margin=15)
    for title, blocks in EN + RU:
        pdf.add_page()
        pdf.set_font("DejaVu", "B", 15)
        pdf.multi_cell(0, 9, title, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        for kind, text in blocks:
            if kind == "h":
                pdf.ln(2)
                pdf.set_font("DejaVu", "B", 12)
                pdf.multi_cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.set_font("DejaVu", "", 9)
                pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
                if kind == "p":
                    pdf.ln(1.5)
    output.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(output))
    return output


if __name__ == "__main__":
    print(build())
