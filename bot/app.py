"""The composition root: the one place that wires settings, store, NLU, FAQ,
flows and the dispatcher together. Channels receive the finished `Core`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import nlu
from bot.dispatcher import Dispatcher
from bot.rate_limit import UserRateLimiter
from bot.settings import Settings
from flows.deadlines import Deadlines
from flows.definitions import FlowBook
from flows.engine import DialogueEngine, EngineSettings
from flows.faq import FaqBase, FaqMatch, FaqRetriever, ambiguous, build_index, load_faq_base
from flows.replies import Replies
from flows.review import ReviewQueue
from flows.satisfaction import Surveys, SurveySettings
from flows.store import Store
from flows.survey_reader import SurveyReader
from nlu.live_parser import LiveParser
from nlu.parser import Parser, load_parser

NLU_DATA_DIR = Path(nlu.__file__).parent / "data"

# Per-user limits apply to the public channels; the shell is the operator's.
RATE_LIMITED_CHANNELS = frozenset({"wechat", "telegram"})


class FaqAnswers:
    """The FAQ as the dialogue sees it: search, ambiguity and lookup by id."""

    def __init__(self, base: FaqBase, index: FaqRetriever) -> None:
        self.base = base
        self._index = index
        self._by_id = {entry.id: entry for entry in index.entries}

    def search(self, text: str, k: int = 3) -> list[FaqMatch]:
        return self._index.search(text, k)

    def near_misses(self, text: str, k: int = 3) -> list[FaqMatch]:
        """The best k entries whatever their score: guesses for the review queue."""
        return self._index.search(text, k, threshold=float("-inf"))

    def ambiguous(self, matches: Sequence[Any]) -> bool:
        return ambiguous(list(matches))

    def get(self, entry_id: str) -> FaqMatch | None:
        entry = self._by_id.get(entry_id)
        return None if entry is None else FaqMatch(entry.id, 1.0, entry.questions[0], entry.answer)


@dataclass(frozen=True)
class Core:
    settings: Settings
    store: Store
    parser: Parser
    replies: Replies
    faq: FaqAnswers
    engine: DialogueEngine
    dispatcher: Dispatcher
    # What the dispatcher and the dialogue parse with: follows the current
    # model on disk (a gated retraining or a rollback), see nlu/live_parser.py.
    live: LiveParser | None = None
    deadlines: Deadlines | None = None

    def close(self) -> None:
        self.store.close()


def build_faq(
    settings: Settings,
    tokenize: Callable[[str], list[str]] | None = None,
    notify: Callable[[str], None] | None = None,
) -> FaqAnswers:
    """The FAQ retriever; pass the parser's tokenizer so jieba's dictionary loads
    once. Nothing heavy happens here: the sentence encoder and the ranker load on
    the first FAQ search, cached beside the NLU model."""
    base = load_faq_base(settings.data_dir)
    index = build_index(base, tokenize, cache_dir=settings.nlu.resolved_model_dir(), notify=notify)
    return FaqAnswers(base, index)


def build_core(
    settings: Settings,
    *,
    inline_outbox: frozenset[str] = frozenset({"shell"}),
    notify: Callable[[str], None] | None = None,
    parser: Parser | None = None,
) -> Core:
    """Everything a channel needs. `notify` hears one-off notes such as
    "training the NLU model" (the CLI prints them on stderr)."""
    store = Store(settings.db_path)
    store.set_ticket_quota(settings.rate_tickets_per_hour, channels=RATE_LIMITED_CHANNELS)
    deadlines = load_deadlines(settings)
    store.set_due_rule(deadlines.rule())
    if parser is None:
        parser = load_parser(settings.nlu, notify=notify)
    live = LiveParser(parser, settings.nlu)
    replies = Replies.load(settings.data_dir / "replies")
    faq = build_faq(settings, parser.tokenizer.words, notify)
    book = FlowBook.load(settings.data_dir / "flows.yml", settings.data_dir / "routing.yml")
    facts = faq.base.facts

    def fact(name: str) -> str | None:
        found = facts.get(name)
        return found.value if found is not None else None

    engine = DialogueEngine(
        book=book,
        replies=replies,
        faq=faq,
        store=store,
        parse=live.parse,
        fact=fact,
        settings=EngineSettings(form_idle_timeout=timedelta(minutes=settings.form_idle_minutes)),
        read_act=live.read_act if parser.form_acts is not None else None,
        review=ReviewQueue(store),
        surveys=Surveys(
            store,
            replies,
            SurveyReader.load(settings.data_dir, NLU_DATA_DIR),
            SurveySettings(answer_within=timedelta(hours=settings.survey_answer_hours)),
        ),
    )
    dispatcher = Dispatcher(
        store=store,
        parser=live,
        engine=engine,
        replies=replies,
        inline_outbox_channels=inline_outbox,
        rate_limiter=UserRateLimiter(
            burst=settings.rate_message_burst, per_minute=settings.rate_messages_per_minute
        ),
        rate_limited_channels=RATE_LIMITED_CHANNELS,
    )
    return Core(
        settings, store, parser, replies, faq, engine, dispatcher, live=live, deadlines=deadlines
    )


def load_deadlines(settings: Settings) -> Deadlines:
    """Due times from the data folder; kinds without one are due to be
    resolved within TONGXIN_OVERDUE_HOURS."""
    return Deadlines.load(settings.data_dir).with_default_resolve(settings.overdue_hours)
