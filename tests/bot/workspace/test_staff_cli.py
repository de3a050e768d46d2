"""`tongxin staff add/list/disable/passwd` as an administrator types them, and
`tongxin serve` saying where the workspace is."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.cli.serve_cmd import _announce_workspace
from bot.settings import Settings
from bot.workspace.accounts import verify
from flows.paths import default_data_dir
from flows.store import Store
from flows.workspace_store import WorkspaceStore


def staff(db: Path, monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    # A pipe, as in `echo pw | tongxin staff add ...`: not a terminal.
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    return main(["staff", argv[0], "--db", str(db), *argv[1:]])


def test_add_list_disable_passwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    pw = "first password 1\nignored second line\n"
    assert (
        staff(
            db,
            monkeypatch,
            "add",
            "王律师",
            "--role",
            "staff",
            "--department",
            "法律服务工作站",
            stdin=pw,
        )
        == 0
    )
    # A ticket kind names the desk it is routed to.
    assert (
        staff(
            db,
            monkeypatch,
            "add",
            "调解员",
            "--role",
            "staff",
            "--department",
            "dispute_mediation",
            stdin="another password\n",
        )
        == 0
    )
    assert staff(db, monkeypatch, "add", "boss", "--role", "admin", stdin="boss password\n") == 0
    capsys.readouterr()
    assert staff(db, monkeypatch, "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(a["username"], a["role"], a["department"], a["disabled"]) for a in listed] == [
        ("boss", "admin", None, False),
        ("王律师", "staff", "法律服务工作站", False),
        ("调解员", "staff", "和和家调解室", False),
    ]
    # Only a slow salted hash is stored, never the password.
    raw = sqlite3.connect(db).execute("SELECT password_hash FROM staff_accounts").fetchall()
    assert all(h.startswith("$argon2id$") for (h,) in raw)
    assert b"first password 1" not in db.read_bytes()

    store = Store(db)
    ws = WorkspaceStore(store)
    assert verify(ws, "王律师", "first password 1") is not None
    assert staff(db, monkeypatch, "passwd", "王律师", stdin="second password 2\n") == 0
    assert verify(ws, "王律师", "first password 1") is None
    assert verify(ws, "王律师", "second password 2") is not None
    assert staff(db, monkeypatch, "disable", "王律师") == 0
    assert verify(ws, "王律师", "second password 2") is None
    store.close()
    capsys.readouterr()
    assert staff(db, monkeypatch, "list") == 0
    assert "disabled" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["add", "x", "--role", "staff"], "long enough pw\n", "needs --department"),
        (
            ["add", "x", "--role", "staff", "--department", "火星"],
            "long enough pw\n",
            "unknown department",
        ),
        (["add", "x", "--role", "admin"], "short\n", "at least 8"),
        (["add", "x", "--role", "admin"], "", "no password"),
        (["add", "a b", "--role", "admin"], "long enough pw\n", "no spaces"),
        (["disable", "nobody"], "", "no account"),
        (["passwd", "nobody"], "long enough pw\n", "no account"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    db = tmp_path / "t.db"
    assert staff(db, monkeypatch, *argv, stdin=stdin) == 2
    assert message in capsys.readouterr().err


def test_duplicate_name_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    assert staff(db, monkeypatch, "add", "boss", "--role", "admin", stdin="boss password\n") == 0
    assert staff(db, monkeypatch, "add", "boss", "--role", "viewer", stdin="other password\n") == 2
    assert "already exists" in capsys.readouterr().err


def test_real_command_reads_the_password_from_a_pipe(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    env = {**os.environ, "TONGXIN_DB": str(db)}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "staff", "add", "viewer1", "--role", "viewer"],
        input="viewer password\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    store = Store(db)
    assert verify(WorkspaceStore(store), "viewer1", "viewer password") is not None
    store.close()


def test_serve_says_where_the_workspace_is(capsys: pytest.CaptureFixture[str]) -> None:
    base = Settings(db_path=Path("x.db"), data_dir=default_data_dir())
    _announce_workspace(base, "127.0.0.1", 8080)
    assert "TONGXIN_SECRET_KEY is not set" in capsys.readouterr().err
    _announce_workspace(
        Settings(db_path=Path("x.db"), data_dir=default_data_dir(), secret_key="short"),
        "127.0.0.1",
        8080,
    )
    assert "at least 16" in capsys.readouterr().err
    on = Settings(db_path=Path("x.db"), data_dir=default_data_dir(), secret_key="k" * 32)
    _announce_workspace(on, "0.0.0.0", 9000)
    assert "http://127.0.0.1:9000/staff/" in capsys.readouterr().err
