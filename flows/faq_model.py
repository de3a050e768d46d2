"""The FAQ ranker and answer check: scores computed from the phrasings, combined by
models fitted on held-out phrasings (the way Rasa's ResponseSelector treats FAQ
ids as labels), never by hand-set weights.

For a question and each entry, `Scorer` computes retrieval scores:

- lexical: TF-IDF cosine over jieba words and character bigrams (`flows.faq_text`)
  with the entry's best phrasing and with all its phrasings together;
- character 1-3-grams, likewise (survive typos and odd segmentation);
- semantic: cosine of sentence embeddings (`flows.faq_semantic`) with the best
  phrasing and with the entry's mean embedding;
- coverage: the share of the question's words (IDF-weighted) that neither the
  entry's phrasings nor its answer ever use: "党群服务中心有没有空调" shares the
  facility with the entry but asks about 空调, which nothing there mentions;
- each score's gap to the best other entry.

Stage 1 (`rank`) is a logistic regression over those scores: is this entry the
one asked about? Stage 2 (`answer`) is a logistic regression over the stage-1
logit, its gap to the runner-up, coverage and the raw scores: is it right to
answer with this entry at all? Its probability is the match score, and the bot
answers only above `threshold`.

Both are fitted on out-of-fold features: the phrasings are split into folds
stratified by entry, and each fold is scored against an index built from the
other folds only, so the models see questions the way users ask them — with
words the phrasings do not contain. The uncovered questions (in-domain
questions no entry answers, data/faq/uncovered.yml) are negatives for both.
The threshold maximises, over cross-validated stage-2 probabilities, the share
of phrasings answered right plus the share of uncovered questions declined.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from flows.faq_text import (
    FeatureWeights,
    Lexicon,
    SynonymTable,
    Tokenize,
    features,
    normalize,
)

# Bump when features or training change: cached models are keyed on it.
MODEL_FORMAT = 5
FOLDS = 10
SEED = 7
KNN = 10  # nearest phrasings that vote for their entries
FAST_PATH_MAX = 8  # up to this many texts are scored one by one (see Scorer.scores)

WORD_WEIGHTS = FeatureWeights()
_CHAR_STOP = frozenset("的了吗呢啊吧呀嘛哦哈么啦嗯")

RANK_FEATURES = (
    "lex_best",
    "lex_all",
    "char_best",
    "char_all",
    "sem_best",
    "sem_all",
    "uncovered",
    "sem_knn",
    "lex_knn",
    "lex_best_gap",
    "char_best_gap",
    "sem_best_gap",
    "sem_all_gap",
)
ANSWER_FEATURES = (
    "rank_logit",
    "rank_gap",
    "uncovered",
    "unknown_words",
    "sem_best",
    "lex_best",
    "char_best",
    "sem_vs_uncovered",
    "char_vs_uncovered",
)


def char_features(text: str, synonyms: SynonymTable) -> dict[str, float]:
    """Character 1-3-grams inside each segment, particles dropped."""
    counts: dict[str, float] = {}
    for segment in synonyms.apply(normalize(text)).split(" "):
        chars = "".join(c for c in segment if c not in _CHAR_STOP)
        for n, weight in ((1, 0.5), (2, 1.0), (3, 1.0)):
            for i in range(len(chars) - n + 1):
                key = chars[i : i + n]
                counts[key] = counts.get(key, 0.0) + weight
    return counts


@dataclass(frozen=True)
class TextFeatures:
    """One text's terms: word/bigram terms, character n-grams, content words."""

    words: dict[str, float]
    chars: dict[str, float]

    @property
    def content_words(self) -> list[str]:
        return [t for t in self.words if t.startswith("w:")]


class Featurizer:
    def __init__(self, tokenize: Tokenize, synonyms: SynonymTable, lexicon: Lexicon):
        self.tokenize = tokenize
        self.synonyms = synonyms
        self.lexicon = lexicon

    def __call__(self, text: str) -> TextFeatures:
        return TextFeatures(
            features(text, self.tokenize, self.synonyms, WORD_WEIGHTS, self.lexicon),
            char_features(text, self.synonyms),
        )


