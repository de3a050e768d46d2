"""NLU settings: named defaults, and one function that reads them from an environment.

The core never reads `os.environ` itself; the composition root (the CLI,
bot/app.py) calls `NluSettings.from_env(os.environ)` once and passes the frozen
result down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nlu.tokenizer import DEFAULT_USERDICT, default_cache_dir
from nlu.training_data import default_data_paths, resolve_data_paths

# Below this top confidence the parser answers `nlu_fallback` (Rasa's
# FallbackClassifier `threshold`). The confidences are temperature-calibrated,
# so 0.4 means "right about 40% of the time" on held-out folds.
DEFAULT_FALLBACK_THRESHOLD = 0.4
# When the best two intents are closer than this, the message is ambiguous and
# the parser answers `nlu_fallback` too (Rasa's `ambiguity_threshold`).
# Kept at 0.1 on 10-fold grouped CV (6226 examples): near-ties under it are
# about half right, so 0.05 would answer 0.2% more messages correctly and 0.2%
# more wrongly (accuracy 93.9% vs 93.6%, wrong answers 4.9% vs 4.7%), and
# macro-F1 is highest at 0.1 (0.9532).
DEFAULT_AMBIGUITY_THRESHOLD = 0.1
# How long to wait for a Rasa server before using the embedded model instead.
DEFAULT_RASA_TIMEOUT = 0.3

ENV_DATA = "TONGXIN_NLU_DATA"  # os.pathsep-separated files or directories
ENV_MODEL_DIR = "TONGXIN_MODEL_DIR"
ENV_THRESHOLD = "TONGXIN_NLU_THRESHOLD"
ENV_AMBIGUITY = "TONGXIN_NLU_AMBIGUITY"
ENV_RASA_URL = "TONGXIN_RASA_URL"
ENV_RASA_TIMEOUT = "TONGXIN_RASA_TIMEOUT"


class SettingsError(ValueError):
    pass


def _unit_interval(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise SettingsError(f"{name}={raw!r} must be between 0 and 1")
    return value


@dataclass(frozen=True)
class NluSettings:
    # Training data files or directories; empty means the files shipped in nlu/data/.
    data_paths: tuple[Path, ...] = ()
    # Where the trained model lives; None means <cache_dir>/model.
    model_dir: Path | None = None
    # jieba's dictionary cache and the default model location; None means ~/.cache/tongxin.
    cache_dir: Path | None = None
    userdict: Path | None = DEFAULT_USERDICT
    fallback_threshold: float = DEFAULT_FALLBACK_THRESHOLD
    ambiguity_threshold: float = DEFAULT_AMBIGUITY_THRESHOLD
    rasa_url: str | None = None
    rasa_timeout: float = DEFAULT_RASA_TIMEOUT
    # Train when the model is missing or stale and the data is at hand.
    auto_train: bool = True
    # The operator's own labelled files or folders (the review queue writes
    # there), trained on beside `data_paths`; missing ones are skipped.
    operator_data: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        for name in ("fallback_threshold", "ambiguity_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1, got {value}")
        if self.rasa_timeout <= 0:
            raise SettingsError(f"rasa_timeout must be positive, got {self.rasa_timeout}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> NluSettings:
        """Settings from TONGXIN_* variables (see the ENV_* names); unset ones keep defaults."""
        kwargs: dict[str, object] = {}
        if environ.get(ENV_DATA):
            parts = environ[ENV_DATA].split(os.pathsep)
            kwargs["data_paths"] = tuple(Path(p) for p in parts if p.strip())
        if environ.get(ENV_MODEL_DIR):
            kwargs["model_dir"] = Path(environ[ENV_MODEL_DIR])
        kwargs["cache_dir"] = default_cache_dir(environ)
        if environ.get(ENV_THRESHOLD):
            kwargs["fallback_threshold"] = _unit_interval(ENV_THRESHOLD, environ[ENV_THRESHOLD])
        if environ.get(ENV_AMBIGUITY):
            kwargs["ambiguity_threshold"] = _unit_interval(ENV_AMBIGUITY, environ[ENV_AMBIGUITY])
        if environ.get(ENV_RASA_URL):
            kwargs["rasa_url"] = environ[ENV_RASA_URL].strip()
        if environ.get(ENV_RASA_TIMEOUT):
            try:
                kwargs["rasa_timeout"] = float(environ[ENV_RASA_TIMEOUT])
            except ValueError:
                raise SettingsError(f"{ENV_RASA_TIMEOUT} is not a number") from None
        return cls(**kwargs)  # type: ignore[arg-type]

    def base_files(self) -> list[Path]:
        """The training files that ship with the package (or `data_paths`)."""
        return resolve_data_paths(self.data_paths) if self.data_paths else default_data_paths()

    def operator_files(self) -> list[Path]:
        return resolve_data_paths(p for p in self.operator_data if p.exists())

    def training_files(self) -> list[Path]:
        """Everything `tongxin nlu train` trains on: the base files, then the operator's."""
        return self.base_files() + self.operator_files()

    def resolved_cache_dir(self) -> Path:
        return self.cache_dir if self.cache_dir is not None else default_cache_dir({})

    def resolved_model_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.resolved_cache_dir() / "model"
