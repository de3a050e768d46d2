"""The tokenizer keeps domain words whole, normalises text, leaves jieba's global state alone."""

from __future__ import annotations

from pathlib import Path

import jieba
import pytest

from nlu.tokenizer import DEFAULT_USERDICT, Tokenizer, normalize_text, read_userdict


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return Tokenizer(cache_dir=tmp_path_factory.mktemp("jieba-cache"))


DOMAIN_SENTENCES = [
    ("我想申请红色信贷", "红色信贷"),
    ("和和家调解室在哪里", "和和家调解室"),
    ("帮帮团能帮忙吗", "帮帮团"),
    ("门口占道经营太严重", "占道经营"),
    ("晚上噪声扰民怎么办", "噪声扰民"),
    ("百姓说事云怎么用", "百姓说事云"),
    ("书记直通车反映问题", "书记直通车"),
    ("初心驿站几点开门", "初心驿站"),
    ("能在云法庭开庭吗", "云法庭"),
    ("公益市集招志愿者", "公益市集"),
    ("隔壁是群租房", "群租房"),
    ("电瓶车在楼道充电", "电瓶车"),
    ("天山农商银行放款", "天山农商银行"),
    ("法律服务工作站在哪", "法律服务工作站"),
    ("创业社区金融服务站电话", "创业社区金融服务站"),
    ("邻里食堂的饭菜", "邻里食堂"),
    ("党群服务中心几点下班", "党群服务中心"),
    ("我家馕店想贷款", "馕店"),
    ("巴扎里的摊位", "巴扎"),
]


@pytest.mark.parametrize(("sentence", "word"), DOMAIN_SENTENCES)
def test_domain_words_stay_whole(tokenizer: Tokenizer, sentence: str, word: str) -> None:
    assert word in tokenizer.words(sentence)


def test_every_userdict_word_is_one_token(tokenizer: Tokenizer) -> None:
    for word, _freq, _tag in read_userdict(DEFAULT_USERDICT):
        assert tokenizer.words(word) == [normalize_text(word)], word


def test_the_global_jieba_dictionary_is_untouched(tokenizer: Tokenizer) -> None:
    tokenizer.words("和和家调解室")
    # jieba's module-level tokenizer either was never initialised by us or
    # knows nothing of our words.
    assert "和和家调解室" not in jieba.dt.FREQ


def test_punctuation_is_dropped(tokenizer: Tokenizer) -> None:
    assert tokenizer.words("你好！！？。，") == ["你好"]


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("紅色信貸怎麼申請", "红色信贷怎么申请"),
        ("ＤＫ　５万", "dk 5万"),
        ("你好\x00\x1b  世界\u200b", "你好 世界"),
        ("  \n\t ", ""),
        ("坏\ud800字", "坏\ufffd字"),
    ],
)
def test_normalize_text(raw: str, normalised: str) -> None:
    assert normalize_text(raw) == normalised


def test_cache_dir_is_used_and_second_start_reuses_it(tmp_path: Path) -> None:
    Tokenizer(cache_dir=tmp_path)
    caches = sorted(p.name for p in tmp_path.iterdir())
    assert any(name.endswith(".cache") for name in caches)
    Tokenizer(cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == caches


def test_unwritable_cache_dir_falls_back(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert Tokenizer(cache_dir=blocker / "sub").words("红色信贷") == ["红色信贷"]
