"""Rule-based entity extractors: phone, amount, ticket_id, id_number.

Every extractor takes the raw message and returns `Entity` objects whose
`start`/`end` are character offsets into that raw text. Matching runs on a
copy with full-width ASCII folded to half-width, which is a one-to-one
character mapping, so offsets carry over unchanged.

`id_number` values are never the number itself: the value is the masked form
(`mask_id_number`: first 4 and last 2 characters kept, the 12 in between —
which include the birth date — replaced by `*`), so an entity can be logged or
stored without leaking the ID.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date

from nlu.tokenizer import fold_width, sanitize_text
from nlu.types import Entity

EXTRACTOR = "tongxin_rules"

# --- phone ---------------------------------------------------------------
# Mainland mobile: 1[3-9] + 9 digits; single spaces or dashes may separate the
# digits ("139 1234 5678"); an optional +86 / 0086 / 86 prefix is part of the span.
_PHONE = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[ \-]?)?(1[3-9](?:[ \-]?\d){9})(?!\d)")

# --- id_number -----------------------------------------------------------
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6}) ?(\d{8}) ?(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK_CHARS = "10X98765432"

# --- ticket_id -----------------------------------------------------------
# The project prints tickets as TX + yymmdd + "-" + a sequence of 4 or more digits.
_TICKET = re.compile(r"(?<![0-9A-Za-z])[Tt][Xx][ \-]?(\d{6})[ \-]?(\d{4,})(?!\d)")

# --- amount --------------------------------------------------------------
_CN_DIGITS = "零〇一二两三四五六七八九壹贰叁肆伍陆柒捌玖"
_CN_UNITS = "十拾百佰千仟万萬亿"
_ARABIC = r"\d+(?:,\d{3})*(?:\.\d+)?"
# A number starts with a digit (Arabic or Chinese) or 十; 百/千/万 alone never
# start one, so 百姓, 千万别 and 万一 are not amounts. Digit runs alternate with
# units (3万5千, 两万五, 十万零五百); two digit runs of different scripts never
# touch, so in ¥30000一年 the number ends at 30000.
_NUMBER = (
    rf"(?:{_ARABIC}|[{_CN_DIGITS}]+|[十拾][{_CN_DIGITS}]?)"
    rf"(?:[{_CN_UNITS}]+(?:{_ARABIC}|[{_CN_DIGITS}]+)?)*"
)
_AMOUNT = re.compile(
    rf"(?P<prefix>[¥￥]\s*|人民币\s*|(?i:rmb)\s*)?"
    rf"(?P<number>{_NUMBER})"
    rf"(?P<short>\s*[wWkK](?![A-Za-z]))?"
    rf"(?P<more>多|余)?"
    rf"(?P<currency>\s*(?:块钱|块|元|圆|人民币|(?i:rmb)))?"
)
# Money words after which a bare number (no unit, no 元) is still an amount:
# "想贷30000", "欠了我8000".
_MONEY_CONTEXT = re.compile(
    r"(?:贷款|贷|借款|借|欠款|欠|额度|金额|工资|押金|房租|租金|赔偿|赔|罚款|费用|花了|付了|转了|本金)"
    r"[了我他她你给共约大概才有只剩还就差]{0,4}$"
)
# A unit that counts something other than money right after the number.
_NON_MONEY_AFTER = re.compile(
    r"\s*(?:[个人次名位户家间套栋幢层楼号米里克斤吨平岁年月日天号小分秒件条张台辆只本字页%‰度厘期倍]|周(?!转))"
)
# "一块地皮", "一块玻璃": 块 counts a thing there, not yuan.
_BLOCK_OF = re.compile(r"[地田石砖板布肉糕表屏玻牌匾区空草菜瓦木铁]")
# "两万一起还": the 一 after 万 starts 一起, it is no digit of the amount.
_TRAILING_WORD = re.compile(r"[起共样直定般下些点旦切同概次会阵边块]")
_MAGNITUDE = {"万": 10_000, "萬": 10_000, "w": 10_000, "千": 1_000, "k": 1_000, "亿": 100_000_000}
_MIN_BARE_AMOUNT = 100


def _clean(text: str) -> str:
    return fold_width(sanitize_text(text))


# Phones read out in Chinese digits ("一三九…", "幺三八…"), one character for one.
_SPOKEN_DIGITS = str.maketrans("零〇洞幺一二三四五六七八九", "0001123456789")


def extract_phones(text: str) -> list[Entity]:
    """Mainland mobile numbers, also in Chinese digits; value is the 11 digits."""
    found = []
    for m in _PHONE.finditer(_clean(text).translate(_SPOKEN_DIGITS)):
        digits = re.sub(r"\D", "", m.group(1))
        found.append(Entity("phone", digits, m.start(), m.end(), EXTRACTOR))
    return found


def id_number_is_valid(number: str) -> bool:
    """GB 11643-1999: 17 digits + check character, a real birth date, a province code."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    check = _ID_CHECK_CHARS[sum(int(d) * w for d, w in zip(number, _ID_WEIGHTS, strict=False)) % 11]
    if number[17].upper() != check:
        return False
    if not "11" <= number[:2] <= "82":
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return date(1900, 1, 1) <= born <= date.today()


