"""Labels from the review queue, written where training picks them up.

Both files are under the operator's data directory, so an upgrade of the
package keeps them, and both are rewritten whole from the queue's labelled
rows after every change (the database is the record; a re-label or a dismiss
takes the old label out):

  <data>/nlu/reviewed.yml             Rasa 3.1 NLU data: intent -> examples;
                                      `tongxin nlu train` (and --gate) trains on it
  <data>/faq/reviewed_phrasings.yml   FAQ entry id -> new phrasings; the FAQ
                                      ranker includes them (at the next start)

`tongxin check-data` validates both with the rest of the NLU and FAQ data.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

from flows.faq_data import REVIEWED_PHRASINGS_FILE
from flows.paths import operator_nlu_dir
from flows.review import ReviewItem, ReviewQueue

REVIEWED_NLU_FILE = "reviewed.yml"
_HEADER = (
    "# Written by the staff workspace's review queue (/staff/review); labels are\n"
    "# changed there, and this file is rewritten from them.\n"
)
# Rasa reads [text](entity) as an entity annotation: a resident's brackets
# become full-width ones so that their message trains as typed.
_BRACKETS = str.maketrans({"[": "［", "]": "］"})


def nlu_labels_path(data_dir: Path) -> Path:
    return operator_nlu_dir(data_dir) / REVIEWED_NLU_FILE


def faq_labels_path(data_dir: Path) -> Path:
    return data_dir / "faq" / REVIEWED_PHRASINGS_FILE


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _grouped(items: list[ReviewItem]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for item in items:
        if item.label and item.text not in grouped[item.label]:
            grouped[item.label].append(item.text)
    return dict(sorted(grouped.items()))


def nlu_document(items: list[ReviewItem]) -> str:
    lines = [_HEADER + 'version: "3.1"', "nlu:"]
    for intent, texts in _grouped(items).items():
        lines.append(f"- intent: {intent}")
        lines.append("  examples: |")
        lines.extend(f"    - {t.translate(_BRACKETS)}" for t in texts)
    if len(lines) == 2:
        lines[-1] = "nlu: []"
    return "\n".join(lines) + "\n"


def faq_document(items: list[ReviewItem]) -> str:
    grouped = _grouped(items)
    if not grouped:
        return _HEADER + "{}\n"
    return _HEADER + yaml.safe_dump(grouped, allow_unicode=True, sort_keys=True)


def write_labels(queue: ReviewQueue, data_dir: Path) -> tuple[Path, Path]:
    """Rewrite both label files from the queue; returns their paths."""
    nlu_path, faq_path = nlu_labels_path(data_dir), faq_labels_path(data_dir)
    for path, items, document in (
        (nlu_path, queue.labelled("intent"), nlu_document),
        (faq_path, queue.labelled("faq"), faq_document),
    ):
        if items or path.exists():  # no empty files in a data folder nobody labelled in
            _write(path, document(items))
    return nlu_path, faq_path
