"""Intent and entity evaluation in the spirit of `rasa test nlu`.

Figures:
- accuracy and macro-F1 of the final intent (an `nlu_fallback` answer counts
  as wrong; macro-F1 averages over the gold intents of the test set),
- the same for the top of the ranking, i.e. the classifier without fallback,
- per-intent precision / recall / F1 / support, the worst confusions,
- fallback rate and expected calibration error of the top confidence,
- entity precision / recall / F1 per entity type, over the examples that carry
  Rasa entity annotations (a predicted entity matches a gold one of the same
  type whose span overlaps it and whose value, when annotated, is equal).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from nlu.classifier import ClassifierConfig, train_intent_model
from nlu.features import FeatureConfig, Featurizer
from nlu.parser import Parser
from nlu.tokenizer import Tokenizer, normalize_text
from nlu.training import dense_matrix, featurize, patterns_of
from nlu.training_data import Example, TrainingData
from nlu.types import ENTITY_NAMES, FALLBACK_INTENT, ParseResult

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class LabelStats:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Confusion:
    gold: str
    predicted: str
    count: int
    examples: tuple[str, ...]


@dataclass
class EvalReport:
    source: str
    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    ranking_accuracy: float
    ranking_macro_f1: float
    fallback_rate: float
    calibration_error: float
    per_intent: list[LabelStats]
    confusions: list[Confusion]
    entities: list[LabelStats] = field(default_factory=list)
    entity_examples: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def label_stats(golds: Sequence[str], preds: Sequence[str]) -> list[LabelStats]:
    """Per gold label; predictions of labels absent from the gold set still cost precision."""
    tp: Counter[str] = Counter()
    predicted: Counter[str] = Counter(preds)
    support: Counter[str] = Counter(golds)
    for g, p in zip(golds, preds, strict=True):
        if g == p:
            tp[g] += 1
    stats = []
    for label in sorted(support):
        precision = tp[label] / predicted[label] if predicted[label] else 0.0
        recall = tp[label] / support[label]
        stats.append(LabelStats(label, precision, recall, _f1(precision, recall), support[label]))
    return stats


def _macro(stats: Sequence[LabelStats]) -> float:
    return sum(s.f1 for s in stats) / len(stats) if stats else 0.0


def _weighted(stats: Sequence[LabelStats]) -> float:
    total = sum(s.support for s in stats)
    return sum(s.f1 * s.support for s in stats) / total if total else 0.0


def calibration_error(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """Expected calibration error: |accuracy - confidence| averaged over 10 equal-width bins."""
    bins: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for conf, ok in zip(confidences, correct, strict=True):
        bins[min(int(conf * CALIBRATION_BINS), CALIBRATION_BINS - 1)].append((conf, ok))
    n = len(confidences)
    error = 0.0
    for members in bins.values():
        mean_conf = sum(c for c, _ in members) / len(members)
        accuracy = sum(1 for _, ok in members if ok) / len(members)
        error += len(members) / n * abs(accuracy - mean_conf)
    return error


def _entity_matches(example: Example, result: ParseResult) -> tuple[Counter[str], ...]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    gold = [a for a in example.entities if a.entity in ENTITY_NAMES]
    used: set[int] = set()
    for entity in result.entities:
        match = None
        for i, ann in enumerate(gold):
            if i in used or ann.entity != entity.entity:
                continue
            if not (entity.start < ann.end and ann.start < entity.end):
                continue
            if ann.value is not None and str(ann.value) != str(entity.value):
                continue
            match = i
            break
        if match is None:
            fp[entity.entity] += 1
        else:
            used.add(match)
            tp[entity.entity] += 1
    for i, ann in enumerate(gold):
        if i not in used:
            fn[ann.entity] += 1
    return tp, fp, fn


def build_report(
    source: str, examples: Sequence[Example], results: Sequence[ParseResult], worst: int = 10
) -> EvalReport:
    golds = [e.intent for e in examples]
    finals = [r.intent.name for r in results]
    tops = [r.intent_ranking[0].name if r.intent_ranking else FALLBACK_INTENT for r in results]
    confidences = [r.intent_ranking[0].confidence if r.intent_ranking else 0.0 for r in results]
    final_stats = label_stats(golds, finals)
    top_stats = label_stats(golds, tops)
    n = len(examples)

    pairs: dict[tuple[str, str], list[str]] = defaultdict(list)
    for example, predicted in zip(examples, finals, strict=True):
        if example.intent != predicted:
            pairs[(example.intent, predicted)].append(example.text)
    confusions = sorted(
        (Confusion(g, p, len(texts), tuple(texts[:3])) for (g, p), texts in pairs.items()),
        key=lambda c: (-c.count, c.gold, c.predicted),
    )[:worst]

    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    annotated = 0
    for example, result in zip(examples, results, strict=True):
        if not any(a.entity in ENTITY_NAMES for a in example.entities):
            continue
        annotated += 1
        t, f, m = _entity_matches(example, result)
        tp.update(t)
        fp.update(f)
        fn.update(m)
    entity_stats = []
    for name in sorted(set(tp) | set(fn) | set(fp)):
        precision = tp[name] / (tp[name] + fp[name]) if tp[name] + fp[name] else 0.0
        recall = tp[name] / (tp[name] + fn[name]) if tp[name] + fn[name] else 0.0
        support = tp[name] + fn[name]
        entity_stats.append(LabelStats(name, precision, recall, _f1(precision, recall), support))

    errors = [
        {
            "text": e.text,
            "intent": e.intent,
            "predicted": r.intent.name,
            "top": r.intent_ranking[0].name if r.intent_ranking else None,
            "confidence": round(r.intent_ranking[0].confidence, 4) if r.intent_ranking else 0.0,
        }
        for e, r in zip(examples, results, strict=True)
        if e.intent != r.intent.name
    ]
    return EvalReport(
        source=source,
        n=n,
        accuracy=sum(g == p for g, p in zip(golds, finals, strict=True)) / n if n else 0.0,
        macro_f1=_macro(final_stats),
        weighted_f1=_weighted(final_stats),
        ranking_accuracy=sum(g == p for g, p in zip(golds, tops, strict=True)) / n if n else 0.0,
        ranking_macro_f1=_macro(top_stats),
        fallback_rate=finals.count(FALLBACK_INTENT) / n if n else 0.0,
        calibration_error=calibration_error(
            confidences, [g == t for g, t in zip(golds, tops, strict=True)]
        ),
        per_intent=final_stats,
        confusions=confusions,
        entities=entity_stats,
        entity_examples=annotated,
        errors=errors,
    )


def evaluate_parser(parser: Parser, examples: Sequence[Example], source: str) -> EvalReport:
    return build_report(source, examples, [parser.parse(e.text) for e in examples])


def cross_validate(
    data: TrainingData,
    tokenizer: Tokenizer,
    folds: int,
    *,
    fallback_threshold: float,
    ambiguity_threshold: float,
    feature_config: FeatureConfig | None = None,
    classifier_config: ClassifierConfig | None = None,
    seed: int = 0,
    group_variants: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Stratified K-fold cross-validation: each example is predicted by a model
    that never saw it, with the real fallback rules applied.

    `group_variants` keeps variants of one message (你好 / 你好呀 / 你好！) in
    the same fold, so that a variant seen in training cannot vouch for its twin."""
    feature_config = feature_config or FeatureConfig()
    examples = list(data.examples)
    labels = [e.intent for e in examples]
    counts = Counter(labels)
    if folds < 2 or min(counts.values()) < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs at least {folds} examples per intent "
            f"(smallest has {min(counts.values())})"
        )
    patterns = patterns_of(data)
    encoded = featurize(Featurizer(tokenizer, feature_config, patterns), examples)
    dense = dense_matrix(encoded)
    results: list[ParseResult | None] = [None] * len(examples)
    splits = cv_splits(examples, folds, seed=seed, group_variants=group_variants)
    for fold, (train_idx, test_idx) in enumerate(splits, start=1):
        model = train_intent_model(
            [encoded[i].features for i in train_idx],
            [labels[i] for i in train_idx],
            feature_config,
            patterns,
            classifier_config,
            dense=dense[train_idx] if dense is not None else None,
        )
        parser = Parser(
            tokenizer,
            model,
            fallback_threshold=fallback_threshold,
            ambiguity_threshold=ambiguity_threshold,
        )
        for i in test_idx:
            results[i] = parser.parse(examples[i].text)
        if progress is not None:
            progress(fold, folds)
    done = [r for r in results if r is not None]
    return build_report(f"{folds}-fold cross-validation", examples, done)


