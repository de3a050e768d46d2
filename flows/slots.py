"""Reading slot values out of a message: names, places, patterns, questions."""

from __future__ import annotations

import re

from flows.definitions import FlowBook, SlotSpec
from nlu.tokenizer import fold_for_matching
from nlu.types import ParseResult

CJK = re.compile(r"[\u4e00-\u9fff]")  # one Han character
_DIGITS = re.compile(r"[0-9０-９]")
# A bare answer to "怎么称呼您": a Han name of 2-4 characters, a transliterated
# name with a middle dot (艾力·买买提), or a Latin-letter name.
_NAME_CHARS = re.compile(
    r"^(?:[\u4e00-\u9fa5]{2,8}"
    r"|[\u4e00-\u9fa5]{1,8}·[\u4e00-\u9fa5·]{1,16}"
    r"|[A-Za-z][A-Za-z ·.'-]{1,30})$"
)
# Characters that turn "我是开馕店的" into something other than a name.
_NOT_IN_NAMES = set("的了想要在店开做住是我你他她们个吗呢吧啊哦嗯市区路街村楼号栋场门口伲倷哉")
_QUESTION = re.compile(
    r"[?？]|吗|么$|呢$|多少|几点|几天|几个|哪里|哪儿|哪个|哪些|在哪|什么|啥|怎么|怎样|如何|"
    r"是否|能不能|可不可以|可以吗|有没有|要不要|需不需要|需要什么|收费|多久|多长时间"
)


class InvalidAnswerError(Exception):
    """An answer of the right kind but wrong value (a 10-digit phone, an amount
    out of range); carries the reply id of the specific re-prompt."""

    def __init__(self, reply_id: str, **values: object) -> None:
        super().__init__(reply_id)
        self.reply_id = reply_id
        self.values = values


def is_question(text: str) -> bool:
    return bool(_QUESTION.search(text))


def contains_any(text: str, words: tuple[str, ...] | frozenset[str]) -> bool:
    return any(w and w in text for w in words)


def _entity_value(parse: ParseResult, name: str) -> str | int | None:
    entity = parse.first(name)
    return entity.value if entity is not None else None


_SURNAME_ONLY = re.compile(
    r"(?:^|(?<=[，,。.!！\s我俺伲]))(?:本人|我|俺|伲)?(?:免贵)?姓(?P<s>[\u4e00-\u9fa5]{1,2}?)"
    r"(?=$|[，,。.!！；;\s]|叫|名|的|电话|手机|联系|是|住|在|，)"
)


_ABOUT_OTHERS = re.compile(
    r"对方|他|她|老板|房东|邻居|那个|那家|人家|租客|朋友|合伙|对面|隔壁|楼上|楼下|师傅|店主|摊主"
)
_FIRST_PERSON = re.compile(r"我|伲|俺|本人|全名|大名")


def find_name(text: str, book: FlowBook, *, answering: bool) -> str | None:
    """A name said in `text`, in the user's own characters: "我叫王芳", "叫我陆阿姨",
    "我姓马，叫马玉兰" (the full name wins), "我姓黄" (黄先生/女士, which staff can
    use), and with `answering` a bare "王芳" or "古丽娜尔"."""
    text = strip_phone_labels(text, book)
    folded = fold_for_matching(text)
    for pattern in book.name_patterns:
        for match in pattern.finditer(folded):
            start, end = match.span("v") if "v" in pattern.groupindex else match.span()
            name = text[start:end].strip()
            about_others = not _FIRST_PERSON.search(match.group()) and _ABOUT_OTHERS.search(
                folded[max(0, match.start() - 12) : match.start()]
            )
            if _acceptable_name(name, book) and not about_others:
                return name
    surname = _SURNAME_ONLY.search(folded)
    if surname and _ABOUT_OTHERS.search(folded[: surname.start()]) and "我" not in surname.group():
        surname = None  # "对方是房东，姓周": the other side's name
    if surname:
        family = text[surname.start("s") : surname.end("s")]
        if not (set(family) & _NOT_IN_NAMES):
            return f"{family}先生/女士"
    if answering:
        bare = re.sub(r"[\s，。,.!！~～:：]+$", "", text.strip())
        bare = re.sub(r"^(?:我叫|叫我|我是|叫|是|姓名|名字|称呼)[:：]?\s*", "", bare)
        bare = re.sub(r"(?:就行|就好|就可以|吧|啊|呀|哈)$", "", bare)
        if _NAME_CHARS.match(bare) and _acceptable_name(bare, book):
            return bare
    return None


def strip_phone_labels(text: str, book: FlowBook) -> str:
    """ "手機 139…", "联系电话是139…": the labels blanked out, offsets kept."""
    folded = fold_for_matching(text)
    for label in book.phone_labels:
        for m in re.finditer(re.escape(label) + r"[是:：]?", folded):
            text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    return text


def without_entities(text: str, parse: ParseResult) -> str:
    for entity in sorted(parse.entities, key=lambda e: e.start, reverse=True):
        text = text[: entity.start] + text[entity.end :]
    return text


def says_only(value: str, words: tuple[str, ...], *, digits: bool = False) -> bool:
    """True when `value` holds hardly a character besides `words` ("小区门口",
    "哪个都行"): it names nothing in particular."""
    rest = fold_for_matching(value)
    for word in words:
        rest = rest.replace(word, "")
    return len(CJK.findall(rest)) + (len(_DIGITS.findall(rest)) if digits else 0) < 2


def _acceptable_name(name: str, book: FlowBook) -> bool:
    if not name or name in book.not_names or _DIGITS.search(name):
        return False
    if len(set(name)) == 1:
        return False  # "好好好", "嗯嗯"
    folded = fold_for_matching(name)
    if any(word in folded for word in book.role_words):
        return False
    if CJK.search(name) and (set(folded) & _NOT_IN_NAMES):
        return False
    return 2 <= len(name) <= 30


def is_vague_place(value: str, book: FlowBook) -> bool:
    """ "小区门口", "菜场那边", "我们楼下": true; "幸福路菜场北门", "3号楼": false."""
    return says_only(value, book.vague_place_words, digits=True)


# "我住在幸福小区3号楼" -> "幸福小区3号楼"
_LEAD_IN = re.compile(r"^(?:我们?家?|咱家?|俺)?(?:住在|就在|是在|位于|在|住)")
_PRONOUN = re.compile(r"^(?:我们|我家|咱们|咱家|我|俺|咱)")


def from_patterns(slot: SlotSpec, text: str) -> str | None:
    for pattern in slot.patterns:
        match = pattern.search(text)
        if match:
            value = (match.groupdict().get("v") or match.group(0)).strip(" ，。,.")
            value = _LEAD_IN.sub("", value)
            named = _PRONOUN.sub("", value)
            if len(named) <= 2 and named != value:
                continue  # "我们小区", "我家门口": too vague to be the place
            if len(value) >= slot.min_chars:
                return named
    return None


def meaningful_remainder(text: str, parse: ParseResult, book: FlowBook) -> str:
    """What is left of a message once entities, names and filler are removed:
    judges whether an opening message already describes the problem."""
    rest = without_entities(text, parse)
    for word in book.filler_words:
        rest = rest.replace(word, "")
    return "".join(CJK.findall(rest))
