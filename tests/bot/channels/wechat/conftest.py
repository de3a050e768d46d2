"""WeChat test kit: a fake WeChat API server on 127.0.0.1, a Core wired to it,
and a client that signs (and in safe mode encrypts) callbacks the way WeChat's
servers do, using wechatpy's crypto."""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.etree import ElementTree

import httpx
import pytest
from wechatpy.crypto import WeChatCrypto

from bot.app import Core, build_core
from bot.channels.outbox import Backoff
from bot.channels.wechat import WeChatChannel
from bot.channels.wechat.security import wechat_signature
from bot.settings import Settings
from bot.web import create_app
from flows.paths import default_data_dir
from nlu.parser import Parser
from tests.bot.local_http import LocalHttpServer

TOKEN = "tongxin_test_token"
APPID = "wx5823bf96d3bd56c7"
SECRET = "test_app_secret_0123456789abcdef"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
ACCOUNT = "gh_tongxin0001"
FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "wechat"

# WeChat's real error answers (errmsg text as the API returns it, minus the rid).
ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    42001: "access_token expired",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    -1: "system error",
}


class FakeWeChatApi:
    """/cgi-bin/token, /cgi-bin/message/custom/send, /cgi-bin/message/template/send,
    /cgi-bin/media/get and /cgi-bin/menu/create with WeChat's JSON. Tell it to
    answer an errcode next, or to be slow; users in `out_of_window` get 45015 for
    customer-service messages; `templates` are the account's template ids;
    `media` maps media ids to (bytes, Content-Type)."""

    def __init__(self) -> None:
        self.valid_tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self.token_requests = 0
        self.sent: list[dict[str, Any]] = []
        self.menus: list[dict[str, Any]] = []
        self.out_of_window: set[str] = set()
        self.templates: set[str] = set()
        self.template_sends: list[dict[str, Any]] = []
        self.template_sent_at: list[float] = []
        self.refused_at: list[float] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_requests: list[str] = []
        self.send_script: deque[int] = deque()
        self.delay_s = 0.0
        self.arrived = 0  # requests that reached the fake (counted before any delay)
        self.html_answers = 0  # next custom-send answers: a proxy's 200 HTML page
        self.lock = threading.Lock()
        self.http = LocalHttpServer(self._dispatch)

    @property
    def url(self) -> str:
        return self.http.base_url

    def start(self) -> FakeWeChatApi:
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()

    def fail_next(self, *errcodes: int) -> None:
        with self.lock:
            self.send_script.extend(errcodes)

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001."""
        with self.lock:
            self.expired_tokens |= self.valid_tokens
            self.valid_tokens.clear()

    def revoke_tokens(self) -> None:
        """Every token issued so far now answers 40001 (e.g. fetched again elsewhere)."""
        with self.lock:
            self.valid_tokens.clear()

    def texts_to(self, openid: str) -> list[str]:
        with self.lock:
            return [m["text"]["content"] for m in self.sent if m["touser"] == openid]

    def _dispatch(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self.lock:
            self.arrived += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        parsed = urlparse(handler.path)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            html = self.html_answers > 0 and parsed.path == "/cgi-bin/message/custom/send"
            media = self._media_answer(parsed.path, query)
            if html:
                self.html_answers -= 1
                answer: Any = None
            elif media is None:
                answer = self._answer(method, parsed.path, query, body)
        if media is not None:
            data, content_type = media
        elif html:
            data = b"<html><body>502 Bad Gateway</body></html>"
            content_type = "text/html"
        else:
            data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
            content_type = "application/json; encoding=utf-8"
        # The caller may be gone (killed mid-request by a test).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

    def _media_answer(self, path: str, query: dict[str, str]) -> tuple[bytes, str] | None:
        """media/get answers the file itself (with its Content-Type) when the
        token is valid and the media id known; else None (WeChat's JSON error)."""
        if path != "/cgi-bin/media/get" or query.get("access_token") not in self.valid_tokens:
            return None
        self.media_requests.append(query.get("media_id", ""))
        return self.media.get(query.get("media_id", ""))

    def _error(self, code: int) -> dict[str, Any]:
        return {
            "errcode": code,
            "errmsg": f"{ERRMSG.get(code, 'error')} rid: {secrets.token_hex(6)}",
        }

    def _answer(self, method: str, path: str, query: dict[str, str], body: bytes) -> dict[str, Any]:
        if path == "/cgi-bin/token" and method == "GET":
            self.token_requests += 1
            if query.get("grant_type") != "client_credential":
                return {"errcode": 40002, "errmsg": "invalid grant_type"}
            if query.get("appid") != APPID:
                return {"errcode": 40013, "errmsg": "invalid appid"}
            if query.get("secret") != SECRET:
                return {"errcode": 40125, "errmsg": "invalid appsecret"}
            token = "ACCESS_TOKEN_" + secrets.token_hex(16)
            self.valid_tokens.add(token)
            return {"access_token": token, "expires_in": 7200}
        token = query.get("access_token", "")
        if not token:
            return {"errcode": 41001, "errmsg": "access_token missing"}
        if token in self.expired_tokens:
            return self._error(42001)
        if token not in self.valid_tokens:
            return self._error(40001)
        if path == "/cgi-bin/media/get" and method == "GET":
            return {"errcode": 40007, "errmsg": "invalid media_id"}
        payload = json.loads(body.decode("utf-8"))
        if path == "/cgi-bin/message/custom/send" and method == "POST":
            if self.send_script:
                return self._error(self.send_script.popleft())
            if payload.get("touser") in self.out_of_window:
                self.refused_at.append(time.monotonic())
                return self._error(45015)
            self.sent.append(payload)
            return {"errcode": 0, "errmsg": "ok"}
        if path == "/cgi-bin/message/template/send" and method == "POST":
            if payload.get("template_id") not in self.templates:
                return {"errcode": 40037, "errmsg": "invalid template_id"}
            self.template_sends.append(payload)
            self.template_sent_at.append(time.monotonic())
            return {"errcode": 0, "errmsg": "ok", "msgid": 200228332 + len(self.template_sends)}
        if path == "/cgi-bin/menu/create" and method == "POST":
            self.menus.append(payload)
            return {"errcode": 0, "errmsg": "ok"}
        return {"errcode": 48001, "errmsg": "api unauthorized"}


@pytest.fixture
def fake_api() -> Iterator[FakeWeChatApi]:
    api = FakeWeChatApi().start()
    yield api
    api.stop()


def wechat_settings(
    db: Path, api_url: str, *, aes_key: str | None = None, data_dir: Path | None = None
) -> Settings:
    return Settings(
        db_path=db,
        data_dir=data_dir or default_data_dir(),
        wechat_token=TOKEN,
        wechat_appid=APPID,
        wechat_secret=SECRET,
        wechat_aes_key=aes_key,
        wechat_api_url=api_url,
    )


@pytest.fixture
def make_core(tmp_path: Path, nlu_parser: Parser, fake_api: FakeWeChatApi) -> Iterator[Any]:
    built: list[Core] = []

    def make(
        *, aes_key: str | None = None, db: Path | None = None, data_dir: Path | None = None
    ) -> Core:
        settings = wechat_settings(
            db or tmp_path / "tongxin.db", fake_api.url, aes_key=aes_key, data_dir=data_dir
        )
        core = build_core(settings, parser=nlu_parser, inline_outbox=frozenset())
        built.append(core)
        return core

    yield make
    for core in built:
        core.close()


@dataclass
class Answer:
    status: int
    body: str
    text: str | None  # the reply's Content, decrypted when needed
    fields: dict[str, str] = field(default_factory=dict)


class WeChatServer:
    """Plays WeChat's servers: builds signed (and encrypted) callbacks and reads replies.

    mode: "plain" (no AES key), "compatible" (both plaintext and Encrypt) or
    "safe" (Encrypt only)."""

    def __init__(self, client: httpx.AsyncClient, mode: str = "plain") -> None:
        self.client = client
        self.mode = mode
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)
        self._msg_id = 22_000_000_000_000_000 + secrets.randbelow(10**15)

    def next_msg_id(self) -> str:
        self._msg_id += 1
        return str(self._msg_id)

    def text_xml(self, user: str, text: str, msg_id: str | None = None) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content>"
            f"<MsgId>{msg_id or self.next_msg_id()}</MsgId></xml>"
        )

    def signed(
        self, xml: str, *, timestamp: int | None = None, token: str = TOKEN
    ) -> tuple[dict[str, str], bytes]:
        """(query, body) exactly as WeChat would send this message in `mode`."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        nonce = str(secrets.randbelow(10**10))
        query = {"signature": wechat_signature(token, ts, nonce), "timestamp": ts, "nonce": nonce}
        if self.mode == "plain":
            return query, xml.encode("utf-8")
        sealed = ElementTree.fromstring(self.crypto.encrypt_message(xml, nonce, ts))
        encrypted = sealed.findtext("Encrypt") or ""
        query["encrypt_type"] = "aes"
        query["msg_signature"] = wechat_signature(token, ts, nonce, encrypted)
        if self.mode == "safe":
            body = (
                f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
        else:  # compatible: the plaintext fields and the ciphertext side by side
            body = xml.replace("</xml>", f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>")
        return query, body.encode("utf-8")

    async def post(
        self, query: dict[str, str], body: bytes, headers: dict[str, str] | None = None
    ) -> Answer:
        res = await self.client.post("/wechat", params=query, content=body, headers=headers)
        return self.read(res)

    async def send(self, xml: str, **kwargs: Any) -> Answer:
        query, body = self.signed(xml, **kwargs)
        return await self.post(query, body)

    async def say(self, user: str, text: str, msg_id: str | None = None) -> Answer:
        return await self.send(self.text_xml(user, text, msg_id))

    def read(self, res: httpx.Response) -> Answer:
        body = res.text
        if res.status_code != 200 or not body.startswith("<xml>"):
            return Answer(res.status_code, body, None)
        root = ElementTree.fromstring(body)
        if root.find("Encrypt") is not None:
            plain = self.crypto.decrypt_message(
                body,
                root.findtext("MsgSignature"),
                root.findtext("TimeStamp"),
                root.findtext("Nonce"),
            )
            root = ElementTree.fromstring(plain)
        fields = {child.tag: child.text or "" for child in root}
        return Answer(res.status_code, body, fields.get("Content"), fields)


FIXTURE_USER = "oFq3Q5xYk2WmTn7Rb9HcL0gZ1aVe"


def fixture_xml(name: str, *, user: str = FIXTURE_USER) -> str:
    """A recorded payload; `user` replaces the recorded OpenID."""
    text = (FIXTURES / f"{name}.xml").read_text(encoding="utf-8")
    return text.replace(FIXTURE_USER, user)


def make_channel(core: Core, **kwargs: Any) -> WeChatChannel:
    kwargs.setdefault("poll_s", 0.1)
    kwargs.setdefault("backoff", Backoff(first_s=0.2, max_s=1.0, max_attempts=4))
    return WeChatChannel(core, **kwargs)


@dataclass
class Kit:
    """Everything one test needs: the core, the channel, the app and a WeChat stand-in."""

    core: Core
    channel: WeChatChannel
    wechat: WeChatServer
    api: FakeWeChatApi


@pytest.fixture
def kit_factory(make_core: Any, fake_api: FakeWeChatApi) -> Any:
    """`async with kit_factory(mode=..., budget_s=...) as kit:` runs the ASGI app
    (with its lifespan, so the outbox worker runs) behind httpx.ASGITransport."""
    import contextlib

    @contextlib.asynccontextmanager
    async def factory(
        mode: str = "plain", data_dir: Path | None = None, **channel_kwargs: Any
    ) -> Any:
        core = make_core(aes_key=None if mode == "plain" else AES_KEY, data_dir=data_dir)
        channel = make_channel(core, **channel_kwargs)
        app = create_app(core, [channel])
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://wechat.test") as c:
                yield Kit(core, channel, WeChatServer(c, mode), fake_api)

    return factory


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fixtures_xml() -> Any:
    return fixture_xml


@pytest.fixture
def server_for() -> Any:
    return WeChatServer


@pytest.fixture
def live_server(make_core: Any) -> Iterator[Any]:
    """`live_server(mode)` -> (base_url, core): the app under a real uvicorn on
    127.0.0.1 (lifespan on, so the outbox worker runs)."""
    import socket

    import uvicorn

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(mode: str = "safe") -> tuple[str, Core]:
        core = make_core(aes_key=None if mode == "plain" else AES_KEY)
        app = create_app(core, [make_channel(core)])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, lifespan="on", log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        running.append((server, thread))
        return f"http://127.0.0.1:{sock.getsockname()[1]}", core

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(10)
