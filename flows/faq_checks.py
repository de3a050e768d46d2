"""Warnings about FAQ phrasings that collide: the same question, nearly word for
word, listed under two entries. The ranker cannot tell such entries apart, so
one of them answers the other's questions; an operator should move the
phrasing, sharpen it, or make one entry an `alias_of` the other."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from flows.faq_data import FaqEntry
from flows.faq_model import char_features
from flows.faq_text import SynonymTable

# Cosine of character 1-3-gram TF-IDF vectors above which two phrasings say
# the same thing (a particle or one character apart).
COLLISION_SIMILARITY = 0.9


def phrasing_collisions(
    entries: Sequence[FaqEntry],
    synonyms: SynonymTable,
    min_similarity: float = COLLISION_SIMILARITY,
) -> list[tuple[str, str, str, str, float]]:
    """(entry id, phrasing, other entry id, other phrasing, similarity), each pair once."""
    texts: list[str] = []
    owner: list[int] = []
    for number, entry in enumerate(entries):
        for q in entry.questions:
            texts.append(q)
            owner.append(number)
    if len(texts) < 2:
        return []
    counts = [char_features(t, synonyms) for t in texts]
    vocab: dict[str, int] = {}
    rows, cols, data = [], [], []
    for r, row in enumerate(counts):
        for term, c in row.items():
            rows.append(r)
            cols.append(vocab.setdefault(term, len(vocab)))
            data.append(c)
    m = sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), len(vocab)))
    df = np.asarray((m > 0).sum(axis=0)).ravel()
    m = sparse.csr_matrix(m @ sparse.diags(np.log((len(texts) + 1) / (df + 1)) + 1.0))
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    m = sparse.csr_matrix(sparse.diags(1.0 / norms) @ m)
    sims = (m @ m.T).tocoo()
    owners = np.asarray(owner)
    found = []
    for i, j, s in zip(sims.row, sims.col, sims.data, strict=True):
        if i < j and s >= min_similarity and owners[i] != owners[j]:
            found.append(
                (entries[owners[i]].id, texts[i], entries[owners[j]].id, texts[j], float(s))
            )
    return sorted(found, key=lambda f: -f[4])
