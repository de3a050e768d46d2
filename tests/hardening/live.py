"""A real `tongxin serve` process on 127.0.0.1 for the hardening tests: started
with a given environment (and open-file limit), waited for, killed at the end."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

TOKEN = "tongxin_live_token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()


def start_server(
    tmp_path: Path,
    model_dir: Path,
    env: dict[str, str],
    *,
    nofile: tuple[int, int] | None = None,
    name: str = "server",
    port: int | None = None,
) -> LiveServer:
    port = port or free_port()
    full_env = {
        **os.environ,
        "TONGXIN_DB": str(tmp_path / "tongxin.db"),
        "TONGXIN_MODEL_DIR": str(model_dir),
        "TONGXIN_WECHAT_TOKEN": TOKEN,
        **env,
    }

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

    log_path = tmp_path / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli.main", "serve", "--port", str(port)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit_files,
        )
    server = LiveServer(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tongxin serve exited: {server.log()[-2000:]}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code in (200, 503):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"tongxin serve did not start: {server.log()[-2000:]}")
