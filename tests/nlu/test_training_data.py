"""Loading and validating Rasa NLU YAML: problems name the file, line and item."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.training_data import (
    EntityAnnotation,
    Problem,
    TrainingDataError,
    check_data,
    data_fingerprint,
    default_data_paths,
    load_examples,
    load_training_data,
    parse_annotated,
    read_nlu_file,
)
from nlu.types import INTENTS

GOOD = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - 你好
    - 您好啊
- intent: microloan
  examples: |
    - 想贷[五万](amount)块钱
    - 红色信贷利息多少
- synonym: 红色信贷
  examples: |
    - 红贷
- regex: ticket
  examples: |
    - TX\\d{6}-?\\d{4}
- lookup: place
  examples: |
    - 巴扎
"""


def write(tmp_path: Path, text: str, name: str = "nlu.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def messages(problems: list[Problem], level: str = "error") -> list[str]:
    return [str(p) for p in problems if p.level == level]


def test_good_file_loads_everything(tmp_path: Path) -> None:
    data, problems = read_nlu_file(write(tmp_path, GOOD))
    assert messages(problems) == []
    assert [(e.text, e.intent) for e in data.examples] == [
        ("你好", "greet"),
        ("您好啊", "greet"),
        ("想贷五万块钱", "microloan"),
        ("红色信贷利息多少", "microloan"),
    ]
    assert data.examples[2].entities == (EntityAnnotation("amount", 2, 4, None),)
    assert data.synonyms == {"红贷": "红色信贷"}
    assert data.regexes == {"ticket": ("TX\\d{6}-?\\d{4}",)}
    assert data.lookups == {"place": ("巴扎",)}
    assert data.examples[0].source == "nlu.yml:5"


@pytest.mark.parametrize(
    ("raw", "plain", "entities"),
    [
        ("贷[五万](amount)块钱", "贷五万块钱", [EntityAnnotation("amount", 1, 3, None)]),
        (
            '电话[139 1234 5678]{"entity": "phone", "value": "13912345678"}',
            "电话139 1234 5678",
            [EntityAnnotation("phone", 2, 15, "13912345678")],
        ),
        ("[3万](amount:30000)行吗", "3万行吗", [EntityAnnotation("amount", 0, 2, "30000")]),
        ("[微笑]谢谢", "[微笑]谢谢", []),  # WeChat emoji codes are not annotations
    ],
)
def test_entity_annotations_are_stripped(
    raw: str, plain: str, entities: list[EntityAnnotation]
) -> None:
    assert parse_annotated(raw) == (plain, tuple(entities))


BROKEN_ITEMS = [
    ("- intent: no_such_intent\n  examples: |\n    - 你好\n", "unknown intent 'no_such_intent'"),
    ("- intent: greet\n", "no 'examples'"),
    ("- intent: greet\n  examples: |\n    你好\n", "must start with '- '"),
    ("- intent: nlu_fallback\n  examples: |\n    - 啥\n", "assigned by the parser"),
    ("- intent: greet\n  synonym: x\n  examples: |\n    - 你好\n", "exactly one of"),
    ("- regex: bad\n  examples: |\n    - TX(\\d\n", "invalid regex"),
    ('- intent: greet\n  examples: |\n    - [你好]{"entity": }\n', "not valid JSON"),
    ("- just a string\n", "must be a mapping"),
]


@pytest.mark.parametrize(("item", "expected"), BROKEN_ITEMS)
def test_broken_items_are_skipped_with_file_line_and_item(
    tmp_path: Path, item: str, expected: str
) -> None:
    path = write(tmp_path, 'version: "3.1"\nnlu:\n' + item)
    _data, problems = read_nlu_file(path)
    errors = [p for p in problems if p.level == "error"]
    assert errors, problems
    assert any(expected in p.message for p in errors), errors
    assert all(p.file == str(path) and p.line is not None for p in errors)
    assert str(path) in str(errors[0]) and "error" in str(errors[0])


def test_the_rest_of_a_file_survives_a_bad_item(tmp_path: Path) -> None:
    text = GOOD.replace("- intent: greet", "- intent: gret", 1)
    data, problems = read_nlu_file(write(tmp_path, text))
    assert any("item 1 (intent: gret)" in str(p) for p in problems)
    assert {e.intent for e in data.examples} == {"microloan"}


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'version: "3.1"\nnlu:\n- intent: greet\n  examples: [unclosed\n')
    _data, problems = read_nlu_file(path)
    [problem] = problems
    assert problem.level == "error" and "invalid YAML" in problem.message
    assert problem.line is not None and problem.line >= 4


