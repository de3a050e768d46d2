"""Scripted whole conversations (the blind-written YAML format of
`tests/flows/dialogues_blind.yml`), run in-process through the dispatcher on a
real SQLite file and judged by what the database holds afterwards: the tickets
and signups a staff member would see. `python -m tests.flows.scripted_dialogues
FILE` prints the misses and a pass count; the pytest in
test_blind_dialogues.py holds a floor."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.app import Core, build_core
from bot.settings import Settings
from flows.messages import IncomingMessage
from flows.paths import default_data_dir
from nlu.parser import Parser

_CANCELLED = re.compile(r"cancel|withdraw|已取消|已撤销", re.I)


@dataclass(frozen=True)
class Outcome:
    name: str
    problems: list[str]
    transcript: list[tuple[str, str]]

    @property
    def passed(self) -> bool:
        return not self.problems


def load(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text(encoding="utf-8")))


def _strings(x: Any) -> Iterator[str]:
    if isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)
    elif x is not None:
        yield str(x)


def judge(expect: dict[str, Any], tickets: list[dict], vols: list[dict], raw: str) -> list[str]:
    why: list[str] = []
    live = [t for t in tickets if not _CANCELLED.search(str(t.get("status", "")))]
    if "ticket" in expect:
        w = expect["ticket"]
        cands = [t for t in live if t.get("kind") == w["kind"]]
        if "phone" in w:
            cands = [t for t in cands if (t.get("phone") or None) == w["phone"]]
        if "amount" in w:
            want = (str(w["amount"]), f"{w['amount']}.0")
            cands = [t for t in cands if any(s in want for s in _strings(t.get("fields")))]
        for sub in w.get("fields_contain") or []:
            cands = [t for t in cands if any(sub in s for s in _strings(t.get("fields")))]
        if not cands:
            have = [(t.get("kind"), t.get("phone"), t.get("fields")) for t in live]
            why.append(f"no ticket like {w}; have {have}")
    if "tickets_count" in expect and len(live) != expect["tickets_count"]:
        why.append(f"tickets_count {len(live)} != {expect['tickets_count']}")
    if expect.get("no_ticket") and live:
        why.append(f"expected no ticket, have {[t.get('kind') for t in live]}")
    for kind in expect.get("no_ticket_kind") or []:
        if any(t.get("kind") == kind for t in live):
            why.append(f"unexpected {kind} ticket")
    if "volunteer" in expect:
        w = expect["volunteer"]
        found = [v for v in vols if v.get("phone") == w.get("phone")]
        team = w.get("team_contains")
        if team:
            alternatives = team if isinstance(team, list) else [team]
            found = [v for v in found if any(s in str(v.get("team", "")) for s in alternatives)]
        if not found:
            why.append(
                f"no volunteer like {w}; have {[(v.get('phone'), v.get('team')) for v in vols]}"
            )
    if "volunteers_count" in expect and len(vols) != expect["volunteers_count"]:
        why.append(f"volunteers_count {len(vols)} != {expect['volunteers_count']}")
    if expect.get("no_volunteer") and vols:
        why.append("expected no volunteer")
    idn = expect.get("no_id_number_stored")
    if idn:
        compact = re.sub(r"[\s\-.]", "", idn)
        squeezed = re.sub(r"[\s\-.]", "", raw)
        if idn.lower() in raw.lower() or compact.lower() in squeezed.lower():
            why.append("ID number stored in clear")
    return why


def _raw_bytes(db: Path) -> str:
    blob = ""
    for suffix in ("", "-wal", "-journal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            blob += path.read_bytes().decode("utf-8", "replace")
    return blob


def run_one(dialogue: dict[str, Any], parser: Parser, workdir: Path) -> Outcome:
    db = workdir / f"{dialogue['name']}.db"
    settings = Settings(db_path=db, data_dir=default_data_dir())
    core: Core = build_core(settings, parser=parser, inline_outbox=frozenset({"shell"}))
    transcript: list[tuple[str, str]] = []
    try:
        for turn in dialogue["turns"]:
            msg = IncomingMessage(channel="shell", user_id=f"eval-{dialogue['name']}", text=turn)
            replies = core.dispatcher.handle(msg)
            transcript.append((turn, "\n".join(r.text for r in replies)))
        tickets = [t.to_dict() for t in core.store.list_tickets()]
        vols = [asdict(v) for v in core.store.list_volunteers()]
        blob = json.dumps([tickets, vols], ensure_ascii=False)
    finally:
        core.close()
    problems = judge(dialogue["expect"], tickets, vols, blob + _raw_bytes(db))
    return Outcome(dialogue["name"], problems, transcript)


def run_all(dialogues: list[dict[str, Any]], parser: Parser) -> list[Outcome]:
    with tempfile.TemporaryDirectory() as tmp:
        return [run_one(d, parser, Path(tmp)) for d in dialogues]


def main(argv: list[str]) -> int:
    from nlu.parser import load_parser
    from nlu.settings import NluSettings

    show = "--show" in argv
    paths = [a for a in argv if not a.startswith("--")]
    parser = load_parser(NluSettings.from_env(os.environ))
    for path in paths:
        outcomes = run_all(load(Path(path)), parser)
        for o in outcomes:
            if o.passed:
                continue
            print(f"FAIL {o.name}: {'; '.join(o.problems)}")
            if show:
                for said, heard in o.transcript:
                    print(f"   > {said}\n     " + heard.replace("\n", "\n     "))
        passed = sum(o.passed for o in outcomes)
        print(f"{path}: passed={passed}/{len(outcomes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
