"""From training data to a saved model: featurise, fit, write with metadata."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlu.classifier import (
    ClassifierConfig,
    IntentModel,
    library_versions,
    save_model,
    train_intent_model,
)
from nlu.entities import extract_entities
from nlu.features import Encoded, FeatureConfig, Featurizer, Patterns
from nlu.tokenizer import Tokenizer
from nlu.training_data import Example, Problem, TrainingData, data_fingerprint, load_training_data
from nlu.word_vectors import DEFAULT_WORD_VECTORS


@dataclass(frozen=True)
class TrainSummary:
    model_dir: Path
    n_examples: int
    n_intents: int
    n_features: int
    seconds: float
    temperature: float
    problems: tuple[Problem, ...]


def fingerprint_extras(userdict: Path | None, feature_config: FeatureConfig) -> list[Path]:
    """Files besides the training data whose change makes a saved model stale."""
    extras = [userdict] if userdict is not None else []
    if feature_config.word_vectors:
        extras.append(DEFAULT_WORD_VECTORS)
    return extras


def patterns_of(data: TrainingData) -> Patterns:
    return Patterns(dict(data.synonyms), dict(data.regexes), dict(data.lookups))


def featurize(featurizer: Featurizer, examples: Sequence[Example]) -> list[Encoded]:
    # Interned: the same few tens of thousands of feature strings recur hundreds
    # of thousands of times; one copy each keeps training's peak memory down.
    encoded = []
    for example in examples:
        e = featurizer.encode(example.text, extract_entities(example.text))
        encoded.append(Encoded([sys.intern(f) for f in e.features], e.dense))
    return encoded


def dense_matrix(encoded: Sequence[Encoded]) -> np.ndarray | None:
    """The examples' dense vectors as one matrix, or None when they have none."""
    if not encoded or encoded[0].dense is None:
        return None
    return np.vstack([e.dense for e in encoded if e.dense is not None])


def train(
    data: TrainingData,
    tokenizer: Tokenizer,
    feature_config: FeatureConfig | None = None,
    classifier_config: ClassifierConfig | None = None,
) -> IntentModel:
    feature_config = feature_config or FeatureConfig()
    patterns = patterns_of(data)
    featurizer = Featurizer(tokenizer, feature_config, patterns)
    encoded = featurize(featurizer, data.examples)
    labels = [e.intent for e in data.examples]
    return train_intent_model(
        [e.features for e in encoded],
        labels,
        feature_config,
        patterns,
        classifier_config,
        dense=dense_matrix(encoded),
    )


def train_from_files(
    data_paths: Sequence[Path],
    model_dir: Path,
    tokenizer: Tokenizer,
    feature_config: FeatureConfig | None = None,
    classifier_config: ClassifierConfig | None = None,
    base_files: Sequence[Path] | None = None,
) -> tuple[IntentModel, TrainSummary]:
    """Train on `data_paths` (files or directories); the model carries the metadata
    `save_model` needs. `base_files`: the part of the data that ships with the
    package (the rest are the operator's labels), fingerprinted on its own as
    `base_hash`. Raises TrainingDataError when the data is unusable."""
    started = time.perf_counter()
    data, problems = load_training_data(data_paths)
    model = train(data, tokenizer, feature_config, classifier_config)
    extra = fingerprint_extras(tokenizer.userdict, feature_config or FeatureConfig())
    base = data.files if base_files is None else base_files
    model.metadata.update(
        {
            "data_hash": data_fingerprint(data.files, extra),
            "base_hash": data_fingerprint(base, extra),
            "data_files": [p.name for p in data.files],
            "n_examples": len(data.examples),
            "versions": library_versions(),
            "tokenizer": tokenizer.signature(),
        }
    )
    summary = TrainSummary(
        model_dir=model_dir,
        n_examples=len(data.examples),
        n_intents=len(model.labels),
        n_features=len(model.vocabulary),
        seconds=time.perf_counter() - started,
        temperature=model.temperature,
        problems=tuple(problems),
    )
    return model, summary


def train_and_save(
    data_paths: Sequence[Path],
    model_dir: Path,
    tokenizer: Tokenizer,
    feature_config: FeatureConfig | None = None,
    classifier_config: ClassifierConfig | None = None,
    base_files: Sequence[Path] | None = None,
) -> tuple[IntentModel, TrainSummary]:
    """`train_from_files`, then save into `model_dir` (OSError when it can't be written)."""
    model, summary = train_from_files(
        data_paths, model_dir, tokenizer, feature_config, classifier_config, base_files
    )
    save_model(model, model_dir, {})
    return model, summary
