"""deploy/systemd/ units pass `systemd-analyze verify` (paths pointed at this
checkout), their commands are real tongxin commands that work, and
docs/deploy.md, linked from the README, links what it tells people to use."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.store import Store

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
ANALYZE = shutil.which("systemd-analyze")


def localised(unit: Path, folder: Path) -> Path:
    """The unit with /opt/tongxin as this checkout and the service user as us."""
    text = unit.read_text(encoding="utf-8")
    text = text.replace("/opt/tongxin/.venv/bin/", str(Path(sys.executable).parent) + "/")
    text = text.replace("/opt/tongxin", str(ROOT))
    text = text.replace("/etc/tongxin/tongxin.env", str(folder / "tongxin.env"))
    text = text.replace("/var/backups/tongxin", str(folder / "backups"))
    text = text.replace("User=tongxin", "User=root").replace("Group=tongxin", "Group=root")
    out = folder / unit.name
    out.write_text(text, encoding="utf-8")
    return out


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    (tmp_path / "tongxin.env").write_text("TONGXIN_WECHAT_TOKEN=x\n", encoding="utf-8")
    units = [localised(u, tmp_path) for u in sorted(UNITS.iterdir())]
    assert {u.name for u in units} == {
        "tongxin.service",
        "tongxin-backup.service",
        "tongxin-backup.timer",
    }
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "verify", *map(str, units)], capture_output=True, text=True, check=False
    )
    # Parse problems are warnings with exit status 0: none may name our files.
    ours = [line for line in done.stderr.splitlines() if str(tmp_path) in line]
    assert done.returncode == 0 and ours == [], done.stderr


def _exec(unit: Path, key: str) -> list[str]:
    for line in unit.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{key}="):
            return shlex.split(line.split("=", 1)[1])
    raise AssertionError(f"{unit.name} has no {key}")


def test_the_units_commands_work(tmp_path: Path) -> None:
    service = localised(UNITS / "tongxin.service", tmp_path)
    start = _exec(service, "ExecStart")
    assert start[1:3] == ["serve", "--host"] and "127.0.0.1" in start
    help_run = subprocess.run([*start[:2], "--help"], capture_output=True, check=False)
    assert help_run.returncode == 0
    pre = subprocess.run(_exec(service, "ExecStartPre"), capture_output=True, check=False)
    assert pre.returncode == 0, pre.stderr
    backup = localised(UNITS / "tongxin-backup.service", tmp_path)
    db = tmp_path / "tongxin.db"
    Store(db).close()
    (tmp_path / "backups").mkdir()
    command = [c.replace("%%", "%") for c in _exec(backup, "ExecStart")]
    env = {**os.environ, "TONGXIN_DB": str(db)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    (made,) = (tmp_path / "backups").glob("tongxin-*.db")
    assert f"{made}: ok: integrity ok" in done.stdout


def test_deploy_guide_is_linked_and_links_what_it_uses() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/deploy.md)" in readme
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for target in (
        "../deploy/nginx/tongxin.conf",
        "../tests/hardening/test_reverse_proxy.py",
        "../deploy/systemd/tongxin.service",
        "../deploy/systemd/tongxin-backup.timer",
    ):
        assert f"]({target})" in guide
        assert (ROOT / "docs" / target).resolve().exists()
    for words in ("https://<domain>/wechat", "EncodingAESKey", "45015", "BotFather", "群机器人"):
        assert words in guide
