"""The dialogue: one turn in, replies out. Answers from the FAQ, fills a form
and opens a ticket routed by data, or signs a volunteer up."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from flows.definitions import FlowBook, FlowSpec, SlotSpec
from flows.desk import ServiceDesk
from flows.form_answers import (
    ACCEPT_WORDS,
    answer_value,
    apply_corrections,
    fill_others,
    missing_slot,
    prefill,
    text_answer,
)
from flows.messages import Button, IncomingMessage, Reply
from flows.replies import Replies
from flows.slots import (
    InvalidAnswerError,
    SlotValue,
    contains_any,
    is_question,
    meaningful_remainder,
)
from flows.state import ConversationState, FormState
from flows.store import Store, iso, parse_iso
from nlu.types import SERVICE_INTENTS, IntentScore, ParseResult

DEEPLINK_TTL_S = 24 * 3600
STRONG_SWITCH_CONFIDENCE = 0.9
_CANCEL_WORDS = ("取消", "不办了", "不弄了", "不申请了", "退出", "撤销", "不要了")
_CONFIRM_WORDS = (
    *("确认", "提交", "确定", "没问题", "对的", "是的", "正确", "没错", "ok", "好", "好的"),
    *("是", "对", "嗯", "嗯嗯", "可以", "行", "确认提交", "👌", "👍", "✅"),
)
_CLAUSE_SPLIT = re.compile(r"[，,。.!！？?；;\s]+")
_DIGIT_CHOICE = re.compile(r"^\s*([1-9])\s*[.。、)）]?\s*$")


class FaqMatchLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def question(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def score(self) -> float: ...


class FaqSource(Protocol):
    def search(self, text: str, k: int = 3) -> Sequence[FaqMatchLike]: ...
    def ambiguous(self, matches: Sequence[Any]) -> bool: ...
    def get(self, entry_id: str) -> FaqMatchLike | None: ...


@dataclass(frozen=True)
class EngineSettings:
    form_idle_timeout: timedelta = timedelta(minutes=30)
    max_reprompts: int = 2  # after this many failed re-prompts the bot offers a person
    switch_confidence: float = 0.6  # a different service intent this sure switches flows


class DialogueEngine:
    def __init__(
        self,
        *,
        book: FlowBook,
        replies: Replies,
        faq: FaqSource,
        store: Store,
        parse: Callable[[str], ParseResult],
        fact: Callable[[str], str | None],
        settings: EngineSettings | None = None,
    ) -> None:
        self.book = book
        self.r = replies
        self.faq = faq
        self.store = store
        self.parse = parse
        self.fact = fact
        self.settings = settings or EngineSettings()
        self.desk = ServiceDesk(book=book, replies=replies, store=store, fact=fact)

    # -- entry ----------------------------------------------------------

    def handle(
        self, msg: IncomingMessage, parse: ParseResult, state: ConversationState, now: datetime
    ) -> list[Reply]:
        """One turn. Mutates `state`; the caller saves it in the same transaction."""
        out: list[str] = []
        self._drop_stale_form(state, out)
        self._expire(state, now, out)
        state.last_active = iso(now)
        if msg.kind == "event":
            replies = self._event(msg, state, now)
        elif msg.kind == "text":
            replies = self._text(msg, parse, state)
        else:
            replies = self._media(msg, state)
        if out:
            replies = [Reply("\n".join(out)), *replies]
        return replies

    def _drop_stale_form(self, state: ConversationState, out: list[str]) -> None:
        """An operator may rename a flow or a slot in flows.yml while a user is
        half-way through it: drop what no longer exists instead of failing."""
        form = state.form
        if form is None:
            return
        flow = self.book.flows.get(form.flow)
        if flow is None:
            state.form = None
            out.append(self.r.text("form.reset"))
            return
        names = {slot.name for slot in flow.slots}
        form.slots = {k: v for k, v in form.slots.items() if k in names}
        form.declined = [k for k in form.declined if k in names]
        if form.asking not in names:
            form.asking = None

    def _expire(self, state: ConversationState, now: datetime, out: list[str]) -> None:
        if state.last_active is None:
            return
        try:
            idle = now - parse_iso(state.last_active)
        except ValueError:
            idle = self.settings.form_idle_timeout * 2
        if idle < self.settings.form_idle_timeout:
            return
        if state.form is not None:
            out.append(self.r.text("form.expired", label=self._flow(state.form).label))
        state.form = None
        state.choices = []
        state.offer = None
        state.offered_handoff = False

    # -- text -----------------------------------------------------------

    def _text(
        self, msg: IncomingMessage, parse: ParseResult, state: ConversationState
    ) -> list[Reply]:
        text = msg.text.strip()
        if not text:
            return [Reply(self.r.text("empty"))]
        notes: list[str] = []
        if parse.first("id_number") is not None:
            notes.append(self.r.text("id_number_masked"))
        confirming_forget, state.confirming_forget = state.confirming_forget, False
        if confirming_forget:
            return self._forget(msg, text, state)
        if contains_any(text, self.book.forget_words):
            state.confirming_forget = True
            return [Reply(self.r.text("forget.confirm"))]
        choice = _DIGIT_CHOICE.match(text)
        if state.choices and choice:
            replies = self._pick_choice(int(choice.group(1)), state)
            if state.form is not None:
                replies.append(Reply(self._resume(self._flow(state.form), state.form)))
        elif state.form is not None:
            replies = self._form_turn(msg, parse, text, state)
        else:
            replies = self._idle_turn(msg, parse, text, state)
        if notes:
            replies = [*replies, Reply("\n".join(notes))]
        return replies

    def _idle_turn(
        self, msg: IncomingMessage, parse: ParseResult, text: str, state: ConversationState
    ) -> list[Reply]:
        intent = parse.intent.name
        offer, state.offer = state.offer, None
        offer_text, state.offer_text = state.offer_text, ""
        offered_handoff, state.offered_handoff = state.offered_handoff, False
        if intent == "human_handoff" or (offered_handoff and intent == "affirm"):
            return self._handoff(msg, state, reason=text)
        if offer and offer in self.book.flows:
            offered = self.book.flows[offer]
            bare_yes = intent == "affirm" or text.rstrip("。!！ ") in ACCEPT_WORDS
            if bare_yes or (intent == offered.intent and not is_question(text)):
                # "开小吃店想贷五万，利息多少" -> FAQ answer -> "申请": the amount
                # from the question is not asked again.
                opening_text = offer_text if bare_yes else f"{offer_text}。{text}"
                opening = (opening_text, self.parse(opening_text)) if opening_text else None
                return self._start(offered, msg, opening, state)
        if intent == "ticket_status" or (
            parse.first("ticket_id") is not None and intent not in SERVICE_INTENTS
        ):
            return self.desk.status(msg, parse)
        if intent == "affirm" and state.last_submitted:
            last = state.last_submitted
            flow_done = self.book.flows.get(last.get("flow", ""))
            reply_id = (
                "submitted.already_volunteer"
                if flow_done is not None and flow_done.creates == "volunteer"
                else "submitted.already"
            )
            return [Reply(self.r.text(reply_id, ticket_id=last["ref"]))]
        simple = {
            "greet": "greet",
            "thanks": "thanks",
            "goodbye": "goodbye",
            "affirm": "affirm_idle",
            "deny": "deny_idle",
            "cancel": "cancel_idle",
        }
        if intent in simple:
            return [Reply(self._say(simple[intent]))]
        flow = self.book.by_intent.get(intent)
        if flow is not None:
            if flow.faq_first and (is_question(text) or not contains_any(text, flow.start_words)):
                answered = self._faq_answer(text, state, offer_flow=flow)
                if answered:
                    return answered
            return self._start(flow, msg, (text, parse), state)
        if intent == "out_of_scope":
            return [Reply(self._say("out_of_scope"))]
        answered = self._faq_answer(text, state, offer_flow=None)
        if answered:
            return answered
        return [Reply(self._say("faq.none" if intent == "service_info" else "fallback"))]

    # -- FAQ ------------------------------------------------------------

    def _faq_answer(
        self,
        text: str,
        state: ConversationState,
        *,
        offer_flow: FlowSpec | None,
        prefer: tuple[str, ...] = (),
    ) -> list[Reply]:
        matches = self._faq_search(text)
        if not matches:
            return []
        preferred = [m for m in matches if m.id.startswith(prefer)] if prefer else []
        if preferred:
            # Inside a loan form "要带什么材料" means the loan's materials.
            matches = preferred
        elif self.faq.ambiguous(matches) and len(matches) > 1:
            state.choices = [m.id for m in matches]
            lines = [self.r.text("faq.choose")]
            buttons = []
            for n, m in enumerate(matches, 1):
                lines.append(self.r.text("faq.choice_line", n=n, question=m.question))
                buttons.append(Button(label=f"{n}. {m.question}", payload=str(n)))
            return [Reply("\n".join(lines), buttons=tuple(buttons))]
        state.choices = []
        reply = self.r.text("faq.answer", answer=matches[0].answer)
        if offer_flow is not None:
            state.offer = offer_flow.name
            state.offer_text = text[:500]
            if "回复“" not in reply:  # the answer may already say how to apply
                reply += "\n" + self.r.text("faq.offer_form", label=offer_flow.label)
        return [Reply(reply)]

    def _faq_search(self, text: str) -> list[FaqMatchLike]:
        """Whole message first; then its question clause alone, because a story
        around the question ("开小吃店想贷五万，利息多少") drowns the FAQ match."""
        matches = list(self.faq.search(text, 3))
        if matches:
            return matches
        clauses = [c for c in _CLAUSE_SPLIT.split(text) if c.strip()]
        if len(clauses) < 2:
            return []
        for clause in reversed(clauses):
            if is_question(clause):
                matches = list(self.faq.search(clause, 3))
                if matches:
                    return matches
        return []

    def _pick_choice(self, n: int, state: ConversationState) -> list[Reply]:
        choices, state.choices = state.choices, []
        if n > len(choices):
            return [Reply(self._say("fallback"))]
        entry = self.faq.get(choices[n - 1])
        if entry is None:
            return [Reply(self._say("faq.none"))]
        return [Reply(self.r.text("faq.answer", answer=entry.answer))]

    # -- forms ----------------------------------------------------------

    def _flow(self, form: FormState) -> FlowSpec:
        return self.book.flows[form.flow]

    def _start(
        self,
        flow: FlowSpec,
        msg: IncomingMessage,
        opening: tuple[str, ParseResult] | None,
        state: ConversationState,
    ) -> list[Reply]:
        state.choices = []
        if msg.in_group and flow.personal:
            return [self._group_redirect(flow, msg, opening[0] if opening else "")]
        form = FormState(flow=flow.name, form_id=uuid.uuid4().hex)
        state.form = form
        if opening is not None:
            text, parse = opening
            prefill(self.book, flow, form, text, parse)
        lead = self.r.text("form.start", label=flow.label)
        return [Reply(lead + "\n" + self._next_step(flow, form))]

    def _next_step(self, flow: FlowSpec, form: FormState) -> str:
        slot = missing_slot(flow, form)
        if slot is not None:
            form.asking = slot.name
            form.confirming = False
            return self.r.text(slot.prompt)
        form.asking = None
        form.confirming = True
        return self._summary(flow, form) + "\n" + self.r.text("form.confirm_prompt")

    def _summary(self, flow: FlowSpec, form: FormState) -> str:
        not_given = self.r.text("summary.not_given")
        values: dict[str, Any] = {s.name: form.slots.get(s.name) or not_given for s in flow.slots}
        amount = form.slots.get("amount")
        values["amount_text"] = f"{int(amount):,}元" if isinstance(amount, int) else not_given
        values["attachments"] = f"{len(form.attachments)}张图片" if form.attachments else not_given
        header = self.r.text("summary.header", label=flow.label)
        return header + "\n" + self.r.text(flow.summary, **values)

    def _form_turn(
        self, msg: IncomingMessage, parse: ParseResult, text: str, state: ConversationState
    ) -> list[Reply]:
        form = state.form
        assert form is not None
        flow = self._flow(form)
        intent = parse.intent.name
        declining = contains_any(text, self.book.decline_words)
        optional_open = next(
            (
                s
                for s in flow.slots
                if s.optional and s.name not in form.slots and s.name not in form.declined
            ),
            None,
        )
        # "我不想留电话" declines the optional phone; it does not cancel the report.
        if (
            declining
            and optional_open is not None
            and not form.confirming
            and (form.asking == optional_open.name or parse.first("phone") is None)
        ):
            form.declined.append(optional_open.name)
            form.retries = 0
            done = self.r.text("form.declined_optional")
            return [Reply(done + "\n" + self._next_step(flow, form))]
        if not declining and (
            intent == "cancel"
            or text.rstrip("吧了。!！ ") in _CANCEL_WORDS
            or (contains_any(text, _CANCEL_WORDS) and len(text) <= 8)
        ):
            state.form = None
            return [Reply(self.r.text("form.cancelled", label=flow.label))]
        if intent == "human_handoff":
            return self._handoff(msg, state, reason=text)
        if form.offered_handoff and intent == "affirm":
            return self._handoff(msg, state, reason=self.r.text("handoff.reason_retries"))
        if intent == "ticket_status" and parse.first("phone") is None:
            return [*self.desk.status(msg, parse), Reply(self._resume(flow, form))]
        if form.confirming:
            return self._confirm_turn(msg, parse, text, state, flow, form)

        if apply_corrections(self.book, flow, form, text, parse, require_marker=True):
            # The message was about an earlier answer, not the question just asked.
            return [Reply(self.r.text("form.corrected") + "\n" + self._next_step(flow, form))]
        slot = flow.slot(form.asking or "") or missing_slot(flow, form)
        if slot is None:
            return [Reply(self._next_step(flow, form))]

        # Details given out of order ("幸福小区5栋" when asked for a phone) are kept.
        others = fill_others(self.book, flow, form, text, parse, asked=slot)
        found: SlotValue | None = None
        problem: InvalidAnswerError | None = None
        if slot.type in ("phone", "amount", "name"):
            # A typed answer wins over everything else: "五万吧？" is an amount.
            try:
                found = answer_value(self.book, slot, text, parse)
            except InvalidAnswerError as exc:
                problem = exc
        if found is None and not others:
            if is_question(text):
                answered = self._faq_answer(text, state, offer_flow=None, prefer=flow.faq_prefixes)
                if answered:
                    return [*answered, Reply(self._resume(flow, form))]
            switched = self._maybe_switch(msg, parse, text, state, flow, slot)
            if switched is not None:
                return switched
            if problem is not None:
                return [self._reprompt(flow, form, problem.reply_id, **problem.values)]
        if found is None and problem is None and slot.type not in ("phone", "amount", "name"):
            found = text_answer(self.book, slot, form, text, parse, others)
        if found is not None:
            form.slots[slot.name] = found.value
        if found is None and not others:
            reply_id = "invalid.text" if slot.type in ("text", "place") else slot.prompt
            return [self._reprompt(flow, form, reply_id)]
        form.retries = 0
        form.offered_handoff = False
        return [Reply(self._next_step(flow, form))]

    def _reprompt(self, flow: FlowSpec, form: FormState, reply_id: str, **values: Any) -> Reply:
        form.retries += 1
        if form.retries > self.settings.max_reprompts:
            form.offered_handoff = True
            return Reply(self.r.text("offer_handoff"))
        slot = flow.slot(form.asking or "")
        again = "" if slot is None or reply_id == slot.prompt else "\n" + self.r.text(slot.prompt)
        if reply_id.startswith("invalid.") and reply_id != "invalid.text":
            again = ""
        return Reply(self.r.text(reply_id, **values) + again)

    def _resume(self, flow: FlowSpec, form: FormState) -> str:
        return self.r.text("form.resume", label=flow.label) + "\n" + self._next_step(flow, form)

    def _maybe_switch(
        self,
        msg: IncomingMessage,
        parse: ParseResult,
        text: str,
        state: ConversationState,
        flow: FlowSpec,
        slot: SlotSpec,
    ) -> list[Reply] | None:
        intent = parse.intent
        target = self.book.by_intent.get(intent.name)
        if target is None or target.name == flow.name:
            return None
        if intent.confidence < self.settings.switch_confidence:
            return None
        typed_answer = slot.type in ("phone", "amount") and (
            parse.first("phone") is not None or parse.first("amount") is not None
        )
        if typed_answer:
            return None
        # Without "算了/我想/另外…" only a long, very clear request switches:
        # "在二道桥市场" answers a question, it does not start a report.
        asked_to_switch = contains_any(text, self.book.switch_words)
        clear_request = (
            intent.confidence >= STRONG_SWITCH_CONFIDENCE
            and len(meaningful_remainder(text, parse, self.book)) >= 8
            and slot.type not in ("text", "place")
        )
        if not (asked_to_switch or clear_request):
            return None
        state.form = None
        lead = self.r.text("form.switched", old=flow.label)
        started = self._start(target, msg, (text, parse), state)
        return [Reply(lead), *started]

    def _confirm_turn(
        self,
        msg: IncomingMessage,
        parse: ParseResult,
        text: str,
        state: ConversationState,
        flow: FlowSpec,
        form: FormState,
    ) -> list[Reply]:
        if apply_corrections(self.book, flow, form, text, parse, require_marker=False):
            return [Reply(self.r.text("form.corrected") + "\n" + self._next_step(flow, form))]
        intent = parse.intent.name
        plain = text.rstrip("。!！~ ").lower()
        if intent == "affirm" or plain in {w.lower() for w in _CONFIRM_WORDS}:
            return self._submit(msg, state, flow, form)
        if intent == "deny":
            return [Reply(self.r.text("form.what_to_change"))]
        if is_question(text):
            answered = self._faq_answer(text, state, offer_flow=None, prefer=flow.faq_prefixes)
            if answered:
                return [*answered, Reply(self._resume(flow, form))]
        switched = self._maybe_switch(msg, parse, text, state, flow, flow.slots[0])
        if switched is not None:
            return switched
        return [Reply(self.r.text("form.what_to_change"))]

    def _submit(
        self, msg: IncomingMessage, state: ConversationState, flow: FlowSpec, form: FormState
    ) -> list[Reply]:
        text, ref = self.desk.submit(msg, flow, form)
        state.form = None
        state.last_submitted = {"form_id": form.form_id, "ref": ref, "flow": flow.name}
        return [Reply(text)]

    def _forget(self, msg: IncomingMessage, text: str, state: ConversationState) -> list[Reply]:
        if text.strip(" 。!！") != "确认删除":
            return [Reply(self.r.text("forget.kept"))]
        self.store.forget_user(msg.user_id, channel=msg.channel)
        state.form = None
        state.choices = []
        state.offer = None
        state.last_submitted = None
        return [Reply(self.r.text("forget.done"))]

    # -- handoff, status ------------------------------------------------

    def _handoff(self, msg: IncomingMessage, state: ConversationState, reason: str) -> list[Reply]:
        reply = self.desk.handoff(msg, state.form, reason)
        state.form = None
        return [reply]

    # -- groups and deep links -----------------------------------------

    def _group_redirect(self, flow: FlowSpec, msg: IncomingMessage, text: str) -> Reply:
        token = secrets.token_urlsafe(12)
        record = {"flow": flow.name, "text": text[:500], "user_id": msg.user_id}
        self.store.kv_set(
            f"deeplink:{token}", json.dumps(record, ensure_ascii=False), ttl_s=DEEPLINK_TTL_S
        )
        return Reply(
            self.r.text("form.group_redirect", label=flow.label),
            buttons=(Button(label=self.r.text("form.group_button"), payload=f"/start {token}"),),
            private_payload=token,
        )

    def _deeplink(self, msg: IncomingMessage, token: str, state: ConversationState) -> list[Reply]:
        raw = self.store.kv_get(f"deeplink:{token}")
        record = json.loads(raw) if raw else None
        if not record or record.get("user_id") != msg.user_id:
            return [Reply(self.r.text("form.deeplink_expired"))]
        flow = self.book.flows.get(record.get("flow", ""))
        if flow is None:
            return [Reply(self.r.text("form.deeplink_expired"))]
        text = str(record.get("text") or "")
        opening = (text, self.parse(text)) if text else None
        return self._start(flow, msg, opening, state)

    # -- events and media ----------------------------------------------

    def _event(self, msg: IncomingMessage, state: ConversationState, now: datetime) -> list[Reply]:
        if msg.event == "subscribe":
            self.store.set_subscribed(msg.channel, msg.user_id, True)
            return [Reply(self._say("welcome"))]
        if msg.event == "unsubscribe":
            self.store.set_subscribed(msg.channel, msg.user_id, False)
            return []
        if msg.event == "start":
            if msg.event_key:
                if msg.event_key in self.book.menu_actions:
                    return self._menu(msg, msg.event_key, state)
                return self._deeplink(msg, msg.event_key, state)
            return [Reply(self._say("welcome"))]
        if msg.event == "menu" and msg.event_key:
            return self._menu(msg, msg.event_key, state)
        return []

    def _menu(self, msg: IncomingMessage, key: str, state: ConversationState) -> list[Reply]:
        action = self.book.menu_actions.get(key)
        if action is None:
            return [Reply(self._say("fallback"))]
        if "start" in action:
            state.form = None
            return self._start(self.book.flows[action["start"]], msg, None, state)
        if action.get("intent") == "human_handoff":
            return self._handoff(msg, state, reason="菜单：人工服务")
        empty = ParseResult(text="", intent=IntentScore(name="ticket_status", confidence=1.0))
        return self.desk.status(msg, empty)

    def _media(self, msg: IncomingMessage, state: ConversationState) -> list[Reply]:
        form = state.form
        if msg.kind == "voice":
            return [Reply(self.r.text("voice_unrecognised"))]
        if msg.kind == "location":
            label = msg.location_label or (
                f"{msg.location[0]:.5f},{msg.location[1]:.5f}" if msg.location else "?"
            )
            if form is not None and not form.confirming:
                flow = self._flow(form)
                slot = flow.slot(form.asking or "")
                if slot is not None and slot.accepts_location:
                    form.slots[slot.name] = label
                    form.retries = 0
                    done = self.r.text("location_filled", label=label)
                    return [Reply(done + "\n" + self._next_step(flow, form))]
            return [Reply(self.r.text("location_ack", label=label))]
        if msg.kind == "image":
            if form is not None and form.flow == "report_issue" and msg.media_ref:
                form.attachments.append(msg.media_ref[:500])
                flow = self._flow(form)
                return [Reply(self.r.text("image_attached") + "\n" + self._next_step(flow, form))]
            return [Reply(self.r.text("image_polite"))]
        what_id = f"media.{msg.kind}"
        what = self.r.text(what_id) if what_id in self.r else self.r.text("media.other")
        return [Reply(self.r.text("media_polite", what=what))]

    # -- helpers --------------------------------------------------------

    def _say(self, reply_id: str) -> str:
        return self.r.text(reply_id, capabilities=self.r.text("capabilities"))
