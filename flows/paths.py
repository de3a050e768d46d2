"""Where the operator-edited data files live (FAQ entries, district facts, reply texts)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DATA_DIR_ENV = "TONGXIN_DATA_DIR"


def default_data_dir() -> Path:
    """The repository's `data/` directory, found relative to this package."""
    return Path(__file__).resolve().parents[1] / "data"


def data_dir_from_env(environ: Mapping[str, str]) -> Path:
    """`$TONGXIN_DATA_DIR` when set and non-empty, else `default_data_dir()`.

    Takes the environment as an argument so that only the composition root reads
    the real one.
    """
    explicit = environ.get(DATA_DIR_ENV, "").strip()
    return Path(explicit) if explicit else default_data_dir()


def operator_nlu_dir(data_dir: Path) -> Path:
    """The operator's own NLU training files (labels from the review queue):
    under the data directory, so they survive upgrades of the package."""
    return data_dir / "nlu"
