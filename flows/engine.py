"""The dialogue: one turn in, replies out. Answers from the FAQ, fills a form
and opens a ticket routed by data, or signs a volunteer up."""

from __future__ import annotations

import copy
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
    apply_corrections,
    missing_slot,
    prefill,
)
from flows.form_fill import add_note, fill
from flows.messages import Button, IncomingMessage, Reply
from flows.replies import Replies
from flows.review import ReviewQueue, needs_review
from flows.satisfaction import Surveys
from flows.slots import (
    CJK,
    contains_any,
    is_question,
    is_vague_place,
    meaningful_remainder,
    without_entities,
)
from flows.state import ConversationState, FormState
from flows.store import Store, iso, parse_iso
from nlu.entities import mask_phone
from nlu.tokenizer import fold_for_matching
from nlu.types import SERVICE_INTENTS, IntentScore, ParseResult

DEEPLINK_TTL_S = 24 * 3600
STRONG_SWITCH_CONFIDENCE = 0.85
_CONFIRM_WORDS = (
    *("确认", "提交", "确定", "没问题", "对的", "是的", "正确", "没错", "ok", "好", "好的"),
    *("是", "对", "嗯", "嗯嗯", "可以", "行", "确认提交", "👌", "👍", "✅", "yes", "对对"),
)
_CONFIRM_SET = frozenset(_CONFIRM_WORDS)
_EXPLICIT_CANCEL = frozenset(("取消", "取消吧", "取消申请", "/cancel", "cancel"))
_DENY_SET = frozenset(("不", "不是", "不对", "不用", "不要", "否", "no", "不行", "换一个", "换个"))
_CLAUSE_SPLIT = re.compile(r"[，,。.!！？?；;\s]+")
# "3", "三", "第三个", "选3": a pick from a numbered list the bot just showed.
_CHOICE = re.compile(
    r"^\s*(?:选|第)?\s*([1-9一二三四五六七八九])\s*(?:个|项|条|种|号)?\s*[.。、)）]?\s*(?:吧|呗|啊)?\s*$"
)
_CN_NUMBERS = {c: i for i, c in enumerate("一二三四五六七八九", 1)}
# Questions for information: these make "我想申请…，要什么材料" a question
# even though it names the request.
_INFO_QUESTION = re.compile(
    r"怎么|怎样|如何|什么|啥|多少|几[个点天年月次]|哪|多久|多长|是否|有没有|要不要|需不需要|收费|利息|利率|条件"
)
# Ends like a question: a question mark, or 吗/呢/是不是 at the end.
_ASKS_BACK = re.compile(r"[?？]\s*$|(?:吗|呢|么|是不是|对不对|行不行|可不可以)[\s。.!！~]*$")
_LEADING_YES = re.compile(r"^(?:对|好|行|是|嗯|可以|没问题|ok)[的啊呀吧了]?[，,。\s!！]", re.I)
_DENIAL = re.compile(r"不对|不是|也不是|没有|搞错|算了|先不|不用|不要|不办|不申请")
_SOCIAL_INTENTS = frozenset({"greet", "thanks", "goodbye", "affirm", "deny", "cancel"})
_ACCEPT_PARTS = ("申请", "办理", "报名", "预约", "试试", "要办", "想办", "办一", "登记")


def _choice_number(text: str) -> int | None:
    match = _CHOICE.match(text)
    if match is None:
        return None
    digit = match.group(1)
    return _CN_NUMBERS.get(digit) or int(digit)


def _only_details(text: str, parse: ParseResult) -> bool:
    """ "13912345678", "电话 139…": entities with hardly a word around them."""
    return bool(parse.entities) and len(CJK.findall(without_entities(text, parse))) <= 2


def _act_from_intent(text: str, parse: ParseResult) -> str:
    """The act when no act model ships: the NLU's intent, read plainly."""
    intent = parse.intent.name
    acts = {
        "affirm": "confirm",
        "deny": "deny",
        "cancel": "cancel",
        "human_handoff": "handoff",
        "greet": "chitchat",
        "thanks": "chitchat",
        "goodbye": "chitchat",
    }
    if intent in acts:
        return acts[intent]
    return "question" if is_question(text) else "answer"


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


ReadAct = Callable[[str, str, ParseResult], list[tuple[str, float]]]