def test_unquoted_version_and_missing_file_are_reported(tmp_path: Path) -> None:
    _data, problems = read_nlu_file(write(tmp_path, GOOD.replace('"3.1"', "3.1")))
    assert any("quoted string" in p.message for p in problems if p.level == "warning")
    _data, problems = read_nlu_file(tmp_path / "missing.yml")
    assert [p.message for p in problems] == ["file not found"]


def test_cross_file_checks(tmp_path: Path) -> None:
    a = write(tmp_path, GOOD, "a.yml")
    b = write(
        tmp_path, 'version: "3.1"\nnlu:\n- intent: thanks\n  examples: |\n    - 你好\n', "b.yml"
    )
    problems = check_data([a, b])
    conflict = [p for p in problems if "several intents" in p.message]
    assert conflict and "greet (a.yml:5)" in conflict[0].message
    assert "thanks (b.yml:5)" in conflict[0].message
    # Intents without examples are errors; thin ones are warnings.
    assert any("'legal_aid' has no examples" in m for m in messages(problems))
    assert any("'greet' has 2 examples" in m for m in messages(problems, "warning"))


def test_duplicates_within_an_intent_are_warned_once(tmp_path: Path) -> None:
    text = GOOD.replace("    - 您好啊\n", "    - 您好啊\n    - 你好\n")
    data, problems = read_nlu_file(write(tmp_path, text))
    assert [e.text for e in data.examples].count("你好") == 1
    assert any("duplicate example" in p.message for p in problems)


def test_directories_expand_to_their_yaml_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yml")
    write(tmp_path, 'version: "3.1"\nnlu:\n- intent: thanks\n  examples: |\n    - 谢谢\n', "b.yaml")
    write(tmp_path, "not data", "notes.txt")
    data, _problems = load_training_data([tmp_path])
    assert [p.name for p in data.files] == ["a.yml", "b.yaml"]
    assert "thanks" in data.intents()


def test_unusable_data_raises(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError):
        load_training_data([write(tmp_path, 'version: "3.1"\nnlu: []\n')])


def test_plain_list_eval_files(tmp_path: Path) -> None:
    path = write(
        tmp_path, "- text: 你好\n  intent: greet\n- text: 贷[五万](amount)\n  intent: microloan\n"
    )
    examples = load_examples(path)
    assert [(e.text, e.intent) for e in examples] == [("你好", "greet"), ("贷五万", "microloan")]
    assert examples[1].entities[0].entity == "amount"
    with pytest.raises(TrainingDataError, match="entry 1"):
        load_examples(write(tmp_path, "- intent: greet\n", "bad.yml"))


def test_fingerprint_changes_with_content_not_location(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    a = write(one, GOOD)
    b = write(two, GOOD)
    assert data_fingerprint([a]) == data_fingerprint([b])
    b.write_text(GOOD + "\n", encoding="utf-8")
    assert data_fingerprint([a]) != data_fingerprint([b])


def test_the_shipped_data_is_valid_and_covers_every_intent() -> None:
    problems = check_data(default_data_paths())
    assert [str(p) for p in problems if p.level == "error"] == []
    data, _ = load_training_data(default_data_paths())
    assert set(data.intents()) == set(INTENTS)