def mask_id_number(number: str) -> str:
    """Keep the first 4 (province + city) and last 2 characters; hide the birth date."""
    return number[:4] + "*" * (len(number) - 6) + number[-2:].upper()


def mask_phone(digits: str) -> str:
    return digits[:3] + "****" + digits[-4:]


def extract_id_numbers(text: str) -> list[Entity]:
    """Resident ID numbers with a valid checksum; value is the masked form, never the number."""
    found = []
    for m in _ID_NUMBER.finditer(_clean(text)):
        number = "".join(m.groups()).upper()
        if id_number_is_valid(number):
            found.append(Entity("id_number", mask_id_number(number), m.start(), m.end(), EXTRACTOR))
    return found


def format_ticket_id(yymmdd: str, sequence: str) -> str:
    return f"TX{yymmdd}-{sequence}"


def normalise_ticket_id(raw: str) -> str | None:
    """`tx2611260042`, `TX 261126-0042` ... -> `TX261126-0042`; None when it isn't one."""
    m = _TICKET.fullmatch(_clean(raw).strip())
    if m is None or not _plausible_yymmdd(m.group(1)):
        return None
    return format_ticket_id(m.group(1), m.group(2))


def _plausible_yymmdd(yymmdd: str) -> bool:
    month, day = int(yymmdd[2:4]), int(yymmdd[4:6])
    return 1 <= month <= 12 and 1 <= day <= 31


def extract_ticket_ids(text: str) -> list[Entity]:
    """Ticket numbers; value normalised to `TX261126-0042`."""
    found = []
    for m in _TICKET.finditer(_clean(text)):
        if _plausible_yymmdd(m.group(1)):
            value = format_ticket_id(m.group(1), m.group(2))
            found.append(Entity("ticket_id", value, m.start(), m.end(), EXTRACTOR))
    return found


