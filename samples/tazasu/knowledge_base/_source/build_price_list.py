"""Build the second sample's price list ``samples/tazasu/knowledge_base/tazasu_price_list.pdf``.

TazaSu is an invented water-filter business in Astana: filters, reverse osmosis systems,
softeners and coolers with prices in KZT (written "164,500 KZT", unlike the furniture sample),
installation and service, delivery, payment, discounts and warranty, in English and Russian.
Each product is a paragraph set in a narrow column, so the PDF's text layer breaks sentences
(and prices) across lines the way real price lists do; the agent's loader joins them again.

Run from the repository root (needs fpdf2 from requirements-dev.txt and the DejaVu fonts; set
CATALOGUE_FONT_DIR to use another directory):

    .venv/bin/python samples/tazasu/knowledge_base/_source/build_price_list.py

The loader skips folders whose names start with ``_``, so this script is not indexed.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

OUTPUT = Path(__file__).resolve().parents[1] / "tazasu_price_list.pdf"
FONT_DIR = Path(os.environ.get("CATALOGUE_FONT_DIR", "/usr/share/fonts/truetype/dejavu"))
COLUMN_MM = 105  # narrow on purpose: long sentences wrap

# A section: its title and paragraphs (each paragraph is set as one wrapped block).
Section = tuple[str, list[str]]

EN: list[Section] = [
    (
        "TazaSu - clean water at home and in the office",
        [
            "TazaSu sells, installs and services water filters in Astana and Almaty: jug filters, under-sink "
            "filters, reverse osmosis systems, water softeners for houses and office coolers.",
            "We deliver across Kazakhstan. Our engineers install systems in Astana and Almaty.",
            "Service centre: Astana, Kabanbay Batyr Avenue 53, office 12. Open Monday to Saturday 9:00-19:00.",
            "All prices are in Kazakhstani tenge (KZT) and include VAT.",
        ],
    ),
    (
        "Filters and systems",
        [
            "Kristal K-1 jug filter, 3.5 litres, removes chlorine and improves taste. Price: 7,900 KZT. In stock.",
            "Trio T-3 under-sink filter with three cleaning stages and a separate tap for drinking water. "
            "Price: 39,900 KZT. In stock.",
            "AquaPure RO-5 reverse osmosis system with five filtration stages and a 12-litre tank, for hard tap "
            "water. Price: 164,500 KZT. In stock.",
            "AquaPure RO-7M reverse osmosis system with a mineraliser and a booster pump for low water pressure. "
            "Price: 219,000 KZT. Made to order in 5 working days.",
            "SoftLine S-25 water softener for houses, 25 litres of resin, stops limescale in pipes and boilers. "
            "Price: 389,000 KZT. Made to order in 10 working days.",
            "AquaDesk D-2 floor cooler with reverse osmosis filtration, hot and cold water, for offices of up to "
            "30 people. Price: 129,000 KZT. In stock.",
        ],
    ),
    (
        "Cartridges, installation and service",
        [
            "Cartridge K-1C for the Kristal K-1 jug, lasts about 2 months. Price: 2,400 KZT.",
            "Cartridge set for the Trio T-3, three cartridges, lasts about 6 months. Price: 9,900 KZT.",
            "Pre-filter set for the AquaPure RO-5 and RO-7M, three cartridges, lasts about 6 months. "
            "Price: 12,900 KZT.",
            "Membrane M-75 for the AquaPure systems, lasts 2 to 3 years. Price: 24,500 KZT.",
            "Installation of the Trio T-3 costs 8,000 KZT, of the AquaPure RO-5 or RO-7M 15,000 KZT, of the "
            "SoftLine S-25 45,000 KZT. An installation takes one to three hours.",
            "Water test at home in Astana and Almaty (hardness, iron, chlorine): free with the purchase of any "
            "system, otherwise 5,000 KZT.",
            "Care Plan: our engineer replaces the cartridges at your home every 6 months. Price: 4,500 KZT per "
            "month.",
        ],
    ),
    (
        "Delivery, payment, discounts, warranty",
        [
            "Delivery in Astana and Almaty takes one working day and is free for orders from 50,000 KZT; smaller "
            "orders cost 1,500 KZT.",
            "Delivery to other cities of Kazakhstan: by courier in 2-6 working days at the courier's rates. In "
            "other cities we do not install; every system comes with a video guide.",
            "Payment: cash or card on delivery, Kaspi QR, or a bank transfer with an invoice for companies.",
            "Kaspi Red installments: 3 months without overpayment.",
            "Order discount: 3% for orders from 200,000 KZT, 5% for orders from 500,000 KZT.",
            "Warranty: 2 years on filters, softeners and coolers, 5 years on the tank of the reverse osmosis "
            "systems. Returns: unused items in their original packaging within 14 days.",
        ],
    ),
]

RU: list[Section] = [
    (
        "TazaSu - чистая вода дома и в офисе",
        [
            "TazaSu продаёт, устанавливает и обслуживает фильтры для воды в Астане и Алматы: фильтры-кувшины, "
            "фильтры под мойку, системы обратного осмоса, умягчители для домов и кулеры для офиса.",
            "Доставляем по всему Казахстану. Наши мастера устанавливают системы в Астане и Алматы.",
            "Сервисный центр: Астана, проспект Кабанбай батыра 53, офис 12. Работаем с понедельника по субботу "
            "9:00-19:00.",
            "Все цены указаны в казахстанских тенге (KZT) с НДС.",
        ],
    ),
    (
        "Фильтры и системы",
        [
            "Фильтр-кувшин Kristal K-1, 3,5 литра, убирает хлор и улучшает вкус воды. Цена: 7,900 KZT. В наличии.",
            "Фильтр под мойку Trio T-3 с тремя ступенями очистки и отдельным краном для питьевой воды. "
            "Цена: 39,900 KZT. В наличии.",
            "Система обратного осмоса AquaPure RO-5 с пятью ступенями очистки и баком на 12 литров, для жёсткой "
            "водопроводной воды. Цена: 164,500 KZT. В наличии.",
            "Система обратного осмоса AquaPure RO-7M с минерализатором и насосом для низкого давления. "
            "Цена: 219,000 KZT. Под заказ за 5 рабочих дней.",
            "Умягчитель воды для дома SoftLine S-25, 25 литров смолы, защищает трубы и котёл от накипи. "
            "Цена: 389,000 KZT. Под заказ за 10 рабочих дней.",
            "Напольный кулер AquaDesk D-2 с очисткой обратным осмосом, горячая и холодная вода, для офиса до "
            "30 человек. Цена: 129,000 KZT. В наличии.",
        ],
    ),
    (
        "Картриджи, установка и обслуживание",
        [
            "Картридж K-1C для кувшина Kristal K-1, хватает примерно на 2 месяца. Цена: 2,400 KZT.",
            "Комплект картриджей для Trio T-3, три картриджа, хватает примерно на 6 месяцев. Цена: 9,900 KZT.",
            "Комплект префильтров для AquaPure RO-5 и RO-7M, три картриджа, хватает примерно на 6 месяцев. "
            "Цена: 12,900 KZT.",
            "Мембрана M-75 для систем AquaPure, служит 2-3 года. Цена: 24,500 KZT.",
            "Установка Trio T-3 стоит 8,000 KZT, AquaPure RO-5 или RO-7M - 15,000 KZT, SoftLine S-25 - "
            "45,000 KZT. Установка занимает от одного до трёх часов.",
            "Анализ воды на дому в Астане и Алматы (жёсткость, железо, хлор): бесплатно при покупке любой "
            "системы, иначе 5,000 KZT.",
            "Сервисный план Care Plan: мастер меняет картриджи у вас дома каждые 6 месяцев. Цена: 4,500 KZT "
            "в месяц.",
        ],
    ),
    (
        "Доставка, оплата, скидки, гарантия",
        [
            "Доставка по Астане и Алматы - один рабочий день, бесплатно при заказе от 50,000 KZT; для меньших "
            "заказов - 1,500 KZT.",
            "Доставка в другие города Казахстана: курьером за 2-6 рабочих дней по тарифам курьерской службы. В "
            "других городах мы не устанавливаем; к каждой системе есть видеоинструкция.",
            "Оплата: наличными или картой при доставке, Kaspi QR или безналичный расчёт со счётом для компаний.",
            "Рассрочка Kaspi Red: 3 месяца без переплаты.",
            "Скидка на заказ: 3% при заказе от 200,000 KZT, 5% при заказе от 500,000 KZT.",
            "Гарантия: 2 года на фильтры, умягчители и кулеры, 5 лет на бак систем обратного осмоса. Возврат: "
            "неиспользованный товар в оригинальной упаковке в течение 14 дней.",
        ],
    ),
]


def build(output: Path = OUTPUT) -> Path:
    regular, bold = FONT_DIR / "DejaVuSans.ttf", FONT_DIR / "DejaVuSans-Bold.ttf"
    if not regular.exists() or not bold.exists():
        sys.exit(f"Unicode TTF fonts not found in {FONT_DIR} (set CATALOGUE_FONT_DIR)")
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime(2026, 1, 5))  # reproducible output
    pdf.set_title("TazaSu price list 2026")
    pdf.set_author("TazaSu")
    pdf.add_font("DejaVu", "", str(regular))
    pdf.add_font("DejaVu", "B", str(bold))
    pdf.set_auto_page_break(auto=True, margin=15)
    for title, paragraphs in EN + RU:
        pdf.add_page()
        pdf.set_font("DejaVu", "B", 14)
        pdf.multi_cell(0, 8, title, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("DejaVu", "", 10)
        for paragraph in paragraphs:
            pdf.multi_cell(COLUMN_MM, 5.5, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2.5)
    output.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(output))
    return output


if __name__ == "__main__":
    print(build())
