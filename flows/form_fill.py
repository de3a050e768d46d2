"""Putting what a reply says into the form: each value into the slot whose type
it fits, whatever was asked; a vague place kept only until a more exact one
comes; a story given where a party or a place was asked goes to the
description; what fits no slot goes to the ticket's notes.

Pure functions of the flow, the form and the parsed message; the engine decides
what to say about the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flows.definitions import FlowBook, FlowSpec, SlotSpec
from flows.slots import (
    CJK,
    InvalidAnswerError,
    contains_any,
    find_name,
    from_patterns,
    is_vague_place,
    says_only,
    strip_phone_labels,
)
from flows.state import FormState
from nlu.tokenizer import fold_for_matching, normalize_text
from nlu.types import ParseResult

_LEAD_IN = re.compile(
    r"^(?:我们?家?|咱家?|俺)?(?:住在|就在|是在|位于|在|住|地点是|地点在|地址是|地址在|位置在|位置是)"
)
_FILLER_HEAD = re.compile(
    r"^(?:嗯+|呃+|哦+|噢+|啊+|那个|就是|这个|对|好|是的?|额|唔|emm+)[，,。.\s、~～]*", re.I
)
_SEPARATORS = " ，,。.!！；;、~～:："
# A text answer longer than this, with nothing that fits the slot asked, is a
# story rather than a party, place or short detail.
STORY_CHARS = 22
MAX_TEXT = 500
_NAME_WORDS = re.compile(
    r"我叫|叫我|伲叫|叫伲|大名|全名|名字|姓名|称呼|就行|就好|好哉|好了|吧|我姓|姓"
)
# Left of "贷十八万，买两台工业洗衣机" once the amount is taken: "贷，买…".
_MONEY_VERB = re.compile(
    r"^(?:想|要|就|先)?(?:贷款|贷|借|申请)[，,\s]*|(?:就够了|就行|够了|左右|吧)$"
)


@dataclass
class Filled:
    """What one reply put into the form."""

    slots: list[str] = field(default_factory=list)
    problem: InvalidAnswerError | None = None  # a typed answer with a wrong value


def fill(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    *,
    asked: SlotSpec | None,
    profile: dict[str, str],
    correcting: bool = False,
    free_text: bool = True,
) -> Filled:
    """Put every value `text` gives into `form`. `asked` is the slot the bot
    asked for (None at the confirmation); `correcting` lets a new value
    replace an earlier one; without `free_text` only values that say what
    they are (entities, "地点在…", patterns) are taken, not the words as such
    (a question or a "就这些" is no answer)."""
    out = Filled()
    used: list[tuple[int, int]] = [(e.start, e.end) for e in parse.entities]
    folded = fold_for_matching(text)
    _labelled(book, flow, form, text, used, out)

    if contains_any(folded, book.reuse_words):
        for name in ("phone", "name"):
            if name in profile and flow.slot(name) is not None and name not in form.slots:
                _set(form, name, profile[name], out)

    for slot in flow.slots:
        if slot.type == "phone":
            _typed_phone(slot, form, text, parse, asked, correcting, out)
        elif slot.type == "amount":
            _typed_amount(slot, form, text, parse, asked, correcting, out)
        elif slot.type == "name":
            found = find_name(text, book, answering=slot is asked and free_text)
            if found is None and parse.first("phone") is not None and free_text:
                # "王芳13912345678" while another question is open: beside a
                # phone, a bare name is one.
                found = find_name(_blank(text, used), book, answering=True)
            if found and _may_replace_name(
                form.slots.get(slot.name), found, slot is asked or correcting
            ):
                _set(form, slot.name, found, out)
                _mark_name_used(text, found, used)
    for slot in flow.slots:
        if slot.name in out.slots:
            continue
        if slot.type in ("text", "place", "party") and slot.patterns:
            value = from_patterns(slot, normalize_text(_blank(text, used)))
            if value is None:
                continue
            current = form.slots.get(slot.name)
            if slot.type == "place":
                better = (
                    current is None
                    or slot.name in form.vague
                    or contains_any(folded, book.exact_place_words)
                    or correcting
                )
                if better and (current is None or not is_vague_place(value, book)):
                    _set_place(book, form, slot.name, _original(text, value), out)
                    _mark_used(text, value, used)
            elif current is None or slot.name in form.vague or (correcting and slot is asked):
                original = _original(text, value)[:MAX_TEXT]
                if current is not None and is_vague_value(slot, original):
                    continue
                _set(form, slot.name, original, out, slot)
                _mark_used(text, value, used)
            elif slot.collect and slot.name not in out.slots:
                original = _original(text, value)[:MAX_TEXT]
                if original not in str(current) and str(current) not in original:
                    _append(form, slot.name, original, out)
                _mark_used(text, value, used)

    if asked is not None and asked.type in ("text", "place", "party") and free_text:
        if asked.name not in out.slots:
            _free_text(book, flow, form, asked, text, parse, used, out, others=bool(out.slots))
    elif free_text:
        _leftover(book, flow, form, text, used, out)
    return out


def _leftover(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    text: str,
    used: list[tuple[int, int]],
    out: Filled,
) -> None:
    """What a reply said besides the values taken: a story ("他家排烟管道正对着
    我家厨房窗户…" typed at the name question) adds to the description, a remark
    goes to the notes."""
    rest = _trim(_blank(strip_phone_labels(text, book), used))
    chars = len(CJK.findall(rest))
    # Where a story goes: the description, or what a volunteer can do.
    description = flow.slot("description") or next(
        (s for s in flow.slots if s.from_opening and s.name not in form.slots), None
    )
    vague = next((s for n in form.vague if (s := flow.slot(n)) and s.type == "text"), None)
    if vague is not None and chars >= 4 and not is_vague_value(vague, rest):
        # "我會做手工，可以教小朋友剪紙" after "公益市集": this is what they can do.
        _set(form, vague.name, rest[:MAX_TEXT], out, vague)
    elif chars >= 12 and description is not None and description.name not in out.slots:
        _append(form, description.name, rest, out)
    elif chars >= 6 and rest not in form.notes:
        form.notes.append(rest[:MAX_TEXT])


_CLAUSE = re.compile(r"[^，,。.!！？?；;\n]+")
_CLAUSE_HEAD = re.compile(r"^(?:\s|哦|噢|嗯|呃|那个|就是|另外|还有|然后|对了|好的|好)*")
_NAME_LEAD = re.compile(
    r"(?:我叫|叫我|我是|我姓|本人|名字叫|名字是|名字|姓名是|姓名|称呼我)[:：\s]*$"
)


def _labelled(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    text: str,
    used: list[tuple[int, int]],
    out: Filled,
) -> None:
    """ "地点在金桥花苑7号楼", "对方是楼下烧烤店的老板", "事情是…": a clause that
    says which detail it gives goes to that slot, whatever was asked."""
    folded = fold_for_matching(text)
    by_label = sorted(
        ((label, slot) for slot in flow.slots for label in slot.labels),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    for clause in _CLAUSE.finditer(folded):
        head = _CLAUSE_HEAD.match(clause.group()).end()  # type: ignore[union-attr]
        start = clause.start() + head
        for label, slot in by_label:
            if not folded.startswith(label, start):
                continue
            value_start = start + len(label)
            # A story runs to the end of the message; other details to the clause's end.
            value_end = len(text) if slot.name == "description" else clause.end()
            value = text[value_start:value_end].strip(_SEPARATORS + "是在")
            if len(CJK.findall(value)) + sum(c.isdigit() for c in value) < slot.min_chars:
                break
            if slot.type == "place":
                _set_place(book, form, slot.name, value, out)
            elif (slot.name == "description" or slot.collect) and slot.name in form.slots:
                _append(form, slot.name, value, out)
            else:
                _set(form, slot.name, value[:MAX_TEXT], out, slot)
            used.append((start, value_end))
            break


def _mark_name_used(text: str, name: str, used: list[tuple[int, int]]) -> None:
    bare = name.replace("先生/女士", "")
    at = text.find(bare)
    if at < 0:
        return
    lead = _NAME_LEAD.search(fold_for_matching(text[:at]))
    used.append((lead.start() if lead else at, at + len(bare)))


def _set(
    form: FormState, name: str, value: str | int, out: Filled, slot: SlotSpec | None = None
) -> None:
    form.slots[name] = value
    if name in form.declined:
        form.declined.remove(name)  # "算了还是留个电话吧 139…"
    if name in form.vague:
        form.vague.remove(name)
    if slot is not None and isinstance(value, str) and is_vague_value(slot, value):
        form.vague.append(name)
    if name not in out.slots:
        out.slots.append(name)


def is_vague_value(slot: SlotSpec, value: str) -> bool:
    """ "公益市集", "哪个都行": says nothing of what the user can do."""
    if not slot.vague_values:
        return False
    return says_only(value, slot.vague_values)


def _set_place(book: FlowBook, form: FormState, name: str, value: str, out: Filled) -> None:
    value = _LEAD_IN.sub("", value.strip(_SEPARATORS)) or value
    _set(form, name, value[:MAX_TEXT], out)
    if is_vague_place(value, book):
        form.vague.append(name)


def _typed_phone(
    slot: SlotSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    asked: SlotSpec | None,
    correcting: bool,
    out: Filled,
) -> None:
    phones = [e for e in parse.entities if e.entity == "phone"]
    if phones:
        value = str(phones[-1].value)  # "不是139…，是138…": the last one counts
        if slot.name not in form.slots or correcting or slot is asked:
            _set(form, slot.name, value, out)
        return
    digits = sum(c.isdigit() for c in fold_for_matching(text))
    if slot is asked and digits >= 5 and not parse.entities:
        out.problem = InvalidAnswerError(slot.invalid or "invalid.phone")


def _typed_amount(
    slot: SlotSpec,
    form: FormState,
    text: str,
    parse: ParseResult,
    asked: SlotSpec | None,
    correcting: bool,
    out: Filled,
) -> None:
    amounts = [e for e in parse.entities if e.entity == "amount"]
    if not amounts:
        if slot is asked and any(c.isdigit() for c in text) and not parse.entities:
            out.problem = InvalidAnswerError("invalid.amount_missing")
        return
    value = int(amounts[-1].value)
    low = slot.min if slot.min is not None else 1
    high = slot.max if slot.max is not None else 10**12
    if not low <= value <= high:
        if slot is asked:
            out.problem = InvalidAnswerError(slot.invalid or "invalid.amount", min=low, max=high)
        return
    if slot.name not in form.slots or correcting or slot is asked:
        _set(form, slot.name, value, out)


def _may_replace_name(current: object, new: str, asked: bool) -> bool:
    if current is None or asked:
        return True
    # "我姓马" then "叫马玉兰": the full name wins over the surname alone.
    return str(current).endswith("先生/女士") and not new.endswith("先生/女士")


def _free_text(
    book: FlowBook,
    flow: FlowSpec,
    form: FormState,
    asked: SlotSpec,
    text: str,
    parse: ParseResult,
    used: list[tuple[int, int]],
    out: Filled,
    *,
    others: bool,
) -> None:
    """The reply's words, minus what other slots took, for the text slot asked."""
    rest = _trim(_blank(strip_phone_labels(text, book), used))
    # "伲叫沈阿婆好哉，大名沈桂英": what is left is about the name.
    if (
        "name" in out.slots
        and not from_patterns(asked, normalize_text(rest))
        and len(CJK.findall(_NAME_WORDS.sub("", fold_for_matching(rest)))) < 4
    ):
        add_note(form, rest)
        return
    if others and asked.patterns and not from_patterns(asked, normalize_text(rest)):
        add_note(form, rest)  # "我想参加助老服务，陪老人…" asked the time: not a time
        return
    if others:
        rest = _MONEY_VERB.sub("", rest).strip(_SEPARATORS)
    content = len(CJK.findall(rest)) + sum(c.isalnum() for c in rest if c.isascii())
    # Once other details took their part ("我叫古丽娜尔，电话…", "贷八千就够了"),
    # what is left must say something of its own to be this slot's answer.
    if content < max(asked.min_chars, 6 if others else 0):
        if others and content >= 6:
            add_note(form, rest)
        return
    description = flow.slot("description")
    story = len(rest) > STORY_CHARS and not from_patterns(asked, normalize_text(rest))
    if asked.type in ("place", "party") and story and description is not None:
        # "他家天天半夜剁肉…" typed where the place or the other side was asked.
        _append(form, description.name, rest, out)
        return
    if asked.type == "place":
        if others and not (from_patterns(asked, normalize_text(rest)) or _placelike(book, rest)):
            add_note(form, rest)  # "对方是…物业，锦绣物业公司": not where it happened
            return
        _set_place(book, form, asked.name, rest, out)
    elif asked.name == "description":
        _append(form, asked.name, rest, out)
    else:
        _set(form, asked.name, rest[:MAX_TEXT], out, asked)


def _placelike(book: FlowBook, text: str) -> bool:
    folded = fold_for_matching(text)
    return any(word in folded for word in book.place_words)


def _append(form: FormState, name: str, text: str, out: Filled) -> None:
    current = form.slots.get(name)
    if current and str(text) not in str(current):
        text = f"{current}；{text}"
    form.slots[name] = str(text)[: MAX_TEXT * 2]
    if name in form.declined:
        form.declined.remove(name)
    if name not in out.slots:
        out.slots.append(name)


def add_note(form: FormState, text: str) -> None:
    rest = _trim(text)
    if len(CJK.findall(rest)) >= 4 and rest not in form.notes:
        form.notes.append(rest[:MAX_TEXT])


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for i in range(max(start, 0), min(end, len(chars))):
            chars[i] = " "
    return "".join(chars)


def _mark_used(text: str, value: str, used: list[tuple[int, int]]) -> None:
    at = fold_for_matching(text).find(fold_for_matching(value))
    if at >= 0:
        used.append((at, at + len(value)))


def _original(text: str, value: str) -> str:
    """`value` was matched on the normalised text: the user's own characters for it."""
    at = fold_for_matching(text).find(value)
    return text[at : at + len(value)] if at >= 0 else value


def _trim(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip(_SEPARATORS)
    previous = None
    while previous != text:
        previous = text
        text = _FILLER_HEAD.sub("", text).strip(_SEPARATORS)
    return re.sub(r"[，,、\s]{2,}", "，", text)
