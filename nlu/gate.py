"""Gated retraining: a new intent model replaces the current one only if it is
not worse on a fixed held-out file.

`gated_train` trains a candidate on the training files (the shipped data and
the operator's labels), scores it and the current model on the held-out
messages, and makes the candidate current only if neither accuracy nor
macro-F1 drops. Otherwise nothing changes and the result carries both sets
of figures. Accepted models are kept as versions (nlu/model_versions.py).

The default held-out file, nlu/data/gate/heldout.yml, was written for this and
is not training data (`default_data_paths` reads only the top of nlu/data/).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlu.classifier import (
    IntentModel,
    ModelError,
    compatibility_problem,
    load_model,
    read_metadata,
)
from nlu.evaluate import evaluate_parser
from nlu.model_versions import DEFAULT_KEEP, archive, make_current
from nlu.parser import Parser, jieba_version, parser_for_model
from nlu.settings import NluSettings
from nlu.tokenizer import Tokenizer
from nlu.training import train_from_files
from nlu.training_data import DATA_DIR, Example, TrainingDataError, load_examples

DEFAULT_HELDOUT = DATA_DIR / "gate" / "heldout.yml"
# Figures are compared at this many decimals: the same predictions must never
# look like a drop through float noise.
_DECIMALS = 6


@dataclass(frozen=True)
class Figures:
    accuracy: float
    macro_f1: float
    examples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "examples": self.examples,
        }

    def __str__(self) -> str:
        return f"accuracy {self.accuracy:.2%}, macro-F1 {self.macro_f1:.4f}"


@dataclass(frozen=True)
class GateResult:
    accepted: bool
    before: Figures | None  # None: there was no usable current model
    after: Figures
    version: str | None  # the new current version when accepted
    heldout: str
    n_examples: int  # training examples of the candidate
    seconds: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "before": None if self.before is None else self.before.to_dict(),
            "after": self.after.to_dict(),
            "version": self.version,
            "heldout": self.heldout,
            "n_examples": self.n_examples,
            "seconds": round(self.seconds, 1),
            "reason": self.reason,
        }


def not_worse(after: Figures, before: Figures | None) -> str | None:
    """Why `after` is refused against `before`, or None when it may replace it."""
    if before is None:
        return None
    drops = []
    for name, new, old in (
        ("accuracy", after.accuracy, before.accuracy),
        ("macro-F1", after.macro_f1, before.macro_f1),
    ):
        if round(new, _DECIMALS) < round(old, _DECIMALS):
            drops.append(f"{name} drops from {old:.4f} to {new:.4f}")
    return "; ".join(drops) or None


def score(
    model: IntentModel, tokenizer: Tokenizer, settings: NluSettings, examples: Sequence[Example]
) -> Figures:
    parser = Parser(
        tokenizer,
        model,
        fallback_threshold=settings.fallback_threshold,
        ambiguity_threshold=settings.ambiguity_threshold,
    )
    report = evaluate_parser(parser, examples, "held-out")
    return Figures(report.accuracy, report.macro_f1, len(examples))


def current_model(model_dir: Path, tokenizer: Tokenizer) -> IntentModel | None:
    """The model the parser would load now, or None when there is none it can use."""
    try:
        metadata = read_metadata(model_dir)
        if compatibility_problem(metadata, jieba_version(), tokenizer.signature()) is not None:
            return None
        return load_model(model_dir, metadata)
    except ModelError:
        return None


def gated_train(
    settings: NluSettings,
    heldout: Path = DEFAULT_HELDOUT,
    *,
    keep: int = DEFAULT_KEEP,
    tokenizer: Tokenizer | None = None,
    notify: Callable[[str], None] | None = None,
) -> GateResult:
    """Train, compare on `heldout`, and make the candidate current only if not worse.

    Raises TrainingDataError for unusable data or held-out file, OSError when the
    model folder cannot be written."""
    started = time.perf_counter()
    files = settings.training_files()
    if heldout.resolve() in {f.resolve() for f in files}:
        raise TrainingDataError(f"{heldout} is training data; the gate needs held-out messages")
    examples = load_examples(heldout)
    tokenizer = tokenizer or Tokenizer(settings.userdict, settings.resolved_cache_dir())
    model_dir = settings.resolved_model_dir()
    current = current_model(model_dir, tokenizer)
    before = None if current is None else score(current, tokenizer, settings, examples)
    if notify is not None:
        notify(f"training a candidate on {len(files)} data file(s)...")
    candidate, summary = train_from_files(
        files, model_dir, tokenizer, base_files=settings.base_files()
    )
    after = score(candidate, tokenizer, settings, examples)
    refused = not_worse(after, before)
    seconds = time.perf_counter() - started
    if refused is not None:
        return GateResult(
            False, before, after, None, str(heldout), summary.n_examples, seconds, refused
        )
    if current is not None and not current.metadata.get("version"):
        # The model from before versioning can be rolled back to as well.
        assert before is not None
        archive(current, model_dir, before.to_dict(), keep=keep + 1)
    version = archive(candidate, model_dir, after.to_dict(), keep=keep)
    # Its form-act reader is fitted here, so that a server switching to the
    # new model (nlu/live_parser.py) finds it ready instead of fitting it.
    parser_for_model(make_current(model_dir, version), tokenizer, settings)
    reason = "no current model to compare with" if before is None else "not worse on held-out"
    return GateResult(
        True,
        before,
        after,
        version,
        str(heldout),
        summary.n_examples,
        time.perf_counter() - started,
        reason,
    )
