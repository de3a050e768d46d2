"""A small stand-in for the Telegram Bot API on 127.0.0.1, for tests and
bench/telegram_bench.py: the methods the channel uses, with Telegram's JSON
shapes (`{"ok": true, "result": ...}`, 429 with `parameters.retry_after`,
403 "Forbidden: bot was blocked by the user"), and a record of every call.

Run it in a thread (`start_in_thread`) or serve `app` on an existing loop.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BOT_USER = {
    "id": 7000000001,
    "is_bot": True,
    "first_name": "同心",
    "username": "tongxin_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
TOKEN = "7000000001:AAEfakeTokenForTestsOnly_xyz"
# Parameters PTB sends JSON-encoded inside the form.
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "reply_parameters",
        "allowed_updates",
        "commands",
        "scope",
        "show_alert",
        "drop_pending_updates",
        "link_preview_options",
    }
)


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    at: float  # time.time() when the request arrived

    def chat(self) -> int | None:
        raw = self.params.get("chat_id")
        try:
            return int(raw) if raw is not None else None
        except (TypeError, ValueError):
            return None


@dataclass
class Failure:
    method: str
    status: int
    description: str
    parameters: dict[str, Any] | None = None
    times: int = 1
    when: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class FakeBotApi:
    token: str = TOKEN
    calls: list[ApiCall] = field(default_factory=list)
    listeners: list[Callable[[ApiCall], None]] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[Failure] = []
        self._updates: list[dict[str, Any]] = []
        self._message_id = 10000
        # getFile: file_id -> the file's bytes, served under /file/bot<token>/<file_path>.
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._handle, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
            ]
        )

    # -- test controls --------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self._failures.clear()
            self._updates.clear()

    def fail(
        self,
        method: str,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """The next `times` calls of `method` (matching `when`) fail like Telegram would."""
        params = {"retry_after": retry_after} if retry_after is not None else None
        with self._lock:
            self._failures.append(Failure(method, status, description, params, times, when))

    def queue_update(self, update: dict[str, Any]) -> None:
        """Served by getUpdates (polling mode)."""
        with self._lock:
            self._updates.append(update)

    def find(self, method: str, **match: Any) -> list[ApiCall]:
        with self._lock:
            calls = list(self.calls)
        out = []
        for call in calls:
            if call.method != method:
                continue
            if all(_same(call.params.get(k), v) for k, v in match.items()):
                out.append(call)
        return out

    def texts_to(self, chat_id: int) -> list[str]:
        return [str(c.params.get("text", "")) for c in self.find("sendMessage", chat_id=chat_id)]

    # -- serving --------------------------------------------------------

    def start_in_thread(self) -> str:
        import uvicorn

        # proto IPPROTO_TCP, so that asyncio sets TCP_NODELAY on accepted sockets
        # (with proto 0 it does not, and Nagle + delayed ACK add 40 ms a request).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)

            async def serve() -> None:
                task = asyncio.create_task(self._server.serve(sockets=[sock]))
                while not self._server.started:
                    await asyncio.sleep(0.01)
                started.set()
                await task

            loop.run_until_complete(serve())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-bot-api", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("fake Bot API did not start")
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    # -- the API --------------------------------------------------------

    async def _handle(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.path_params["method"]
        params = await _params(request)
        call = ApiCall(method, params, time.time())
        with self._lock:
            self.calls.append(call)
            failure = self._take_failure(method, params)
        for listener in self.listeners:
            listener(call)
        if failure is not None:
            return _error(failure.status, failure.description, failure.parameters)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        try:
            result = await handler(params)
        except _ApiError as exc:
            return _error(exc.status, exc.description)
        return JSONResponse({"ok": True, "result": result})

    def _take_failure(self, method: str, params: dict[str, Any]) -> Failure | None:
        for failure in self._failures:
            if failure.method == method and (failure.when is None or failure.when(params)):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _message(self, chat_id: Any, **extra: Any) -> dict[str, Any]:
        with self._lock:
            self._message_id += 1
            message_id = self._message_id
        message = {
            "message_id": message_id,
            "from": BOT_USER,
            "chat": _chat(chat_id),
            "date": int(time.time()),
        }
        message.update({k: v for k, v in extra.items() if v is not None})
        return message

    async def _api_getFile(self, params: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id"))
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        data = self.files[file_id]
        return {
            "file_id": file_id,
            "file_unique_id": f"U{abs(hash(file_id)) % 10**8}",
            "file_size": len(data),
            "file_path": f"photos/{file_id}.jpg",
        }

    async def _file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        file_id = request.path_params["path"].removeprefix("photos/").removesuffix(".jpg")
        self.downloads.append(file_id)
        if file_id not in self.files:
            return _error(404, "Not Found")
        return Response(self.files[file_id], media_type="image/jpeg")

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return BOT_USER

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        return self._message(
            params.get("chat_id"), text=params.get("text"), reply_markup=params.get("reply_markup")
        )

    async def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        if "inline_message_id" in params:
            return True
        message = self._message(params.get("chat_id"), reply_markup=params.get("reply_markup"))
        message["message_id"] = int(params.get("message_id", 0))
        message["text"] = "…"
        message["edit_date"] = int(time.time())
        return message

    async def _api_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        return True

    async def _api_getUpdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 0.3)
        while True:
            with self._lock:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = list(self._updates)
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(0.02)


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        try:
            return int(actual) == wanted
        except (TypeError, ValueError):
            return False
    return bool(actual == wanted)


def _chat(chat_id: Any) -> dict[str, Any]:
    try:
        numeric = int(chat_id)
    except (TypeError, ValueError):
        return {"id": -1000000000001, "title": str(chat_id), "type": "channel"}
    if numeric < 0:
        return {"id": numeric, "title": "测试群", "type": "supergroup"}
    return {"id": numeric, "first_name": "居民", "type": "private"}


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)


async def _params(request: Request) -> dict[str, Any]:
    """Bot API parameters as PTB sends them (form fields, nested values as
    JSON) or as JSON / query string from other clients."""
    raw = await request.body()
    pairs: list[tuple[str, str]] = list(parse_qsl(request.url.query))
    kind = request.headers.get("content-type", "")
    if raw and kind.startswith("application/json"):
        return {**dict(pairs), **json.loads(raw)}
    if raw:
        pairs += parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key in _JSON_FIELDS:
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params
