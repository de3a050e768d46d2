"""Understanding a resident's answer to the satisfaction question: satisfied,
neutral, unsatisfied, or not an answer at all (a new request, a question).

A bare option (1 / 2 / 3, full-width too, or ①②③) is read by rule; anything
else by a small character n-gram classifier trained at start-up on the
phrasings in data/survey/answers.yml, with the NLU's own request examples as
more "not an answer" text. Measured on our own held-out phrasings it beat a
keyword list on sarcasm (呵呵满意得很) and on requests that contain a keyword
(我还有个不满意的地方要反映 is a new request, not an answer).
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ANSWERS: tuple[str, ...] = ("satisfied", "neutral", "unsatisfied")
UNCLEAR = "unclear"
LABELS: tuple[str, ...] = (*ANSWERS, UNCLEAR)
# Below this probability the reply is not taken as an answer: a wrong
# "satisfied" would close a resident's complaint; a missed answer costs nothing.
MIN_CONFIDENCE = 0.45
# Request examples borrowed from the NLU data as "not an answer".
BORROWED_PER_FILE = 25
# A reply longer than the bare answer keeps its words as a comment.
MIN_COMMENT_CHARS = 5

_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_OPTION = {"1": "satisfied", "2": "neutral", "3": "unsatisfied"}
_CIRCLED = {"①": "1", "②": "2", "③": "3"}
_BARE = {"满意": "satisfied", "基本满意": "neutral", "不满意": "unsatisfied"}


class SurveyDataError(ValueError):
    """data/survey/answers.yml is malformed; the message names the item."""


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).strip().lower()
    return "".join(_CIRCLED.get(ch, ch) for ch in folded)


@dataclass(frozen=True)
class SurveyAnswer:
    label: str  # one of LABELS
    confidence: float
    comment: str | None

    @property
    def is_answer(self) -> bool:
        return self.label in ANSWERS


def load_phrasings(path: Path) -> dict[str, list[str]]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SurveyDataError(f"{path}: cannot read: {exc}") from exc
    problems = validate_phrasings(raw, str(path))
    if problems:
        raise SurveyDataError("; ".join(problems))
    return {label: [str(t) for t in raw[label]] for label in LABELS}


def validate_phrasings(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{where}: expected a mapping of label -> list of replies"]
    problems = []
    for label in LABELS:
        items = raw.get(label)
        if not isinstance(items, list) or len(items) < 3:
            problems.append(f"{where}: {label!r} needs a list of at least 3 replies")
    for label in raw:
        if label not in LABELS:
            problems.append(f"{where}: unknown label {label!r}; use {', '.join(LABELS)}")
    return problems


def _borrowed_requests(nlu_dir: Path | None, seed: int = 13) -> list[str]:
    """Some of the NLU's request examples: what residents write when they are
    not answering the survey."""
    if nlu_dir is None or not nlu_dir.is_dir():
        return []
    rng = random.Random(seed)
    out: list[str] = []
    for file in sorted(nlu_dir.glob("nlu_*.yml")):
        try:
            raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        texts = []
        for block in raw.get("nlu") or []:
            # Social acts (thanks, yes, goodbye) may well be answers: leave them out.
            if not isinstance(block, dict) or block.get("intent") in _SOCIAL:
                continue
            for line in str(block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    texts.append(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line[2:]))
        rng.shuffle(texts)
        out += texts[:BORROWED_PER_FILE]
    return out


_SOCIAL = frozenset({"affirm", "deny", "thanks", "goodbye", "greet", "chitchat"})


class SurveyReader:
    """Trained on first use (about 0.1 s): a start that never reads a survey
    answer loads neither scikit-learn nor scipy."""

    def __init__(self, phrasings: dict[str, list[str]], nlu_dir: Path | None = None):
        self._phrasings = phrasings
        self._nlu_dir = nlu_dir  # request examples borrowed as "not an answer"
        self._trained: Any = None

    def _model(self) -> Any:
        if self._trained is None:
            self._trained = _train(self._phrasings, _borrowed_requests(self._nlu_dir))
        return self._trained

    @classmethod
    def load(cls, data_dir: Path, nlu_dir: Path | None = None) -> SurveyReader:
        return cls(load_phrasings(data_dir / "survey" / "answers.yml"), nlu_dir)

    def read(self, text: str) -> SurveyAnswer:
        folded = normalise(text)
        bare = _PUNCT.sub("", folded)
        if not bare:
            return SurveyAnswer(UNCLEAR, 1.0, None)
        if bare in _OPTION or bare in _BARE:
            return SurveyAnswer(_OPTION.get(bare) or _BARE[bare], 1.0, None)
        if bare.isdigit():  # 4, 0, a phone number: no option of ours
            return SurveyAnswer(UNCLEAR, 1.0, None)
        model = self._model()
        probs = model.predict_proba([folded])[0]
        classes = list(model.classes_)
        best = int(probs.argmax())
        label, confidence = str(classes[best]), float(probs[best])
        if label != UNCLEAR and confidence < MIN_CONFIDENCE:
            label = UNCLEAR
        comment = text.strip() if len(bare) >= MIN_COMMENT_CHARS and label in ANSWERS else None
        return SurveyAnswer(label, confidence, comment)


def _train(phrasings: dict[str, list[str]], extra_unclear: list[str]) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline

    texts: list[str] = []
    labels: list[str] = []
    for label in LABELS:
        for t in phrasings[label]:
            texts.append(normalise(t))
            labels.append(label)
    for t in extra_unclear:
        texts.append(normalise(t))
        labels.append(UNCLEAR)
    model = Pipeline(
        [
            (
                "tfidf",
                TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True),
            ),
            (
                "lr",
                OneVsRestClassifier(
                    LogisticRegression(C=8.0, solver="liblinear", class_weight="balanced")
                ),
            ),
        ]
    )
    model.fit(texts, labels)
    return model
