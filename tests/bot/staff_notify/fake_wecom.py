"""A WeCom group robot webhook on 127.0.0.1: `POST /cgi-bin/webhook/send?key=K`
answering WeCom's JSON, enforcing its 20-messages-a-minute limit with 45009
(the window can be shortened for tests)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.bot.local_http import LocalHttpServer

KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


class FakeWeCom:
    def __init__(self, *, limit: int = 20, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self.posts: list[dict[str, Any]] = []  # accepted bodies
        self.posted_at: list[float] = []
        self.refused = 0  # 45009 answers
        self.fail_script: deque[int] = deque()
        self._recent: deque[float] = deque()
        self.lock = threading.Lock()
        self.http = LocalHttpServer(self._handle)

    @property
    def url(self) -> str:
        return f"{self.http.base_url}/cgi-bin/webhook/send?key={KEY}"

    def start(self) -> FakeWeCom:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        answer = self._answer(handler.path, handler.rfile.read(length))
        data = json.dumps(answer).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def fail_next(self, *errcodes: int) -> None:
        with self.lock:
            self.fail_script.extend(errcodes)

    def contents(self) -> list[str]:
        with self.lock:
            return [p["markdown"]["content"] for p in self.posts]

    def _answer(self, path: str, body: bytes) -> dict[str, Any]:
        parsed = urlparse(path)
        if parsed.path != "/cgi-bin/webhook/send":
            return {"errcode": 404, "errmsg": "not found"}
        if parse_qs(parsed.query).get("key") != [KEY]:
            return {"errcode": 93000, "errmsg": "invalid webhook url"}
        payload = json.loads(body)
        with self.lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= self.window_s:
                self._recent.popleft()
            if self.fail_script:
                code = self.fail_script.popleft()
                if code == 45009:
                    self.refused += 1
                return {"errcode": code, "errmsg": "api freq out of limit"}
            if len(self._recent) >= self.limit:
                self.refused += 1
                return {"errcode": 45009, "errmsg": "api freq out of limit"}
            if payload.get("msgtype") != "markdown":
                return {"errcode": 40008, "errmsg": "invalid message type"}
            content = payload["markdown"]["content"]
            if len(content.encode()) > 4096:
                return {"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"}
            self._recent.append(now)
            self.posts.append(payload)
            self.posted_at.append(now)
        return {"errcode": 0, "errmsg": "ok"}