@dataclass(frozen=True)
class EngineSettings:
    form_idle_timeout: timedelta = timedelta(minutes=30)
    max_reprompts: int = 2  # after this many failed re-prompts the bot offers a person
    switch_confidence: float = 0.6  # a different service intent this sure switches flows
    # Idle turns this recent prefill a form that starts after them.
    context_window: timedelta = timedelta(minutes=10)


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
        read_act: ReadAct | None = None,
        review: ReviewQueue | None = None,
        surveys: Surveys | None = None,
    ) -> None:
        self.book = book
        self.r = replies
        self.faq = faq
        self.store = store
        self.parse = parse
        self.fact = fact
        self.settings = settings or EngineSettings()
        # (text, asked slot, parse) -> acts ranked, nlu/form_acts.py; None: from the intent.
        self.read_act = read_act
        # Messages the bot could not place go to staff for labelling (flows/review.py).
        self.review = review
        # "Out of scope" is there too: 残疾证怎么办理 is a question residents ask
        # that nothing here answers yet, which is what the office wants to see.
        self._unanswered = frozenset(
            self._say(reply_id)
            for reply_id in ("faq.none", "fallback", "out_of_scope", "form.question_unknown")
        )
        self.desk = ServiceDesk(book=book, replies=replies, store=store, fact=fact)
        # The satisfaction survey after a resolved ticket; None: not asked.
        self.surveys = surveys

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
            replies = self._survey_answer(msg, state, now) or self._text(msg, parse, state)
            replies += self._survey_question(msg, state, now)
        else:
            replies = self._media(msg, state)
        if out:
            replies = [Reply("\n".join(out)), *replies]
        return replies

    def _survey_answer(
        self, msg: IncomingMessage, state: ConversationState, now: datetime
    ) -> list[Reply]:
        """The reply to an answer of the resident's open survey; empty when the
        message is no answer (it then goes on to the dialogue)."""
        # The survey is asked and answered in the private chat, never in a group.
        if self.surveys is None or msg.in_group or state.form is not None:
            return []
        if state.confirming_forget:
            return []
        said = self.surveys.answer(msg.channel, msg.user_id, msg.text.strip(), now)
        if said is None:
            return []
        state.choices, state.menu, state.offer = [], False, None
        return [Reply(said)]

    def _survey_question(
        self, msg: IncomingMessage, state: ConversationState, now: datetime
    ) -> list[Reply]:
        """A survey that waited for the resident's form to end, asked once the
        turn leaves them idle."""
        if self.surveys is None or msg.in_group or state.form is not None:
            return []
        if state.confirming_forget:
            return []
        question = self.surveys.ask_pending(msg.channel, msg.user_id, now, self._kind_label)
        return [Reply(question)] if question else []

    def _kind_label(self, kind: str) -> str:
        key = f"kind.{kind}"
        return self.r.text(key) if key in self.r else kind

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
        choice = _choice_number(text)
        menu, state.menu = state.menu, False
        if state.choices and choice is not None:
            replies = self._pick_choice(choice, state)
            if state.form is not None:
                replies.append(Reply(self._resume(self._flow(state.form), state.form, state)))
        elif menu and choice is not None and state.form is None:
            replies = self._menu_pick(choice, msg, state)
        elif state.form is not None:
            replies = self._form_turn(msg, parse, text, state)
        else:
            replies = self._idle_turn(msg, parse, text, state)
        if notes:
            replies = [*replies, Reply("\n".join(notes))]
        return replies

    def _menu_pick(self, n: int, msg: IncomingMessage, state: ConversationState) -> list[Reply]:
        """A number answering the numbered list of services in "capabilities"."""
        if not 1 <= n <= len(self.book.service_menu):
            state.menu = True
            return [Reply(self._say("menu.choice_unknown"))]
        target = self.book.service_menu[n - 1]
        if target not in self.book.flows:
            empty = ParseResult(text="", intent=IntentScore(name="ticket_status", confidence=1.0))
            return self.desk.status(msg, empty)
        return self._start(self.book.flows[target], msg, None, state)

    def _idle_turn(
        self, msg: IncomingMessage, parse: ParseResult, text: str, state: ConversationState
    ) -> list[Reply]:
        replies = self._idle_reply(msg, parse, text, state)
        if self.review is not None:
            if replies and replies[-1].text in self._unanswered:
                self.review.record("faq", text, parse)
            elif needs_review(parse):
                self.review.record("intent", text, parse)
        if state.form is None and parse.intent.name not in _SOCIAL_INTENTS:
            # Kept a few minutes: a form started next is prefilled from it.
            item = {"at": state.last_active or "", "text": text[:500], "intent": parse.intent.name}
            state.recent = [*state.recent, item][-3:]
        if any(self.r.text("capabilities") in r.text for r in replies):
            state.menu = True
        return replies

    def _idle_reply(
        self, msg: IncomingMessage, parse: ParseResult, text: str, state: ConversationState
    ) -> list[Reply]:
        intent = parse.intent.name
        offer, state.offer = state.offer, None
        offer_text, state.offer_text = state.offer_text, ""
        offered_handoff, state.offered_handoff = state.offered_handoff, False
        if intent == "human_handoff" or (offered_handoff and intent == "affirm"):
            return self._handoff(msg, state, reason=text)
        folded = fold_for_matching(text)
        if state.paused and (
            contains_any(folded, self.book.resume_words)
            or (offer == "resume" and self._accepts(text, parse))
        ):
            return self._resume_paused(text, state)
        if offer and offer in self.book.flows:
            offered = self.book.flows[offer]
            accepted = (
                self._accepts(text, parse)
                or self._gives_details(offered, text, parse)
                or self._continues_story(offered, text, parse, folded)
            )
            if accepted or (intent == offered.intent and not is_question(text)):
                # "开小吃店想贷五万，利息多少" -> FAQ answer -> "申请": the amount
                # from the question is not asked again.
                opening_text = f"{offer_text}。{text}" if offer_text else text
                opening = (opening_text, self.parse(opening_text))
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
        if intent in ("out_of_scope", "nlu_fallback") and offer in self.book.flows:
            # "我身份证号…" between the offer and the answer to it: the offer stands.
            state.offer, state.offer_text = offer, offer_text
        flow = self._named_flow(folded) or self.book.by_intent.get(intent)
        if flow is not None and _only_details(text, parse):
            # A bare phone or amount says no request: keep it, ask what they need.
            for name in ("phone",):
                if parse.first(name) is not None:
                    state.profile[name] = str(parse.first(name).value)  # type: ignore[union-attr]
            return [Reply(self._say("idle.details_only"))]
        if flow is not None:
            just_asking = contains_any(folded, self.book.just_asking_words)
            named = self._named_flow(folded) is flow and not _INFO_QUESTION.search(folded)
            if just_asking or (
                flow.faq_first
                and not named
                and not self._is_request(folded)
                and (is_question(text) or not contains_any(text, flow.start_words))
            ):
                answered = self._faq_answer(text, state, offer_flow=flow)
                if answered:
                    return answered
                if just_asking:
                    return [Reply(self.r.text("form.question_unknown"))]
            return self._start(flow, msg, (text, parse), state)
        if intent == "out_of_scope":
            return [Reply(self._say("out_of_scope"))]
        answered = self._faq_answer(text, state, offer_flow=None)
        if answered:
            if state.offer is None:
                # "云法庭是不是不用跑法院？" after "我想起诉…": the offer to book stands.
                state.offer, state.offer_text = offer, offer_text
            return answered
        return [Reply(self._say("faq.none" if intent == "service_info" else "fallback"))]

    def _named_flow(self, folded: str) -> FlowSpec | None:
        """The one service the message asks for by name ("…退休的周老师，想申请调解"):
        that wins over the classifier's guess."""
        named = [f for f in self.book.flows.values() if contains_any(folded, f.request_phrases)]
        return named[0] if len(named) == 1 else None

    def _is_request(self, folded: str) -> bool:
        """ "帮帮团能不能帮我调解一下？" asks for the service, not about it."""
        return contains_any(folded, self.book.request_words) and not _INFO_QUESTION.search(folded)

    def _continues_story(self, flow: FlowSpec, text: str, parse: ParseResult, folded: str) -> bool:
        """ "他叫阿布都克里木，以前跟我一起在巴扎卖皮货的" right after the bot
        answered "朋友借钱不还，我想告他" and offered to book a lawyer: the
        user is telling more of the same story, not asking for another service."""
        if is_question(text) or contains_any(folded, self.book.switch_words):
            return False
        named = self._named_flow(folded)
        if named is not None and named is not flow:
            return False
        other = self.book.by_intent.get(parse.intent.name)
        if other is not None and other is not flow and parse.intent.confidence >= 0.9:
            return False
        story = flow.slot("description")
        return (
            story is not None
            and parse.intent.name in SERVICE_INTENTS
            and len(meaningful_remainder(text, parse, self.book)) >= 6
        )

    def _gives_details(self, flow: FlowSpec, text: str, parse: ParseResult) -> bool:
        """Details for the request the bot just offered to file are the start of
        it: "我叫阿里木，电话139…", "我是开奶茶店的"."""
        if (
            parse.intent.name in self.book.by_intent
            and parse.intent.name != flow.intent
            and parse.intent.confidence >= STRONG_SWITCH_CONFIDENCE
        ):
            return False
        trial = FormState(flow=flow.name, form_id="")
        prefill(self.book, flow, trial, text, parse, from_opening=False)
        return bool(trial.slots)

    def _accepts(self, text: str, parse: ParseResult) -> bool:
        """Yes to the bot's offer: "申请", "好的", "嗯那我申请试试"."""
        if parse.intent.name == "affirm" or text.rstrip("。!！ ") in ACCEPT_WORDS:
            return True
        if is_question(text):
            return False
        return contains_any(text, _ACCEPT_PARTS) and len(text) <= 16

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
            if offer_flow is not None:
                state.offer = offer_flow.name
                state.offer_text = text[:500]
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
        state.menu = False
        if msg.in_group and flow.personal:
            return [self._group_redirect(flow, msg, opening[0] if opening else "")]
        form = FormState(flow=flow.name, form_id=uuid.uuid4().hex)
        state.form = form
        if opening is not None:
            text, parse = opening
            prefill(self.book, flow, form, text, parse, profile=state.profile)
            self._remember(state, form)
        # What the user said just before ("我在夜市摆了个烧烤摊，想再添一台冰柜")
        # is not asked again; newest first, and never as the description.
        for earlier, intent in reversed(self._recent_texts(state)):
            prefill(self.book, flow, form, earlier, self.parse(earlier), from_opening=False)
            story = flow.slot("description")
            if story is not None and intent in SERVICE_INTENTS and intent != "service_info":
                # "儿子儿媳要把我的房子过户…" said before the form: part of the story.
                told = str(form.slots.get(story.name) or "")
                if earlier not in told:
                    form.slots[story.name] = f"{earlier}。{told}".strip("。")[:1000]
        for slot in flow.slots:
            value = form.slots.get(slot.name)
            if slot.type == "place" and value and is_vague_place(str(value), self.book):
                form.vague.append(slot.name)
        lead = self.r.text("form.start", label=flow.label)
        return [Reply(lead + "\n" + self._next_step(flow, form, state))]

    def _recent_texts(self, state: ConversationState) -> list[tuple[str, str]]:
        """Idle turns within the context window, oldest first, with their intents."""
        if state.last_active is None:
            return []
        now = parse_iso(state.last_active)
        window = self.settings.context_window
        texts = []
        for item in state.recent:
            try:
                if now - parse_iso(item["at"]) <= window:
                    texts.append((item["text"], item.get("intent", "")))
            except (KeyError, ValueError):
                continue
        return texts

    def _next_step(
        self, flow: FlowSpec, form: FormState, state: ConversationState | None = None
    ) -> str:
        slot = missing_slot(flow, form)
        if slot is not None:
            form.asking = slot.name
            form.confirming = False
            return self._ask(flow, form, slot, state)
        form.asking = None
        form.confirming = True
        return self._summary(flow, form) + "\n" + self.r.text("form.confirm_prompt")

    def _ask(
        self, flow: FlowSpec, form: FormState, slot: SlotSpec, state: ConversationState | None
    ) -> str:
        """The question for `slot`; a name or phone given earlier in the
        conversation is offered instead of asked again."""
        known = state.profile.get(slot.name) if state is not None else None
        if known and slot.type in ("phone", "name"):
            form.pending = f"reuse:{slot.name}"
            if slot.type == "phone":
                return self.r.text("ask.phone_reuse", phone=mask_phone(known))
            return self.r.text("ask.name_reuse", name=known)
        return self.r.text(slot.prompt)

    def _summary(self, flow: FlowSpec, form: FormState) -> str:
        not_given = self.r.text("summary.not_given")
        values: dict[str, Any] = {s.name: form.slots.get(s.name) or not_given for s in flow.slots}
        amount = form.slots.get("amount")
        values["amount_text"] = f"{int(amount):,}元" if isinstance(amount, int) else not_given
        values["attachments"] = f"{len(form.attachments)}张图片" if form.attachments else not_given
        header = self.r.text("summary.header", label=flow.label)
        summary = header + "\n" + self.r.text(flow.summary, **values)
        if form.notes:
            summary += "\n" + self.r.text("summary.notes", notes="；".join(form.notes))
        return summary

    def _remember(self, state: ConversationState, form: FormState) -> None:
        """Keep the name and phone for reuse later in the conversation."""
        for name in ("name", "phone"):
            value = form.slots.get(name)
            if isinstance(value, str) and value:
                state.profile[name] = value

    def _with_resume_offer(self, text: str, state: ConversationState) -> str:
        if not state.paused:
            return text
        label = self.book.flows[state.paused[-1].flow].label
        state.offer = "resume"
        return text + "\n" + self.r.text("form.resume_offer", label=label)

    def _resume_paused(
        self, text: str, state: ConversationState, *, flow_name: str | None = None
    ) -> list[Reply]:
        """ "刚才那个贷款接着弄": the form put aside, named or the last one."""
        if not state.paused:
            return [Reply(self.r.text("form.nothing_to_resume"))]
        folded = fold_for_matching(text)
        chosen = state.paused[-1]
        for form in state.paused:
            flow = self.book.flows.get(form.flow)
            if form.flow == flow_name or (
                flow is not None and contains_any(folded, (*flow.start_words, flow.label))
            ):
                chosen = form
        state.paused = [f for f in state.paused if f is not chosen]
        if chosen.flow not in self.book.flows:
            return [Reply(self.r.text("form.reset"))]
        flow = self.book.flows[chosen.flow]
        state.form = chosen
        chosen.pending = None
        return [Reply(self._resume(flow, chosen, state))]

    def _form_turn(
        self, msg: IncomingMessage, parse: ParseResult, text: str, state: ConversationState
    ) -> list[Reply]:
        form = state.form
        assert form is not None
        flow = self._flow(form)
        if form.pending:
            answered = self._pending_turn(parse, text, state, flow, form)
            if answered is not None:
                return answered
        if parse.intent.name == "ticket_status" and parse.first("phone") is None:
            return [*self.desk.status(msg, parse), Reply(self._resume(flow, form))]
        slot = (
            None if form.confirming else (flow.slot(form.asking or "") or missing_slot(flow, form))
        )
        if slot is None and not form.confirming:
            return [Reply(self._next_step(flow, form, state))]
        act = self._act(text, "confirm" if slot is None else slot.name, parse, slot)
        if act == "handoff":
            return self._handoff(msg, state, reason=text)
        if form.offered_handoff and parse.intent.name == "affirm":
            return self._handoff(msg, state, reason=self.r.text("handoff.reason_retries"))
        if contains_any(fold_for_matching(text), self.book.just_asking_words):
            return self._just_asking_in_form(msg, text, state, flow)
        if act == "cancel":
            return self._cancel(state, flow, form, text)
        if act == "switch" or (
            self._asks_to_switch(text, parse, flow, slot, act)
            and not self._fills_something(flow, form, text, parse, slot)
        ):
            switched = self._switch(msg, parse, text, state, flow)
            if switched is not None:
                return switched
        if form.confirming:
            return self._confirm_turn(msg, parse, text, state, flow, form, act)
        assert slot is not None
        if act == "correction" and apply_corrections(
            self.book, flow, form, text, parse, require_marker=False
        ):
            return [
                Reply(self.r.text("form.corrected") + "\n" + self._next_step(flow, form, state))
            ]
        filled = fill(
            self.book,
            flow,
            form,
            text,
            parse,
            asked=slot,
            profile=state.profile,
            correcting=act == "correction",
            free_text=act in ("answer", "correction"),
        )
        self._remember(state, form)
        if slot.optional and slot.name not in form.slots and filled.slots:
            # Other details came instead: asked once more at the end, then left.
            (form.asked_once if slot.name in form.reasked else form.reasked).append(slot.name)
        if filled.slots:
            form.retries = 0
            form.offered_handoff = False
            if act == "question" and slot.name not in filled.slots:
                answered = self._question_in_form(text, state, flow, parse=parse)
                return [*answered, Reply(self._next_step(flow, form, state))]
            return [Reply(self._next_step(flow, form, state))]
        if act == "question":
            answered = self._question_in_form(text, state, flow, parse=parse)
            return [*answered, Reply(self._resume(flow, form, state))]
        if act == "confirm":
            return self._done_with_details(msg, state, flow, form, slot)
        if act in ("decline", "deny"):
            return self._decline(flow, form, slot, state)
        if filled.problem is not None:
            return [self._reprompt(flow, form, filled.problem.reply_id, **filled.problem.values)]
        if act == "chitchat":
            lead = (
                self._say("thanks")
                if parse.intent.name == "thanks"
                else self.r.text("form.chitchat")
            )
            return [Reply(lead + "\n" + self._ask(flow, form, slot, state))]
        if slot.optional:
            # Asked once; whatever the user said instead is kept for staff.
            add_note(form, text)
            form.asked_once.append(slot.name)
            return [Reply(self._next_step(flow, form, state))]
        reply_id = "invalid.text" if slot.type in ("text", "place", "party") else slot.prompt
        return [self._reprompt(flow, form, reply_id)]

    def _act(self, text: str, asked: str, parse: ParseResult, slot: SlotSpec | None) -> str:
        """What the message does in the form (nlu/form_acts.py), with the few
        rules that no reading may override: a typed value for the slot asked
        is an answer ("五万吧？"), and so is "用刚才那个号"."""
        if slot is not None and (
            (slot.type == "phone" and parse.first("phone") is not None)
            or (slot.type == "amount" and parse.first("amount") is not None)
        ):
            return "answer"
        if contains_any(fold_for_matching(text), self.book.reuse_words):
            return "answer"
        ranked = self.read_act(text, asked, parse) if self.read_act is not None else []
        act = ranked[0][0] if ranked else _act_from_intent(text, parse)
        if act == "answer" and _ASKS_BACK.search(fold_for_matching(text)):
            return "question"  # "云法庭是不是可以在网上开庭？" is no place
        if act == "chitchat" and _LEADING_YES.match(fold_for_matching(text)):
            return "confirm"  # "对，麻烦你们了"
        return act

    def _pending_turn(
        self,
        parse: ParseResult,
        text: str,
        state: ConversationState,
        flow: FlowSpec,
        form: FormState,
    ) -> list[Reply] | None:
        """The answer to the bot's own yes/no question ("确定要取消吗", "还用这个号码吗");
        anything else is read as an ordinary turn."""
        pending, form.pending = form.pending, None
        yes_no = self._yes_no(text, parse)
        if pending == "cancel":
            if yes_no == "yes" or parse.intent.name == "cancel":
                return self._cancelled(state, flow)
            if yes_no == "no":
                return [
                    Reply(
                        self.r.text("form.cancel_kept") + "\n" + self._next_step(flow, form, state)
                    )
                ]
            return None
        if pending and pending.startswith("reuse:"):
            name = pending.split(":", 1)[1]
            if yes_no == "yes" and name in state.profile:
                form.slots[name] = state.profile[name]
                return [Reply(self._next_step(flow, form, state))]
            if yes_no == "no":
                slot = flow.slot(name)
                return [Reply(self.r.text(slot.prompt if slot else "invalid.text"))]
        return None

    def _yes_no(self, text: str, parse: ParseResult) -> str | None:
        plain = text.strip(" 。!！~～,，").lower()
        if parse.intent.name == "affirm" or plain in _CONFIRM_SET:
            return "yes"
        if parse.intent.name == "deny" or plain in _DENY_SET:
            return "no"
        return None

    def _cancel(
        self, state: ConversationState, flow: FlowSpec, form: FormState, text: str
    ) -> list[Reply]:
        # A bare "取消" (what the bot itself tells people to send, and Telegram's
        # /cancel) is meant; "算了不办了" over a half-filled form is asked about.
        explicit = text.strip(" 。!！~").lower() in _EXPLICIT_CANCEL
        if form.slots and not explicit:
            form.pending = "cancel"
            return [Reply(self.r.text("form.confirm_cancel", label=flow.label))]
        return self._cancelled(state, flow)

    def _cancelled(self, state: ConversationState, flow: FlowSpec) -> list[Reply]:
        state.form = None
        text = self.r.text("form.cancelled", label=flow.label)
        return [Reply(self._with_resume_offer(text, state))]

    def _just_asking_in_form(
        self, msg: IncomingMessage, text: str, state: ConversationState, flow: FlowSpec
    ) -> list[Reply]:
        """ "不要预约 就问问": drop the form the question started and answer it."""
        state.form = None
        return self._question_in_form(text, state, flow, offer=True)

    def _fills_something(
        self,
        flow: FlowSpec,
        form: FormState,
        text: str,
        parse: ParseResult,
        slot: SlotSpec | None,
    ) -> bool:
        """Would this message give the open form a value that says what it is
        ("具体是长青路126号…", "开电器维修铺")? Then it is no switch."""
        trial = copy.deepcopy(form)
        filled = fill(self.book, flow, trial, text, parse, asked=slot, profile={}, free_text=False)
        return bool(filled.slots)

    def _asks_to_switch(
        self, text: str, parse: ParseResult, flow: FlowSpec, slot: SlotSpec | None, act: str
    ) -> bool:
        """Another service asked for mid-form: with "算了/先不说这个…", or as a
        long, clear request where no story was asked ("也不是跟谁有矛盾，就是
        单元门口的井盖塌了，帮我报上去")."""
        target = self.book.by_intent.get(parse.intent.name)
        if target is None or target.name == flow.name or act == "question":
            return False
        rest = len(meaningful_remainder(text, parse, self.book))
        if (
            parse.intent.confidence >= self.settings.switch_confidence
            and rest >= 4
            and contains_any(text, self.book.switch_words)
        ):
            return True
        story_asked = slot is not None and slot.name == "description"
        typed = any(e.entity in ("phone", "amount") for e in parse.entities)
        folded = fold_for_matching(text)
        asks = contains_any(folded, self.book.request_words) or self._named_flow(folded)
        return (
            parse.intent.confidence >= STRONG_SWITCH_CONFIDENCE
            and rest >= 10
            and bool(asks)
            and not story_asked
            and not typed
        )

    def _switch(
        self,
        msg: IncomingMessage,
        parse: ParseResult,
        text: str,
        state: ConversationState,
        flow: FlowSpec,
    ) -> list[Reply] | None:
        """Put the form aside (it can be resumed) and start the one asked for."""
        target = self._switch_target(text, parse, flow)
        if target is None:
            return None
        form = state.form
        assert form is not None
        # A form holding no more than the story that started it was the wrong
        # service for that story: the story moves on, nothing is put aside.
        keeps = any(k not in ("description", "other_party", "place") for k in form.slots)
        story = str(form.slots.get("description") or "")
        if keeps:
            form.pending = None
            state.paused = [*[f for f in state.paused if f.flow != form.flow][-2:], form]
            lead = self.r.text("form.paused", old=flow.label)
        else:
            lead = self.r.text("form.switched", old=flow.label)
        state.form = None
        if any(f.flow == target.name for f in state.paused):
            # "那个以后再说，先把贷款弄完": back to the loan put aside before.
            return [Reply(lead), *self._resume_paused(target.label, state, flow_name=target.name)]
        opening = f"{story}。{text}" if story and not keeps else text
        started = self._start(target, msg, (opening, self.parse(opening)), state)
        return [Reply(lead), *started]

    def _switch_target(self, text: str, parse: ParseResult, flow: FlowSpec) -> FlowSpec | None:
        """The service a switch asks for: named, or the classifier's best other
        service; "也不是跟谁有矛盾，就是井盖塌了" is read without its denial."""
        named = self._named_flow(fold_for_matching(text))
        if named is not None and named.name != flow.name:
            return named
        for reading in (parse, self._without_denial(text)):
            if reading is None:
                continue
            for score in reading.intent_ranking:
                other = self.book.by_intent.get(score.name)
                if other is not None and other.name != flow.name and score.confidence >= 0.2:
                    return other
        return None

    def _without_denial(self, text: str) -> ParseResult | None:
        clauses = [c for c in _CLAUSE_SPLIT.split(text) if c.strip()]
        kept = [c for c in clauses if not _DENIAL.search(c)]
        if not kept or len(kept) == len(clauses):
            return None
        return self.parse("，".join(kept))

    def _question_in_form(
        self,
        text: str,
        state: ConversationState,
        flow: FlowSpec,
        *,
        offer: bool = False,
        parse: ParseResult | None = None,
    ) -> list[Reply]:
        answered = self._faq_answer(
            text, state, offer_flow=flow if offer else None, prefer=flow.faq_prefixes
        )
        if not answered and self.review is not None:
            self.review.record("faq", text, parse or self.parse(text))
        return answered or [Reply(self.r.text("form.question_unknown"))]

    def _done_with_details(
        self,
        msg: IncomingMessage,
        state: ConversationState,
        flow: FlowSpec,
        form: FormState,
        slot: SlotSpec,
    ) -> list[Reply]:
        """ "好的，提交吧" while a detail is asked: the nice-to-have ones stay empty,
        an essential one still missing is asked for by name."""
        for other in flow.slots:
            if other.optional and other.name not in form.slots and other.name not in form.declined:
                form.declined.append(other.name)
        missing = missing_slot(flow, form)
        if missing is None:
            return self._submit(msg, state, flow, form)
        form.asking = missing.name
        lead = self.r.text("form.essential_missing", field=missing.label)
        return [Reply(lead + "\n" + self._ask(flow, form, missing, state))]

    def _decline(
        self, flow: FlowSpec, form: FormState, slot: SlotSpec, state: ConversationState
    ) -> list[Reply]:
        if slot.optional:
            form.declined.append(slot.name)
            form.retries = 0
            done = self.r.text("form.declined_optional")
            return [Reply(done + "\n" + self._next_step(flow, form, state))]
        return [self._reprompt(flow, form, "form.essential_declined", field=slot.label)]

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

    def _resume(
        self, flow: FlowSpec, form: FormState, state: ConversationState | None = None
    ) -> str:
        return (
            self.r.text("form.resume", label=flow.label) + "\n" + self._next_step(flow, form, state)
        )

    def _confirm_turn(
        self,
        msg: IncomingMessage,
        parse: ParseResult,
        text: str,
        state: ConversationState,
        flow: FlowSpec,
        form: FormState,
        act: str,
    ) -> list[Reply]:
        if act in ("correction", "answer", "decline") and apply_corrections(
            self.book, flow, form, text, parse, require_marker=False
        ):
            return [
                Reply(self.r.text("form.corrected") + "\n" + self._next_step(flow, form, state))
            ]
        if act in ("correction", "answer"):
            filled = fill(
                self.book,
                flow,
                form,
                text,
                parse,
                asked=None,
                profile=state.profile,
                correcting=True,
            )
            if filled.slots:
                return [
                    Reply(self.r.text("form.corrected") + "\n" + self._next_step(flow, form, state))
                ]
        if act == "confirm" or self._yes_no(text, parse) == "yes":
            return self._submit(msg, state, flow, form)
        if act == "question":
            answered = self._question_in_form(text, state, flow, parse=parse)
            return [*answered, Reply(self._resume(flow, form, state))]
        return [Reply(self.r.text("form.what_to_change"))]

    def _submit(
        self, msg: IncomingMessage, state: ConversationState, flow: FlowSpec, form: FormState
    ) -> list[Reply]:
        summary = "" if form.confirming else self._summary(flow, form) + "\n"
        text, ref = self.desk.submit(msg, flow, form)
        self._remember(state, form)
        state.form = None
        state.recent = []  # its story is filed; it must not prefill the next request
        state.last_submitted = {"form_id": form.form_id, "ref": ref, "flow": flow.name}
        return [Reply(self._with_resume_offer(summary + text, state))]

    def _forget(self, msg: IncomingMessage, text: str, state: ConversationState) -> list[Reply]:
        if text.strip(" 。!！") != "确认删除":
            return [Reply(self.r.text("forget.kept"))]
        self.store.forget_user(msg.user_id, channel=msg.channel)
        state.form = None
        state.choices = []
        state.offer = None
        state.last_submitted = None
        state.paused = []
        state.profile = {}
        state.recent = []
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
