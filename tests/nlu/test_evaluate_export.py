"""Evaluation figures on hand-checked cases, cross-validation, and the Rasa export."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from nlu.evaluate import (
    build_report,
    calibration_error,
    cross_validate,
    cv_splits,
    format_report,
    variant_key,
)
from nlu.export import RasaTraining, export_rasa
from nlu.parser import Parser
from nlu.training_data import (
    EntityAnnotation,
    Example,
    TrainingData,
    default_data_paths,
    read_training_data,
)
from nlu.types import FALLBACK_INTENT, INTENTS, Entity, IntentScore, ParseResult


def result(top: str, confidence: float, final: str | None = None, entities=()) -> ParseResult:
    other = "b" if top != "b" else "a"
    return ParseResult(
        text="",
        intent=IntentScore(final or top, confidence),
        intent_ranking=(IntentScore(top, confidence), IntentScore(other, 1 - confidence)),
        entities=tuple(entities),
    )


def test_report_figures() -> None:
    examples = [Example("1", "a"), Example("2", "a"), Example("3", "b"), Example("4", "b")]
    results = [
        result("a", 0.9),
        result("b", 0.6),
        result("b", 0.8),
        result("b", 0.3, final=FALLBACK_INTENT),
    ]
    report = build_report("hand", examples, results)
    # a: precision 1/1, recall 1/2 -> F1 2/3; b: precision 1/2, recall 1/2 -> F1 1/2
    assert report.accuracy == pytest.approx(0.5)
    assert report.macro_f1 == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert report.ranking_accuracy == pytest.approx(0.75)
    assert report.fallback_rate == pytest.approx(0.25)
    [a, b] = report.per_intent
    assert (a.label, a.precision, a.recall, a.support) == ("a", 1.0, 0.5, 2)
    assert (b.label, b.precision, b.recall) == ("b", 0.5, 0.5)
    assert {(c.gold, c.predicted, c.count) for c in report.confusions} == {
        ("a", "b", 1),
        ("b", FALLBACK_INTENT, 1),
    }
    text = format_report(report)
    assert "macro-F1" in text and "a -> b" in text


def test_entity_scores() -> None:
    examples = [
        Example("贷五万", "microloan", (EntityAnnotation("amount", 1, 3, None),)),
        Example("贷3万", "microloan", (EntityAnnotation("amount", 1, 3, "30000"),)),
        Example("没有实体", "microloan"),
    ]
    results = [
        result("microloan", 0.9, entities=[Entity("amount", 50000, 1, 3, "x")]),
        result("microloan", 0.9, entities=[Entity("amount", 3, 1, 2, "x")]),  # wrong value
        result("microloan", 0.9, entities=[Entity("phone", "13912345678", 0, 1, "x")]),
    ]
    report = build_report("entities", examples, results)
    assert report.entity_examples == 2  # the unannotated example is not scored
    [amount] = report.entities
    assert (amount.precision, amount.recall, amount.support) == (0.5, 0.5, 2)


def test_calibration_error() -> None:
    assert calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert calibration_error([0.9] * 10, [False] * 10) == pytest.approx(0.9)


def test_cross_validation_predicts_every_example_once(nlu_parser: Parser) -> None:
    texts = {
        "greet": ["你好", "您好", "早上好", "在吗", "哈喽"],
        "thanks": ["谢谢", "多谢了", "感谢帮忙", "辛苦了谢谢", "谢啦"],
        "microloan": ["红色信贷怎么申请", "想贷款五万", "贷款利息多少", "能贷多少钱", "贷款额度"],
    }
    examples = tuple(Example(t, intent) for intent, ts in texts.items() for t in ts)
    report = cross_validate(
        TrainingData(examples),
        nlu_parser.tokenizer,
        5,
        fallback_threshold=0.0,
        ambiguity_threshold=0.0,
    )
    assert report.n == 15 and sum(s.support for s in report.per_intent) == 15
    with pytest.raises(ValueError, match="at least 6 examples"):
        cross_validate(
            TrainingData(examples),
            nlu_parser.tokenizer,
            6,
            fallback_threshold=0.0,
            ambiguity_threshold=0.0,
        )


@pytest.mark.parametrize(
    ("a", "b"),
    [("你好", "你好呀～"), ("你好", "你好！！"), ("再见", "再见👋"), ("谢谢", "謝謝啦")],
)
def test_variants_share_a_key(a: str, b: str) -> None:
    assert variant_key(a) == variant_key(b)


def test_distinct_messages_keep_distinct_keys() -> None:
    assert len({variant_key(t) for t in ["你好", "您好", "嗯", "嗯嗯", "好", "哈哈哈"]}) == 6


def test_grouped_folds_never_split_variants() -> None:
    """A variant in the training folds makes its twin easy: with group_variants
    a message is only ever predicted from other wordings."""
    texts = ["你好", "你好呀", "你好！", "早上好", "早上好～", "在吗", "哈喽", "哈喽哈喽", "嗨"]
    examples = [Example(t, "greet") for t in texts] + [
        Example(t, "thanks") for t in ["谢谢", "谢谢啦", "谢谢！", "多谢", "感谢", "谢啦"]
    ]

    def split_variants(group_variants: bool) -> int:
        split = 0
        for train_idx, test_idx in cv_splits(examples, 3, group_variants=group_variants):
            trained = {variant_key(examples[i].text) for i in train_idx}
            split += sum(variant_key(examples[i].text) in trained for i in test_idx)
        return split

    assert split_variants(group_variants=True) == 0
    assert split_variants(group_variants=False) > 0
    for _, test_idx in cv_splits(examples, 3, group_variants=True):
        assert {examples[i].intent for i in test_idx} == {"greet", "thanks"}


def test_export_rasa(tmp_path: Path) -> None:
    files = default_data_paths()
    userdict = Path(__file__).resolve().parents[2] / "nlu" / "data" / "userdict.txt"
    written = export_rasa(
        tmp_path, files, userdict, fallback_threshold=0.42, ambiguity_threshold=0.07
    )
    config = yaml.safe_load((tmp_path / "config.yml").read_text(encoding="utf-8"))
    assert config["language"] == "zh"
    names = [c["name"] for c in config["pipeline"]]
    assert names[0] == "JiebaTokenizer"
    for needed in ("RegexFeaturizer", "LexicalSyntacticFeaturizer", "DIETClassifier"):
        assert needed in names
    assert "EntitySynonymMapper" in names
    char = [c for c in config["pipeline"] if c.get("analyzer") == "char_wb"]
    assert char and (char[0]["min_ngram"], char[0]["max_ngram"]) == (1, 2)
    [diet] = [c for c in config["pipeline"] if c["name"] == "DIETClassifier"]
    assert diet["epochs"] == 30
    fallback = config["pipeline"][-1]
    assert fallback == {
        "name": "FallbackClassifier",
        "threshold": 0.42,
        "ambiguity_threshold": 0.07,
    }
    dict_dir = tmp_path / config["pipeline"][0]["dictionary_path"]
    assert (dict_dir / "userdict.txt").read_bytes() == userdict.read_bytes()
    for source in files:
        copied = tmp_path / "data" / source.name
        assert copied.read_bytes() == source.read_bytes()
        assert yaml.safe_load(copied.read_text(encoding="utf-8"))["version"] == "3.1"
    domain = yaml.safe_load((tmp_path / "domain.yml").read_text(encoding="utf-8"))
    assert set(domain["intents"]) == set(INTENTS) - {FALLBACK_INTENT}
    assert {"amount", "phone", "ticket_id"} <= set(domain["entities"])
    assert len(written) == len(files) + 3


def test_export_rasa_sample_caps_every_intent(tmp_path: Path) -> None:
    files = default_data_paths()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "old.yml").write_text("stale", encoding="utf-8")
    export_rasa(
        tmp_path,
        files,
        None,
        fallback_threshold=0.4,
        ambiguity_threshold=0.1,
        training=RasaTraining(epochs=7),
        max_per_intent=12,
    )
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["nlu_sample.yml"]
    data, problems = read_training_data([tmp_path / "data" / "nlu_sample.yml"])
    counts = Counter(e.intent for e in data.examples)
    assert set(counts) == set(INTENTS) - {FALLBACK_INTENT}
    assert max(counts.values()) == 12
    assert not [p for p in problems if p.level == "error"]
    annotated = [e for e in data.examples if e.entities]
    assert annotated, "entity annotations survive the sampling"
    config = yaml.safe_load((tmp_path / "config.yml").read_text(encoding="utf-8"))
    [diet] = [c for c in config["pipeline"] if c["name"] == "DIETClassifier"]
    assert diet["epochs"] == 7
