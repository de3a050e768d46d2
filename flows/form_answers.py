"""What a message contributes to an open form: values for the slot asked, for
other empty slots, and corrections of earlier answers.

Pure functions of the flow definitions, the form and the parsed message; the
dialogue engine decides what to say about the result.
"""

from __future__ import annotations

import re

from flows.definitions import FlowBook, FlowSpec, SlotSpec
from flows.slots import (
    InvalidAnswerError,
    SlotValue,
    contains_any,
    extract,
    find_name,
    from_patterns,
    meaningful_remainder,
    without_entities,
)
from flows.state import FormState
from nlu.tokenizer import normalize_text
from nlu.types import Entity, ParseResult

# Bare acceptances: after an FAQ answer they start the offered form; as the
# answer to "what happened" they are no answer at all.
ACCEPT_WORDS = ("申请", "办理", "预约", "报名", "好", "要", "好的", "可以", "办", "我要申请")
_DIALOGUE_ACTS = ("affirm", "deny", "greet", "thanks", "goodbye")


def prefill(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    *,
    from_opening: bool = True,
) -> None:
    """Fill what the opening message already says ("开小吃店想贷五万" -> amount);
    without `from_opening`, free-text slots (the description) are left alone."""
    for slot in flow.slots:
        if slot.name in form.slots:
            continue
        if slot.from_opening:
            if not from_opening:
                continue
            rest = meaningful_remainder(text, parse, book)
            if len(rest) >= slot.min_chars:
                form.slots[slot.name] = text[:500]
            continue
        try:
            found = extract(slot, text, parse, book, answering=False)
        except InvalidAnswerError:
            found = None
        if found is not None:
            form.slots[slot.name] = found.value


def missing_slot(flow: FlowSpec, form: FormState) -> SlotSpec | None:
    """The next slot to ask: essential ones until given, nice-to-have ones once."""
    for slot in flow.slots:
        if slot.name in form.slots or slot.name in form.declined:
            continue
        if slot.optional and slot.name in form.asked_once:
            continue
        return slot
    return None


def fill_others(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    *,
    asked: SlotSpec,
) -> list[str]:
    """Fill empty slots other than the one asked from entities and patterns;
    returns their names."""
    filled: list[str] = []
    for slot in flow.slots:
        if slot is asked or slot.name in form.slots or slot.from_opening:
            continue
        try:
            found = extract(slot, text, parse, book, answering=False)
        except InvalidAnswerError:
            continue
        if found is not None:
            form.slots[slot.name] = found.value
            filled.append(slot.name)
    # "王芳 13912345678" or "艾力·买买提" while another question is open.
    name_slot = flow.slot("name")
    if name_slot is not None and name_slot is not asked and "name" not in form.slots:
        rest = without_entities(text, parse)
        if parse.first("phone") is not None or "·" in rest:
            name = find_name(rest, book, answering=True)
            if name:
                form.slots["name"] = name
                filled.append("name")
    return filled


def text_answer(
    book: FlowBook,
    slot: SlotSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    others: list[str],
) -> SlotValue | None:
    """A free-text answer, minus what other slots took from the same message."""
    if contains_any(text, book.decline_words):
        return None
    if slot.from_opening:
        return answer_value(book, slot, text, parse)
    rest = without_entities(text, parse)
    if "name" in others:
        rest = rest.replace(str(form.slots["name"]), " ").strip(" ，,")
    if others and slot.patterns and from_patterns(slot, normalize_text(rest)) is None:
        return None  # the message answered other questions, not this one
    if not rest:
        return None
    return answer_value(book, slot, rest, parse)


def answer_value(book: FlowBook, slot: SlotSpec, text: str, parse: ParseResult) -> SlotValue | None:
    """The value `text` gives `slot` (InvalidAnswerError says why it gives none)."""
    # A bare "好的"/"谢谢" is a dialogue act, not an answer to "what happened".
    if slot.type in ("text", "place") and (
        text.rstrip("。!！ ") in ACCEPT_WORDS
        or (len(text) <= 4 and parse.intent.name in _DIALOGUE_ACTS)
    ):
        return None
    return extract(slot, text, parse, book, answering=True)


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
    tail = _after_last_marker(text, book.correction_words) if marked else text
    changed = False
    for slot in flow.slots:
        if slot.name not in form.slots or slot.from_opening:
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