class _Vocabulary:
    def __init__(self, rows: Sequence[Mapping[str, float]]):
        self.index: dict[str, int] = {}
        for row in rows:
            for term in row:
                self.index.setdefault(term, len(self.index))

    def matrix(self, rows: Sequence[Mapping[str, float]]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Sublinear term counts of known terms, and each row's total squared
        weight of unknown terms at unit IDF (their IDF is applied by the caller)."""
        data: list[float] = []
        cols: list[int] = []
        indptr = [0]
        unknown = np.zeros(len(rows))
        for r, row in enumerate(rows):
            for term, count in row.items():
                tf = 1.0 + np.log(count) if count > 1.0 else count
                col = self.index.get(term)
                if col is None:
                    unknown[r] += tf * tf
                else:
                    cols.append(col)
                    data.append(tf)
            indptr.append(len(cols))
        m = sparse.csr_matrix((data, cols, indptr), shape=(len(rows), len(self.index)))
        return m, unknown

    def terms(self, row: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray, float]:
        """One text's known term columns, their sublinear counts, and the squared
        weight of its unknown terms at unit IDF (the one-question fast path)."""
        cols: list[int] = []
        tfs: list[float] = []
        unknown = 0.0
        for term, count in row.items():
            tf = 1.0 + float(np.log(count)) if count > 1.0 else count
            col = self.index.get(term)
            if col is None:
                unknown += tf * tf
            else:
                cols.append(col)
                tfs.append(tf)
        return np.asarray(cols, dtype=np.int64), np.asarray(tfs), unknown


def _rows_dot(m: sparse.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """weights @ m[rows] without building sparse matrices: for one short question
    scipy's per-call overhead (~1 ms a product) dwarfs the arithmetic."""
    starts = m.indptr[rows]
    lens = m.indptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(m.shape[1])
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    picked = offsets + np.arange(total)
    return np.bincount(
        m.indices[picked], weights=m.data[picked] * np.repeat(weights, lens), minlength=m.shape[1]
    )


def _normalize_rows(m: sparse.csr_matrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sparse.csr_matrix(sparse.diags(1.0 / norms) @ m)


class _TfIdfSpace:
    """TF-IDF cosines of questions with each phrasing and with each entry's centroid."""

    def __init__(
        self,
        counts: sparse.csr_matrix,
        doc_entry: np.ndarray,
        n_entries: int,
    ):
        n_docs = counts.shape[0]
        df = np.asarray((counts > 0).sum(axis=0)).ravel()
        self.unseen_idf = float(np.log(n_docs + 1) + 1.0)
        # A term no phrasing uses weighs like the rarest: it is probably
        # something the FAQ does not cover, and it lowers every cosine.
        self.idf = np.where(df > 0, np.log((n_docs + 1) / (df + 1)) + 1.0, self.unseen_idf)
        weight = sparse.diags(self.idf)
        self.docs = _normalize_rows(sparse.csr_matrix(counts @ weight)).T.tocsr()
        owner = sparse.csr_matrix(
            (np.ones(n_docs), (doc_entry, np.arange(n_docs))), shape=(n_entries, n_docs)
        )
        self.centroids = _normalize_rows(sparse.csr_matrix(owner @ counts @ weight)).T.tocsr()

    def cosines(
        self, queries: sparse.csr_matrix, unknown: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        weighted = sparse.csr_matrix(queries @ sparse.diags(self.idf))
        sq = np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()
        norms = np.sqrt(sq + unknown * self.unseen_idf**2)
        norms[norms == 0] = 1.0
        docs = (weighted @ self.docs).toarray() / norms[:, None]
        cents = (weighted @ self.centroids).toarray() / norms[:, None]
        return docs, cents

    def cosines_one(
        self, cols: np.ndarray, tfs: np.ndarray, unknown: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """`cosines` for one question given as `_Vocabulary.terms`."""
        weights = tfs * self.idf[cols]
        norm = float(np.sqrt(np.dot(weights, weights) + unknown * self.unseen_idf**2)) or 1.0
        docs = _rows_dot(self.docs, cols, weights) / norm
        cents = _rows_dot(self.centroids, cols, weights) / norm
        return docs[None, :], cents[None, :]


def _per_entry_max(scores: np.ndarray, starts: np.ndarray) -> np.ndarray:
    return np.maximum.reduceat(scores, starts, axis=1)


def _knn_share(scores: np.ndarray, doc_entry: np.ndarray, n_entries: int) -> np.ndarray:
    """Per entry, its share of each question's KNN nearest phrasings."""
    k = min(KNN, scores.shape[1])
    nearest = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    share = np.zeros((scores.shape[0], n_entries))
    rows = np.repeat(np.arange(scores.shape[0]), k)
    np.add.at(share, (rows, doc_entry[nearest].ravel()), 1.0 / k)
    return share


def _gap(scores: np.ndarray) -> np.ndarray:
    """Each entry's score minus the best other entry's score (per row)."""
    if scores.shape[1] < 2:
        return scores.copy()
    order = np.argsort(-scores, axis=1)
    rows = np.arange(scores.shape[0])
    first = scores[rows, order[:, 0]]
    second = scores[rows, order[:, 1]]
    other = np.repeat(first[:, None], scores.shape[1], axis=1)
    other[rows, order[:, 0]] = second
    return scores - other


class Scorer:
    """Retrieval scores of questions against a set of phrasings (see module docstring).

    `doc_entry` must be sorted and give every entry at least one phrasing.
    """

    def __init__(
        self,
        doc_features: Sequence[TextFeatures],
        doc_entry: np.ndarray,
        doc_vectors: np.ndarray,
        entry_words: Sequence[set[str]],
        word_vocab: _Vocabulary,
        char_vocab: _Vocabulary,
        uncovered_features: Sequence[TextFeatures] = (),
        uncovered_vectors: np.ndarray | None = None,
    ):
        n_entries = len(entry_words)
        self.n_entries = n_entries
        self.word_vocab = word_vocab
        self.char_vocab = char_vocab
        self.starts = np.searchsorted(doc_entry, np.arange(n_entries))
        self.doc_entry = doc_entry
        word_counts, _ = word_vocab.matrix([f.words for f in doc_features])
        char_counts, _ = char_vocab.matrix([f.chars for f in doc_features])
        self.words = _TfIdfSpace(word_counts, doc_entry, n_entries)
        self.chars = _TfIdfSpace(char_counts, doc_entry, n_entries)
        self.vectors = doc_vectors
        sums = np.zeros((n_entries, doc_vectors.shape[1]), dtype=np.float64)
        np.add.at(sums, doc_entry, doc_vectors)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        self.entry_vectors = (sums / norms).astype(np.float32)
        # Which content words each entry knows (its phrasings, answer and tags).
        rows, cols = [], []
        for e, known in enumerate(entry_words):
            for term in known:
                col = word_vocab.index.get(term)
                if col is not None:
                    rows.append(e)
                    cols.append(col)
        # (vocabulary, entries), dense: a few hundred KB, and one fancy index per question.
        self.coverage = np.zeros((len(word_vocab.index), n_entries), dtype=np.float32)
        self.coverage[cols, rows] = 1.0
        self.known_anywhere: np.ndarray = np.asarray(self.coverage.any(axis=1))
        # The questions known to be uncovered, as a yardstick: a question closer
        # to one of them than to the entry's phrasings is probably not covered.
        dim = doc_vectors.shape[1]
        self.uncovered_vectors = (
            uncovered_vectors
            if uncovered_vectors is not None and len(uncovered_vectors)
            else np.zeros((1, dim), dtype=np.float32)
        )
        unc_counts, _ = char_vocab.matrix([f.chars for f in uncovered_features] or [{}])
        self.uncovered_chars = _normalize_rows(
            sparse.csr_matrix(unc_counts @ sparse.diags(self.chars.idf))
        ).T.tocsr()

    def scores(self, queries: Sequence[TextFeatures], vectors: np.ndarray) -> dict[str, np.ndarray]:
        """Name -> (n_queries, n_entries) array for every name in RANK_FEATURES,
        plus `unknown_words` (n_queries, 1)."""
        if 1 < len(queries) <= FAST_PATH_MAX:
            # A message and its clauses: scipy's per-product overhead dwarfs the
            # arithmetic for a few short texts, so take the one-text path each.
            parts = [self.scores([q], vectors[i : i + 1]) for i, q in enumerate(queries)]
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        if len(queries) == 1:
            lex_docs, lex_all = self.words.cosines_one(*self.word_vocab.terms(queries[0].words))
            char_terms = self.char_vocab.terms(queries[0].chars)
            char_docs, char_all = self.chars.cosines_one(*char_terms)
        else:
            wq, wunk = self.word_vocab.matrix([q.words for q in queries])
            cq, cunk = self.char_vocab.matrix([q.chars for q in queries])
            lex_docs, lex_all = self.words.cosines(wq, wunk)
            char_docs, char_all = self.chars.cosines(cq, cunk)
        sem_docs = vectors @ self.vectors.T
        out: dict[str, np.ndarray] = {
            "lex_best": _per_entry_max(lex_docs, self.starts),
            "lex_all": lex_all,
            "char_best": _per_entry_max(char_docs, self.starts),
            "char_all": char_all,
            "sem_best": _per_entry_max(sem_docs, self.starts),
            "sem_all": vectors @ self.entry_vectors.T,
            "sem_knn": _knn_share(sem_docs, self.doc_entry, self.n_entries),
            "lex_knn": _knn_share(lex_docs, self.doc_entry, self.n_entries),
        }
        uncovered, unknown = self._coverage(queries)
        out["uncovered"] = uncovered
        out["unknown_words"] = unknown
        unc_sem = (vectors @ self.uncovered_vectors.T).max(axis=1, keepdims=True)
        if len(queries) == 1:
            cols, tfs, unknown_sq = char_terms
            weights = tfs * self.chars.idf[cols]
            norm = float(np.sqrt(np.dot(weights, weights) + unknown_sq * self.chars.unseen_idf**2))
            unc_char = (_rows_dot(self.uncovered_chars, cols, weights) / (norm or 1.0)).max()
            unc_char = np.array([[unc_char]])
        else:
            weighted = sparse.csr_matrix(cq @ sparse.diags(self.chars.idf))
            norms = np.sqrt(
                np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel()
                + cunk * self.chars.unseen_idf**2
            )
            norms[norms == 0] = 1.0
            unc_char = ((weighted @ self.uncovered_chars).toarray() / norms[:, None]).max(
                axis=1, keepdims=True
            )
        out["sem_vs_uncovered"] = out["sem_best"] - unc_sem
        out["char_vs_uncovered"] = out["char_best"] - unc_char
        for name in ("lex_best", "char_best", "sem_best", "sem_all"):
            out[name + "_gap"] = _gap(out[name])
        return out

    def generic(self, query: TextFeatures, share: float) -> bool:
        """True when the question has content words and every one of them is
        used by at least `share` of the entries: it names no topic of its own."""
        words = query.content_words
        if not words:
            return False
        least = share * self.n_entries
        for term in words:
            col = self.word_vocab.index.get(term)
            if col is None or float(self.coverage[col].sum()) < least:
                return False
        return True

    def _coverage(self, queries: Sequence[TextFeatures]) -> tuple[np.ndarray, np.ndarray]:
        """Per entry, the IDF-weighted share of a question's content words the
        entry never uses; per question, the share no entry uses at all."""
        idf = self.words.idf
        unseen = self.words.unseen_idf
        totals = np.zeros(len(queries))
        outside = np.zeros(len(queries))
        covered = np.zeros((len(queries), self.n_entries))
        for r, q in enumerate(queries):
            cols: list[int] = []
            weights: list[float] = []
            for term in q.content_words:
                col = self.word_vocab.index.get(term)
                weight = unseen if col is None else float(idf[col])
                totals[r] += weight
                if col is None or not self.known_anywhere[col]:
                    outside[r] += weight
                if col is not None:
                    cols.append(col)
                    weights.append(weight)
            if cols:
                covered[r] = np.asarray(weights) @ self.coverage[cols]
        safe = np.where(totals > 0, totals, 1.0)
        uncovered = np.where(totals[:, None] > 0, 1.0 - covered / safe[:, None], 1.0)
        unknown = np.where(totals > 0, outside / safe, 1.0)
        return uncovered, unknown[:, None]


def rank_matrix(scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """(n_queries, n_entries, len(RANK_FEATURES))"""
    return np.stack([scores[name] for name in RANK_FEATURES], axis=-1)


def answer_matrix(scores: Mapping[str, np.ndarray], rank_logits: np.ndarray) -> np.ndarray:
    """(n_queries, n_entries, len(ANSWER_FEATURES)): each entry judged as the answer."""
    n_entries = rank_logits.shape[1]
    columns = {
        **scores,
        "rank_logit": rank_logits,
        "rank_gap": _gap(rank_logits),
        "unknown_words": np.repeat(scores["unknown_words"], n_entries, axis=1),
    }
    return np.stack([columns[name] for name in ANSWER_FEATURES], axis=-1)


@dataclass(frozen=True)
class Linear:
    """A fitted logistic regression: weights over named features, bias."""

    weights: tuple[float, ...]
    bias: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x @ np.asarray(self.weights) + self.bias)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": list(self.weights), "bias": self.bias}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], n_features: int) -> Linear:
        weights = tuple(float(w) for w in raw["weights"])
        if len(weights) != n_features:
            raise ValueError(f"expected {n_features} weights, got {len(weights)}")
        return cls(weights, float(raw["bias"]))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30, 30))))


