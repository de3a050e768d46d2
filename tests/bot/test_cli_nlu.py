"""`tongxin nlu ...` and `tongxin check-data` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from nlu.parser import Parser
from nlu.types import FALLBACK_INTENT, INTENTS

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
    - 想贷款[五万](amount)
    - 贷款利息多少
    - 能贷多少钱
- intent: thanks
  examples: |
    - 谢谢
    - 多谢了
    - 感谢帮忙
    - 辛苦了谢谢
"""


@pytest.fixture
def env(nlu_parser: Parser, tmp_path: Path) -> dict[str, str]:
    assert nlu_parser.model_dir is not None
    return {
        **os.environ,
        "TONGXIN_MODEL_DIR": str(nlu_parser.model_dir),
        "TONGXIN_DB": str(tmp_path / "t.db"),
    }


def run(
    args: list[str | bytes], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )


def json_lines(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]


def test_parse_stdin_one_json_per_line_and_bad_lines_do_not_stop_the_batch(
    env: dict[str, str],
) -> None:
    lines = [
        "你好".encode(),
        b"",
        b"   ",
        b"\xff\xfe\xfa",
        b"\x00\x1b[31m",
        "😀😀".encode(),
        ("长" * 10_000).encode(),
        "开小吃店想贷五万块钱，利息多少".encode(),
    ]
    done = run(["nlu", "parse"], env, b"\n".join(lines) + b"\n")
    assert done.returncode == 0, done.stderr.decode()
    results = json_lines(done.stdout)
    assert len(results) == len(lines)
    for result in results:
        assert set(result) == {"text", "intent", "intent_ranking", "entities"}
        assert {r["name"] for r in result["intent_ranking"]} == set(INTENTS)
    assert results[0]["intent"]["name"] == "greet"
    assert [r["intent"]["name"] for r in results[1:7]] == [FALLBACK_INTENT] * 6
    assert results[3]["text"] == "\ufffd" * 3
    assert results[7]["intent"]["name"] == "microloan"
    assert results[7]["entities"][0]["value"] == 50000
    assert "Traceback" not in done.stderr.decode()


def test_parse_arguments(env: dict[str, str]) -> None:
    done = run(["nlu", "parse", "电话13912345678", b"\xff\xfe"], env)
    assert done.returncode == 0, done.stderr.decode()
    first, second = json_lines(done.stdout)
    assert first["entities"][0] == {
        "entity": "phone",
        "value": "13912345678",
        "start": 2,
        "end": 13,
        "extractor": "tongxin_rules",
    }
    assert second["intent"]["name"] == FALLBACK_INTENT
    assert "13912345678" not in done.stderr.decode()  # personal data never logged


def test_thresholds_from_the_environment(env: dict[str, str]) -> None:
    done = run(["nlu", "parse", "你好"], {**env, "TONGXIN_NLU_THRESHOLD": "1"})
    [result] = json_lines(done.stdout)
    assert result["intent"]["name"] == FALLBACK_INTENT
    assert result["intent_ranking"][0]["name"] == "greet"
    bad = run(["nlu", "parse", "你好"], {**env, "TONGXIN_NLU_THRESHOLD": "lots"})
    assert bad.returncode == 2
    assert "TONGXIN_NLU_THRESHOLD" in bad.stderr.decode()
    assert "Traceback" not in bad.stderr.decode()


def test_parse_trains_on_first_use_with_a_note(tmp_path: Path) -> None:
    data = tmp_path / "nlu.yml"
    data.write_text(SMALL, encoding="utf-8")
    env = {
        **os.environ,
        "TONGXIN_NLU_DATA": str(data),
        "TONGXIN_MODEL_DIR": str(tmp_path / "model"),
    }
    done = run(["nlu", "parse", "谢谢"], env)
    assert done.returncode == 0, done.stderr.decode()
    assert "training" in done.stderr.decode()
    assert json_lines(done.stdout)[0]["intent_ranking"][0]["name"] == "thanks"
    again = run(["nlu", "parse", "谢谢"], env)
    assert "training" not in again.stderr.decode()


def test_train_test_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "nlu.yml"
    data.write_text(SMALL, encoding="utf-8")
    model = tmp_path / "model"
    assert main(["nlu", "train", "--data", str(data), "--out", str(model)]) == 0
    assert "trained on 12 examples" in capsys.readouterr().out
    assert (model / "metadata.json").is_file()

    held_out = tmp_path / "heldout.yml"
    held_out.write_text(
        "- text: 您好啊\n  intent: greet\n- text: 多谢多谢\n  intent: thanks\n"
        "- text: 贷[三万](amount)利息多少\n  intent: microloan\n",
        encoding="utf-8",
    )
    report_path = tmp_path / "report.json"
    code = main(
        [
            "nlu", "test", "--data", str(held_out), "--train-data", str(data),
            "--model-dir", str(model), "--json-report", str(report_path),
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "macro-F1" in printed and "precision" in printed
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["n"] == 3
    assert {s["label"] for s in report["per_intent"]} == {"greet", "thanks", "microloan"}
    assert report["entities"][0]["label"] == "amount"

    assert main(["nlu", "test", "--cv", "2", "--train-data", str(data)]) == 0
    assert "2-fold cross-validation (12 examples)" in capsys.readouterr().out

    out = tmp_path / "rasa"
    assert main(["nlu", "export-rasa", str(out), "--data", str(data)]) == 0
    assert (out / "config.yml").is_file() and (out / "data" / "nlu.yml").is_file()


def test_cv_refuses_too_many_folds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "nlu.yml"
    data.write_text(SMALL, encoding="utf-8")
    assert main(["nlu", "test", "--cv", "5", "--train-data", str(data)]) == 2
    assert "at least 5 examples per intent" in capsys.readouterr().err


def test_check_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-data"]) == 0
    assert "check-data: ok" in capsys.readouterr().err

    broken = tmp_path / "broken.yml"
    broken.write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 你好\n'
        "- intent: greeting\n  examples: |\n    - 嗨\n",
        encoding="utf-8",
    )
    assert main(["check-data", "--nlu", str(broken)]) == 1
    captured = capsys.readouterr()
    assert f"{broken}:6: error [item 2 (intent: greeting)]: unknown intent 'greeting'" in (
        captured.out
    )
    assert "FAILED" in captured.err


def test_check_data_runs_the_dialogue_validators_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-data", "--faq", str(tmp_path), "--dialogue", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "faq:" in captured.err and "dialogue:" in captured.err
    assert "nlu:" not in captured.err  # only the kinds asked for
    assert str(tmp_path) in captured.out
