"""The CLI and the database files: private file modes, one `tongxin: error:`
line instead of a traceback, no silent fallback for `--db ""`, no database
made up for a mistyped path, and read-only commands without the write lock."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.main import main
from bot.cli.shell_cmd import history_path
from flows.store import Store


@pytest.fixture
def default_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _seed(db: Path, user: str = "u-env") -> None:
    store = Store(db)
    store.create_ticket(
        kind="report_issue",
        department="物业",
        channel="shell",
        user_id=user,
        phone="13912345678",
        fields={"description": "路灯坏了"},
    )
    store.close()


def _one_error_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tongxin: error: "), err
    assert "Traceback" not in err


def test_database_files_are_private(tmp_path: Path, default_umask: None) -> None:
    db = tmp_path / "new" / "folder" / "tongxin.db"
    _seed(db)
    store = Store(db)  # keeps the WAL and shared-memory files while open
    store.log_message("shell", "u1", "in", "你好")
    assert _mode(db.parent) == 0o700
    for path in (db, db.with_name("tongxin.db-wal"), db.with_name("tongxin.db-shm")):
        assert path.exists() and _mode(path) == 0o600, path
    assert _mode(db.with_name("tongxin.db.lock")) == 0o600
    store.close()


def test_an_empty_db_option_is_refused_not_read_as_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_db = tmp_path / "env.db"
    _seed(env_db)
    monkeypatch.setenv("TONGXIN_DB", str(env_db))
    assert main(["privacy", "forget", "--user", "u-env", "--yes", "--db", ""]) == 2
    _one_error_line(capsys.readouterr().err)
    store = Store(env_db)
    assert store.list_tickets(user_id="u-env")  # nothing was erased
    store.close()


@pytest.mark.parametrize(
    "argv",
    [
        ["tickets", "list", "--json"],
        ["tickets", "stats"],
        ["volunteers", "list"],
        ["outbox", "list"],
        ["privacy", "forget", "--user", "u1", "--yes"],
    ],
)
def test_a_mistyped_db_path_is_refused_not_created(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "tongxni" / "tongxin.db"
    assert main([*argv, "--db", str(typo)]) == 2
    _one_error_line(capsys.readouterr().err)
    assert not typo.parent.exists()


def test_read_only_commands_take_no_write_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "ro" / "tongxin.db"
    _seed(db)
    db.with_name("tongxin.db.lock").unlink()
    assert main(["tickets", "list", "--json", "--db", str(db)]) == 0
    assert '"路灯坏了"' in capsys.readouterr().out
    # A read-only folder could not hold the lock file: it is never created.
    assert not db.with_name("tongxin.db.lock").exists()


@pytest.mark.parametrize("kind", ["directory", "not a database"])
def test_serve_and_queries_on_an_unusable_file_are_one_error_line(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.db"
    if kind == "directory":
        bad.mkdir()
    else:
        bad.write_bytes(b"this is not SQLite\n" * 100)
    assert main(["serve", "--db", str(bad)]) == 2
    _one_error_line(capsys.readouterr().err)
    assert main(["tickets", "list", "--db", str(bad)]) == 2
    _one_error_line(capsys.readouterr().err)


def test_privacy_forget_removes_the_shell_history_next_to_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "tongxin.db"
    _seed(db, user="shell-user")
    history = history_path(db)
    history.write_text("+我住幸福小区3号楼\n", encoding="utf-8")
    assert main(["privacy", "forget", "--user", "shell-user", "--yes", "--db", str(db)]) == 0
    assert not history.exists()
