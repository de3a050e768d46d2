"""The Telegram channel: a python-telegram-bot `Application` used for what it is
good at (decoding updates, commands, callback queries, flood limits) while the
dialogue itself stays with our dispatcher.

    POST /telegram  -> secret check -> Update.de_json -> handlers, then 200   (webhook)
    getUpdates      -> update_queue -> handlers                               (--telegram-polling)
    handlers        -> IncomingMessage -> Dispatcher.handle -> sendMessage

A webhook update is handled before its 200: Telegram re-sends an update it
got no 200 for, so one in flight when the process dies is not lost (the
dispatcher's de-duplication by update makes the re-send harmless). PTB's own
webhook server answers first and queues in memory, where a crash loses it.

Updates of different chats run concurrently; one member's updates in one
chat run in order (`PerChatUpdateProcessor`). Two background loops deliver the
outbox (ticket notifications to users) and post new tickets of every channel
to the staff group.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import uuid
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from telegram import (
    Bot,
    BotCommand,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app import Core
from bot.channels.body import read_limited_body
from bot.channels.outbox import Backoff, InFlight, StoreLease, mark_repeat
from bot.channels.telegram.callbacks import CallbackDataError, CallbackSigner, StaffPress
from bot.channels.telegram.limits import (
    FloodLimiter,
    PerChatUpdateProcessor,
    TelegramLimits,
    retry_after_seconds,
)
from bot.channels.telegram.render import MAX_ALERT_CHARS, render_reply, trim_text
from bot.channels.telegram.staff_chat import (
    CURSOR_KEY,
    STAFF_LEASE_KEY,
    apply_staff_press,
    staff_keyboard,
    staff_post_text,
)
from bot.channels.telegram.translate import (
    CHANNEL,
    BotIdentity,
    addressed_to_bot,
    base_message,
    command_addressed_to_bot,
    command_argument,
    display_name,
    is_group,
    start_payload,
    to_incoming,
)
from bot.photos import MAX_PHOTO_BYTES, PhotoKeeper, PhotoStore
from bot.settings import Settings
from bot.staff_notify.feed import CREATED, NoticeFeed, Posted, StaffNotice
from flows.messages import IncomingMessage, Reply
from flows.replies import Replies
from flows.store import OutboxItem

log = logging.getLogger("tongxin.telegram")

DEFAULT_API_URL = "https://api.telegram.org"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query")
COMMANDS = ("start", "help", "faq", "status", "cancel")
MAX_UPDATE_BYTES = 1 << 20  # updates are a few KB; anything this big is not Telegram
STATUS_MENU_KEY = "ticket_status"  # data/flows.yml menu action that lists a user's tickets
CANCEL_TEXT = "取消"
OUTBOX_BATCH = 50
# Network failures: retried after 15 s, doubling up to an hour; given up after
# 8 tries (staff see the row).
OUTBOX_BACKOFF = Backoff(first_s=15.0, max_s=3600.0, max_attempts=8)
OUTBOX_LEASE_KEY = "telegram:outbox_lease"
LEASE_TTL_S = 15.0
# Telegram redelivers an unanswered update for up to a day.
ANSWERED_TTL_S = 24 * 3600.0


class TelegramConfigError(Exception):
    """The Telegram channel was asked for without the settings it needs."""


def api_base(settings: Settings) -> str:
    return (settings.telegram_api_url or DEFAULT_API_URL).rstrip("/")


def make_bot(settings: Settings) -> Bot:
    """A bare Bot for one-off calls (CLI): same token and API URL as the channel."""
    if not settings.telegram_token:
        raise TelegramConfigError("TONGXIN_TELEGRAM_TOKEN is not set")
    base = api_base(settings)
    return Bot(settings.telegram_token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")


def bot_commands(replies: Replies) -> list[BotCommand]:
    """The command menu (setMyCommands), described in data/replies/telegram.yml."""
    return [BotCommand(name, replies.text(f"telegram.command.{name}")) for name in COMMANDS]


def parse_chat_id(raw: str | None) -> int | str | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw  # "@channelname"


def _person(message: Message | None) -> bool:
    return message is not None and message.from_user is not None and not message.from_user.is_bot


class TelegramChannel:
    """`ChannelService` for Telegram; webhook unless `polling`."""

    name = CHANNEL

    def __init__(
        self,
        core: Core,
        *,
        polling: bool = False,
        limits: TelegramLimits | None = None,
        outbox_interval_s: float = 1.0,
        staff_interval_s: float = 2.0,
        inline_turns: bool | None = None,
    ) -> None:
        """`inline_turns`: run dialogue turns in the event loop (None: yes unless
        the NLU asks a Rasa server, whose network wait must not stall the loop,
        or WeChat shares the loop).
        A local turn is ~0.5 ms of CPU; handing it to a thread and back costs
        more than that under load (bench/telegram_bench.py: 2.5 against 3.2 ms
        of CPU per update, p99 60 against 500 ms at 300 updates/s)."""
        settings = core.settings
        if not settings.telegram_token:
            raise TelegramConfigError("TONGXIN_TELEGRAM_TOKEN is not set")
        self.core = core
        self.polling = polling
        self.limits = limits or TelegramLimits()
        self.signer = CallbackSigner(settings.telegram_token)
        self.staff_chat_id = parse_chat_id(settings.staff_chat_id)
        self.staff_user_ids = settings.staff_user_ids
        self.outbox_interval_s = outbox_interval_s
        self.staff_interval_s = staff_interval_s
        # WeChat's 4-second budget shares the loop: never stall it on our store.
        self.inline_turns = (
            inline_turns
            if inline_turns is not None
            else settings.nlu.rasa_url is None and not settings.wechat_token
        )
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self._me: BotIdentity | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._outbox_wake: asyncio.Event | None = None
        self._staff_wake: asyncio.Event | None = None
        self._dialogue: ThreadPoolExecutor | None = None
        owner = uuid.uuid4().hex
        # Short leases, renewed by a heartbeat while this process lives (so a
        # row waiting out a 429 is not taken over meanwhile): after a crash
        # another process delivers within LEASE_TTL_S; a clean stop releases them.
        self._outbox_lease = StoreLease(
            core.store, OUTBOX_LEASE_KEY, ttl_s=LEASE_TTL_S, owner=owner
        )
        self._staff_lease = StoreLease(core.store, STAFF_LEASE_KEY, ttl_s=LEASE_TTL_S, owner=owner)
        self._in_flight = InFlight(core.store, CHANNEL)
        self.photos = PhotoKeeper(
            PhotoStore(core.store, retention_days=settings.photo_retention_days)
        )
        self._photo_tasks: set[asyncio.Task[None]] = set()
        self._boot_error: str | None = None  # for /healthz
        self._staff_feed = (
            NoticeFeed(
                core.store,
                TelegramStaffNotifier(self, self.staff_chat_id),
                lease=self._staff_lease,
                cursor=CURSOR_KEY,
                interval_s=staff_interval_s,
            )
            if self.staff_chat_id is not None
            else None
        )

    # -- wiring ---------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [Route("/telegram", self.webhook, methods=["POST"])]

    @property
    def application(self) -> Application[Any, Any, Any, Any, Any, Any]:
        if self._app is None:
            raise RuntimeError("TelegramChannel.start() has not run")
        return self._app

    @property
    def me(self) -> BotIdentity:
        if self._me is None:
            raise RuntimeError("the bot's identity is not known yet (getMe has not succeeded)")
        return self._me

    @property
    def ready(self) -> bool:
        return self._app is not None and self._app.running

    def health(self) -> dict[str, Any]:
        """For /healthz: not ok until the Bot API answered getMe and the bot runs."""
        state: dict[str, Any] = {
            "configured": True,
            "mode": "polling" if self.polling else "webhook",
            "staff_chat": self.staff_chat_id is not None,
            "reachable": self.ready,
            "last_error": self._boot_error,
        }
        if self.ready:
            return {"ok": True, **state}
        return {"ok": False, "detail": "the Bot API has not answered yet (retrying)", **state}

    def _build(self) -> Application[Any, Any, Any, Any, Any, Any]:
        settings = self.core.settings
        base = api_base(settings)
        builder = (
            Application.builder()
            .token(settings.telegram_token or "")
            .base_url(f"{base}/bot")
            .base_file_url(f"{base}/file/bot")
            # httpcore polls every pooled connection whenever a request starts
            # or ends; see TelegramLimits.max_in_flight.
            .connection_pool_size(self.limits.connection_pool_size)
            .pool_timeout(5.0)
            .rate_limiter(FloodLimiter(self.limits))
            .concurrent_updates(PerChatUpdateProcessor(self.limits.max_concurrent_updates))
        )
        if not self.polling:
            builder = builder.updater(None)
        app = builder.build()
        new = filters.UpdateType.MESSAGE
        # Edited messages come first: the command handlers would take them too.
        app.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, self._on_edited))
        app.add_handler(CommandHandler("start", self._on_start, filters=new))
        app.add_handler(CommandHandler("help", self._on_help, filters=new))
        app.add_handler(CommandHandler("faq", self._on_faq, filters=new))
        app.add_handler(CommandHandler("status", self._on_status, filters=new))
        app.add_handler(CommandHandler("cancel", self._on_cancel, filters=new))
        app.add_handler(MessageHandler(new & filters.COMMAND, self._on_unknown_command))
        app.add_handler(MessageHandler(new, self._on_message))
        app.add_handler(CallbackQueryHandler(self._on_callback))
        app.add_error_handler(self._on_error)
        return app

    # -- lifecycle ------------------------------------------------------

    async def start(self) -> None:
        # httpx logs every request URL at INFO, and Bot API URLs carry the token.
        httpx_log = logging.getLogger("httpx")
        if httpx_log.getEffectiveLevel() < logging.WARNING:
            httpx_log.setLevel(logging.WARNING)
        self._outbox_wake = asyncio.Event()
        self._staff_wake = asyncio.Event()
        if not self.inline_turns:
            # One thread: turns serialise on the store's lock anyway, and more
            # threads only fight the event loop for the GIL.
            self._dialogue = ThreadPoolExecutor(1, thread_name_prefix="telegram-dialogue")
        self._app = self._build()
        try:
            await self._boot()
        except TelegramError as exc:
            self._boot_error = _error_text(exc)
            _log_boot_failure(exc)
            self._tasks.append(asyncio.create_task(self._boot_later(), name="telegram-boot"))

    async def _boot(self) -> None:
        """Each step is skipped when already done, so a retry resumes where it failed."""
        app = self.application
        await app.initialize()  # getMe: the bot's id and username
        self._me = BotIdentity(app.bot.id, app.bot.username)
        if not app.running:
            await app.start()
        if self.polling and app.updater is not None and not app.updater.running:
            await app.updater.start_polling(allowed_updates=list(ALLOWED_UPDATES))
        try:
            await app.bot.set_my_commands(bot_commands(self.core.replies))
        except TelegramError as exc:
            log.warning(
                "telegram: setMyCommands failed (%s); the menu stays as it was", _error_text(exc)
            )
        self._tasks.append(asyncio.create_task(self._outbox_loop(), name="telegram-outbox"))
        self._tasks.append(asyncio.create_task(self._lease_heartbeat(), name="telegram-leases"))
        if self._staff_feed is not None:
            # Before start() returns, so that no ticket created from now on is missed.
            await asyncio.to_thread(self._staff_feed.start_cursor)
            self._tasks.append(asyncio.create_task(self._staff_loop(), name="telegram-staff"))
        log.info(
            "telegram: @%s ready (%s)", self._me.username, "polling" if self.polling else "webhook"
        )

    async def _boot_later(self) -> None:
        delay = 2.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self._boot()
                self._boot_error = None
                return
            except TelegramError as exc:
                self._boot_error = _error_text(exc)
                _log_boot_failure(exc)
                delay = min(delay * 2, 120.0)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._photo_tasks]:
            task.cancel()
        await asyncio.gather(*self._photo_tasks, return_exceptions=True)
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass  # what stop() asked for
            except Exception:
                log.exception("telegram: background task %s had failed", task.get_name())
        self._tasks.clear()
        for lease in (self._outbox_lease, self._staff_lease):
            try:
                await asyncio.to_thread(lease.release)
            except Exception:
                # It expires by itself (ttl); another process takes over then.
                log.warning("telegram: could not release %s", lease.key, exc_info=True)
        app = self._app
        if app is None:
            return
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()  # handles what is already queued first
        try:
            await app.shutdown()
        except Exception:
            log.warning("telegram: the Application did not shut down cleanly", exc_info=True)
        if self._dialogue is not None:
            self._dialogue.shutdown(wait=False)

    async def drain(self) -> None:
        """Wait until every queued update has been handled (tests, benches)."""
        await self.application.update_queue.join()

    # -- webhook --------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        """Checks, decodes and handles the update; 200 once it is handled (the
        reply itself goes out with sendMessage)."""
        secret = self.core.settings.telegram_webhook_secret
        given = request.headers.get(SECRET_HEADER)
        if (
            not secret
            or given is None
            or not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8"))
        ):
            return Response(status_code=403)
        app = self._app
        if app is None or not app.running:
            return Response(status_code=503)  # Telegram retries later
        body = await read_limited_body(request, MAX_UPDATE_BYTES)
        if body is None:
            return Response(status_code=413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an Update")
            update = Update.de_json(data, app.bot)
        except Exception as exc:
            log.warning("telegram: rejected a webhook body that is not an Update (%s)", type(exc))
            return Response(status_code=400)
        # Through the update processor, so that one chat's updates keep their order.
        await app.update_processor.process_update(update, app.process_update(update))
        return Response(status_code=200)

    # -- handlers -------------------------------------------------------

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not _person(message) or not addressed_to_bot(message, self.me):
            return
        incoming = to_incoming(message, self.me)
        if incoming is not None:
            await self._converse(incoming, message)

    async def _on_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not _person(message):
            return
        payload = start_payload(command_argument(message))
        incoming = base_message(message, kind="event", event="start", event_key=payload)
        await self._converse(incoming, message)

    async def _on_cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not _person(message):
            return
        await self._converse(base_message(message, text=CANCEL_TEXT, kind="text"), message)

    async def _on_faq(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not _person(message):
            return
        question = command_argument(message)
        if not question:
            await self._say(message, self.core.replies.text("telegram.faq_usage"))
            return
        await self._converse(base_message(message, text=question, kind="text"), message)

    async def _on_status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not _person(message):
            return
        if is_group(message.chat):
            # A ticket list names the user's requests: never shown to the group.
            button = InlineKeyboardButton(
                self.core.replies.text("telegram.status_button"),
                url=self.me.deep_link(STATUS_MENU_KEY),
            )
            await self._say(
                message,
                self.core.replies.text("telegram.status_private"),
                InlineKeyboardMarkup([[button]]),
            )
            return
        incoming = base_message(message, kind="event", event="menu", event_key=STATUS_MENU_KEY)
        await self._converse(incoming, message)

    async def _on_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not _person(message):
            return
        await self._say(message, self.core.replies.text("telegram.help"))

    async def _on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not _person(message):
            return
        if command_addressed_to_bot(message, self.me):
            await self._say(message, self.core.replies.text("telegram.unknown_command"))

    async def _on_edited(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        # An edit never re-runs a flow: the original answer may already be a ticket.
        message = update.edited_message
        if message is None or not _person(message) or is_group(message.chat):
            return
        await self._say(message, self.core.replies.text("telegram.edited_ignored"))

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        replies = self.core.replies
        try:
            press = self.signer.open(query.data)
        except CallbackDataError as exc:
            log.warning("telegram: refused callback data from user %s: %s", query.from_user.id, exc)
            await _answer(query, replies.text("telegram.alert.invalid_button"), alert=True)
            return
        if isinstance(press, StaffPress):
            await self._on_staff_press(update, press)
            return
        if press.user_id != query.from_user.id:
            await _answer(query, replies.text("telegram.alert.not_yours"), alert=True)
            return
        await _answer(query)
        shown = query.message if isinstance(query.message, Message) else None
        chat = query.message.chat if query.message is not None else None
        chat_id = chat.id if chat is not None else query.from_user.id
        incoming = IncomingMessage(
            channel=CHANNEL,
            user_id=str(query.from_user.id),
            text=press.payload,
            kind="text",
            message_id=f"cb:{query.id}",
            chat_id=str(chat_id),
            in_group=is_group(chat),
            display_name=display_name(query.from_user),
        )
        if shown is not None:
            # A choice is made once; the buttons go so that it can't be pressed again.
            try:
                await shown.edit_reply_markup(reply_markup=None)
            except TelegramError as exc:
                log.info("telegram: could not remove answered buttons: %s", _error_text(exc))
        replies_out = await self._turn(incoming)
        reply_to = shown.message_id if shown is not None and is_group(chat) else None
        await self._send_replies(chat_id, query.from_user.id, replies_out, reply_to=reply_to)

    async def _on_staff_press(self, update: Update, press: StaffPress) -> None:
        query = update.callback_query
        assert query is not None
        replies = self.core.replies
        staff = query.from_user
        if staff.id not in self.staff_user_ids:
            log.warning("telegram: user %s pressed a staff button; refused", staff.id)
            await _answer(query, replies.text("telegram.alert.staff_only"), alert=True)
            return
        outcome = await asyncio.to_thread(
            apply_staff_press,
            self.core.store,
            replies,
            press,
            staff_name=display_name(staff) or f"工作人员{staff.id}",
            staff_id=staff.id,
        )
        await _answer(query, outcome.text, alert=outcome.alert)
        if outcome.ticket is not None and isinstance(query.message, Message):
            try:
                await query.message.edit_reply_markup(
                    reply_markup=staff_keyboard(self.signer, replies, outcome.ticket)
                )
            except BadRequest as exc:
                # Usually "message is not modified" (a second press); the ticket moved anyway.
                log.info("telegram: staff keyboard not updated: %s", _error_text(exc))
        if not outcome.alert and self._outbox_wake is not None:
            self._outbox_wake.set()  # the user's notification is waiting in the outbox

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram: update %s failed", update_id, exc_info=context.error)

    # -- conversation ---------------------------------------------------

    async def _turn(self, incoming: IncomingMessage) -> list[Reply]:
        """One dispatcher turn: NLU plus one SQLite transaction."""
        if self._dialogue is None:
            return self.core.dispatcher.handle(incoming)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._dialogue, self.core.dispatcher.handle, incoming)

    async def _converse(self, incoming: IncomingMessage, message: Message) -> None:
        """One dispatcher turn (in a worker thread: it parses and writes SQLite),
        then the replies, quoting the user's message in a group."""
        replies = await self._turn(incoming)
        if self._staff_wake is not None:
            self._staff_wake.set()  # the turn may have created a ticket
        if incoming.kind == "image":
            self._background(self._keep_photo(incoming))
        if incoming.message_id and not await asyncio.to_thread(
            self._claim_answer, incoming.message_id
        ):
            # Telegram redelivered an update that was answered already (or
            # another server behind the same webhook answers it).
            return
        reply_to = message.message_id if is_group(message.chat) else None
        assert message.from_user is not None
        await self._send_replies(message.chat.id, message.from_user.id, replies, reply_to=reply_to)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._photo_tasks.add(task)
        task.add_done_callback(self._photo_tasks.discard)

    async def _keep_photo(self, incoming: IncomingMessage) -> None:
        """Download a photo the turn attached to a form (getFile) and keep it."""
        if not await asyncio.to_thread(self.photos.wanted, incoming):
            return
        file_id = (incoming.media_ref or "").removeprefix("telegram:")
        try:
            file = await self.application.bot.get_file(file_id)
            if (file.file_size or 0) > MAX_PHOTO_BYTES:
                log.warning("telegram photo not kept: %s bytes", file.file_size)
                return
            data = bytes(await file.download_as_bytearray())
        except TelegramError as exc:
            log.warning("telegram photo not downloaded: %s", _error_text(exc))
            return
        await asyncio.to_thread(self.photos.keep, incoming, data)

    def _claim_answer(self, message_id: str) -> bool:
        """Who sends a message's replies is claimed once in the store: False
        when they were sent (or are being sent) already."""
        key = f"telegram:answered:{message_id}"
        store = self.core.store
        with store.transaction():
            if store.kv_get(key) is not None:
                return False
            store.kv_set(key, "1", ttl_s=ANSWERED_TTL_S)
            return True

    async def _say(
        self, message: Message, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        """A channel-level answer (help, usage, notes) that needs no dialogue turn."""
        reply_to = message.message_id if is_group(message.chat) else None
        await self._send(message.chat.id, trim_text(text), markup, reply_to)

    async def _send(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None, reply_to: int | None
    ) -> None:
        params = (
            ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
            if reply_to is not None
            else None
        )
        await self.application.bot.send_message(
            chat_id, text, reply_markup=markup, reply_parameters=params
        )

    async def _send_replies(
        self, chat_id: int, user_id: int, replies: list[Reply], *, reply_to: int | None
    ) -> None:
        rendered = [
            r
            for r in (
                render_reply(
                    reply,
                    me=self.me,
                    signer=self.signer,
                    user_id=user_id,
                    private_label=self.core.replies.text("telegram.private_button"),
                )
                for reply in replies
            )
            if r is not None
        ]
        for i, item in enumerate(rendered):
            try:
                await self._send(chat_id, item.text, item.markup, reply_to if i == 0 else None)
            except Forbidden:
                log.info("telegram: chat %s blocked the bot; reply dropped", chat_id)
                return
            except BadRequest as exc:
                log.warning("telegram: reply to chat %s refused: %s", chat_id, exc.message)
            except (RetryAfter, NetworkError) as exc:
                # The turn is saved already; what could not go out now goes
                # through the outbox (text only) instead of being lost.
                log.warning(
                    "telegram: reply to chat %s deferred to the outbox: %s",
                    chat_id,
                    _error_text(exc),
                )
                for rest in rendered[i:]:
                    await asyncio.to_thread(
                        self.core.store.enqueue,
                        CHANNEL,
                        str(user_id),
                        rest.text,
                        chat_id=str(chat_id),
                    )
                return

    # -- outbox ---------------------------------------------------------

    async def _lease_heartbeat(self) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL_S / 3)
            for lease in (self._outbox_lease, self._staff_lease):
                try:
                    await asyncio.to_thread(lease.renew)
                except Exception as exc:  # the loops retake it on their next pass
                    log.warning("telegram: lease %s not renewed: %s", lease.key, exc)

    async def _outbox_loop(self) -> None:
        assert self._outbox_wake is not None
        while True:
            pause = self.outbox_interval_s
            try:
                items = []
                if await asyncio.to_thread(self._outbox_lease.hold):
                    items = await asyncio.to_thread(
                        self.core.store.due_outbox, CHANNEL, limit=OUTBOX_BATCH
                    )
                for item in items:
                    # Renewed per row: a row is never sent by two processes.
                    if not await asyncio.to_thread(self._outbox_lease.hold):
                        break
                    wait = await self.deliver(item)
                    if wait:
                        pause = max(pause, wait)
                        break
                else:
                    if len(items) == OUTBOX_BATCH:
                        continue  # more are due
            except Exception:
                log.exception("telegram: outbox delivery failed")
            self._outbox_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox_wake.wait(), timeout=pause)

    async def deliver(self, item: OutboxItem) -> float:
        """Send one outbox row; records the outcome on the row. Returns how long
        the whole outbox should wait (a 429's retry_after), else 0."""
        store = self.core.store
        target = item.chat_id or item.user_id
        try:
            chat_id = int(target)
        except ValueError:
            await asyncio.to_thread(
                store.mark_outbox_failed, item.id, "no Telegram chat id", retry_in_s=None
            )
            return 0.0
        text = item.text
        repeat = await asyncio.to_thread(self._in_flight.begin, item.id)
        if repeat:
            text = mark_repeat(text, self.core.replies.text("outbox.maybe_repeated"))
        try:
            await self.application.bot.send_message(chat_id, trim_text(text), rate_limit_args=True)
        except Forbidden as exc:
            # Blocked by the user (or kicked from the group): final, staff see it.
            await asyncio.to_thread(self._refused, item.id, f"403 {exc.message}", None)
        except RetryAfter as exc:
            wait = retry_after_seconds(exc)
            await asyncio.to_thread(
                self._refused, item.id, f"429 retry after {wait:g} s", wait, repeat
            )
            return wait
        except BadRequest as exc:
            await asyncio.to_thread(self._refused, item.id, f"400 {exc.message}", None)
        except (NetworkError, TelegramError) as exc:
            retry_in = OUTBOX_BACKOFF.retry_in(item.attempts)
            if isinstance(exc, NetworkError):
                # No answer: it may have arrived, so the in-flight mark stays.
                await asyncio.to_thread(
                    store.mark_outbox_failed, item.id, _error_text(exc), retry_in_s=retry_in
                )
            else:
                await asyncio.to_thread(self._refused, item.id, _error_text(exc), retry_in, repeat)
        else:
            await asyncio.to_thread(self._sent, item.id)
        return 0.0

    def _sent(self, item_id: int) -> None:
        with self.core.store.transaction():
            self.core.store.mark_outbox_sent(item_id)
            self._in_flight.end(item_id)

    def _refused(
        self, item_id: int, error: str, retry_in_s: float | None, repeat: bool = False
    ) -> None:
        """Telegram answered with an error: this attempt did not go out (when it
        was a repeat, the attempt before it still may have)."""
        with self.core.store.transaction():
            self.core.store.mark_outbox_failed(item_id, error, retry_in_s=retry_in_s)
            if retry_in_s is None or not repeat:
                self._in_flight.end(item_id)

    # -- staff group ----------------------------------------------------

    async def _staff_loop(self) -> None:
        assert self._staff_wake is not None and self._staff_feed is not None
        await self._staff_feed.run(self._staff_wake)