def cv_splits(
    examples: Sequence[Example], folds: int, *, seed: int = 0, group_variants: bool = False
) -> list[tuple[Any, Any]]:
    """(train indices, test indices) of each fold, stratified by intent."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.array([e.intent for e in examples])
    if not group_variants:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))
    keys: dict[str, int] = {}
    groups = [keys.setdefault(variant_key(e.text), len(keys)) for e in examples]
    grouped = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(grouped.split(np.zeros(len(y)), y, groups))


_NOT_WORD = re.compile(r"[\W_]+")
_TRAILING_PARTICLES = re.compile(r"[了啊呀吧哈呢嘛哦喔啦嗯]+$")


def variant_key(text: str) -> str:
    """What variants of one message share: the text without punctuation, emoji,
    spaces and trailing particles (你好呀～ -> 你好)."""
    bare = _NOT_WORD.sub("", normalize_text(text))
    return _TRAILING_PARTICLES.sub("", bare) or bare or text


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def format_report(report: EvalReport) -> str:
    lines = [
        f"NLU evaluation: {report.source} ({report.n} examples)",
        f"  intent accuracy       {_pct(report.accuracy)}   macro-F1 {report.macro_f1:.4f}   "
        f"weighted-F1 {report.weighted_f1:.4f}",
        f"  without fallback      {_pct(report.ranking_accuracy)}   "
        f"macro-F1 {report.ranking_macro_f1:.4f}   (top of the ranking)",
        f"  fallback rate         {_pct(report.fallback_rate)}   "
        f"calibration error (ECE) {report.calibration_error:.3f}",
        "",
        f"  {'intent':<20}{'precision':>10}{'recall':>10}{'f1':>8}{'support':>9}",
    ]
    for s in report.per_intent:
        lines.append(
            f"  {s.label:<20}{s.precision:>10.3f}{s.recall:>10.3f}{s.f1:>8.3f}{s.support:>9d}"
        )
    if report.confusions:
        lines += ["", "  worst confusions (gold -> predicted):"]
        for c in report.confusions:
            sample = " / ".join(t[:30] for t in c.examples)
            lines.append(f"  {c.count:4d}  {c.gold} -> {c.predicted}   e.g. {sample}")
    if report.entities:
        lines += [
            "",
            f"  entities (over {report.entity_examples} annotated examples):",
            f"  {'entity':<20}{'precision':>10}{'recall':>10}{'f1':>8}{'support':>9}",
        ]
        for s in report.entities:
            lines.append(
                f"  {s.label:<20}{s.precision:>10.3f}{s.recall:>10.3f}{s.f1:>8.3f}{s.support:>9d}"
            )
    return "\n".join(lines)
