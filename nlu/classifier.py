"""The intent classifier: trained with scikit-learn, served by a tiny numpy scorer.

Training: TF-IDF (sublinear tf, smooth idf, l2 norm) over the string features
of `nlu.features`, side by side with the dense mean word vector when there is
one, then a linear SVM (one-vs-rest; fast and, on this data, as
accurate as logistic regression at a fraction of the training time). Its
scores become confidences by a softmax with a temperature fitted on
out-of-fold scores (minimum log-loss), so that a confidence of 0.8 is right
about 80% of the time on unseen messages: that is what the fallback threshold
relies on. `algorithm="logistic"` switches to a multinomial logistic regression.

Serving: scikit-learn costs ~1 s to import and ~0.2 ms per `predict_proba`
call, so the model is saved as plain data — vocabulary, idf, weight matrix,
intercepts (an .npz of arrays, never a pickle) plus JSON metadata — and scored
here with a few numpy operations.
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from nlu.features import FeatureConfig, Patterns

MODEL_FORMAT_VERSION = 2  # 2: optional dense (word-vector) weights
METADATA_FILE = "metadata.json"
DEFAULT_C = 2.0  # best of 0.5-5 in 10-fold CV on nlu/data
CALIBRATION_FOLDS = 3
ALGORITHMS = ("linear_svc", "logistic")


class ModelError(Exception):
    """Base class for problems with a saved model."""


class ModelNotFoundError(ModelError):
    pass


class ModelIncompatibleError(ModelError):
    """The saved model cannot be used by this code (format or tokenizer changed)."""


@dataclass(frozen=True)
class ClassifierConfig:
    algorithm: str = "linear_svc"
    c: float = DEFAULT_C
    class_weight: str | None = "balanced"
    calibrate: bool = True

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "c": self.c,
            "class_weight": self.class_weight,
            "calibrate": self.calibrate,
        }


@dataclass
class IntentModel:
    """Plain-data linear model:
    softmax((tfidf(x) @ weights + dense(x) @ dense_weights + bias) / temperature)."""

    labels: tuple[str, ...]
    vocabulary: list[str]
    idf: np.ndarray  # (n_features,)
    weights: np.ndarray  # (n_features, n_labels)
    bias: np.ndarray  # (n_labels,)
    temperature: float = 1.0
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    patterns: Patterns = field(default_factory=Patterns)
    metadata: dict[str, Any] = field(default_factory=dict)
    dense_weights: np.ndarray | None = None  # (dense_dim, n_labels)

    def __post_init__(self) -> None:
        self._index = {f: i for i, f in enumerate(self.vocabulary)}
        self._scaled_weights = (self.weights / self.temperature).astype(np.float64)
        self._scaled_bias = (self.bias / self.temperature).astype(np.float64)
        self._scaled_dense = (
            None
            if self.dense_weights is None
            else (self.dense_weights / self.temperature).astype(np.float64)
        )

    def scores(
        self, features: Sequence[str], dense: np.ndarray | None = None
    ) -> tuple[np.ndarray, int]:
        """Probabilities per label (in `labels` order) and how many features were known.

        `dense` is ignored by a model trained without it; a model trained with it
        scores a missing one as all zeros (no word had a vector)."""
        index = self._index
        counts = Counter(i for f in features if (i := index.get(f)) is not None)
        if not counts:
            logits = self._scaled_bias
        else:
            idx = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            values = (1.0 + np.log(tf)) * self.idf[idx]
            values /= math.sqrt(float(values @ values))
            logits = values @ self._scaled_weights[idx] + self._scaled_bias
        if self._scaled_dense is not None and dense is not None:
            logits = logits + dense @ self._scaled_dense
        logits = logits - logits.max()
        exp = np.exp(logits)
        return exp / exp.sum(), len(counts)

    def rank(
        self, features: Sequence[str], dense: np.ndarray | None = None
    ) -> tuple[list[tuple[str, float]], int]:
        probs, known = self.scores(features, dense)
        order = np.argsort(-probs)
        return [(self.labels[i], float(probs[i])) for i in order], known


# --- training -----------------------------------------------------------------


def _identity(features: list[str]) -> list[str]:
    return features


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of softmax(logits / T)."""

    def nll(log_t: float) -> float:
        z = logits / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(y)), y].mean())

    lo, hi = math.log(0.05), math.log(20.0)
    golden = (math.sqrt(5) - 1) / 2
    a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - golden * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + golden * (hi - lo)
            fb = nll(b)
    return math.exp((lo + hi) / 2)


