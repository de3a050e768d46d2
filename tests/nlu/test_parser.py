"""The parse JSON contract, fallback behaviour, bad input, and model staleness."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlu.classifier import METADATA_FILE, ModelIncompatibleError, ModelNotFoundError
from nlu.parser import MAX_MESSAGE_CHARS, ModelStaleError, Parser, load_parser
from nlu.settings import NluSettings
from nlu.types import FALLBACK_INTENT, INTENTS

# The examples of CONTRACT.md's intent table.
CONTRACT_EXAMPLES = [
    ("老板拖欠工资三个月怎么起诉", "legal_aid"),
    ("开小吃店想贷五万块钱，利息多少", "microloan"),
    ("楼上邻居天天半夜吵，沟通没用", "dispute_mediation"),
    ("我会修家电，想报名当志愿者", "volunteer_signup"),
    ("小区消防通道被车堵死了", "report_issue"),
    ("初心驿站是干什么的", "service_info"),
    ("我上周提交的调解申请有进展吗", "ticket_status"),
    ("转人工", "human_handoff"),
    ("你好", "greet"),
    ("再见", "goodbye"),
    ("谢谢", "thanks"),
    ("对的", "affirm"),
    ("不是", "deny"),
    ("不办了，取消吧", "cancel"),
    ("明天乌鲁木齐天气怎么样", "out_of_scope"),
]


@pytest.mark.parametrize(("text", "intent"), CONTRACT_EXAMPLES)
def test_contract_examples(nlu_parser: Parser, text: str, intent: str) -> None:
    assert nlu_parser.parse(text).intent.name == intent


def test_parse_json_contract(nlu_parser: Parser) -> None:
    text = "开小吃店想贷五万块钱，利息多少"
    result = json.loads(json.dumps(nlu_parser.parse(text).to_dict(), ensure_ascii=False))
    assert set(result) == {"text", "intent", "intent_ranking", "entities"}
    assert result["text"] == text
    assert result["intent"]["name"] == "microloan"
    assert 0.0 <= result["intent"]["confidence"] <= 1.0
    ranking = result["intent_ranking"]
    assert {r["name"] for r in ranking} == set(INTENTS)
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0, abs=0.01)
    assert ranking[0] == result["intent"]
    [amount] = result["entities"]
    assert amount["entity"] == "amount" and amount["value"] == 50000
    assert text[amount["start"] : amount["end"]].startswith("五万")
    assert isinstance(amount["extractor"], str)


@pytest.mark.parametrize(
    "text",
    ["", "   \t ", "\x00\x01\x1b[0m", "😀😀😀", "🙏", "？？？！！", "a" * 10_000, "\ud800\udfff"],
)
def test_unusable_input_falls_back_with_a_ranking(nlu_parser: Parser, text: str) -> None:
    result = nlu_parser.parse(text)
    assert result.intent.name == FALLBACK_INTENT
    assert len(result.intent_ranking) == len(INTENTS)
    json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")


def test_long_messages_fall_back_but_keep_entities(nlu_parser: Parser) -> None:
    text = "老板拖欠工资，电话13912345678。" + "唉" * MAX_MESSAGE_CHARS
    result = nlu_parser.parse(text)
    assert result.intent.name == FALLBACK_INTENT
    assert result.first("phone") is not None


def test_thresholds_decide_fallback_but_keep_the_real_ranking(nlu_parser: Parser) -> None:
    strict = Parser(
        nlu_parser.tokenizer, nlu_parser.model, fallback_threshold=1.0, ambiguity_threshold=0.0
    )
    result = strict.parse("开小吃店想贷五万块钱，利息多少")
    assert result.intent.name == FALLBACK_INTENT
    assert result.intent.confidence == 1.0  # Rasa's convention: the threshold
    assert result.intent_ranking[0].name == "microloan"

    lenient = Parser(
        nlu_parser.tokenizer, nlu_parser.model, fallback_threshold=0.0, ambiguity_threshold=0.0
    )
    assert lenient.parse("开小吃店想贷五万块钱").intent.name == "microloan"


def test_ambiguity_threshold(nlu_parser: Parser) -> None:
    ranking = nlu_parser.parse("我想问一下").intent_ranking
    gap = ranking[0].confidence - ranking[1].confidence
    above = Parser(
        nlu_parser.tokenizer,
        nlu_parser.model,
        fallback_threshold=0.0,
        ambiguity_threshold=min(1.0, gap + 0.01),
    )
    below = Parser(
        nlu_parser.tokenizer, nlu_parser.model, fallback_threshold=0.0, ambiguity_threshold=gap / 2
    )
    assert above.parse("我想问一下").intent.name == FALLBACK_INTENT
    assert below.parse("我想问一下").intent.name == ranking[0].name


def test_gibberish_is_not_confidently_a_service(nlu_parser: Parser) -> None:
    for text in ["qwpeoriuty", "锟斤拷烫烫烫", "zzzzzz"]:
        result = nlu_parser.parse(text)
        assert result.intent.name in (FALLBACK_INTENT, "out_of_scope"), (text, result.intent)


@pytest.mark.parametrize("text", ["13912345678", "200", "5000"])
def test_a_bare_number_is_no_goodbye(nlu_parser: Parser, text: str) -> None:
    """886 and 88 say goodbye; a phone number or an amount given alone does not."""
    assert nlu_parser.parse(text).intent.name not in ("goodbye", "greet", "thanks")
    assert nlu_parser.parse("886").intent.name == "goodbye"


def test_parse_is_thread_safe(nlu_parser: Parser) -> None:
    texts = [t for t, _ in CONTRACT_EXAMPLES] * 20
    expected = [nlu_parser.parse(t).to_dict() for t in texts]
    results: dict[int, list[dict[str, object]]] = {}

    def work(worker: int) -> None:
        results[worker] = [nlu_parser.parse(t).to_dict() for t in texts]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(results[i] == expected for i in range(6))


# --- model lifecycle on a small data set -------------------------------------------

SMALL = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - 你好
    - 您好
    - 早上好
    - 在吗
- intent: microloan
  examples: |
    - 红色信贷怎么申请
    - 想贷款五万
    - 贷款利息多少
    - 能贷多少钱
- intent: thanks
  examples: |
    - 谢谢
    - 多谢了
    - 感谢帮忙
    - 辛苦了谢谢
- regex: ticket
  examples: |
    - (?i)tx\\d{6}
    - 单号
"""


