"""The shipped word vectors: loaded without pickle, meaningful, and used by the classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nlu.classifier import ClassifierConfig, load_model, save_model, train_intent_model
from nlu.features import FeatureConfig, Featurizer, Patterns
from nlu.parser import Parser
from nlu.training import dense_matrix, fingerprint_extras
from nlu.word_vectors import (
    DEFAULT_WORD_VECTORS,
    WordVectors,
    WordVectorsError,
    load_word_vectors,
)


@pytest.fixture(scope="module")
def vectors() -> WordVectors:
    return load_word_vectors()


def cosine(vectors: WordVectors, a: str, b: str) -> float:
    return float(vectors.sentence([a]) @ vectors.sentence([b]))


def test_shipped_vectors_load(vectors: WordVectors) -> None:
    assert len(vectors) > 50_000 and vectors.dim == 75
    assert {"贷款", "邻居", "志愿者", "路灯", "馕", "仓鼠"} <= set(vectors.index)


@pytest.mark.parametrize(
    ("word", "near", "far"),
    [
        ("贷款", "信贷", "仓鼠"),
        ("律师", "法院", "天气"),
        ("志愿者", "义务", "利息"),
        ("路灯", "街道", "工资"),
        ("吵架", "争吵", "贷款"),
    ],
)
def test_related_words_are_closer(vectors: WordVectors, word: str, near: str, far: str) -> None:
    assert cosine(vectors, word, near) > cosine(vectors, word, far) + 0.2


def test_sentence_vector(vectors: WordVectors) -> None:
    mean = vectors.sentence(["想", "贷款"])
    assert np.linalg.norm(mean) == pytest.approx(1.0, abs=1e-5)
    # A word without a vector of its own falls back to its characters.
    assert "馕坑烤肉店" not in vectors.index
    assert np.linalg.norm(vectors.sentence(["馕坑烤肉店"])) == pytest.approx(1.0, abs=1e-5)
    assert not vectors.sentence(["😀", "", "🙏🙏"]).any()
    assert not vectors.sentence([]).any()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read"),
        (b"not a zip file", "cannot read"),
    ],
)
def test_missing_or_damaged_file(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "vectors.npz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WordVectorsError, match=problem):
        load_word_vectors(path)


def test_mismatched_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "vectors.npz"
    words = np.frombuffer("甲\n乙".encode(), dtype=np.uint8)
    np.savez(path, words=words, vectors=np.ones((3, 4), np.int8), scales=np.ones(3, np.float32))
    with pytest.raises(WordVectorsError, match="do not match"):
        load_word_vectors(path)


def test_vectors_make_the_stored_model_stale_when_they_change() -> None:
    assert DEFAULT_WORD_VECTORS in fingerprint_extras(None, FeatureConfig())
    assert fingerprint_extras(None, FeatureConfig(word_vectors=False)) == []


TRAIN = [
    ("贷款利息多少", "microloan"),
    ("想申请贷款", "microloan"),
    ("贷款额度有多少", "microloan"),
    ("明天下雨吗", "out_of_scope"),
    ("今天天气怎么样", "out_of_scope"),
    ("外面刮风吗", "out_of_scope"),
]


def test_unseen_words_are_classified_by_meaning(
    nlu_parser: Parser, vectors: WordVectors, tmp_path: Path
) -> None:
    """融资 and 晴朗 share no character with the training texts: only the vectors
    can tell that one is about money and the other about the weather."""
    featurizer = Featurizer(nlu_parser.tokenizer, FeatureConfig(), Patterns(), vectors)
    encoded = [featurizer.encode(text) for text, _ in TRAIN]
    model = train_intent_model(
        [e.features for e in encoded],
        [label for _, label in TRAIN],
        FeatureConfig(),
        Patterns(),
        ClassifierConfig(calibrate=False),
        dense=dense_matrix(encoded),
    )
    save_model(model, tmp_path, {})
    for loaded in (model, load_model(tmp_path)):
        assert loaded.dense_weights is not None
        for text, intent in [("融资", "microloan"), ("晴朗", "out_of_scope")]:
            query = featurizer.encode(text)
            ranking, known = loaded.rank(query.features, query.dense)
            assert known == 0 and ranking[0][0] == intent
            # Without its dense half the model has nothing to go on.
            flat, _ = loaded.rank(query.features)
            assert flat[0][1] < ranking[0][1]
