"""`GET/POST /wechat`: WeChat XML in -> the dispatcher -> reply XML out.

WeChat waits 5 seconds for an answer and then retries (three times). The
dispatcher runs in a worker thread under a budget of about 4 s; when the budget
runs out the request answers `success` (WeChat then neither retries nor shows an
error), and the replies go to the outbox once the turn finishes, for the outbox
worker to send through the customer-service API.

Retries are harmless: the dispatcher de-duplicates by message id inside its
transaction, so a retry waits for the first turn and gets the same replies.
Who delivers them is claimed once per message in the store, so that it holds
across processes: the HTTP answer (a "passive" marker) or the outbox (a
"queued" marker), whichever claims first; the other answers `success`. A
turn's own thread makes the claim, under a lock it shares with the budget
timer, so a turn that finishes just as its budget runs out is neither lost nor
sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.channels.body import read_limited_body
from bot.channels.outbox import Backoff
from bot.channels.wechat.crypto import SafeModeCrypto
from bot.channels.wechat.delivery import OutboxWorker
from bot.channels.wechat.late import LateLedger
from bot.channels.wechat.render import join_replies, split_text, text_reply_xml
from bot.channels.wechat.security import (
    MAX_CLOCK_SKEW_S,
    RequestRejectedError,
    SignatureError,
    verify_fresh,
    verify_signature,
)
from bot.channels.wechat.templates import TicketTemplates, load_templates
from bot.channels.wechat.translate import CHANNEL, Parties, parties_of, translate
from bot.channels.wechat.xmlparse import MAX_BODY_BYTES, XmlRejectedError, parse_xml
from bot.channels.wechat_api import WeChatApi
from bot.photos import PhotoKeeper, PhotoStore
from flows.messages import IncomingMessage, Reply

if TYPE_CHECKING:
    from bot.app import Core

log = logging.getLogger("tongxin.wechat")

# Markers outlive WeChat's retries (about 15 s) by a wide margin.
MARKER_TTL_S = 24 * 3600.0
TRIM_NOTE_ID = "wechat.trimmed"
STORE_RETRY_MAX = 1000


class BodyTooLargeError(RequestRejectedError):
    status = 413


class ReplayError(RequestRejectedError):
    status = 403


# A plain-mode nonce is remembered for as long as its timestamp is accepted.
NONCE_TTL_S = 2 * MAX_CLOCK_SKEW_S + 60


@dataclass(frozen=True)
class WeChatConfig:
    token: str
    appid: str | None = None
    secret: str | None = None
    aes_key: str | None = None
    api_url: str | None = None


@dataclass
class _Turn:
    """One message being handled; retries of it join instead of starting another."""

    task: asyncio.Future[list[str] | None] | None = None
    # Set by the budget timer when the HTTP answer was `success`; read by the
    # turn's thread when it decides who delivers. `answering`: the thread chose
    # the HTTP answer and is claiming it. Both only under `lock`.
    late: bool = False
    answering: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


def _queued_key(message_id: str) -> str:
    return f"wechat:queued:{message_id}"


def _rest_key(message_id: str) -> str:
    return f"wechat:rest:{message_id}"


def _passive_key(message_id: str) -> str:
    return f"wechat:passive:{message_id}"


class WeChatChannel:
    name = CHANNEL

    def __init__(
        self,
        core: Core,
        *,
        config: WeChatConfig | None = None,
        budget_s: float | None = None,
        poll_s: float = 2.0,
        backoff: Backoff | None = None,
        path: str = "/wechat",
        clock: Callable[[], float] = time.time,
        turn_threads: int = 8,
    ) -> None:
        settings = core.settings
        if config is None:
            if not settings.wechat_token:
                raise ValueError("the WeChat channel needs TONGXIN_WECHAT_TOKEN")
            config = WeChatConfig(
                token=settings.wechat_token,
                appid=settings.wechat_appid,
                secret=settings.wechat_secret,
                aes_key=settings.wechat_aes_key,
                api_url=settings.wechat_api_url,
            )
        self.config = config
        self.store = core.store
        self.turn = core.dispatcher.turn
        self.replies = core.replies
        self.budget_s = settings.wechat_budget_s if budget_s is None else budget_s
        self.poll_s = poll_s
        self.path = path
        self.clock = clock
        if config.aes_key and not config.appid:
            raise ValueError("TONGXIN_WECHAT_AES_KEY needs TONGXIN_WECHAT_APPID to decrypt")
        self.crypto = (
            SafeModeCrypto(config.token, config.aes_key, config.appid)
            if config.aes_key and config.appid
            else None
        )
        self.api = (
            WeChatApi(self.store, appid=config.appid, secret=config.secret, base_url=config.api_url)
            if config.appid and config.secret
            else None
        )
        self.photos = (
            PhotoKeeper(PhotoStore(self.store, retention_days=settings.photo_retention_days))
            if self.api
            else None
        )
        book = load_templates(settings.data_dir)
        self.templates = TicketTemplates(self.store, core.replies, book)
        self.worker = (
            OutboxWorker(
                self.store,
                self.api,
                backoff=backoff,
                repeat_notice=self.replies.text("outbox.maybe_repeated"),
                templates=self.templates,
            )
            if self.api
            else None
        )
        self._turns: dict[str, _Turn] = {}
        self._late: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._recover_task: asyncio.Task[None] | None = None
        self.late = LateLedger(self.store, uuid.uuid4().hex)
        # Messages whose turn failed because the store took no writes (full
        # disk, read-only file): the user got an apology; they are handled
        # again, and answered through the outbox, once the store works.
        self._store_retry: deque[IncomingMessage] = deque(maxlen=STORE_RETRY_MAX)
        # Turns get their own threads: when SQLite is locked for long, blocked turns
        # must not starve the outbox worker and the store calls in the default pool.
        self._turn_threads = ThreadPoolExecutor(
            max_workers=turn_threads, thread_name_prefix="wechat-turn"
        )

    # -- ChannelService -----------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route(self.path, self.verify, methods=["GET"]),
            Route(self.path, self.receive, methods=["POST"]),
        ]

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        if self.worker is None:
            log.warning(
                "WeChat outbox delivery is off: set TONGXIN_WECHAT_APPID and "
                "TONGXIN_WECHAT_SECRET to send late replies and ticket updates"
            )
            return
        self._worker_task = asyncio.create_task(
            self.worker.run(self._wake, self._stop, poll_s=self.poll_s)
        )
        self._recover_task = asyncio.create_task(self._recover_loop())

    async def stop(self) -> None:
        if self._late:
            # Turns still running must still queue their replies.
            await asyncio.wait(set(self._late), timeout=30)
        self._stop.set()
        if self._worker_task is not None:
            await self._worker_task
            self._worker_task = None
        if self._recover_task is not None:
            await self._recover_task
            self._recover_task = None
            try:
                await asyncio.to_thread(self.late.stop)
            except Exception as exc:  # the heartbeat lapses by itself
                log.warning("WeChat heartbeat not removed: %s", exc)
        self._turn_threads.shutdown(wait=False)

    # -- GET: WeChat's URL check ---------------------------------------------

    async def verify(self, request: Request) -> Response:
        q = request.query_params
        try:
            self._check_url(request)
            echo = q.get("echostr")
            if not echo:
                raise XmlRejectedError("no echostr")
            if q.get("msg_signature") and self.crypto is not None:
                verify_signature(
                    (self.config.token, q["timestamp"], q.get("nonce", ""), echo),
                    q.get("msg_signature"),
                )
                echo = self.crypto.decrypt(echo)
        except RequestRejectedError as exc:
            return self._rejected(exc)
        return PlainTextResponse(echo)

    # -- POST: a message or event --------------------------------------------

    async def receive(self, request: Request) -> Response:
        q = request.query_params
        encrypted = q.get("encrypt_type", "").lower() == "aes"
        try:
            if not encrypted and self.crypto is not None:
                # In safe mode the body is signed; a plain request has an unsigned body.
                raise SignatureError("unencrypted request in safe mode")
            # WeChat signs the URL in every mode: nothing unsigned gets its body read.
            self._check_url(request)
            body = await read_limited_body(request, MAX_BODY_BYTES)
            if body is None:
                raise BodyTooLargeError("body over 64 KB or not sent in full")
            nonce = None if encrypted else self._nonce_of(q, body)
            if encrypted and self.crypto is not None:
                body = self.crypto.open(
                    body,
                    msg_signature=q.get("msg_signature"),
                    timestamp=q.get("timestamp", ""),
                    nonce=q.get("nonce", ""),
                )
            fields = parse_xml(body)
            if "MsgType" not in fields and "Encrypt" in fields:
                log.error("encrypted WeChat message but TONGXIN_WECHAT_AES_KEY is not set")
                raise XmlRejectedError("cannot decrypt: no AES key configured")
            parties = parties_of(fields)
            msg = translate(fields)
        except RequestRejectedError as exc:
            return self._rejected(exc)
        if msg is None:
            return _success()
        try:
            text = await self._passive_text(msg, nonce)
        except ReplayError as exc:
            return self._rejected(exc)
        if not text:
            return _success()
        return self._reply(parties, text, encrypted=encrypted and self.crypto is not None)

    def _check_url(self, request: Request) -> None:
        q = request.query_params
        verify_signature(
            (self.config.token, q.get("timestamp", ""), q.get("nonce", "")), q.get("signature")
        )
        verify_fresh(q.get("timestamp"), now=self.clock)

    @staticmethod
    def _nonce_of(q: Any, body: bytes) -> tuple[str, str]:
        key = f"wechat:nonce:{q.get('timestamp', '')}:{q.get('nonce', '')}"
        return key, hashlib.sha256(body).hexdigest()[:32]

    def _check_replay(self, key: str, digest: str) -> None:
        """Plain mode signs only the URL: a captured URL must not carry another
        body. Each (timestamp, nonce) is kept with a digest of its body
        (`_remember_nonce`); WeChat's own retry of the same request still
        passes. A read in the turn's thread before the turn: a busy store
        delays the turn, not the answer."""
        seen = self.store.kv_get(key)
        if seen is not None and not hmac.compare_digest(seen, digest):
            raise ReplayError("a used nonce with another body")

    def _remember_nonce(self, nonce: tuple[str, str] | None) -> None:
        """Record a plain-mode nonce; called inside the transaction that records
        who delivers the replies, so that it costs no transaction of its own."""
        if nonce is None:
            return
        key, digest = nonce
        with self.store.transaction():
            if self.store.kv_get(key) is None:
                self.store.kv_set(key, digest, ttl_s=NONCE_TTL_S)

    def _rejected(self, exc: RequestRejectedError) -> Response:
        log.warning("WeChat request rejected (%s): %s", exc.status, exc)
        return PlainTextResponse(type(exc).__name__, status_code=exc.status)

    def _reply(self, parties: Parties, text: str, *, encrypted: bool) -> Response:
        now = self.clock()
        xml = text_reply_xml(to_user=parties.user, from_account=parties.account, text=text, now=now)
        if encrypted and self.crypto is not None:
            xml = self.crypto.seal(xml, timestamp=str(int(now)))
        return Response(xml, media_type="application/xml")

    # -- the budget ------------------------------------------------------------

    async def _passive_text(
        self, msg: IncomingMessage, nonce: tuple[str, str] | None = None
    ) -> str | None:
        """The text to answer in the HTTP response, or None for `success`."""
        key = msg.message_id or ""
        turn = self._turns.get(key)
        if turn is None:
            loop = asyncio.get_running_loop()
            turn = _Turn()
            turn.task = loop.run_in_executor(self._turn_threads, self._run_turn, msg, turn, nonce)
            self._turns[key] = turn
            turn.task.add_done_callback(lambda _t: self._forget(key, turn))
        elif turn.late:
            return None  # a retry of a turn whose replies go through the outbox
        task = turn.task
        assert task is not None
        # asyncio.wait leaves the turn running when the budget runs out (no shield needed).
        done, _ = await asyncio.wait((task,), timeout=self.budget_s)
        if not done:
            with turn.lock:  # held by the thread only while it reads and sets flags
                answering = turn.answering
                if not answering:
                    turn.late = True
            if answering:
                # The thread chose this answer just now and is claiming it; the
                # claim is one short transaction, well inside WeChat's 5 s.
                done, _ = await asyncio.wait((task,), timeout=max(0.0, 4.8 - self.budget_s))
            if not done:
                if not answering:
                    log.warning(
                        "WeChat turn over budget (%.1f s); replying via the outbox", self.budget_s
                    )
                late = asyncio.ensure_future(self._finish_late(msg, turn))
                self._late.add(late)
                late.add_done_callback(self._late.discard)
                await self._record_late(msg)
                return None
        parts = task.result()
        if not parts:
            return None
        if len(parts) > 1:
            await asyncio.to_thread(self._queue_rest, key, msg.user_id, parts[1:])
            self._wake.set()
        return parts[0]

    async def _record_late(self, msg: IncomingMessage) -> None:
        """Keep the message in the store before `success` tells WeChat not to
        retry, so that a restarted process can finish the turn. While another
        process holds the write lock the answer cannot wait past WeChat's 5 s:
        the record is then written as soon as the lock frees."""
        key = msg.message_id or ""
        writing = asyncio.ensure_future(
            asyncio.to_thread(self.late.record, msg, unless=_queued_key(key))
        )
        writing.add_done_callback(_log_unrecorded)
        done, _ = await asyncio.wait((writing,), timeout=min(0.7, max(0.1, 4.8 - self.budget_s)))
        if not done:
            log.warning("WeChat late turn: store busy, its record follows the answer")

    def _forget(self, key: str, turn: _Turn) -> None:
        if not turn.late and self._turns.get(key) is turn:
            del self._turns[key]

    def _run_turn(
        self, msg: IncomingMessage, turn: _Turn, nonce: tuple[str, str] | None = None
    ) -> list[str] | None:
        """In a worker thread: the dispatcher's turn, as WeChat-sized parts for
        the HTTP answer; None when the replies go (or went) through the outbox."""
        if nonce is not None:
            self._check_replay(*nonce)
        replies = self._handle(msg)
        note = self.replies.text(TRIM_NOTE_ID) if TRIM_NOTE_ID in self.replies else "…"
        parts = split_text(join_replies(replies), trim_note=note)
        if not msg.message_id or not parts:
            try:
                self._remember_nonce(nonce)
            except Exception:
                log.warning("WeChat nonce not recorded (store unavailable)")
            return parts
        with turn.lock:
            late = turn.late
            turn.answering = not late
        if late:
            self._queue_late(msg.message_id, msg.user_id, parts, nonce=nonce)
            return None
        try:
            claimed = self._claim_passive(msg.message_id, nonce)
        except Exception:
            # The store takes no writes: nobody else can deliver; answer now.
            log.warning("WeChat: reply delivery not recorded (store unavailable)")
            return parts
        return parts if claimed else None

    async def _finish_late(self, msg: IncomingMessage, turn: _Turn) -> None:
        key = msg.message_id or ""
        try:
            parts = await turn.task if turn.task is not None else None
            if parts:
                # Claimed for an HTTP answer that could not wait any longer (a
                # claim slower than WeChat's 5 s): the outbox delivers instead.
                await asyncio.to_thread(
                    self._queue_late, key, msg.user_id, parts, unless_answered=False
                )
            self._wake.set()  # a late thread queued its replies itself
        except Exception:
            log.exception("a late WeChat turn failed")
        finally:
            if self._turns.get(key) is turn:
                del self._turns[key]

    async def _recover_loop(self) -> None:
        """Heartbeat, and finish the late turns of processes that died."""
        loop = asyncio.get_running_loop()
        failing = False
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.late.heartbeat)
                for msg in await asyncio.to_thread(self.late.claim_orphans):
                    await loop.run_in_executor(self._turn_threads, self._finish_orphan, msg)
                    self._wake.set()
                if await loop.run_in_executor(self._turn_threads, self._retry_stored):
                    self._wake.set()
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not every pass
                    log.error("WeChat: finishing late turns failed: %s", exc)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_s)

    def _finish_orphan(self, msg: IncomingMessage) -> None:
        """A late turn of a process that died: the dispatcher's de-duplication
        returns the replies if that turn had committed; the outbox sends them."""
        replies = self._handle(msg)
        note = self.replies.text(TRIM_NOTE_ID) if TRIM_NOTE_ID in self.replies else "…"
        parts = split_text(join_replies(replies), trim_note=note)
        self._queue_late(msg.message_id or "", msg.user_id, parts)

    def _handle(self, msg: IncomingMessage) -> list[Reply]:
        """The dispatcher's turn; a turn that failed on a store that takes no
        writes is kept for a retry (the user gets the apology now)."""
        result = self.turn(msg)
        if self.photos is not None and msg.kind == "image" and not result.failed:
            self._turn_threads.submit(self._keep_photo, msg)
        if result.failed and self.worker is not None and not self._store_works():
            self._store_retry.append(msg)
            log.error(
                "WeChat: the store takes no writes; %d message(s) kept for a retry",
                len(self._store_retry),
            )
        return result.replies

    def _keep_photo(self, msg: IncomingMessage) -> None:
        assert self.photos is not None and self.api is not None
        self.photos.fetch_and_keep(msg, self.api.download_media)

    def _store_works(self) -> bool:
        try:
            self.store.probe_write()
        except Exception:
            return False
        return True

    def _retry_stored(self) -> int:
        """Handle the kept messages again once the store takes writes."""
        if not self._store_retry or not self._store_works():
            return 0
        done = 0
        while self._store_retry:
            msg = self._store_retry.popleft()
            self._finish_orphan(msg)
            done += 1
        return done

    def health(self) -> dict[str, Any]:
        """For /healthz."""
        api = self.api
        state: dict[str, Any] = {
            "ok": not self._store_retry,
            "configured": True,
            "safe_mode": self.crypto is not None,
            "delivery": "on" if self.worker is not None else "off (no AppID/secret)",
            "waiting_for_store": len(self._store_retry),
            # None until the first API call (a late reply, an update, a photo).
            "reachable": None,
            "last_error": None,
        }
        if api is not None:
            known = api.last_ok is not None or api.last_error is not None
            network_down = (api.last_error or "").startswith("network")
            state["reachable"] = (not network_down) if known else None
            state["last_error"] = api.last_error
        return state

    def _claim_passive(self, key: str, nonce: tuple[str, str] | None = None) -> bool:
        """The HTTP answer may deliver this message's replies, unless an earlier
        attempt (in any process) queued them for the outbox."""
        with self.store.transaction():
            self._remember_nonce(nonce)
            if self.store.kv_get(_queued_key(key)) is not None:
                return False
            self.store.kv_set(_passive_key(key), "1", ttl_s=MARKER_TTL_S)
            return True

    def _queue_late(
        self,
        key: str,
        user_id: str,
        parts: list[str],
        *,
        unless_answered: bool = True,
        nonce: tuple[str, str] | None = None,
    ) -> None:
        """The outbox delivers, unless another attempt already queued them or
        (`unless_answered`) answered them in its HTTP response."""
        with self.store.transaction():
            self._remember_nonce(nonce)
            self.late.done(key)
            if self.store.kv_get(_queued_key(key)) is not None:
                return
            if unless_answered and self.store.kv_get(_passive_key(key)) is not None:
                return
            self.store.kv_set(_queued_key(key), "1", ttl_s=MARKER_TTL_S)
            for part in parts:
                self.store.enqueue(CHANNEL, user_id, part)

    def _queue_rest(self, key: str, user_id: str, rest: list[str]) -> None:
        with self.store.transaction():
            if self.store.kv_get(_rest_key(key)) is not None:
                return  # a retry: the rest is already on its way
            self.store.kv_set(_rest_key(key), "1", ttl_s=MARKER_TTL_S)
            for part in rest:
                self.store.enqueue(CHANNEL, user_id, part)


def _log_unrecorded(writing: asyncio.Future[None]) -> None:
    if not writing.cancelled() and writing.exception() is not None:
        log.error("WeChat late turn not recorded: %s", writing.exception())


def _success() -> Response:
    return PlainTextResponse("success")