def _number_value(number: str, short: str) -> float | None:
    number = number.replace(",", "")
    scale = _MAGNITUDE.get(short.strip().lower(), 1) if short else 1
    if re.fullmatch(r"\d+(?:\.\d+)?", number):
        return float(number) * scale
    # Chinese or mixed numerals (五万, 两万五, 1万5千): cn2an's "smart" mode reads
    # both scripts; imported here because it costs ~0.15 s and most messages
    # never need it.
    import cn2an

    try:
        value = cn2an.cn2an(number, "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return float(value) * scale


def _end_of_magnitude(number: str) -> int | None:
    """Index just after a 万/千/亿 that is followed by exactly one digit (十万|一), else None."""
    if len(number) >= 3 and number[-2] in "万萬千仟亿" and number[-1] in _CN_DIGITS + "0123456789":
        return len(number) - 1
    return None


def extract_amounts(text: str) -> list[Entity]:
    """Money as integer yuan. A number counts only with money evidence: a magnitude
    (万, 千, w, k), a currency word (元, 块, 块钱), a ¥ sign, or a money verb right
    before it (贷, 借, 欠 ...). So 3号楼, 3.45%, 1510服务圈, 500字 and 15岁 are not amounts."""
    clean = _clean(text)
    found = []
    for m in _AMOUNT.finditer(clean):
        number, short = m.group("number"), m.group("short") or ""
        has_magnitude = bool(short) or any(u in number for u in "万萬千仟亿")
        has_currency = bool(m.group("prefix") or m.group("currency"))
        end = m.end()
        currency = (m.group("currency") or "").strip()
        if currency == "块" and _BLOCK_OF.match(clean, end):
            continue
        if (
            not short
            and not m.group("currency")
            and len(number) >= 2
            and number[-1] == "一"
            and number[-2] in "万萬千仟"
            and _TRAILING_WORD.match(clean, m.end("number"))
        ):
            number, end = number[:-1], m.end("number") - 1
            has_magnitude = True
        if not has_currency and _NON_MONEY_AFTER.match(clean, end):
            # 贷十万一年 / 贷一万一个月: the digits after the last 万/千 start the
            # next quantity (一年), so the amount ends at the unit.
            cut = _end_of_magnitude(number)
            if short or m.group("more") or cut is None:
                continue
            number, end = number[:cut], m.start("number") + cut
        if not (has_magnitude or has_currency) and not _MONEY_CONTEXT.search(
            clean, max(0, m.start() - 8), m.start()
        ):
            continue
        value = _number_value(number, short)
        if value is None or value <= 0:
            continue
        if not (has_magnitude or has_currency) and value < _MIN_BARE_AMOUNT:
            continue
        start = m.start("prefix") if m.group("prefix") else m.start("number")
        found.append(Entity("amount", round(value), start, end, EXTRACTOR))
    return found


# Earlier extractors win overlaps: an ID number contains phone-like and
# amount-like digit runs, a ticket id contains a date-like run.
EXTRACTORS: tuple[Callable[[str], list[Entity]], ...] = (
    extract_id_numbers,
    extract_ticket_ids,
    extract_phones,
    extract_amounts,
)


def _overlaps(entity: Entity, taken: Iterable[Entity]) -> bool:
    return any(entity.start < t.end and t.start < entity.end for t in taken)


def extract_entities(text: str) -> list[Entity]:
    """All entities in `text`, non-overlapping, ordered by position."""
    taken: list[Entity] = []
    for extractor in EXTRACTORS:
        for entity in extractor(text):
            if not _overlaps(entity, taken):
                taken.append(entity)
    return sorted(taken, key=lambda e: e.start)


def mask_personal_data(text: str, *, mask_phones: bool = False) -> str:
    """`text` with every ID number replaced by its masked form (and, with
    `mask_phones`, every mobile number by 139****5678), for logs and storage."""
    spans: list[tuple[int, int, str]] = []
    clean = _clean(text)
    ids = extract_id_numbers(text)
    for e in ids:
        spans.append((e.start, e.end, str(e.value)))
    if mask_phones:
        for e in extract_phones(text):
            if not _overlaps(e, ids):
                spans.append((e.start, e.end, mask_phone(str(e.value))))
    # Also catch 18-character runs that fail the checksum: a mistyped ID is
    # still somebody's ID.
    for m in _ID_NUMBER.finditer(clean):
        if not any(m.start() < end and start < m.end() for start, end, _ in spans):
            spans.append((m.start(), m.end(), mask_id_number("".join(m.groups()))))
    out = []
    pos = 0
    for start, end, replacement in sorted(spans):
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)
