"""The form-turn act model: the same words read differently at different steps,
its data is validated, and a model saved for other data is not reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.form_acts import check_form_turns, ensure_form_acts, load_form_turns
from nlu.parser import Parser


def top(parser: Parser, text: str, asked: str) -> str:
    assert parser.form_acts is not None
    return parser.form_acts.rank(text, asked, parser.parse(text))[0][0]


@pytest.mark.parametrize(
    ("text", "asked", "act"),
    [
        ("好的", "confirm", "confirm"),
        ("叫我陈工", "name", "answer"),
        ("转人工", "phone", "handoff"),
        ("不办了", "amount", "cancel"),
        ("利息大概多少", "purpose", "question"),
        ("不想留电话", "phone", "decline"),
        ("电话写错了，是13800001111", "confirm", "correction"),
    ],
)
def test_a_reply_is_read_against_the_question_asked(
    nlu_parser: Parser, text: str, asked: str, act: str
) -> None:
    assert top(nlu_parser, text, asked) == act


def test_conflicting_labels_are_reported(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.yml" for n in "abc")
    a.write_text("- {asked: name, text: 好的, act: answer}\n", encoding="utf-8")
    b.write_text("- {asked: name, text: 好的, act: confirm}\n", encoding="utf-8")
    c.write_text("- {asked: x, text: y, act: z}\n", encoding="utf-8")
    problems = [str(p) for p in check_form_turns([a, b, c])]
    assert any("好的" in p and "answer" in p and "b.yml" in p for p in problems)
    assert any("c.yml" in p and "asked must be one of" in p for p in problems)
    with pytest.raises(Exception, match="asked must be one of"):
        load_form_turns([c])


def test_a_saved_model_for_other_intent_data_is_retrained(
    tmp_path: Path, nlu_parser: Parser
) -> None:
    first = ensure_form_acts(tmp_path, nlu_parser.tokenizer, nlu_parser.parse, "hash-a")
    assert first is not None
    saved = (tmp_path / "metadata.json").read_text()
    again = ensure_form_acts(tmp_path, nlu_parser.tokenizer, nlu_parser.parse, "hash-a")
    assert again is not None and (tmp_path / "metadata.json").read_text() == saved
    ensure_form_acts(tmp_path, nlu_parser.tokenizer, nlu_parser.parse, "hash-b")
    assert (tmp_path / "metadata.json").read_text() != saved
