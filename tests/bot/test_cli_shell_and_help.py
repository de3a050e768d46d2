"""`tongxin shell` scripted through a pipe, and every command's help."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import build_parser


def run_cli(
    args: list[str], stdin: bytes, env_extra: dict[str, str]
) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def cli_env(tmp_path: Path, nlu_parser: object, model_dir: Path) -> dict[str, str]:
    # The session parser fixture trained a model there; the CLI reuses it.
    return {
        "TONGXIN_DB": str(tmp_path / "shell.db"),
        "XDG_DATA_HOME": str(tmp_path),
        "TONGXIN_MODEL_DIR": str(model_dir),
    }


def test_scripted_shell_conversation_lands_in_the_database(cli_env: dict[str, str]) -> None:
    script = "\n".join(
        [
            "你好",
            "我叫王芳，电话13912345678，住幸福小区3号楼，楼上邻居天天半夜吵，想申请调解",
            "确认",
        ]
    )
    done = run_cli(["shell", "--user", "resident-7"], script.encode(), cli_env)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert "已提交" in out
    listed = run_cli(["tickets", "list", "--json"], b"", cli_env)
    [ticket] = json.loads(listed.stdout)
    assert ticket["user_id"] == "resident-7" and ticket["channel"] == "shell"
    assert ticket["kind"] == "dispute_mediation" and ticket["phone"] == "13912345678"
    assert ticket["id"] in out


def test_shell_uses_a_sandbox_database_unless_told_otherwise(
    tmp_path: Path, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TONGXIN_DB", raising=False)
    env = {k: v for k, v in cli_env.items() if k != "TONGXIN_DB"}
    env["TONGXIN_CACHE_DIR"] = str(tmp_path / "cache")
    script = "我要反映问题，小区门口路灯坏了\n幸福路12号\n13912345678\n确认\n"
    done = run_cli(["shell", "--user", "try-1"], script.encode(), env)
    assert done.returncode == 0, done.stderr.decode()
    sandbox = tmp_path / "cache" / "shell-sandbox.db"
    assert f"sandbox database {sandbox}" in done.stderr.decode()
    production = tmp_path / "tongxin" / "tongxin.db"  # $XDG_DATA_HOME/tongxin/tongxin.db
    assert not production.exists()
    listed = run_cli(["tickets", "list", "--json", "--db", str(sandbox)], b"", env)
    assert [t["user_id"] for t in json.loads(listed.stdout)] == ["try-1"]
    other = tmp_path / "chosen.db"
    done = run_cli(["shell", "--db", str(other)], "你好\n".encode(), env)
    assert f"database {other} (from --db)" in done.stderr.decode() and other.exists()


def test_shell_without_a_model_or_data_says_why(tmp_path: Path) -> None:
    env = {
        "TONGXIN_DB": str(tmp_path / "shell.db"),
        "TONGXIN_MODEL_DIR": str(tmp_path / "no-model"),
        "TONGXIN_NLU_DATA": str(tmp_path / "no-data"),
    }
    done = run_cli(["shell"], "你好\n".encode(), env)
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert err.startswith("tongxin: error:") and "Traceback" not in err
    assert "no-data" in err or "no NLU model" in err


def test_shell_survives_invalid_utf8_and_control_characters(cli_env: dict[str, str]) -> None:
    done = run_cli(
        ["shell", "--debug"], b"\xff\xfe\xfa\n\x1b[31m\x00\n" + "你好".encode() + b"\n", cli_env
    )
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    assert out.count("[debug] intent=") == 3
    assert "Traceback" not in done.stderr.decode()


def _subcommands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix} {name}".strip()
                nested = _subcommands(sub, full)
                found += nested or [(full, sub)]
    return found


def test_every_command_has_help_and_an_example() -> None:
    commands = _subcommands(build_parser())
    names = {name for name, _ in commands}
    for required in ("shell", "nlu parse", "faq ask", "tickets list", "volunteers list"):
        assert required in names
    for name, sub in commands:
        assert sub.description, f"`tongxin {name}` has no help text"
        assert sub.epilog and "tongxin" in sub.epilog, f"`tongxin {name}` has no example"
        assert any(a.dest == "db" for a in sub._actions), f"`tongxin {name}` lacks --db"


def test_ctrl_c_in_the_interactive_shell_says_how_to_quit_and_goes_on(tmp_path: Path) -> None:
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from bot.cli.shell_cmd import _interactive

    said: list[str] = []
    out = io.StringIO()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text("\x03你好\r\x04")  # Ctrl-C, a message, Ctrl-D
        with contextlib.redirect_stdout(out):
            _interactive(said.append, tmp_path / "shell_history")
    assert said == ["你好"]
    assert "/quit" in out.getvalue().split("\n", 2)[-1]  # after the banner
