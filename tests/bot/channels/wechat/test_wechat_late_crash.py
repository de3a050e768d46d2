"""kill -9 during a late WeChat turn: the message was answered `success` (so
WeChat will not send it again) while its turn still ran; a restarted process
finishes the turn and sends the reply once through the customer-service API."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bot.channels.wechat.security import wechat_signature
from nlu.parser import Parser
from tests.hardening.live import TOKEN, start_server

from .conftest import APPID, SECRET, FakeWeChatApi

USER = "oLateUser00000000000000000001"


@pytest.fixture
def slow_rasa() -> Iterator[str]:
    """A Rasa server that takes 30 s to answer: the turn outlives any budget."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            time.sleep(30)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _late_records(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT key FROM kv WHERE key LIKE 'wechat:late:%'")]


def test_a_late_turn_killed_mid_way_is_finished_by_the_restarted_process(
    tmp_path: Path, model_dir: Path, nlu_parser: Parser, fake_api: FakeWeChatApi, slow_rasa: str
) -> None:
    env = {
        "TONGXIN_WECHAT_APPID": APPID,
        "TONGXIN_WECHAT_SECRET": SECRET,
        "TONGXIN_WECHAT_API_URL": fake_api.url,
        "TONGXIN_WECHAT_BUDGET_S": "0.5",
    }
    slow = {**env, "TONGXIN_RASA_URL": slow_rasa, "TONGXIN_RASA_TIMEOUT": "30"}
    first = start_server(tmp_path, model_dir, slow, name="first")
    try:
        ts, nonce = str(int(time.time())), "778899"
        query = {"signature": wechat_signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
        xml = (
            f"<xml><ToUserName><![CDATA[gh_tongxin0001]]></ToUserName>"
            f"<FromUserName><![CDATA[{USER}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[红色信贷利率多少]]></Content>"
            "<MsgId>24000000000000001</MsgId></xml>"
        )
        answer = httpx.post(first.url + "/wechat", params=query, content=xml.encode(), timeout=5)
        assert answer.text == "success"
        assert _late_records(tmp_path / "tongxin.db") == ["wechat:late:24000000000000001"]
    finally:
        first.kill9()
    assert fake_api.texts_to(USER) == []

    second = start_server(tmp_path, model_dir, env, name="second")
    try:
        deadline = time.monotonic() + 30
        while not fake_api.texts_to(USER) and time.monotonic() < deadline:
            time.sleep(0.2)
        [reply] = fake_api.texts_to(USER)
        assert "利率" in reply
        time.sleep(2.5)  # another pass of the recovery loop sends nothing more
        assert fake_api.texts_to(USER) == [reply]
        assert _late_records(tmp_path / "tongxin.db") == []
        assert "Traceback" not in second.log()
    finally:
        second.stop()
