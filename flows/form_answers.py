"""What a message contributes to an open form: values for the slot asked, for
other empty slots, and corrections of earlier answers.

Pure functions of the flow definitions, the form and the parsed message; the
dialogue engine decides what to say about the result.
"""

from __future__ import annotations

import re

from flows.definitions import FlowBook, FlowSpec, SlotSpec
from flows.form_fill import fill
from flows.slots import (
    CJK,
    contains_any,
    find_name,
    from_patterns,
    meaningful_remainder,
)
from flows.state import FormState
from nlu.tokenizer import fold_for_matching, normalize_text
from nlu.types import Entity, ParseResult

# Bare acceptances: after an FAQ answer they start the offered form; as the
# answer to "what happened" they are no answer at all.
ACCEPT_WORDS = ("申请", "办理", "预约", "报名", "好", "要", "好的", "可以", "办", "我要申请")
_SENTENCE = re.compile(r"[^。！？?!\n]+[。！？?!]?")
_ASKS = re.compile(r"[?？]|[吗呢么嘛伐][\s。.!！]*$|阿好")


def prefill(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    *,
    from_opening: bool = True,
    profile: dict[str, str] | None = None,
) -> None:
    """Fill what the opening message already says ("开小吃店想贷五万" -> amount);
    without `from_opening`, free-text slots (the description) are left alone."""
    fill(book, flow, form, text, parse, asked=None, profile=profile or {}, free_text=False)
    if not from_opening:
        return
    name = form.slots.get("name")
    # What the message says besides the name and its questions ("請問…還需要志願者嗎。
    # 我叫林美玲" and "伲想报名做志愿者，阿好？" say no skill).
    told = "".join(s for s in _SENTENCE.findall(text) if not _ASKS.search(fold_for_matching(s)))
    told_rest = _said_besides(told, str(name) if name else "", book)
    rest = meaningful_remainder(text, parse, book)
    for slot in flow.slots:
        if not slot.from_opening or (slot.name in form.slots and slot.name not in form.vague):
            continue
        if slot.name != "description" and len(told_rest) < 3:
            continue
        if len(rest) >= slot.min_chars:
            # "我以前在电器厂干过，冰箱洗衣机啥的都会修，想报名": the story is the answer.
            form.slots[slot.name] = text[:500]
            if slot.name in form.vague:
                form.vague.remove(slot.name)


_ABOUT_SELF = re.compile(r"我叫|叫我|我是|我姓|名字|身份证号?|\d|\*")


def _said_besides(text: str, name: str, book: FlowBook) -> str:
    """The words of `text` that are not its name, phone, ID or filler."""
    rest = fold_for_matching(text.replace(name, "") if name else text)
    for word in (*book.filler_words, *book.phone_labels):
        rest = rest.replace(word, "")
    return "".join(CJK.findall(_ABOUT_SELF.sub("", rest)))


def missing_slot(flow: FlowSpec, form: FormState) -> SlotSpec | None:
    """The next slot to ask: essential ones until given, nice-to-have ones once."""
    for slot in flow.slots:
        if slot.name in form.slots or slot.name in form.declined:
            continue
        if slot.optional and slot.name in form.asked_once:
            continue
        return slot
    return None


def apply_corrections(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    *,
    require_marker: bool,
) -> bool:
    """Change earlier answers: "电话写错了，是…", "金额改成八万", "名字写错了，是王建军",
    "不是楼上邻居，是楼下邻居". At the confirmation a plain new phone, amount or
    pattern value ("幸福小区5栋") is taken as a correction too."""
    marked = contains_any(text, book.correction_words)
    if require_marker and not marked:
        return False
    if _contrast(form, text):
        return True
    tail = _after_last_marker(text, book.correction_words) if marked else text
    changed = False
    for slot in flow.slots:
        if slot.name not in form.slots:
            continue
        value: str | int | None = None
        targeted = contains_any(text, book.field_words.get(slot.name, ()))
        if slot.type in ("phone", "amount"):
            entities = [e for e in parse.entities if e.entity == slot.type]
            if entities:
                raw = _corrected_value(text, entities)
                value = int(raw) if slot.type == "amount" else str(raw)
                if slot.type == "amount" and not _in_range(slot, int(raw)):
                    value = None
        elif slot.type == "name":
            if targeted:
                value = find_name(tail, book, answering=True)
        elif targeted and marked and len(tail) >= slot.min_chars:
            value = tail
        else:
            value = from_patterns(slot, normalize_text(tail))
        if value is not None and value != form.slots[slot.name]:
            form.slots[slot.name] = value
            changed = True
    return changed


# "不是三号楼是五号楼", "三号楼改成五号楼", "是五号楼不是三号楼".
_CONTRASTS = (
    re.compile(
        r"不是(?P<old>[^，,。.!！？?\s]{1,12}?)[，,\s]*(?:而)?是(?P<new>[^，,。.!！？?\s]{1,12})"
    ),
    re.compile(
        r"(?P<old>[^，,。.!！？?\s不]{1,12}?)(?:改成|改为|换成)(?P<new>[^，,。.!！？?\s]{1,12})"
    ),
    re.compile(r"是(?P<new>[^，,。.!！？?\s]{1,12}?)[，,\s]*不是(?P<old>[^，,。.!！？?\s]{1,12})"),
)


def _contrast(form: FormState, text: str) -> bool:
    """Replace the part of an earlier answer the user names as wrong: the place
    "锦绣华庭三号楼" with "不是三号楼是五号楼" becomes "锦绣华庭五号楼"."""
    for pattern in _CONTRASTS:
        match = pattern.search(text)
        if match is None:
            continue
        old, new = match.group("old"), match.group("new")
        for name, value in form.slots.items():
            if isinstance(value, str) and old in value and old != new:
                form.slots[name] = value.replace(old, new, 1)
                return True
    return False


_NEW_VALUE_BEFORE = re.compile(r"(?:改成|改为|换成|应该是|是|贷|借|要|成)\s*$")


def _corrected_value(text: str, entities: list[Entity]) -> str | int:
    """ "不是139…，是138…": the last one; "要贷六万，四万不够": the one said as the new value."""
    marked = [e for e in entities if _NEW_VALUE_BEFORE.search(text[max(0, e.start - 3) : e.start])]
    return (marked or entities)[-1].value


def _after_last_marker(text: str, markers: tuple[str, ...]) -> str:
    """ "电话写错了，是138…" -> "138…": what follows the last correction word."""
    cut = 0
    for marker in (*markers, "是"):
        at = text.rfind(marker)
        if at >= 0:
            cut = max(cut, at + len(marker))
    return text[cut:].strip(" ，,。.：:")


def _in_range(slot: SlotSpec, amount: int) -> bool:
    low = slot.min if slot.min is not None else 1
    high = slot.max if slot.max is not None else 10**12
    return low <= amount <= high