@pytest.fixture
def small(tmp_path: Path) -> NluSettings:
    data = tmp_path / "data"
    data.mkdir()
    (data / "nlu.yml").write_text(SMALL, encoding="utf-8")
    return NluSettings(data_paths=(data,), model_dir=tmp_path / "model")


def test_first_use_trains_and_says_so(small: NluSettings) -> None:
    notes: list[str] = []
    parser = load_parser(small, notify=notes.append)
    assert notes and "no NLU model" in notes[0]
    assert parser.parse("贷款利息怎么算").intent_ranking[0].name == "microloan"
    notes.clear()
    load_parser(small, notify=notes.append)
    assert notes == []  # current model: loaded, not retrained


def test_saved_model_is_plain_data_with_metadata(small: NluSettings) -> None:
    load_parser(small)
    assert small.model_dir is not None
    metadata = json.loads((small.model_dir / METADATA_FILE).read_text(encoding="utf-8"))
    assert len(metadata["data_hash"]) == 64
    assert {"jieba", "numpy", "scikit-learn"} <= set(metadata["versions"])
    assert metadata["labels"] == ["greet", "microloan", "thanks"]
    assert metadata["feature_config"]["word_vectors"] and metadata["format_version"] == 2
    with np.load(small.model_dir / metadata["arrays"], allow_pickle=False) as arrays:
        assert arrays["weights"].shape == (metadata["n_features"], 3)
        assert arrays["dense_weights"].shape == (75, 3)


def test_stale_model_is_retrained_or_refused(small: NluSettings) -> None:
    load_parser(small)
    data_file = small.data_paths[0] / "nlu.yml"
    data_file.write_text(
        SMALL.replace("    - 辛苦了谢谢\n", "    - 辛苦了谢谢\n    - 三克油\n"), encoding="utf-8"
    )
    with pytest.raises(ModelStaleError, match="stale"):
        load_parser(small, auto_train=False)
    notes: list[str] = []
    parser = load_parser(small, notify=notes.append)
    assert any("stale" in n for n in notes)
    assert parser.model.metadata["n_examples"] == 13


def test_model_from_older_feature_code_is_not_used(small: NluSettings) -> None:
    """Features change with the code, not only with the data: a model saved by
    another feature version is refused or retrained, never scored with new features."""
    load_parser(small)
    assert small.model_dir is not None
    metadata_file = small.model_dir / METADATA_FILE
    metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    metadata["feature_config"]["version"] -= 1
    metadata_file.write_text(json.dumps(metadata, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ModelStaleError, match="other feature settings"):
        load_parser(small, auto_train=False)
    notes: list[str] = []
    load_parser(small, notify=notes.append)
    assert any("other feature settings" in n for n in notes)


def test_incompatible_model_is_retrained_or_refused(small: NluSettings, tmp_path: Path) -> None:
    load_parser(small)
    assert small.model_dir is not None
    meta_path = small.model_dir / METADATA_FILE
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    metadata["versions"]["jieba"] = "0.0.1"
    meta_path.write_text(json.dumps(metadata), encoding="utf-8")
    no_data = NluSettings(data_paths=(tmp_path / "gone.yml",), model_dir=small.model_dir)
    with pytest.raises(ModelIncompatibleError, match=r"jieba 0\.0\.1"):
        load_parser(no_data)
    notes: list[str] = []
    load_parser(small, notify=notes.append)
    assert any("incompatible" in n for n in notes)


def test_damaged_arrays_are_never_used(small: NluSettings) -> None:
    load_parser(small)
    assert small.model_dir is not None
    for arrays in small.model_dir.glob("arrays-*.npz"):
        arrays.write_bytes(b"garbage")
    with pytest.raises(ModelIncompatibleError):
        load_parser(small, auto_train=False)
    assert load_parser(small).parse("谢谢").intent_ranking[0].name == "thanks"


def test_unwritable_model_dir_still_parses(small: NluSettings, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    notes: list[str] = []
    parser = load_parser(small, model_dir=blocker / "model", notify=notes.append)
    assert any("NOT saved" in n for n in notes)
    assert parser.parse("谢谢").intent_ranking[0].name == "thanks"


def test_missing_model_without_training(small: NluSettings) -> None:
    with pytest.raises(ModelNotFoundError, match="tongxin nlu train"):
        load_parser(small, auto_train=False)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_parse_never_raises(nlu_parser: Parser, text: str) -> None:
    result = nlu_parser.parse(text)
    assert result.intent.name in (*INTENTS, FALLBACK_INTENT)
    json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")
