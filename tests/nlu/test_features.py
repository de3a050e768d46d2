"""Features the classifier sees: n-grams, words, and Rasa-style pattern hits."""

from __future__ import annotations

import pytest

from nlu.entities import extract_entities
from nlu.features import FeatureConfig, Featurizer, Patterns
from nlu.tokenizer import Tokenizer

PATTERNS = Patterns(
    synonyms={"红贷": "红色信贷", "代款": "贷款"},
    regexes={"ticket": ("(?i)tx\\d{6}", "[unclosed")},
    lookups={"places": ("巴扎", "大巴扎")},
)


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory: pytest.TempPathFactory) -> Featurizer:
    tokenizer = Tokenizer(cache_dir=tmp_path_factory.mktemp("cache"))
    return Featurizer(tokenizer, FeatureConfig(), PATTERNS)


def test_groups(featurizer: Featurizer) -> None:
    text = "紅貸能代款嗎？單號TX261126，在巴扎"
    features = featurizer.features(text, extract_entities(text))
    assert "syn:红色信贷" in features and "syn:贷款" in features  # after 繁->简
    assert "re:ticket" in features
    assert "lk:places" in features
    assert "ent:ticket_id" not in features  # TX261126 alone is no ticket id
    assert "p:?" in features
    assert "c:贷" in features and "c: 红" in features  # char n-grams, word-boundary padded
    assert any(f.startswith("w:") for f in features)


def test_long_numbers_are_folded_short_ones_kept(featurizer: Featurizer) -> None:
    assert featurizer.features("电话13912345678") == featurizer.features("电话13800138000")
    assert featurizer.features("886") != featurizer.features("200")


def test_no_newlines_can_reach_the_vocabulary(featurizer: Featurizer) -> None:
    assert not any("\n" in f for f in featurizer.features("第一行\n第二行\r\n第三行"))


def test_long_text_is_cut(featurizer: Featurizer) -> None:
    limit = featurizer.config.max_chars
    assert featurizer.features("好" * (limit * 3)) == featurizer.features("好" * limit)
