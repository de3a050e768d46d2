"""One message in, replies out: de-duplicate -> parse -> load conversation ->
dialogue -> save, with one error net around the whole turn."""

from __future__ import annotations

import dataclasses
import json
import logging
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from bot.rate_limit import UserRateLimiter
from flows import takeover
from flows.engine import DialogueEngine
from flows.messages import Button, IncomingMessage, Reply, conversation_key
from flows.replies import Replies
from flows.state import STATE_VERSION, ConversationState
from flows.store import Store, TicketQuotaError, user_scope, utcnow
from nlu.entities import extract_id_numbers, mask_personal_data
from nlu.types import FALLBACK_INTENT, IntentScore, ParseResult

log = logging.getLogger("tongxin.dispatcher")

# Longer messages are cut before parsing: nobody types 2,000 characters to a
# chatbot on purpose, and the NLU cost grows with length.
MAX_TEXT_CHARS = 2000
# Platforms retry within minutes; a day of processed-message records is plenty.
PROCESSED_KEEP_S = 24 * 3600
PRUNE_EVERY = 500
# Said before the bot's answer when a staff takeover ended by idling.
BOT_BACK = "workspace.takeover_ended"


class Parser(Protocol):
    def parse(self, text: str) -> ParseResult: ...


def clean_text(text: str) -> str:
    """Drop control and format characters (keep newlines as spaces) so that no
    stored or logged text carries terminal escapes or zero-width junk."""
    out = []
    for ch in text:
        if ch in "\n\r\t":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def replies_to_json(replies: list[Reply]) -> str:
    return json.dumps([dataclasses.asdict(r) for r in replies], ensure_ascii=False)


def replies_from_json(raw: str) -> list[Reply]:
    out = []
    for item in json.loads(raw):
        buttons = tuple(Button(**b) for b in item.get("buttons") or ())
        out.append(
            Reply(text=item["text"], buttons=buttons, private_payload=item.get("private_payload"))
        )
    return out


@dataclasses.dataclass(frozen=True)
class Turn:
    """A handled message with what the dialogue saw: for `tongxin shell --debug`."""

    replies: list[Reply]
    parse: ParseResult
    state: ConversationState | None
    # The turn raised and `replies` is the apology: nothing of it was saved.
    failed: bool = False