def _linear_logits(model: Any, x: Any, n_labels: int) -> np.ndarray:
    scores = np.asarray(model.decision_function(x), dtype=np.float64)
    if n_labels == 2:  # sklearn's binary model scores only the second class
        scores = np.column_stack([np.zeros_like(scores), scores])
    return scores


def train_intent_model(
    feature_lists: Sequence[list[str]],
    labels: Sequence[str],
    feature_config: FeatureConfig,
    patterns: Patterns,
    config: ClassifierConfig | None = None,
    dense: np.ndarray | None = None,
) -> IntentModel:
    """Fit the vectoriser and classifier with scikit-learn (imported here only).

    `dense` (n_examples, dim), when given, is weighed beside the TF-IDF columns."""
    import scipy.sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.svm import LinearSVC

    config = config or ClassifierConfig()
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError("need examples of at least two intents to train")
    y = np.array([classes.index(label) for label in labels])
    vectorizer = TfidfVectorizer(
        analyzer=_identity, sublinear_tf=True, smooth_idf=True, norm="l2", dtype=np.float64
    )
    x = vectorizer.fit_transform(feature_lists)
    n_sparse = x.shape[1]
    if dense is not None:
        if dense.shape[0] != len(y):
            raise ValueError("dense features and labels differ in length")
        x = scipy.sparse.hstack([x, scipy.sparse.csr_matrix(dense)], format="csr")

    def make() -> Any:
        if config.algorithm == "logistic":
            return LogisticRegression(C=config.c, max_iter=3000, class_weight=config.class_weight)
        return LinearSVC(C=config.c, class_weight=config.class_weight, random_state=0)

    temperature = 1.0
    min_count = int(np.bincount(y).min())
    if config.calibrate and min_count >= 2:
        folds = min(CALIBRATION_FOLDS, min_count)
        oof = np.zeros((len(y), len(classes)))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        for train_idx, test_idx in splitter.split(np.zeros(len(y)), y):
            fold_model = make().fit(x[train_idx], y[train_idx])
            fold_logits = _linear_logits(fold_model, x[test_idx], len(classes))
            # A fold may miss a rare class entirely; map its columns back.
            full = np.full((len(test_idx), len(classes)), -1e4)
            full[:, fold_model.classes_] = fold_logits
            oof[test_idx] = full
        temperature = _fit_temperature(oof, y)

    model = make().fit(x, y)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if len(classes) == 2:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    dense_weights = coef[:, n_sparse:].T.copy() if dense is not None else None
    coef = coef[:, :n_sparse]
    vocabulary = [str(f) for f in vectorizer.get_feature_names_out()]
    for feature in vocabulary:
        if "\n" in feature:  # the vocabulary is stored newline-separated
            raise ValueError(f"feature contains a newline: {feature!r}")
    return IntentModel(
        labels=tuple(classes),
        vocabulary=vocabulary,
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        weights=coef.T.copy(),
        bias=intercept,
        temperature=temperature,
        feature_config=feature_config,
        patterns=patterns,
        metadata={"classifier": config.to_dict()},
        dense_weights=dense_weights,
    )


# --- persistence --------------------------------------------------------------


