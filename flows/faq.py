"""FAQ retrieval: the entries that answer a user's question, best first.

`build_index` returns the retriever every caller uses, `FaqRetriever`
(flows.faq_retrieval): lexical, character and sentence-encoder scores combined
by models fitted on the phrasings, and an answer check that declines questions
no entry covers. `FaqIndex` below is the plain lexical index it grew from, kept
as a small, dependency-free baseline:

Every question phrasing is a document of weighted jieba words and character
bigrams (after synonyms and typo correction, see `flows.faq_text`), TF-IDF
weighted and L2-normalised. A user's question scores each entry by the cosine
with its best phrasing blended with the cosine with all its phrasings together,
so scores lie in [0, 1]. Words the FAQ never uses keep full weight in the query,
so a question about more than an entry covers ("云法庭能用苹果手机吗") scores low
and is rejected by the threshold instead of answered wrongly.

Loading, validation and rendering live in `flows.faq_data`; the names callers
need are re-exported here so that `from flows.faq import ...` is enough.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from flows.faq_data import (
    REQUIRED_FAQ_IDS,
    UNKNOWN_FACT_NOTE,
    UNKNOWN_FACT_TEXT,
    Fact,
    Facts,
    FaqBase,
    FaqDataError,
    FaqEntry,
    load_entries,
    load_facts,
    load_faq_base,
    load_synonyms,
    load_uncovered,
    render_answer,
    validate_faq,
)
from flows.faq_retrieval import FaqMatch, FaqRetriever
from flows.faq_semantic import SentenceEncoder
from flows.faq_text import (
    FeatureWeights,
    Lexicon,
    SynonymTable,
    Tokenize,
    features,
    normalize,
)

__all__ = [
    "DEFAULT_AMBIGUITY_MARGIN",
    "DEFAULT_THRESHOLD",
    "REQUIRED_FAQ_IDS",
    "UNKNOWN_FACT_NOTE",
    "UNKNOWN_FACT_TEXT",
    "Fact",
    "Facts",
    "FaqBase",
    "FaqDataError",
    "FaqEntry",
    "FaqIndex",
    "FaqMatch",
    "FaqRetriever",
    "ambiguous",
    "build_index",
    "load_entries",
    "load_facts",
    "load_faq_base",
    "load_synonyms",
    "load_tokenizer",
    "load_uncovered",
    "render_answer",
    "validate_faq",
]

# FaqIndex's minimum score for an entry to be offered at all (the retriever's
# threshold is fitted with its models instead).
DEFAULT_THRESHOLD = 0.40
# When the best two entries are closer than this, the bot lists them and lets
# the user pick by number instead of guessing.
DEFAULT_AMBIGUITY_MARGIN = 0.05
# ... or when the ranker gives the runner-up at least this share of the best
# entry's probability ("怎么申请": mediation 0.83, the loan 0.21): the question
# names no topic, so the user picks.
AMBIGUITY_SHARE = 0.2
# Longer text is not an FAQ question; only its start is searched.
MAX_QUERY_CHARS = 200

# A whole-word match counts more than one shared bigram (see FeatureWeights).
FEATURE_WEIGHTS = FeatureWeights()
# Share of an entry's score from its best phrasing; the rest from all its phrasings together.
BEST_PHRASING_SHARE = 0.5


# --- retrieval --------------------------------------------------------------


class FaqIndex:
    """TF-IDF cosine over words and character bigrams (see module docstring).

    An entry's score blends its best single phrasing (precise when the user says
    nearly what a phrasing says) with the centroid of all its phrasings
    (robust when the user's words are spread over several phrasings).
    Build once (slow part: tokenising every phrasing); `search` only reads, so
    one index can be shared between threads.
    """

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        doc_entry: Sequence[int],
        doc_postings: Mapping[str, Sequence[tuple[int, float]]],
        centroid_postings: Mapping[str, Sequence[tuple[int, float]]],
        idf: Mapping[str, float],
        unseen_idf: float,
        tokenize: Tokenize,
        synonyms: SynonymTable,
        lexicon: Lexicon,
        threshold: float,
    ):
        self._entries = tuple(entries)
        self._doc_entry = tuple(doc_entry)
        self._doc_postings = doc_postings
        self._centroid_postings = centroid_postings
        self._idf = idf
        self._unseen_idf = unseen_idf
        self._tokenize = tokenize
        self._synonyms = synonyms
        self._lexicon = lexicon
        self.threshold = threshold

    @classmethod
    def build(
        cls,
        entries: Sequence[FaqEntry],
        tokenize: Tokenize,
        *,
        synonyms: SynonymTable | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> FaqIndex:
        """Index each entry's questions. `entries` should carry rendered answers
        (`FaqBase.rendered_entries()`): `search` returns `answer` as stored."""
        table = synonyms if synonyms is not None else SynonymTable({})
        # Tags name the district's terms (云法庭, 和和家调解室); see Lexicon.
        lexicon = Lexicon(normalize(t).replace(" ", "") for e in entries for t in e.tags)
        doc_entry: list[int] = []
        doc_counts: list[dict[str, float]] = []
        centroid_counts: list[dict[str, float]] = [{} for _ in entries]
        for number, entry in enumerate(entries):
            for question in entry.questions:
                counts = _features(question, tokenize, table, lexicon)
                if not counts:
                    continue
                doc_entry.append(number)
                doc_counts.append(counts)
                total = centroid_counts[number]
                for term, c in counts.items():
                    total[term] = total.get(term, 0.0) + c
        df: dict[str, int] = {}
        for counts in doc_counts:
            for term in counts:
                df[term] = df.get(term, 0) + 1
        n = len(doc_counts)
        idf = {term: math.log((n + 1) / (count + 1)) + 1.0 for term, count in df.items()}
        # A word the FAQ never uses weighs like the rarest one: it is probably
        # something the FAQ does not cover, and it lowers every entry's score.
        unseen_idf = math.log(n + 1) + 1.0
        return cls(
            entries,
            doc_entry,
            _postings(doc_counts, idf),
            _postings(centroid_counts, idf),
            idf,
            unseen_idf,
            tokenize,
            table,
            lexicon,
            threshold,
        )

    @property
    def entries(self) -> tuple[FaqEntry, ...]:
        return self._entries

    def scores(self, text: str) -> list[tuple[int, float]]:
        """(entry index, score in [0, 1]) for every entry sharing a term, best first."""
        counts = _features(text[:MAX_QUERY_CHARS], self._tokenize, self._synonyms, self._lexicon)
        if not counts:
            return []
        query = {t: _tf(c) * self._idf.get(t, self._unseen_idf) for t, c in counts.items()}
        qnorm = math.sqrt(sum(w * w for w in query.values()))
        doc_dots: dict[int, float] = {}
        centroid_dots: dict[int, float] = {}
        for term, qw in query.items():
            for doc_id, dw in self._doc_postings.get(term, ()):
                doc_dots[doc_id] = doc_dots.get(doc_id, 0.0) + qw * dw
            for entry_id, cw in self._centroid_postings.get(term, ()):
                centroid_dots[entry_id] = centroid_dots.get(entry_id, 0.0) + qw * cw
        best_doc: dict[int, float] = {}
        for doc_id, dot in doc_dots.items():
            entry_id = self._doc_entry[doc_id]
            if dot > best_doc.get(entry_id, 0.0):
                best_doc[entry_id] = dot
        blended = {
            entry_id: min(
                1.0,
                (
                    BEST_PHRASING_SHARE * best_doc.get(entry_id, 0.0)
                    + (1.0 - BEST_PHRASING_SHARE) * dot
                )
                / qnorm,
            )
            for entry_id, dot in centroid_dots.items()
        }
        return sorted(blended.items(), key=lambda item: (-item[1], item[0]))

    def search(self, text: str, k: int = 3, *, threshold: float | None = None) -> list[FaqMatch]:
        """Up to k entries scoring at least the threshold, best first; [] when none fits."""
        limit = self.threshold if threshold is None else threshold
        out: list[FaqMatch] = []
        for entry_index, score in self.scores(text):
            if score < limit or len(out) >= max(k, 0):
                break
            entry = self._entries[entry_index]
            out.append(FaqMatch(entry.id, score, entry.questions[0], entry.answer))
        return out


def _postings(
    vectors: Sequence[Mapping[str, float]], idf: Mapping[str, float]
) -> dict[str, list[tuple[int, float]]]:
    """term -> [(vector number, weight)] for L2-normalised TF-IDF vectors."""
    postings: dict[str, list[tuple[int, float]]] = {}
    for number, counts in enumerate(vectors):
        weighted = {t: _tf(c) * idf[t] for t, c in counts.items()}
        norm = math.sqrt(sum(w * w for w in weighted.values()))
        if norm == 0.0:
            continue
        for term, w in weighted.items():
            postings.setdefault(term, []).append((number, w / norm))
    return postings


def _tf(count: float) -> float:
    return 1.0 + math.log(count) if count > 1.0 else count


def _features(
    text: str,
    tokenize: Tokenize,
    synonyms: SynonymTable,
    lexicon: Lexicon | None = None,
) -> dict[str, float]:
    return features(text, tokenize, synonyms, FEATURE_WEIGHTS, lexicon)


def ambiguous(matches: Sequence[FaqMatch], margin: float = DEFAULT_AMBIGUITY_MARGIN) -> bool:
    """True when the best two matches are too close to pick one: offer both by number."""
    if len(matches) < 2:
        return False
    share = matches[1].share
    return matches[0].score - matches[1].score < margin or (
        share is not None and share >= AMBIGUITY_SHARE
    )


# --- composition helpers ----------------------------------------------------


def load_tokenizer(extra_words: Iterable[str] = (), cache_dir: Path | None = None) -> Tokenize:
    """The NLU's tokenizer when it is available, else a private jieba.Tokenizer
    with `extra_words` added. `cache_dir` is where jieba may keep its dictionary cache.

    Never jieba's module-level functions: its global dictionary is shared state.
    A caller that already holds an `nlu.tokenizer.Tokenizer` should pass its
    `words` method to `FaqIndex.build` instead of loading a second dictionary.
    """
    try:
        from nlu.tokenizer import Tokenizer
    except ImportError:
        return _private_jieba(extra_words)
    return Tokenizer(cache_dir=cache_dir).words


def _private_jieba(extra_words: Iterable[str]) -> Tokenize:
    import logging

    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in extra_words:
        if len(word) > 1:
            tokenizer.add_word(word)

    def tokenize(text: str) -> list[str]:
        return [w for w in tokenizer.lcut(text, HMM=False) if w.strip()]

    return tokenize


def build_index(
    base: FaqBase,
    tokenize: Tokenize | None = None,
    *,
    threshold: float | None = None,
    cache_dir: Path | None = None,
    encoder: SentenceEncoder | None = None,
    notify: Callable[[str], None] | None = None,
) -> FaqRetriever:
    """The retriever over a loaded FAQ base with rendered answers (tokenizer:
    `load_tokenizer()`). `cache_dir` keeps the phrasing embeddings and fitted
    models between processes (the NLU's model directory); `threshold` overrides
    the fitted one. Nothing is loaded or trained until the first search."""
    tok = tokenize or load_tokenizer(set(base.synonyms.canonical_of.values()))
    return FaqRetriever(
        base.rendered_entries(),
        tok,
        synonyms=base.synonyms,
        uncovered=base.uncovered,
        encoder=encoder,
        cache_dir=cache_dir,
        threshold=threshold,
        notify=notify,
    )
