"""The one FAQ retriever: every caller (`tongxin faq ask`, the dialogue's FAQ
answers, questions asked inside a form, FAQ-first flows) searches through it.

It ranks entries with `flows.faq_model` (lexical, character and semantic scores
combined by fitted models) and answers only when the answer model says the best
entry covers the question. Everything expensive happens on the first search,
once per instance: loading the sentence encoder, embedding the phrasings and
fitting the models (a few seconds), or reading both from the cache directory
(like the NLU model, under TONGXIN_MODEL_DIR) when the data has not changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flows.faq_data import FaqEntry
from flows.faq_semantic import SentenceEncoder, UseEncoder, encoder_input, one_blas_thread
from flows.faq_text import Lexicon, SynonymTable, Tokenize, normalize

if TYPE_CHECKING:
    # Imported where used: the models pull in scipy, which a process that never
    # answers an FAQ question (a shell that only greets) should not pay for.
    from flows.faq_model import FaqModel, Featurizer, Scorer

# Longer text is not an FAQ question; only its start is searched.
MAX_QUERY_CHARS = 200
CACHE_SUBDIR = "faq"
# A story around the question ("开小吃店想贷五万，利息多少") drowns the match:
# when the whole message gets nothing, its clauses are tried one by one.
_CLAUSE_SPLIT = re.compile(r"[，,。.!！？?；;\s]+")
MIN_CLAUSE_CHARS = 4
CLAUSE_AGREES_TOP = 3
# A question whose every word is used by at least this share of the entries
# ("怎么申请", "要带什么材料", "在哪里") names no topic: when it would be answered,
# the likeliest entries are offered to choose from instead (the runner-ups may
# score under the threshold: they are offered, not answered).
GENERIC_WORD_SHARE = 0.15
# ... those whose ranker probability is at least this share of the best one's.
OFFER_SHARE = 0.05
RECENT_QUESTIONS = 512


@dataclass(frozen=True)
class FaqMatch:
    id: str
    score: float  # in [0, 1]: how likely answering with this entry is right
    question: str  # the entry's first (canonical) phrasing, for listing choices
    answer: str
    # The ranker's probability for this entry over that of the best one (1.0
    # for the best); None when unknown. Not part of the JSON output.
    share: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "score": round(self.score, 4),
            "question": self.question,
            "answer": self.answer,
        }


@dataclass(frozen=True)
class _Ready:
    scorer: Scorer
    model: FaqModel
    featurize: Featurizer
    encoder: SentenceEncoder


# Built retrievers by (data key, tokenizer), so that every FaqRetriever of one
# process over the same data (a core per test, per channel) shares one build,
# the way the NLU's word vectors are read once per process. Bounded.
_BUILT: dict[tuple[str, int], _Ready] = {}
_BUILT_LOCK = threading.Lock()
_MAX_BUILT = 4


class FaqRetriever:
    """Search the FAQ; thread-safe, built lazily (see module docstring)."""

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        tokenize: Tokenize,
        *,
        synonyms: SynonymTable | None = None,
        uncovered: Sequence[str] = (),
        encoder: SentenceEncoder | None = None,
        cache_dir: Path | None = None,
        threshold: float | None = None,
        notify: Callable[[str], None] | None = None,
    ):
        """`entries` should carry rendered answers (`FaqBase.rendered_entries()`);
        `uncovered` are questions no entry answers (negatives for training);
        `threshold` overrides the fitted one."""
        self._entries = tuple(entries)
        self._tokenize = tokenize
        self._synonyms = synonyms if synonyms is not None else SynonymTable({})
        self._uncovered = tuple(uncovered)
        self._encoder: SentenceEncoder = encoder if encoder is not None else UseEncoder()
        self._cache_dir = cache_dir
        self._threshold = threshold
        self._notify = notify
        self._lock = threading.Lock()
        self._ready: _Ready | None = None
        # Recent questions' embeddings: the dialogue searches a message and then
        # its clauses, and many people ask the same thing. Bounded, per instance.
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()

    @property
    def entries(self) -> tuple[FaqEntry, ...]:
        return self._entries

    @property
    def threshold(self) -> float:
        if self._threshold is not None:
            return self._threshold
        return self._state().model.threshold

    @property
    def model(self) -> FaqModel:
        return self._state().model

    def warm(self) -> None:
        """Build now (a server may call this before taking traffic)."""
        self._state()

    # -- search -----------------------------------------------------------

    def scores(self, text: str) -> list[tuple[int, float]]:
        """(entry index, score in [0, 1]) for every entry, best first."""
        ranked = self._score_texts([text[:MAX_QUERY_CHARS]])
        return [(i, score) for i, score, _ in ranked[0]] if ranked else []

    def search(self, text: str, k: int = 3, *, threshold: float | None = None) -> list[FaqMatch]:
        """Up to k entries scoring at least the threshold, best first; [] when none fits."""
        limit = self.threshold if threshold is None else threshold
        text = text[:MAX_QUERY_CHARS]
        if not normalize(text):
            return []
        candidates = [text]
        clauses = [c for c in _CLAUSE_SPLIT.split(text) if len(c.strip()) >= MIN_CLAUSE_CHARS]
        if len(clauses) >= 2:
            candidates += clauses
        ranked = self._score_texts(candidates)
        best = ranked[0]
        if not best or best[0][1] < limit:
            # The clause whose best entry scores highest, if any passes, among
            # the clauses about what the whole message is about (its likeliest
            # entries): a side remark ("生意还行") answers nothing on its own.
            whole = {i for i, _, _ in best[:CLAUSE_AGREES_TOP]}
            agreeing = [r for r in ranked[1:] if r and r[0][0] in whole]
            clause_best = max(agreeing, key=lambda r: r[0][1], default=[])
            if clause_best and clause_best[0][1] >= limit:
                best = clause_best
        if (
            best is ranked[0]
            and len(best) > 1
            and best[0][1] >= limit
            and self._names_no_topic(text)
        ):
            offers = [r for r in best[: max(k, 0)] if r[2] >= OFFER_SHARE]
            if len(offers) >= 2:
                # Marked as a full share each, so that callers see a choice to offer.
                return [
                    FaqMatch(
                        self._entries[i].id,
                        score,
                        self._entries[i].questions[0],
                        self._entries[i].answer,
                        1.0,
                    )
                    for i, score, _ in offers
                ]
        out: list[FaqMatch] = []
        for entry_index, score, share in best[: max(k, 0)]:
            if score < limit:
                break
            entry = self._entries[entry_index]
            out.append(FaqMatch(entry.id, score, entry.questions[0], entry.answer, share))
        return out

    def _names_no_topic(self, text: str) -> bool:
        ready = self._state()
        return ready.scorer.generic(ready.featurize(text), GENERIC_WORD_SHARE)

    def _score_texts(self, texts: Sequence[str]) -> list[list[tuple[int, float, float]]]:
        """Per text, (entry index, score, share) for every entry, best first.

        The best entry's score is the answer model's probability that answering
        with it is right. The answer model judges only the best candidate, so
        another entry's score is that probability scaled by the square root of
        its share of the ranker's probability: a clear runner-up ("怎么申请":
        the loan after mediation) stays offerable, a distant one drops out.
        """
        ready = self._state()
        feats = [ready.featurize(t) for t in texts]
        vectors = self._vectors(ready.encoder, [self._encoder_text(t) for t in texts])
        with one_blas_thread():
            answer, rank = ready.model.answer_and_rank(ready.scorer.scores(feats, vectors))
        out = []
        for answer_row, rank_row in zip(answer, rank, strict=True):
            order = np.argsort(-rank_row, kind="stable")
            top = order[0]
            shares = rank_row / max(float(rank_row[top]), 1e-12)
            scores = float(answer_row[top]) * np.sqrt(shares)
            out.append([(int(i), float(scores[i]), float(shares[i])) for i in order])
        return out

    def _vectors(self, encoder: SentenceEncoder, texts: list[str]) -> np.ndarray:
        with self._recent_lock:
            known = {t: self._recent[t] for t in texts if t in self._recent}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = encoder.encode(missing)
            with self._recent_lock:
                for text, vector in zip(missing, fresh, strict=True):
                    known[text] = vector
                    self._recent[text] = vector
                    self._recent.move_to_end(text)
                while len(self._recent) > RECENT_QUESTIONS:
                    self._recent.popitem(last=False)
        return np.stack([known[t] for t in texts])

    # -- building -----------------------------------------------------------

    def _state(self) -> _Ready:
        with self._lock:
            if self._ready is None:
                tokenizer = getattr(self._tokenize, "__self__", self._tokenize)
                shared = (self._cache_key(), id(tokenizer))
                with _BUILT_LOCK:
                    ready = _BUILT.get(shared)
                    if ready is None:
                        ready = self._build()
                        if len(_BUILT) >= _MAX_BUILT:
                            _BUILT.pop(next(iter(_BUILT)))
                        _BUILT[shared] = ready
                self._ready = ready
            return self._ready

    def _build(self) -> _Ready:
        from flows.faq_model import Featurizer, TrainingSet, build_scorer, train_model

        lexicon = Lexicon(normalize(t).replace(" ", "") for e in self._entries for t in e.tags)
        featurize = Featurizer(self._tokenize, self._synonyms, lexicon)
        texts: list[str] = []
        doc_entry: list[int] = []  # sorted: entries in order, each with its phrasings
        for number in range(len(self._entries)):
            for question in self._entries[number].questions:
                texts.append(question)
                doc_entry.append(number)
        key = self._cache_key()
        cached = self._read_cache(key)
        if cached is not None:
            doc_vectors, unc_vectors, model = cached
        else:
            if self._notify is not None:
                self._notify("building the FAQ model (first use after a data change)")
            doc_vectors = self._encoder.encode([self._encoder_text(t) for t in texts])
            unc_vectors = self._encoder.encode([self._encoder_text(t) for t in self._uncovered])
            model = None
        data = TrainingSet(
            tuple(featurize(t) for t in texts),
            np.asarray(doc_entry, dtype=np.int64),
            doc_vectors,
            tuple(self._entry_words(featurize, e) for e in self._entries),
            tuple(featurize(t) for t in self._uncovered),
            unc_vectors,
        )
        if model is None:
            model = train_model(data)
            self._write_cache(key, doc_vectors, unc_vectors, model)
        return _Ready(build_scorer(data), model, featurize, self._encoder)

    def _encoder_text(self, text: str) -> str:
        """Known typos and variants spelt one way (和合家 -> 和和家) before encoding."""
        return self._synonyms.apply(encoder_input(text))

    @staticmethod
    def _entry_words(featurize: Featurizer, entry: FaqEntry) -> set[str]:
        found: set[str] = set()
        for text in (entry.answer, *entry.tags):
            found.update(featurize(text).content_words)
        return found

    def _cache_key(self) -> str:
        from flows import faq_model

        payload = json.dumps(
            [
                faq_model.MODEL_FORMAT,
                # The training code itself: a changed feature retrains.
                hashlib.sha256(Path(faq_model.__file__).read_bytes()).hexdigest(),
                self._encoder.name,
                [[e.id, list(e.questions), e.answer, list(e.tags)] for e in self._entries],
                list(self._uncovered),
                sorted(self._synonyms.canonical_of.items()),
            ],
            ensure_ascii=False,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:20]

    def _cache_path(self, key: str) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / CACHE_SUBDIR / f"faq-{key}.npz"

    def _read_cache(self, key: str) -> tuple[np.ndarray, np.ndarray, FaqModel] | None:
        from flows.faq_model import FaqModel

        path = self._cache_path(key)
        if path is None or not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as arrays:
                docs = arrays["doc_vectors"].astype(np.float32)
                unc = arrays["uncovered_vectors"].astype(np.float32)
                model = FaqModel.from_dict(json.loads(bytes(arrays["model"]).decode("utf-8")))
        except (OSError, KeyError, ValueError, TypeError):
            return None  # damaged or from another version: rebuild
        return docs, unc, model

    def _write_cache(self, key: str, docs: np.ndarray, unc: np.ndarray, model: FaqModel) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        buffer = io.BytesIO()
        model_bytes = json.dumps(model.to_dict()).encode("utf-8")
        np.savez(
            buffer,
            doc_vectors=docs,
            uncovered_vectors=unc,
            model=np.frombuffer(model_bytes, dtype=np.uint8),
        )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Atomic: a concurrent reader sees the old file or the new one.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
                f.write(buffer.getvalue())
            os.replace(f.name, path)
            for old in path.parent.glob("faq-*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only cache only costs a rebuild next time
