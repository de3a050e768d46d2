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
# People write ID numbers grouped (110105-19491231-002X, 1101 0519 4912 3100 2X,
# 110105.19491231.002X), after a label glued to it (ID11010519491231002X) or run
# into a phone number. So the search runs on "digit runs": digits and X with up
# to three separator characters between them, read with the separators removed.
_ID_SEPARATORS = " \u00a0\u3000-‐‑–—_.·・/\\,，、:："
_DIGIT_RUN = re.compile(rf"[0-9Xx](?:[{re.escape(_ID_SEPARATORS)}]{{0,3}}[0-9Xx])*")
_ID_SHAPE = re.compile(r"\d{17}[0-9Xx]")
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
    if not id_number_is_plausible(number):
        return False
    check = _ID_CHECK_CHARS[sum(int(d) * w for d, w in zip(number, _ID_WEIGHTS, strict=False)) % 11]
    return number[17].upper() == check


def mask_id_number(number: str) -> str:
    """Keep the first 4 (province + city) and last 2 characters; hide the birth date."""
    return number[:4] + "*" * (len(number) - 6) + number[-2:].upper()


def mask_phone(digits: str) -> str:
    return digits[:3] + "****" + digits[-4:]


def _digit_runs(clean: str) -> Iterable[tuple[str, list[int]]]:
    """Each run of digits/X with its separators removed, and for every character
    of that compact form its offset in `clean`."""
    for m in _DIGIT_RUN.finditer(clean):
        offsets = [i for i in range(m.start(), m.end()) if clean[i] in "0123456789Xx"]
        yield "".join(clean[i] for i in offsets).upper(), offsets


def id_number_is_plausible(number: str) -> bool:
    """18 characters shaped like an ID number: a province code and a real birth
    date, whatever the check character says (a mistyped ID is still an ID)."""
    if not _ID_SHAPE.fullmatch(number) or not "11" <= number[:2] <= "82":
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return date(1900, 1, 1) <= born <= date.today()


def _id_windows(clean: str, accept: Callable[[str], bool]) -> list[tuple[int, int, str]]:
    """(start, end, number) of every 18-character window of a digit run that
    `accept` takes, as spans of `clean`; windows may overlap."""
    found = []
    for compact, offsets in _digit_runs(clean):
        for i in range(len(compact) - 17):
            window = compact[i : i + 18]
            if accept(window):
                found.append((offsets[i], offsets[i + 17] + 1, window))
    return found


def extract_id_numbers(text: str) -> list[Entity]:
    """Resident ID numbers with a valid checksum, in any common writing (grouped
    by spaces, dashes or dots, after a label, run into other digits); value is
    the masked form, never the number."""
    found: list[Entity] = []
    for start, end, number in _id_windows(_clean(text), id_number_is_valid):
        entity = Entity("id_number", mask_id_number(number), start, end, EXTRACTOR)
        if not _overlaps(entity, found):
            found.append(entity)
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


def id_number_spans(text: str) -> list[tuple[int, int]]:
    """Merged spans of `text` that hold (or may hold) an ID number: every
    window with a valid checksum or the shape of one (province + birth date),
    and any other 18-character digit run. For masking: nothing in them is kept."""
    clean = _clean(text)
    spans = [(s, e) for s, e, _ in _id_windows(clean, id_number_is_plausible)]
    for compact, offsets in _digit_runs(clean):
        if len(compact) == 18:
            spans.append((offsets[0], offsets[-1] + 1))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _mask_span(chars: str) -> str:
    """An 18-character ID keeps its first 4 and last 2 characters; a longer
    stretch (overlapping candidates) keeps none."""
    compact = "".join(c for c in fold_width(chars) if c in "0123456789Xx")
    if len(compact) == 18:
        return mask_id_number(compact)
    return "*" * len(compact)


def mask_id_numbers(text: str) -> str:
    """`text` with every ID number (`id_number_spans`) masked. A mask that would
    touch other digits gets a space, so that a phone run into an ID stays a phone."""
    out = []
    pos = 0
    for start, end in id_number_spans(text):
        out.append(text[pos:start])
        if start > 0 and text[start - 1].isdigit():
            out.append(" ")
        out.append(_mask_span(text[start:end]))
        if end < len(text) and text[end].isdigit():
            out.append(" ")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask_personal_data(text: str, *, mask_phones: bool = False) -> str:
    """`text` with every ID number replaced by its masked form (and, with
    `mask_phones`, every mobile number by 139****5678), for logs and storage."""
    masked = mask_id_numbers(text)
    if not mask_phones:
        return masked
    out = []
    pos = 0
    for e in extract_phones(masked):
        out.append(masked[pos : e.start])
        out.append(mask_phone(str(e.value)))
        pos = e.end
    out.append(masked[pos:])
    return "".join(out)
