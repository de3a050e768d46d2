"""`/staff/review`: the review queue, like Rasa X's "annotate" view, and the
gated retraining behind it.

Everyone signed in reads the queue; staff and admins label (an intent, an
FAQ entry, "needs a new FAQ entry") or dismiss; only admins retrain (in a
background thread, one at a time; the page polls the result) and switch model
versions. Labels go to the operator's data files (flows/review_labels.py).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.app import Core
from bot.workspace.accounts import StaffUser
from bot.workspace.http import Call, Context, api, page
from bot.workspace.service import ConflictError, ForbiddenError
from flows.review import KINDS, STATUSES, ReviewError, ReviewItem, ReviewQueue
from flows.review_labels import faq_labels_path, nlu_labels_path, write_labels
from flows.staff import StaffInputError
from nlu.gate import DEFAULT_HELDOUT, gated_train
from nlu.model_versions import ModelVersion, VersionError, list_versions, make_current
from nlu.types import INTENTS

log = logging.getLogger("tongxin.review")

ACTIONS = ("intent", "faq", "new_faq", "dismiss", "reopen")
FAQ_GUESS_ROWS = 50


@dataclass
class RetrainJob:
    """The one background retraining of this server (or its last result)."""

    running: bool = False
    started_by: str | None = None
    started_at: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "started_by": self.started_by,
            "started_at": self.started_at,
            "result": self.result,
            "error": self.error,
        }


class ReviewDesk:
    def __init__(self, core: Core, heldout: Path = DEFAULT_HELDOUT) -> None:
        self.core = core
        self.queue = ReviewQueue(core.store)
        self.heldout = heldout
        self.job = RetrainJob()
        self._write_lock = threading.Lock()

    # -- reading -----------------------------------------------------------

    def items(self, query: dict[str, str]) -> list[ReviewItem]:
        kind = query.get("kind") or None
        status = query.get("status", "open") or None
        if kind is not None and kind not in KINDS:
            raise StaffInputError(f"unknown kind {kind!r}; one of: {', '.join(KINDS)}")
        if status is not None and status not in STATUSES:
            raise StaffInputError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
        return self.queue.items(kind=kind, status=status)

    def faq_guesses(self, items: list[ReviewItem]) -> dict[str, list[tuple[str, float]]]:
        """The FAQ entries nearest to each unanswered question (below the answer
        threshold, or they would have answered): computed for the page, not on
        the resident's turn. Only the first `FAQ_GUESS_ROWS` rows."""
        guesses = {}
        for item in items[:FAQ_GUESS_ROWS]:
            if item.kind == "faq":
                near = self.core.faq.near_misses(item.text, 2)
                guesses[item.key] = [(m.id, float(m.score)) for m in near]
        return guesses

    def faq_entries(self) -> list[tuple[str, str]]:
        return [(e.id, e.questions[0]) for e in self.core.faq.base.entries]

    def models(self) -> list[ModelVersion]:
        return list_versions(self.core.settings.nlu.resolved_model_dir())

    # -- labelling -----------------------------------------------------------

    def label(self, user: StaffUser, key: str, action: str, value: str | None) -> ReviewItem:
        if not user.can_change:
            raise ForbiddenError("a viewer account reads only")
        if action not in ACTIONS:
            raise StaffInputError(f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")
        if action == "faq" and value not in {e for e, _ in self.faq_entries()}:
            raise StaffInputError(f"no FAQ entry {value!r}")
        status, label_kind, label = {
            "intent": ("labelled", "intent", value),
            "faq": ("labelled", "faq", value),
            "new_faq": ("new_faq", None, None),
            "dismiss": ("dismissed", None, None),
            "reopen": ("open", None, None),
        }[action]
        with self._write_lock:
            try:
                item = self.queue.set_status(
                    key, status, user.username, label_kind=label_kind, label=label
                )
            except ReviewError as exc:
                raise StaffInputError(str(exc)) from exc
            write_labels(self.queue, self.core.settings.data_dir)
        return item

    def needed_faq_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["问题", "次数", "首次", "最近", "标注人"])
        for item in self.queue.items(status="new_faq", limit=10_000):
            writer.writerow(
                [item.text, item.count, item.first_seen, item.last_seen, item.labelled_by]
            )
        return "\ufeff" + out.getvalue()  # Excel opens UTF-8 CSV with a BOM

    # -- retraining and versions (admins) --------------------------------

    def _admin(self, user: StaffUser) -> None:
        if user.role != "admin":
            raise ForbiddenError("only an admin may retrain or switch the NLU model")

    def start_retrain(self, user: StaffUser) -> dict[str, Any]:
        self._admin(user)
        job = self.job
        with job.lock:
            if job.running:
                raise ConflictError(f"a retraining started by {job.started_by} is still running")
            job.running, job.result, job.error = True, None, None
            job.started_by = user.username
            job.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        threading.Thread(target=self._retrain, name="tongxin-retrain", daemon=True).start()
        return job.to_dict()

    def _retrain(self) -> None:
        job = self.job
        started = time.perf_counter()
        try:
            live = self.core.live
            tokenizer = live.current.tokenizer if live is not None else None
            result = gated_train(self.core.settings.nlu, self.heldout, tokenizer=tokenizer)
            if result.accepted and live is not None:
                live.reload_if_changed()
            outcome: dict[str, Any] | None = result.to_dict()
            error = None
        except Exception as exc:  # shown on the page; the current model is untouched
            log.exception("retraining failed")
            outcome, error = None, f"{type(exc).__name__}: {exc}"
        with job.lock:
            job.running, job.result, job.error = False, outcome, error
        log.info("retraining done in %.1f s", time.perf_counter() - started)

    def use_version(self, user: StaffUser, version: str) -> ModelVersion:
        self._admin(user)
        model_dir = self.core.settings.nlu.resolved_model_dir()
        try:
            make_current(model_dir, version)
        except VersionError as exc:
            raise StaffInputError(str(exc)) from exc
        if self.core.live is not None:
            self.core.live.reload_if_changed()
        return next(v for v in self.models() if v.version == version)