@dataclass(frozen=True)
class FaqModel:
    rank: Linear
    answer: Linear
    threshold: float
    report: Mapping[str, float]  # cross-validated figures from training

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "rank": self.rank.to_dict(),
            "answer": self.answer.to_dict(),
            "threshold": self.threshold,
            "report": dict(self.report),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FaqModel:
        if raw.get("format") != MODEL_FORMAT:
            raise ValueError(f"FAQ model format {raw.get('format')!r}, expected {MODEL_FORMAT}")
        return cls(
            Linear.from_dict(raw["rank"], len(RANK_FEATURES)),
            Linear.from_dict(raw["answer"], len(ANSWER_FEATURES)),
            float(raw["threshold"]),
            {str(k): float(v) for k, v in dict(raw.get("report", {})).items()},
        )

    def match_scores(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """(n_queries, n_entries) probability that answering with the entry is right."""
        return self.answer_and_rank(scores)[0]

    def answer_and_rank(self, scores: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """`match_scores`, and the ranker's probability that the entry is the one asked about."""
        logits = self.rank.logits(rank_matrix(scores))
        return sigmoid(self.answer.logits(answer_matrix(scores, logits))), sigmoid(logits)


# --- training -----------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSet:
    """Phrasings sorted by entry, their features and vectors, and uncovered questions."""

    doc_features: tuple[TextFeatures, ...]
    doc_entry: np.ndarray
    doc_vectors: np.ndarray
    entry_words: tuple[set[str], ...]  # words from answers and tags, per entry
    uncovered_features: tuple[TextFeatures, ...]
    uncovered_vectors: np.ndarray


def build_scorer(
    data: TrainingSet, docs: np.ndarray | None = None, uncovered: np.ndarray | None = None
) -> Scorer:
    """A scorer over all phrasings and uncovered questions, or over the numbers
    in `docs` and `uncovered`."""
    chosen = np.arange(len(data.doc_features)) if docs is None else docs
    unc = np.arange(len(data.uncovered_features)) if uncovered is None else uncovered
    feats = [data.doc_features[i] for i in chosen]
    known = [set(words) for words in data.entry_words]
    for i in chosen:
        known[int(data.doc_entry[i])].update(data.doc_features[i].content_words)
    all_words = [f.words for f in data.doc_features] + [f.words for f in data.uncovered_features]
    all_chars = [f.chars for f in data.doc_features] + [f.chars for f in data.uncovered_features]
    extra = [{w: 1.0 for w in words} for words in data.entry_words]
    return Scorer(
        feats,
        data.doc_entry[chosen],
        data.doc_vectors[chosen],
        known,
        _Vocabulary(all_words + extra),
        _Vocabulary(all_chars),
        [data.uncovered_features[i] for i in unc],
        data.uncovered_vectors[unc],
    )


def _folds(labels: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number per item, each label's items spread evenly over the folds.

    A label's first item is never held out (fold -1), so that every entry keeps
    a phrasing in every fold's index."""
    fold = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        fold[members] = np.arange(len(members)) % n_folds
        if len(members) <= n_folds:
            fold[members[0]] = -1
    return fold


def _fit_linear(x: np.ndarray, y: np.ndarray, balanced: bool = False) -> Linear:
    if len(np.unique(y)) < 2:
        # Nothing to learn from (tiny data, no uncovered questions): trust the
        # first feature, the retrieval logit / score, alone.
        return Linear(tuple(1.0 if i == 0 else 0.0 for i in range(x.shape[1])), 0.0)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced" if balanced else None)
    model.fit(x, y)
    return Linear(tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]))


# Declining an uncovered question matters more than one more answer: a wrong
# answer misleads, a decline offers a person. The cut-off keeps at least this
# share of the cross-validated uncovered questions declined.
MIN_DECLINED = 0.9


def _best_threshold(
    top_correct: np.ndarray, top_score: np.ndarray, is_uncovered: np.ndarray
) -> tuple[float, float, float]:
    """The cut-off maximising answered-right share + declined-uncovered share,
    among those that decline at least MIN_DECLINED of the uncovered questions
    (when any does)."""
    pos = ~is_uncovered
    best = (0.5, -1.0, 0.0, 0.0)
    fallback = best
    for t in np.unique(np.round(top_score, 3)):
        right = float(np.mean(top_correct[pos] & (top_score[pos] >= t))) if pos.any() else 0.0
        declined = float(np.mean(top_score[is_uncovered] < t)) if is_uncovered.any() else 1.0
        if right + declined > fallback[1]:
            fallback = (float(t), right + declined, right, declined)
        if declined >= MIN_DECLINED and right + declined > best[1]:
            best = (float(t), right + declined, right, declined)
    chosen = best if best[1] >= 0 else fallback
    return chosen[0], chosen[2], chosen[3]


def out_of_fold_scores(
    data: TrainingSet, n_folds: int = FOLDS, seed: int = SEED
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Scores of every phrasing and uncovered question against an index built
    without its fold. Returns (scores, gold entry or -1, fold) per question."""
    rng = np.random.default_rng(seed)
    doc_fold = _folds(data.doc_entry, n_folds, rng)
    n_unc = len(data.uncovered_features)
    unc_fold = rng.permutation(n_unc) % n_folds if n_unc else np.zeros(0, dtype=np.int64)
    parts: list[dict[str, np.ndarray]] = []
    gold: list[np.ndarray] = []
    folds: list[np.ndarray] = []
    for k in range(n_folds):
        train = np.flatnonzero(doc_fold != k)
        test = np.flatnonzero(doc_fold == k)
        unc = np.flatnonzero(unc_fold == k)
        if len(test) + len(unc) == 0:
            continue
        scorer = build_scorer(data, train, np.flatnonzero(unc_fold != k))
        queries = [data.doc_features[i] for i in test] + [data.uncovered_features[i] for i in unc]
        vectors = np.concatenate([data.doc_vectors[test], data.uncovered_vectors[unc]])
        parts.append(scorer.scores(queries, vectors))
        gold.append(np.concatenate([data.doc_entry[test], -np.ones(len(unc), dtype=np.int64)]))
        folds.append(np.full(len(queries), k))
    if not parts:
        return {}, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    return merged, np.concatenate(gold), np.concatenate(folds)


def untrained_model() -> FaqModel:
    """For data too small to hold anything out (an entry or two, one phrasing
    each): answer when the best phrasing matches in words and meaning."""
    rank = Linear(
        tuple(1.0 if name in ("lex_best", "sem_best") else 0.0 for name in RANK_FEATURES), -1.0
    )
    answer = Linear(tuple(1.0 if i == 0 else 0.0 for i in range(len(ANSWER_FEATURES))), 0.0)
    return FaqModel(rank, answer, 0.5, {"phrasings": 0.0, "uncovered": 0.0})


def train_model(data: TrainingSet) -> FaqModel:
    """Fit on out-of-fold scores (see module docstring)."""
    scores, gold, fold = out_of_fold_scores(data)
    if not len(gold) or not (gold >= 0).any():
        return untrained_model()
    return fit_model(scores, gold, fold)


def fit_model(scores: Mapping[str, np.ndarray], gold: np.ndarray, fold: np.ndarray) -> FaqModel:
    """Fit both stages and the threshold on out-of-fold scores."""
    n_queries, n_entries = scores["lex_best"].shape
    truth = np.zeros((n_queries, n_entries), dtype=bool)
    known = gold >= 0
    truth[np.flatnonzero(known), gold[known]] = True
    x_rank = rank_matrix(scores)
    rank = _fit_linear(x_rank.reshape(-1, x_rank.shape[-1]), truth.ravel())
    logits = rank.logits(x_rank)
    x_answer = answer_matrix(scores, logits)
    # Stage 2 learns the decision that matters: answer with the best candidate
    # or decline. Lower candidates score lower through their negative gap.
    top = np.argsort(-logits, axis=1)[:, :1]
    rows = np.repeat(np.arange(n_queries), top.shape[1])
    cols = top.ravel()
    xa, ya = x_answer[rows, cols], truth[rows, cols]
    # Questions the ranker got wrong say little about coverage: stage 2 learns
    # from right answers against uncovered questions (when there are any).
    keep = ya | (gold[rows] < 0) if (gold < 0).any() else np.ones(len(ya), dtype=bool)
    answer = _fit_linear(xa[keep], ya[keep], balanced=True)
    # Threshold from stage-2 probabilities cross-validated by question fold.
    cv_scores = np.zeros(n_queries)
    for k in np.unique(fold):
        if k < 0:
            continue
        held = fold[rows] == k
        part = _fit_linear(xa[~held & keep], ya[~held & keep], balanced=True)
        mine = np.flatnonzero(fold == k)
        cv_scores[mine] = sigmoid(part.logits(x_answer[mine, top[mine, 0]]))
    top_correct = truth[np.arange(n_queries), top[:, 0]]
    threshold, right, declined = _best_threshold(top_correct, cv_scores, ~known)
    report = {
        "cv_top1": float(np.mean(top_correct[known])) if known.any() else 0.0,
        "cv_answered_right": right,
        "cv_uncovered_declined": declined,
        "phrasings": float(known.sum()),
        "uncovered": float((~known).sum()),
    }
    return FaqModel(rank, answer, threshold, report)
