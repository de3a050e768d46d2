"""The plain-data scorer reproduces scikit-learn, survives a save/load, and is calibrated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from nlu.classifier import (
    ClassifierConfig,
    ModelIncompatibleError,
    _fit_temperature,
    load_model,
    read_metadata,
    save_model,
    train_intent_model,
)
from nlu.features import FeatureConfig, Patterns

DOCS = [
    (["c:贷", "c:款", "w:贷款", "w:利息"], "microloan"),
    (["c:贷", "w:红色信贷", "w:申请"], "microloan"),
    (["c:款", "w:贷款", "w:多少"], "microloan"),
    (["c:你", "c:好", "w:你好"], "greet"),
    (["c:您", "c:好", "w:您好"], "greet"),
    (["c:早", "w:早上好", "c:好"], "greet"),
    (["c:谢", "w:谢谢"], "thanks"),
    (["c:谢", "w:多谢", "w:了"], "thanks"),
    (["c:感", "w:感谢", "w:帮忙"], "thanks"),
]


def identity(x: list[str]) -> list[str]:
    return x


@pytest.fixture
def model():
    features = [f for f, _ in DOCS]
    labels = [label for _, label in DOCS]
    return train_intent_model(
        features, labels, FeatureConfig(), Patterns(), ClassifierConfig(c=1.0, calibrate=False)
    )


def test_scorer_matches_scikit_learn(model) -> None:
    features = [f for f, _ in DOCS]
    labels = [label for _, label in DOCS]
    vectorizer = TfidfVectorizer(analyzer=identity, sublinear_tf=True)
    x = vectorizer.fit_transform(features)
    reference = LinearSVC(C=1.0, class_weight="balanced", random_state=0).fit(x, labels)
    queries = [["w:贷款", "w:贷款", "c:好"], ["w:谢谢", "unknown"], ["c:早", "c:贷"]]
    decision = reference.decision_function(vectorizer.transform(queries))
    expected = np.exp(decision) / np.exp(decision).sum(axis=1, keepdims=True)
    for query, row in zip(queries, expected, strict=True):
        probs, known = model.scores(query)
        assert list(model.labels) == list(reference.classes_)
        np.testing.assert_allclose(probs, row, rtol=1e-6, atol=1e-9)
        assert known == len({f for f in query if f != "unknown"})


def test_save_and_load_round_trip(model, tmp_path: Path) -> None:
    save_model(model, tmp_path, {"data_hash": "abc"})
    loaded = load_model(tmp_path)
    for query, _ in DOCS:
        np.testing.assert_allclose(loaded.scores(query)[0], model.scores(query)[0], rtol=1e-5)
    assert read_metadata(tmp_path)["data_hash"] == "abc"
    # Saving a loaded model again replaces the arrays file instead of piling
    # them up, and the metadata points at the new one.
    save_model(loaded, tmp_path, {"data_hash": "def"})
    assert len(list(tmp_path.glob("arrays-*.npz"))) == 1
    again = load_model(tmp_path)
    assert again.metadata["data_hash"] == "def"
    np.testing.assert_allclose(again.scores(DOCS[0][0])[0], model.scores(DOCS[0][0])[0], rtol=1e-5)


def test_mismatched_arrays_are_refused(model, tmp_path: Path) -> None:
    save_model(model, tmp_path, {})
    metadata = read_metadata(tmp_path)
    metadata["labels"] = metadata["labels"][:2]
    with pytest.raises(ModelIncompatibleError, match="shapes"):
        load_model(tmp_path, metadata)


def test_unknown_features_give_the_prior(model) -> None:
    probs, known = model.scores(["never", "seen"])
    assert known == 0
    assert probs.sum() == pytest.approx(1.0)


def test_temperature_fit_recovers_the_true_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 5))
    true_t = 2.5
    probs = np.exp(logits / true_t)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(5, p=p) for p in probs])
    assert _fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)
