"""The parser a running server uses: it follows the current model on disk.

A gated retraining or a rollback (here or from `tongxin nlu train --gate` in
another process) rewrites `<model_dir>/metadata.json` atomically. At most
every `CHECK_EVERY_S` a turn stats that file; when it changed, the new model
is loaded (with the server's tokenizer, so jieba's dictionary is not loaded
twice) and replaces the old parser in one reference assignment. A model that
cannot be loaded leaves the old one serving.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from nlu.classifier import METADATA_FILE, ModelError, load_model
from nlu.parser import Parser, parser_for_model
from nlu.settings import NluSettings
from nlu.types import ParseResult

log = logging.getLogger("tongxin.nlu")

CHECK_EVERY_S = 5.0


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino)


class LiveParser:
    def __init__(
        self,
        parser: Parser,
        settings: NluSettings,
        *,
        check_every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parser = parser
        self._settings = settings
        self._metadata = settings.resolved_model_dir() / METADATA_FILE
        self._stamp = _stamp(self._metadata)
        self._check_every_s = check_every_s
        self._clock = clock
        self._next_check = clock() + check_every_s
        self._lock = threading.Lock()

    @property
    def current(self) -> Parser:
        return self._parser

    def parse(self, text: str) -> ParseResult:
        if self._clock() >= self._next_check:
            self.reload_if_changed(wait=False)
        return self._parser.parse(text)

    def read_act(self, text: str, asked: str, parse: ParseResult) -> list[tuple[str, float]]:
        """The current model's form-act reader (nlu/form_acts.py); [] without one."""
        form_acts = self._parser.form_acts
        return [] if form_acts is None else form_acts.rank(text, asked, parse)

    def reload_if_changed(self, *, wait: bool = True) -> bool:
        """Load the model on disk if it is not the one serving; True when swapped.
        `wait=False` (a turn) returns at once while another thread is loading."""
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            return self._reload_locked()
        finally:
            self._lock.release()

    def _reload_locked(self) -> bool:
        self._next_check = self._clock() + self._check_every_s
        stamp = _stamp(self._metadata)
        if stamp is None or stamp == self._stamp:
            return False
        old = self._parser
        try:
            model = load_model(self._metadata.parent)
            new = parser_for_model(model, old.tokenizer, self._settings, old.remote)
        except (ModelError, OSError) as exc:
            log.warning("new NLU model not loaded, the old one keeps serving: %s", exc)
            return False
        self._stamp = stamp
        self._parser = new
        log.info("NLU model %s loaded", model.metadata.get("version", "(unversioned)"))
        return True
