"""What a message does inside a form, read against the question the bot just
asked: an answer, a confirmation, a refusal to give this detail, a "no", a
correction, a question, a cancel, a switch to another service, a request for a
person, or chit-chat.

The same words mean different things at different steps ("好的" confirms a
summary but is no answer to "what happened"; "叫我陈工" answers "怎么称呼您"
and is no request for a person), so the features cross the message's words and
the NLU's intent with the slot asked. A linear model (the intent classifier's
own trainer and file format, no pickle) learns them from `data/form_turns/`,
examples of replies at each step labelled with their act. It is trained on
first use and cached beside the intent model; it retrains when its data or the
intent model changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from nlu.classifier import (
    ClassifierConfig,
    IntentModel,
    ModelError,
    load_model,
    read_metadata,
    save_model,
    train_intent_model,
)
from nlu.features import FeatureConfig, Patterns
from nlu.tokenizer import Tokenizer, normalize_text
from nlu.training_data import Problem
from nlu.types import ParseResult

FORM_ACTS = (
    "answer",
    "confirm",
    "decline",
    "deny",
    "correction",
    "question",
    "cancel",
    "switch",
    "handoff",
    "chitchat",
)
# The steps a reply can answer; "confirm" is the summary shown before filing.
ASKED = (
    "business",
    "amount",
    "purpose",
    "other_party",
    "place",
    "description",
    "team",
    "availability",
    "name",
    "phone",
    "confirm",
)
FEATURE_VERSION = 1
ParseFn = Callable[[str], ParseResult]
DATA_DIR = Path(__file__).parent / "data" / "form_turns"
_DIGIT_RUN = re.compile(r"\d+")


class FormTurnDataError(Exception):
    """A form-turn data file is malformed; the message names file and item."""


@dataclass(frozen=True)
class FormTurnExample:
    asked: str
    text: str
    act: str


def load_form_turns(paths: Sequence[Path]) -> list[FormTurnExample]:
    examples: list[FormTurnExample] = []
    for path in paths:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise FormTurnDataError(f"{path}: cannot read: {exc}") from exc
        if not isinstance(raw, list):
            raise FormTurnDataError(f"{path}: expected a list of {{asked, text, act}}")
        for i, item in enumerate(raw, 1):
            if not isinstance(item, dict):
                raise FormTurnDataError(f"{path}: item {i}: expected a mapping")
            asked, text, act = item.get("asked"), item.get("text"), item.get("act")
            if asked not in ASKED:
                raise FormTurnDataError(f"{path}: item {i}: asked must be one of {ASKED}")
            if act not in FORM_ACTS:
                raise FormTurnDataError(f"{path}: item {i}: act must be one of {FORM_ACTS}")
            if not isinstance(text, str) or not text.strip():
                raise FormTurnDataError(f"{path}: item {i}: needs a non-empty text")
            examples.append(FormTurnExample(str(asked), text, str(act)))
    return examples


def check_form_turns(paths: Sequence[Path]) -> list[Problem]:
    """For `tongxin check-data`: each file readable, each item well-formed, and
    no reply labelled with two different acts at the same step."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for path in paths:
        try:
            examples = load_form_turns([path])
        except FormTurnDataError as exc:
            problems.append(Problem("error", str(path), str(exc)))
            continue
        for example in examples:
            key = (example.asked, normalize_text(example.text))
            earlier = seen.get(key)
            if earlier is not None and earlier[0] != example.act:
                problems.append(
                    Problem(
                        "error",
                        str(path),
                        f"{example.text!r} at {example.asked}: {example.act}, "
                        f"but {earlier[0]} in {earlier[1]}",
                    )
                )
            seen.setdefault(key, (example.act, path.name))
    return problems


def default_form_turn_paths() -> list[Path]:
    return sorted(DATA_DIR.glob("*.yml"))


def _length_bucket(n: int) -> str:
    for limit, name in ((2, "1-2"), (5, "3-5"), (10, "6-10"), (20, "11-20")):
        if n <= limit:
            return name
    return "21+"


def act_features(tokenizer: Tokenizer, text: str, asked: str, parse: ParseResult) -> list[str]:
    """Words, characters and entity shapes of the message, each also crossed with
    the step asked; the NLU's top intents, crossed too."""
    norm = normalize_text(text)[:300]
    # A phone or an amount is a shape, not a word: "139…" and "150…" mean the same here.
    folded = _DIGIT_RUN.sub(lambda m: "#" if len(m.group()) >= 5 else "0", norm)
    words = [w for w in tokenizer.cut(folded) if w.strip()]
    chars = [c for c in folded if not c.isspace()]
    base: list[str] = [f"w:{w}" for w in words]
    base += [f"c:{c}" for c in chars]
    base += [f"b:{a}{b}" for a, b in itertools.pairwise(chars)]
    base.append(f"len:{_length_bucket(len(chars))}")
    if words:
        base.append(f"first:{words[0]}")
        base.append(f"last:{words[-1]}")
    for entity in {e.entity for e in parse.entities}:
        base.append(f"e:{entity}")
    for rank, score in enumerate(parse.intent_ranking[:2]):
        strength = "hi" if score.confidence >= 0.7 else "mid" if score.confidence >= 0.4 else "lo"
        base.append(f"i{rank}:{score.name}")
        if rank == 0:
            base.append(f"i0:{score.name}:{strength}")
    crossed = [f"{asked}|{f}" for f in base if not f.startswith(("c:", "b:"))]
    return [f"asked:{asked}", *base, *crossed]


class FormActReader:
    """`rank(text, asked, parse)` -> acts, most likely first, with probabilities."""

    def __init__(self, model: IntentModel, tokenizer: Tokenizer) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def rank(self, text: str, asked: str, parse: ParseResult) -> list[tuple[str, float]]:
        features = act_features(self.tokenizer, text, asked if asked in ASKED else "other", parse)
        ranking, _ = self.model.rank(features)
        return ranking


def _fingerprint(paths: Sequence[Path], intent_data_hash: str) -> str:
    digest = hashlib.sha256(f"v{FEATURE_VERSION}\0{intent_data_hash}\0".encode())
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def train_form_acts(
    examples: Sequence[FormTurnExample], tokenizer: Tokenizer, parse: ParseFn
) -> IntentModel:
    features = [act_features(tokenizer, e.text, e.asked, parse(e.text)) for e in examples]
    return train_intent_model(
        features,
        [e.act for e in examples],
        FeatureConfig(),
        Patterns(),
        ClassifierConfig(c=0.5),
    )


def ensure_form_acts(
    model_dir: Path, tokenizer: Tokenizer, parse: ParseFn, intent_data_hash: str
) -> FormActReader | None:
    """The act reader, loaded from `model_dir` when current, else trained (and
    saved when the folder is writable). None when no data ships."""
    paths = default_form_turn_paths()
    if not paths:
        return None
    wanted = _fingerprint(paths, intent_data_hash)
    try:
        metadata = read_metadata(model_dir)
        if metadata.get("data_hash") == wanted:
            return FormActReader(load_model(model_dir, metadata), tokenizer)
    except ModelError:
        pass
    model = train_form_acts(load_form_turns(paths), tokenizer, parse)
    with contextlib.suppress(OSError):  # usable for this process; the next start tries again
        save_model(model, model_dir, {"data_hash": wanted, "kind": "form_acts"})
    return FormActReader(model, tokenizer)