# -- HTTP ------------------------------------------------------------------


def _routes_api(ctx: Context, desk: ReviewDesk) -> list[Route]:
    def items(call: Call) -> Response:
        return JSONResponse([i.to_dict() for i in desk.items(call.query)])

    def label(call: Call) -> Response:
        body = call.json()
        action, value = body.get("action"), body.get("value")
        if not isinstance(action, str) or (value is not None and not isinstance(value, str)):
            raise StaffInputError("action (and value) must be strings")
        return JSONResponse(desk.label(call.user, call.path("key"), action, value).to_dict())

    def retrain_start(call: Call) -> Response:
        return JSONResponse(desk.start_retrain(call.user), status_code=202)

    def retrain_state(call: Call) -> Response:
        return JSONResponse(desk.job.to_dict())

    def models(call: Call) -> Response:
        return JSONResponse([v.to_dict() for v in desk.models()])

    def use(call: Call) -> Response:
        return JSONResponse(desk.use_version(call.user, call.path("version")).to_dict())

    return [
        Route("/review/items", api(ctx, items), methods=["GET"]),
        Route("/review/items/{key}/label", api(ctx, label, change=True), methods=["POST"]),
        Route("/review/retrain", api(ctx, retrain_state), methods=["GET"]),
        Route("/review/retrain", api(ctx, retrain_start, change=True), methods=["POST"]),
        Route("/review/models", api(ctx, models), methods=["GET"]),
        Route("/review/models/{version}/use", api(ctx, use, change=True), methods=["POST"]),
    ]


def _relative(path: Path, data_dir: Path) -> str:
    return f"{data_dir.name}/{path.relative_to(data_dir)}"


def api_routes(ctx: Context, desk: ReviewDesk | None) -> list[Route]:
    return [] if desk is None else _routes_api(ctx, desk)


def page_routes(
    ctx: Context, desk: ReviewDesk | None, env: Environment, base: Any, error: Any
) -> list[BaseRoute]:
    """`/review` and the needed-FAQ download; `base(call)` gives the values every
    page template needs, `error(status, message)` renders an error page."""
    if desk is None:
        return []

    data_dir = desk.core.settings.data_dir

    def review_page(call: Call) -> Response:
        query = call.query
        kind = query.get("kind", "")
        status = query.get("status", "open")
        items = desk.items(query)
        html = env.get_template("review.html").render(
            **base(call),
            items=items,
            faq_guesses=desk.faq_guesses(items),
            counts=desk.queue.counts(),
            kind=kind,
            status=status,
            kinds=KINDS,
            statuses=STATUSES,
            intents=INTENTS,
            faq_entries=desk.faq_entries(),
            needed=desk.queue.items(status="new_faq", limit=50),
            models=desk.models(),
            job=desk.job.to_dict(),
            is_admin=call.user.role == "admin",
            heldout=desk.heldout.name,
            nlu_file=_relative(nlu_labels_path(data_dir), data_dir),
            faq_file=_relative(faq_labels_path(data_dir), data_dir),
        )
        return HTMLResponse(html)

    def needed_csv(call: Call) -> Response:
        return Response(
            desk.needed_faq_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="needed-faq.csv"'},
        )

    return [
        Route("/review", page(ctx, review_page, error), methods=["GET"]),
        Route("/review/needed-faq.csv", page(ctx, needed_csv, error), methods=["GET"]),
    ]
