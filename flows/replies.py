"""Reply texts keyed by id, loaded from an operator-edited YAML file."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class RepliesError(Exception):
    """The replies file is missing, malformed, or lacks an id the code asks for."""


class _Missing(dict[str, Any]):
    # An unknown placeholder stays visible instead of raising mid-conversation.
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


@dataclass(frozen=True)
class Replies:
    texts: Mapping[str, str]
    source: str = "<memory>"

    @classmethod
    def load(cls, path: Path) -> Replies:
        """Load one YAML file, or every `*.yml` in a folder (ids must not repeat)."""
        files = sorted(path.glob("*.yml")) if path.is_dir() else [path]
        texts: dict[str, str] = {}
        problems: list[str] = []
        for file in files:
            try:
                raw = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise RepliesError(f"{file}: cannot read replies: {exc}") from exc
            problems += validate_replies(raw, str(file))
            if problems:
                continue
            for key, value in raw.items():
                if key in texts:
                    problems.append(f"{file}: item {key!r}: id already defined in another file")
                texts[str(key)] = str(value).rstrip("\n")
        if not files:
            problems.append(f"{path}: no replies files")
        if problems:
            raise RepliesError("; ".join(problems))
        return cls(texts=texts, source=str(path))

    def text(self, reply_id: str, **values: Any) -> str:
        try:
            template = self.texts[reply_id]
        except KeyError as exc:
            raise RepliesError(f"{self.source}: no reply with id {reply_id!r}") from exc
        return string.Formatter().vformat(template, (), _Missing(values))

    def __contains__(self, reply_id: object) -> bool:
        return reply_id in self.texts


def validate_replies(raw: object, source: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{source}: expected a mapping of reply id -> text"]
    problems = []
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str) or not value.strip():
            problems.append(f"{source}: item {key!r}: the text must be a non-empty string")
    return problems