class Dispatcher:
    def __init__(
        self,
        *,
        store: Store,
        parser: Parser,
        engine: DialogueEngine,
        replies: Replies,
        inline_outbox_channels: frozenset[str] = frozenset({"shell"}),
        clock: Callable[[], datetime] = utcnow,
        rate_limiter: UserRateLimiter | None = None,
        rate_limited_channels: frozenset[str] = frozenset({"wechat", "telegram"}),
    ) -> None:
        self.store = store
        self.parser = parser
        self.engine = engine
        self.replies = replies
        self.inline_outbox_channels = inline_outbox_channels
        self.clock = clock
        self.rate_limiter = rate_limiter
        self.rate_limited_channels = rate_limited_channels
        self._turns_since_prune = 0

    def handle(self, msg: IncomingMessage) -> list[Reply]:
        """Never raises: any failure is logged and answered politely."""
        return self.turn(msg).replies

    def turn(self, msg: IncomingMessage) -> Turn:
        try:
            return self._turn(msg)
        except TicketQuotaError as exc:
            # The turn rolled back: the form stays at its confirmation for later.
            log.info("ticket quota: channel=%s user=%s", msg.channel, msg.user_id)
            text = self.replies.text("rate.too_many_tickets", limit=exc.limit)
            return Turn([Reply(text)], _empty_parse(""), None)
        except Exception:
            log.exception(
                "turn failed: channel=%s user=%s kind=%s", msg.channel, msg.user_id, msg.kind
            )
            return Turn([Reply(self.replies.text("error"))], _empty_parse(""), None, failed=True)

    def _turn(self, msg: IncomingMessage) -> Turn:
        dedupe_key = f"{msg.channel}:{msg.message_id}" if msg.message_id else None
        if dedupe_key:
            # A platform retry of a finished turn costs no parse.
            stored = self.store.processed_reply(dedupe_key)
            if stored is not None:
                return Turn(replies_from_json(stored), _empty_parse(""), None)
        if self.rate_limiter is not None and msg.channel in self.rate_limited_channels:
            verdict = self.rate_limiter.check(f"{msg.channel}:{msg.user_id}")
            if verdict != "ok":
                told = verdict == "warn"
                if told:
                    log.info("rate limit: channel=%s user=%s", msg.channel, msg.user_id)
                replies = [Reply(self.replies.text("rate.too_fast"))] if told else []
                return Turn(replies, _empty_parse(""), None)
        raw = clean_text(msg.text or "")
        truncated = len(raw) > MAX_TEXT_CHARS
        raw = raw[:MAX_TEXT_CHARS]
        # ID numbers are masked before anything else sees the text: the NLU (and
        # a remote Rasa server), the store, the logs. The masked entity is kept
        # so that the dialogue can tell the user.
        safe_text = mask_personal_data(raw)
        parse = self._parse(safe_text) if msg.kind == "text" else _empty_parse(safe_text)
        ids = extract_id_numbers(raw)
        if ids:
            parse = dataclasses.replace(
                parse, entities=tuple(sorted((*parse.entities, *ids), key=lambda e: e.start))
            )
        msg = dataclasses.replace(msg, text=safe_text)
        key = conversation_key(msg)
        # One resident's turns queue on their own lock (on PostgreSQL other
        # residents' turns run beside them, on any host); a retry of the same
        # message waits here for the first delivery and then finds its reply.
        with self.store.transaction(scope=user_scope(msg.channel, key)):
            if dedupe_key:
                stored = self.store.processed_reply(dedupe_key)
                if stored is not None:
                    return Turn(replies_from_json(stored), parse, None)
            state = ConversationState.from_json(self.store.load_conversation(msg.channel, key))
            if takeover.touch(self.store, msg.channel, key) is not None:
                # A person answers from the staff workspace: the bot keeps quiet,
                # the message only goes to the log the workspace shows.
                replies = []
            else:
                replies = self.engine.handle(msg, parse, state, self.clock())
                if takeover.lapsed(self.store, msg.channel, key) and BOT_BACK in self.replies:
                    replies = [Reply(self.replies.text(BOT_BACK)), *replies]
                if truncated:
                    replies = [*replies, Reply(self.replies.text("too_long_note"))]
                self.store.save_conversation(msg.channel, key, state.to_json(), STATE_VERSION)
            log_text = mask_personal_data(safe_text, mask_phones=True)
            if msg.media_ref and not log_text:
                log_text = f"[{msg.kind}] {msg.media_ref}"
            self.store.log_message(msg.channel, key, "in", log_text, parse.intent.name)
            for reply in replies:
                self.store.log_message(
                    msg.channel, key, "out", mask_personal_data(reply.text, mask_phones=True)
                )
            if dedupe_key:
                self.store.record_processed(
                    dedupe_key, replies_to_json(replies), channel=msg.channel, user_id=key
                )
                self._turns_since_prune += 1
                if self._turns_since_prune >= PRUNE_EVERY:
                    self._turns_since_prune = 0
                    self.store.prune_processed(older_than_s=PROCESSED_KEEP_S)
                    # Markers, nonces, leases: one or more rows per message.
                    self.store.purge_expired_kv()
        if msg.channel in self.inline_outbox_channels:
            queued = self.store.take_outbox_for_user(msg.channel, msg.user_id)
            replies = [Reply(item.text) for item in queued] + replies
        return Turn(replies, parse, state)

    def _parse(self, text: str) -> ParseResult:
        if not text.strip():
            return _empty_parse(text)
        return self.parser.parse(text)


def _empty_parse(text: str) -> ParseResult:
    fallback = IntentScore(name=FALLBACK_INTENT, confidence=0.0)
    return ParseResult(text=text, intent=fallback, intent_ranking=(fallback,))