def library_versions() -> dict[str, str]:
    from importlib import metadata as md

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for dist in ("jieba", "scikit-learn", "tongxin"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


def save_model(model: IntentModel, directory: Path, metadata: dict[str, Any]) -> Path:
    """Write `<dir>/arrays-<id>.npz` then `<dir>/metadata.json` (atomically, last).

    Readers go through metadata.json, so a concurrent reader sees either the old
    model or the new one, never a mix.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with _directory_lock(directory):
        return _save_locked(model, directory, metadata)


@contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """Serialise writers of one model directory (two first-use trainings at once)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: writers still replace files atomically
        yield
        return
    with open(directory / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _save_locked(model: IntentModel, directory: Path, metadata: dict[str, Any]) -> Path:
    vocab_bytes = "\n".join(model.vocabulary).encode("utf-8")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    arrays_name = f"arrays-{stamp}-{os.getpid()}.npz"
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
    arrays: dict[str, np.ndarray] = {
        "vocabulary": np.frombuffer(vocab_bytes, dtype=np.uint8),
        "idf": model.idf.astype(np.float32),
        "weights": model.weights.astype(np.float32),
        "bias": model.bias.astype(np.float64),
    }
    if model.dense_weights is not None:
        arrays["dense_weights"] = model.dense_weights.astype(np.float32)
    with os.fdopen(fd, "wb") as handle:
        savez: Any = np.savez  # numpy's stub types **kwds as its allow_pickle flag
        savez(handle, **arrays)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a model is not secret
    os.replace(tmp, directory / arrays_name)
    # Computed fields last: a loaded model's old "arrays" name must not survive.
    full = {
        **model.metadata,
        **metadata,
        "format_version": MODEL_FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "labels": list(model.labels),
        "temperature": model.temperature,
        "n_features": len(model.vocabulary),
        "feature_config": model.feature_config.to_dict(),
        "patterns": model.patterns.to_dict(),
        "arrays": arrays_name,
    }
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".json.tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(full, handle, ensure_ascii=False, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, directory / METADATA_FILE)
    for old in directory.glob("arrays-*.npz"):
        if old.name != arrays_name:
            old.unlink(missing_ok=True)
    return directory / METADATA_FILE


def read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ModelNotFoundError(f"no NLU model in {directory}") from exc
    except (OSError, ValueError) as exc:
        raise ModelIncompatibleError(f"unreadable model metadata {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelIncompatibleError(f"model metadata {path} is not a JSON object")
    return raw


def compatibility_problem(
    metadata: dict[str, Any], jieba_version: str, tokenizer: dict[str, Any]
) -> str | None:
    """Why this code cannot use a model with `metadata`, or None.

    The features are words, so a model is tied to the tokenizer that cut them.
    """
    version = metadata.get("format_version")
    if version != MODEL_FORMAT_VERSION:
        return f"model format {version!r}, this code reads format {MODEL_FORMAT_VERSION}"
    versions = metadata.get("versions")
    trained_with = versions.get("jieba") if isinstance(versions, dict) else None
    if trained_with != jieba_version:
        return f"model was trained with jieba {trained_with}, installed is {jieba_version}"
    if metadata.get("tokenizer") != tokenizer:
        return f"model was trained with tokenizer {metadata.get('tokenizer')}, now {tokenizer}"
    return None


def load_model(directory: Path, metadata: dict[str, Any] | None = None) -> IntentModel:
    """Load a saved model (no pickle: `allow_pickle=False`)."""
    metadata = metadata if metadata is not None else read_metadata(directory)
    try:
        arrays_path = directory / str(metadata["arrays"])
        with np.load(arrays_path, allow_pickle=False) as arrays:
            vocabulary = bytes(arrays["vocabulary"]).decode("utf-8").split("\n")
            idf = arrays["idf"].astype(np.float64)
            weights = arrays["weights"].astype(np.float64)
            bias = arrays["bias"].astype(np.float64)
            dense_weights = (
                arrays["dense_weights"].astype(np.float64) if "dense_weights" in arrays else None
            )
        labels = tuple(str(label) for label in metadata["labels"])
        temperature = float(metadata.get("temperature", 1.0))
    except (KeyError, OSError, ValueError, TypeError) as exc:
        raise ModelIncompatibleError(f"damaged model in {directory}: {exc}") from exc
    if weights.shape != (len(vocabulary), len(labels)) or idf.shape != (len(vocabulary),):
        raise ModelIncompatibleError(f"damaged model in {directory}: array shapes do not match")
    if bias.shape != (len(labels),) or not temperature > 0:
        raise ModelIncompatibleError(f"damaged model in {directory}: bad bias or temperature")
    feature_config = FeatureConfig.from_dict(metadata.get("feature_config", {}))
    if dense_weights is not None and (
        dense_weights.ndim != 2 or dense_weights.shape[1] != len(labels)
    ):
        raise ModelIncompatibleError(f"damaged model in {directory}: word-vector weights")
    return IntentModel(
        labels=labels,
        vocabulary=vocabulary,
        idf=idf,
        weights=weights,
        bias=bias,
        temperature=temperature,
        feature_config=feature_config,
        patterns=Patterns.from_dict(metadata.get("patterns", {})),
        metadata=metadata,
        dense_weights=dense_weights,
    )
