"""How well the survey answer reader understands residents' replies, against
a keyword list as the baseline: accuracy per label, replies that are no answer
(`unclear`) wrongly taken as one, and the comment flag.

    TONGXIN_CACHE_DIR=... .venv/bin/python bench/survey_eval.py FILE.yml

FILE: a YAML list of {text, label: satisfied|neutral|unsatisfied|unclear,
comment: bool}. Prints figures only, never the texts (a blind file must stay
blind to whoever tunes the reader).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml

import nlu
from flows.paths import default_data_dir
from flows.survey_reader import LABELS, UNCLEAR, SurveyReader, normalise


def keyword_label(text: str) -> str:
    """The baseline: the first keyword group found, in order of strength."""
    t = normalise(text)
    groups = (
        ("unsatisfied", ("不满意", "没解决", "没有解决", "差", "不行", "3")),
        ("neutral", ("基本满意", "还行", "还可以", "一般", "凑合", "2")),
        ("satisfied", ("满意", "好", "不错", "谢谢", "1")),
    )
    for label, words in groups:
        if any(w in t for w in words):
            return label
    return UNCLEAR


def evaluate(items: list[dict], read: Callable[[str], tuple[str, bool]]) -> dict[str, object]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    unclear_taken = 0
    comment_right = 0
    for item in items:
        label, comment = read(str(item["text"]))
        total[item["label"]] += 1
        right[item["label"]] += label == item["label"]
        if item["label"] == UNCLEAR and label != UNCLEAR:
            unclear_taken += 1
        comment_right += comment == bool(item.get("comment"))
    return {
        "accuracy": sum(right.values()) / len(items),
        "per_label": {k: f"{right[k]}/{total[k]}" for k in LABELS},
        "unclear_taken_as_answer": f"{unclear_taken}/{total[UNCLEAR]}",
        "comment_flag_accuracy": comment_right / len(items),
    }


def main() -> int:
    path = Path(sys.argv[1])
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    reader = SurveyReader.load(default_data_dir(), Path(nlu.__file__).parent / "data")

    def trained(text: str) -> tuple[str, bool]:
        found = reader.read(text)
        return found.label, found.comment is not None

    def keywords(text: str) -> tuple[str, bool]:
        return keyword_label(text), False

    for name, read in (("keyword list", keywords), ("trained reader", trained)):
        figures = evaluate(items, read)
        print(f"{name:15s} accuracy {figures['accuracy']:.1%}  per label {figures['per_label']}")
        print(
            f"{'':15s} unclear taken as an answer {figures['unclear_taken_as_answer']}"
            f"  comment flag {figures['comment_flag_accuracy']:.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
