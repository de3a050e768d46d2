"""Measuring FAQ retrieval on labelled questions: top-1, top-3 and "no answer".

Used by `tongxin faq test`, bench/faq_bench.py and the regression test on the
held-out files. A test file is either a YAML list of `{text, faq_id}` (faq_id
null: no entry answers it; the format of shared/eval) or the older mapping
`{paraphrases: [[text, id], ...], unanswered: [text, ...]}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml


class Searcher(Protocol):
    def search(self, text: str, k: int = 3, *, threshold: float | None = None) -> Sequence: ...


class FaqTestDataError(ValueError):
    pass


@dataclass(frozen=True)
class Labelled:
    text: str
    faq_id: str | None


@dataclass
class FaqReport:
    answerable: int = 0
    unanswerable: int = 0
    top1_hits: int = 0
    top3_hits: int = 0
    declined: int = 0
    misses: list[tuple[str, str, list[str], str]] = field(default_factory=list)
    false_answers: list[tuple[str, float, str]] = field(default_factory=list)

    @property
    def top1(self) -> float:
        return self.top1_hits / self.answerable if self.answerable else 0.0

    @property
    def top3(self) -> float:
        return self.top3_hits / self.answerable if self.answerable else 0.0

    @property
    def no_answer(self) -> float:
        return self.declined / self.unanswerable if self.unanswerable else 1.0

    def summary(self) -> str:
        return (
            f"faq: top1={self.top1:.3f} top3={self.top3:.3f} "
            f"no_answer={self.no_answer:.3f} n={self.answerable}+{self.unanswerable}"
        )


def load_labelled(path: Path) -> list[Labelled]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FaqTestDataError(f"{path}: cannot read: {exc}") from exc
    items: list[Labelled] = []
    if isinstance(data, dict):
        for pair in data.get("paraphrases") or []:
            items.append(Labelled(str(pair[0]), str(pair[1])))
        for text in data.get("unanswered") or []:
            items.append(Labelled(str(text), None))
    elif isinstance(data, list):
        for n, raw in enumerate(data, 1):
            if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
                raise FaqTestDataError(f"{path}: item {n}: expected {{text, faq_id}}")
            faq_id = raw.get("faq_id")
            items.append(Labelled(raw["text"], str(faq_id) if faq_id else None))
    if not items:
        raise FaqTestDataError(f"{path}: no questions (a list of {{text, faq_id}})")
    return items


def evaluate(searcher: Searcher, items: Sequence[Labelled]) -> FaqReport:
    report = FaqReport()
    for item in items:
        matches = searcher.search(item.text, 3)
        ids = [m.id for m in matches]
        if item.faq_id is None:
            report.unanswerable += 1
            if matches:
                report.false_answers.append((matches[0].id, matches[0].score, item.text))
            else:
                report.declined += 1
            continue
        report.answerable += 1
        if ids and ids[0] == item.faq_id:
            report.top1_hits += 1
        else:
            best = searcher.search(item.text, 1, threshold=0.0)
            report.misses.append(
                (
                    item.faq_id,
                    ids[0] if ids else "",
                    [f"{m.id} {m.score:.2f}" for m in best],
                    item.text,
                )
            )
        report.top3_hits += item.faq_id in ids[:3]
    return report
