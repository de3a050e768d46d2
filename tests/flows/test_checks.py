"""check-data's dialogue validators name the file and the item that is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.checks import check_dialogue, check_faq
from flows.definitions import FlowBook, FlowDataError
from flows.paths import default_data_dir


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(default_data_dir(), target)
    return target


def test_shipped_data_is_clean() -> None:
    assert check_dialogue([default_data_dir()]) == []
    assert check_faq([default_data_dir()]) == []


def test_missing_reply_is_reported_with_its_user(data_copy: Path) -> None:
    path = data_copy / "replies" / "dialogue.yml"
    path.write_text(path.read_text(encoding="utf-8").replace("ask.loan.amount:", "ask.loan.sum:"))
    [problem] = check_dialogue([data_copy])
    assert "ask.loan.amount" in str(problem) and "microloan" in str(problem)


def test_broken_flow_is_reported_and_refused(data_copy: Path) -> None:
    path = data_copy / "flows.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("kind: report_issue", "kind: nowhere", 1), encoding="utf-8")
    problems = [str(p) for p in check_dialogue([data_copy])]
    assert any("report_issue" in p and "nowhere" in p and "flows.yml" in p for p in problems)
    with pytest.raises(FlowDataError):
        FlowBook.load(path, data_copy / "routing.yml")


def test_bad_pattern_and_duplicate_reply_ids(data_copy: Path) -> None:
    flows = data_copy / "flows.yml"
    flows.write_text(
        flows.read_text(encoding="utf-8").replace("(?P<v>(?:用来|用于", "(?P<v>((?:用来|用于", 1),
        encoding="utf-8",
    )
    (data_copy / "replies" / "extra.yml").write_text("greet: 嗨\n", encoding="utf-8")
    problems = [str(p) for p in check_dialogue([data_copy])]
    assert any("bad pattern" in p for p in problems)
    assert any("greet" in p and "already defined" in p for p in problems)
