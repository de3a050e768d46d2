"""Validation of the dialogue's data files for `tongxin check-data`: the FAQ
and facts, flows and routing, and reply texts, including the ids one file
names in another (a flow's prompt must exist in the replies)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.deadlines import check_deadlines
from flows.definitions import FlowBook, FlowDataError, validate_flow_data
from flows.faq import validate_faq
from flows.replies import Replies, RepliesError
from flows.satisfaction import SURVEY_REPLY_IDS
from flows.survey_reader import SurveyDataError, load_phrasings

# Reply ids the engine asks for by name (flow-specific ids come from flows.yml).
ENGINE_REPLY_IDS: tuple[str, ...] = (
    "capabilities",
    "greet",
    "thanks",
    "goodbye",
    "out_of_scope",
    "fallback",
    "welcome",
    "error",
    "empty",
    "form.start",
    "form.resume",
    "form.cancelled",
    "form.expired",
    "form.switched",
    "form.corrected",
    "form.confirm_prompt",
    "form.what_to_change",
    "form.group_redirect",
    "form.group_button",
    "submitted.ticket",
    "submitted.volunteer",
    "submitted.already",
    "summary.header",
    "summary.not_given",
    "faq.answer",
    "faq.choose",
    "faq.offer_form",
    "faq.none",
    "status.none",
    "status.header",
    "status.line",
    "status.not_found",
    "handoff.created",
    "handoff.exists",
    "offer_handoff",
    "invalid.text",
    "id_number_masked",
    "forget.confirm",
    "forget.done",
    "forget.kept",
)


@dataclass(frozen=True)
class DataProblem:
    where: str
    message: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def check_faq(paths: Sequence[Path]) -> list[DataProblem]:
    """`paths`: data dirs (holding faq/ and facts.yml). Phrasings that collide
    with another entry's are warnings (see flows.faq_checks)."""
    from flows.faq import FaqDataError, load_faq_base
    from flows.faq_checks import phrasing_collisions

    problems = []
    for data_dir in paths:
        for text in validate_faq(data_dir / "faq", data_dir / "facts.yml"):
            problems.append(DataProblem(str(data_dir / "faq"), text))
        try:
            base = load_faq_base(data_dir)
        except FaqDataError:
            continue  # already reported above
        for entry_id, text, other_id, other, similarity in phrasing_collisions(
            base.entries, base.synonyms
        ):
            problems.append(
                DataProblem(
                    str(data_dir / "faq"),
                    f"{entry_id}: phrasing {text!r} is nearly the same as {other!r} of "
                    f"{other_id} (similarity {similarity:.2f}): one entry will answer the "
                    "other's questions; move or sharpen it, or make one an alias_of the other",
                    level="warning",
                )
            )
    return problems


def check_dialogue(paths: Sequence[Path]) -> list[DataProblem]:
    """`paths`: data dirs (holding flows.yml, routing.yml and replies/)."""
    problems: list[DataProblem] = []
    for data_dir in paths:
        flows_path, routing_path = data_dir / "flows.yml", data_dir / "routing.yml"
        replies_dir = data_dir / "replies"
        try:
            raw_flows = yaml.safe_load(flows_path.read_text(encoding="utf-8"))
            raw_routes = yaml.safe_load(routing_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            problems.append(DataProblem(str(data_dir), f"cannot read flows/routing: {exc}"))
            continue
        for text in validate_flow_data(raw_flows, raw_routes, str(flows_path), str(routing_path)):
            problems.append(DataProblem(str(flows_path), text))
        for text in check_deadlines(data_dir):
            problems.append(DataProblem(str(routing_path), text))
        answers_path = data_dir / "survey" / "answers.yml"
        try:
            load_phrasings(answers_path)
        except SurveyDataError as exc:
            problems.append(DataProblem(str(answers_path), str(exc)))
        try:
            replies = Replies.load(replies_dir)
        except RepliesError as exc:
            problems.append(DataProblem(str(replies_dir), str(exc)))
            continue
        if problems:
            continue
        try:
            book = FlowBook.load(flows_path, routing_path)
        except FlowDataError as exc:
            problems.append(DataProblem(str(flows_path), str(exc)))
            continue
        wanted = [(rid, "the dialogue engine") for rid in ENGINE_REPLY_IDS]
        wanted += [(rid, "the satisfaction survey") for rid in SURVEY_REPLY_IDS]
        for flow in book.flows.values():
            wanted.append((flow.summary, f"flow {flow.name!r} summary"))
            for slot in flow.slots:
                wanted.append((slot.prompt, f"flow {flow.name!r} slot {slot.name!r} prompt"))
                if slot.invalid:
                    wanted.append((slot.invalid, f"flow {flow.name!r} slot {slot.name!r}"))
            if "human_handoff" not in book.routes:
                problems.append(DataProblem(str(routing_path), "no route for 'human_handoff'"))
        for reply_id, user in wanted:
            if reply_id not in replies:
                problems.append(
                    DataProblem(str(replies_dir), f"reply {reply_id!r} (used by {user}) is missing")
                )
    return problems
