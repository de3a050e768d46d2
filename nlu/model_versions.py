"""Versioned intent models beside the current one, for rollback.

The current model stays where the parser has always read it
(`<model_dir>/metadata.json` and its arrays). Each model the gate accepts is
also kept as `<model_dir>/versions/vN/` with its data hash, its figures on the
held-out file and when it was trained; the newest `keep` are kept (never the
current one). Making a version current copies it back into `<model_dir>` with
the same atomic write as training, so a running parser sees the old model or
the new one, never a mix.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nlu.classifier import (
    IntentModel,
    ModelError,
    ModelNotFoundError,
    load_model,
    read_metadata,
    save_model,
)

VERSIONS_DIR = "versions"
DEFAULT_KEEP = 5
_VERSION = re.compile(r"^v(\d{1,6})$")


class VersionError(ModelError):
    """No such version, or it cannot be read."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    trained_at: str
    data_hash: str
    n_examples: int
    figures: dict[str, Any] | None  # accuracy, macro_f1, examples on the held-out file
    current: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "trained_at": self.trained_at,
            "data_hash": self.data_hash,
            "n_examples": self.n_examples,
            "figures": self.figures,
            "current": self.current,
        }


def _number(name: str) -> int | None:
    m = _VERSION.match(name)
    return int(m.group(1)) if m else None


def current_version(model_dir: Path) -> str | None:
    try:
        version = read_metadata(model_dir).get("version")
    except ModelError:
        return None
    return str(version) if version else None


def list_versions(model_dir: Path) -> list[ModelVersion]:
    """Newest first; unreadable folders are left out."""
    root = model_dir / VERSIONS_DIR
    current = current_version(model_dir)
    found: list[tuple[int, ModelVersion]] = []
    for folder in root.iterdir() if root.is_dir() else ():
        number = _number(folder.name)
        if number is None:
            continue
        try:
            meta = read_metadata(folder)
        except ModelError:
            continue
        figures = meta.get("figures")
        found.append(
            (
                number,
                ModelVersion(
                    version=folder.name,
                    trained_at=str(meta.get("trained_at") or meta.get("created_at") or ""),
                    data_hash=str(meta.get("data_hash", "")),
                    n_examples=int(meta.get("n_examples", 0)),
                    figures=figures if isinstance(figures, dict) else None,
                    current=folder.name == current,
                ),
            )
        )
    return [v for _, v in sorted(found, key=lambda item: -item[0])]


def archive(
    model: IntentModel,
    model_dir: Path,
    figures: dict[str, Any] | None,
    *,
    keep: int = DEFAULT_KEEP,
) -> str:
    """Keep `model` as the next version `vN`; returns its name."""
    root = model_dir / VERSIONS_DIR
    root.mkdir(parents=True, exist_ok=True)
    numbers = [n for n in (_number(p.name) for p in root.iterdir()) if n is not None]
    version = f"v{max(numbers, default=0) + 1}"
    trained_at = (
        model.metadata.get("trained_at")
        or model.metadata.get("created_at")  # a model saved before versioning
        or datetime.now(UTC).isoformat(timespec="seconds")
    )
    save_model(
        model,
        root / version,
        {"version": version, "figures": figures, "trained_at": trained_at},
    )
    _prune(model_dir, keep)
    return version


def _prune(model_dir: Path, keep: int) -> None:
    current = current_version(model_dir)
    versions = list_versions(model_dir)
    for old in versions[max(keep, 1) :]:
        if old.version != current:
            shutil.rmtree(model_dir / VERSIONS_DIR / old.version, ignore_errors=True)


def load_version(model_dir: Path, version: str) -> IntentModel:
    if _number(version) is None:
        raise VersionError(f"{version!r} is not a model version (they are named v1, v2, ...)")
    folder = model_dir / VERSIONS_DIR / version
    try:
        return load_model(folder)
    except ModelNotFoundError:
        known = ", ".join(v.version for v in list_versions(model_dir)) or "none yet"
        raise VersionError(f"no model version {version} (kept: {known})") from None


def make_current(model_dir: Path, version: str) -> IntentModel:
    """Copy version `version` into `model_dir` as the model the parser loads."""
    model = load_version(model_dir, version)
    save_model(model, model_dir, {"version": version})
    return load_model(model_dir)