class TelegramStaffNotifier:
    """`StaffNotifier` for the Telegram staff group: each new ticket with its
    接单 / 办结 buttons. One ticket a post, so the cursor moves after each."""

    name = "telegram"
    actions = frozenset({CREATED})
    batch = 1

    def __init__(self, channel: TelegramChannel, chat_id: int | str) -> None:
        self.channel = channel
        self.chat_id = chat_id

    async def post(self, notices: Sequence[StaffNotice]) -> Posted:
        ticket = notices[0].ticket
        if ticket is None:
            return Posted(1)
        channel, replies = self.channel, self.channel.core.replies
        interval = channel.staff_interval_s
        try:
            await channel.application.bot.send_message(
                self.chat_id,
                staff_post_text(replies, ticket),
                reply_markup=staff_keyboard(channel.signer, replies, ticket),
                rate_limit_args=True,
            )
        except RetryAfter as exc:
            return Posted(0, max(interval, retry_after_seconds(exc)))
        except Forbidden as exc:
            log.error("telegram: cannot post to the staff chat: %s", exc.message)
            return Posted(0, 60.0)
        except BadRequest as exc:
            # Retrying the same message would fail the same way.
            log.error("telegram: staff post of %s refused: %s", ticket.id, exc.message)
        except (NetworkError, TelegramError) as exc:
            log.warning("telegram: staff post of %s failed: %s", ticket.id, _error_text(exc))
            return Posted(0, max(interval, 10.0))
        return Posted(1)


async def _answer(query: CallbackQuery, text: str | None = None, *, alert: bool = False) -> None:
    """answerCallbackQuery; a redelivered or late press can no longer be
    answered, which must not stop the press itself from being handled."""
    try:
        await query.answer(text[:MAX_ALERT_CHARS] if text else None, show_alert=alert)
    except TelegramError as exc:
        log.info("telegram: could not answer callback query: %s", _error_text(exc))


def _error_text(exc: TelegramError) -> str:
    if isinstance(exc, InvalidToken):
        return "bot token rejected"  # PTB's message would quote the token
    return f"{type(exc).__name__}: {exc.message}"[:300]


def _log_boot_failure(exc: TelegramError) -> None:
    log.error(
        "telegram: Bot API not usable yet (%s); retrying in the background",
        _error_text(exc),
    )
