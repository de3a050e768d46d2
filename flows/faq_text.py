"""Text features for FAQ retrieval: normalisation, synonyms, words and character bigrams.

Questions people type are short, colloquial and full of homophone typos
(代款, 调节, 和合家). Words from jieba match whole terms; character bigrams
still match when a typo breaks a word; the synonyms table maps known variants
and typos onto one spelling before either is computed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

Tokenize = Callable[[str], list[str]]

# Anything that is not a letter, digit or CJK ideograph separates segments.
_SEGMENT = re.compile(r"[0-9a-z\u3400-\u4dbf\u4e00-\u9fff]+")

# Filler that says nothing about which entry fits: particles, pronouns, politeness
# and the bare "what is" (so that "红色信贷" and "红色信贷是什么" look the same).
STOPWORDS: frozenset[str] = frozenset(
    [
        "的",
        "了",
        "吗",
        "呢",
        "啊",
        "吧",
        "呀",
        "嘛",
        "哦",
        "哈",
        "么",
        "啦",
        "喔",
        "哇",
        "嗯",
        "噢",
        "诶",
        "欸",
        "哎",
        "呗",
        "咯",
        "滴",
        "得",
        "地",
        "着",
        "过",
        "我",
        "你",
        "您",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "他们",
        "咱",
        "咱们",
        "俺",
        "人家",
        "自己",
        "本人",
        "是",
        "就",
        "都",
        "也",
        "又",
        "还是",
        "一下",
        "一点",
        "有点",
        "这个",
        "那个",
        "这",
        "那",
        "个",
        "这样",
        "那样",
        "请问",
        "请教",
        "问",
        "问问",
        "问一下",
        "想问",
        "想问问",
        "打听",
        "打听一下",
        "咨询一下",
        "你好",
        "您好",
        "在吗",
        "在不在",
        "谢谢",
        "麻烦",
        "想",
        "想要",
        "知道",
        "了解",
        "请",
        "帮",
        "帮我",
        "给我",
        "告诉",
        "说说",
        "一",
        "下",
        "什么",
        "是什么",
        "干什么",
        "干嘛",
        "干啥",
        "做什么",
        "怎么回事",
        "意思",
        "什么意思",
        "的话",
    ]
)


# "要不要钱", "收不收费", "能不能贷": the A-not-A question means the same as "要钱吗".
_A_NOT_A = re.compile(r"([\u4e00-\u9fff])[不没]\1")


def normalize(text: str) -> str:
    """NFKC (full-width to half-width), lower case, segments joined by single spaces."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_SEGMENT.findall(folded))


@dataclass(frozen=True)
class SynonymTable:
    """Rewrites variants to their canonical spelling, longest match first, in one pass."""

    canonical_of: Mapping[str, str]

    @classmethod
    def from_groups(cls, groups: Mapping[str, Iterable[str]]) -> SynonymTable:
        mapping: dict[str, str] = {}
        for canonical, variants in groups.items():
            canon = normalize(canonical).replace(" ", "")
            if not canon:
                continue
            # The canonical form maps to itself so that a shorter variant can
            # never match inside it (哪里 inside 在哪里).
            mapping.setdefault(canon, canon)
            for variant in variants:
                v = normalize(variant).replace(" ", "")
                if v and v != canon:
                    mapping.setdefault(v, canon)
        return cls(mapping)

    def __post_init__(self) -> None:
        keys = sorted(self.canonical_of, key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, keys))) if keys else None
        object.__setattr__(self, "_pattern", pattern)

    def apply(self, text: str) -> str:
        pattern: re.Pattern[str] | None = getattr(self, "_pattern", None)
        if pattern is None:
            return text
        return pattern.sub(lambda m: self.canonical_of[m.group(0)], text)


@dataclass(frozen=True)
class FeatureWeights:
    word: float = 1.0  # a jieba word of two or more characters
    char: float = 0.5  # a one-character word (钱, 贷)
    bigram: float = 0.6  # a character bigram inside a word
    cross_bigram: float = 0.3  # a bigram across two words: survives mis-segmented typos
    part: float = 0.5  # a district term inside a longer word (和和家 in 和和家调解室)


class Lexicon:
    """The district's own terms (云法庭, 和和家, 帮帮团 ...), used two ways:

    - `correct`: an unknown word of three or more characters that differs from
      exactly one term in exactly one character is that term misspelt
      (云法廷 -> 云法庭). Shorter words are left alone: too many two-character
      words are one character apart for a guess to be safe, and only these
      terms are candidates because ordinary words are not typos of each other
      (律师证 is not 律师费).
    - `parts`: the terms inside a longer word, so that the short form a user
      types (和和家) meets the long name a phrasing uses (和和家调解室).
    """

    MIN_TYPO_LENGTH = 3

    def __init__(self, terms: Iterable[str]):
        self._terms = frozenset(t for t in terms if len(t) >= 2)
        by_mask: dict[str, set[str]] = {}
        for term in self._terms:
            if len(term) >= self.MIN_TYPO_LENGTH:
                for i in range(len(term)):
                    by_mask.setdefault(term[:i] + "?" + term[i + 1 :], set()).add(term)
        self._by_mask = by_mask
        self._by_first_char: dict[str, list[str]] = {}
        for term in self._terms:
            self._by_first_char.setdefault(term[0], []).append(term)

    def correct(self, word: str) -> str:
        if len(word) < self.MIN_TYPO_LENGTH or word in self._terms:
            return word
        candidates: set[str] = set()
        for i in range(len(word)):
            candidates |= self._by_mask.get(word[:i] + "?" + word[i + 1 :], set())
        return next(iter(candidates)) if len(candidates) == 1 else word

    def parts(self, word: str) -> list[str]:
        found: list[str] = []
        for start, char in enumerate(word):
            for term in self._by_first_char.get(char, ()):
                if len(term) < len(word) and word.startswith(term, start):
                    found.append(term)
        return found


def features(
    text: str,
    tokenize: Tokenize,
    synonyms: SynonymTable,
    weights: FeatureWeights,
    lexicon: Lexicon | None = None,
) -> dict[str, float]:
    """Weighted term counts: `w:<word>` for jieba words, `b:<xy>` for character bigrams.

    Bigrams are taken inside runs of content words, so that a particle between
    two words (调解员的工资) does not make a bigram (的工) that matches by chance.
    """
    norm = _A_NOT_A.sub(r"\1", synonyms.apply(normalize(text)))
    counts: dict[str, float] = {}

    def add(key: str, weight: float) -> None:
        counts[key] = counts.get(key, 0.0) + weight

    for segment in norm.split(" "):
        previous = ""
        for raw in tokenize(segment):
            token = raw.strip()
            if not token or token in STOPWORDS:
                previous = ""
                continue
            if token.isdigit():
                # Which number says little about what is asked (55岁, 3号楼, a
                # stray digit), and an unknown word counts against an answer.
                previous = ""
                continue
            if lexicon is not None:
                token = lexicon.correct(token)
                for part in lexicon.parts(token):
                    add("w:" + part, weights.part)
            add("w:" + token, weights.word if len(token) > 1 else weights.char)
            for i in range(len(token) - 1):
                add("b:" + token[i : i + 2], weights.bigram)
            if previous:
                add("b:" + previous[-1] + token[0], weights.cross_bigram)
            previous = token
    return counts
