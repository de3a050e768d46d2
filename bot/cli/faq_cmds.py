"""`tongxin faq ask`, `faq test` and `faq list`: the FAQ base from the command line."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import CliError, add_command, add_group, read_stdin_lines

if TYPE_CHECKING:
    from flows.faq import FaqBase, FaqMatch, FaqRetriever

MAX_K = 20
# Undecodable argv bytes arrive as lone surrogates, which cannot be written as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def register(sub: Any) -> None:
    fsub = add_group(
        sub,
        "faq",
        "ask the FAQ base, list its entries",
        "The FAQ base in data/faq/ (with district facts from data/facts.yml).",
        "echo 红色信贷利息多少 | tongxin faq ask",
    )

    ask = add_command(
        fsub,
        "ask",
        "Find the FAQ entries that answer a question: one JSON object per question "
        '({"text": ..., "matches": [{"id", "score", "question", "answer"}]}, best first; '
        "an empty list when nothing fits). Reads one question per line from stdin "
        "unless a question is given.",
        "printf '红色信贷利息多少\\n调解收费吗\\n' | tongxin faq ask\n"
        '  tongxin faq ask "和和家调解室在哪" --k 1',
    )
    ask.add_argument("text", nargs="?", help="one question (default: read stdin)")
    ask.add_argument(
        "--k", type=int, default=3, help=f"at most this many matches (1-{MAX_K}, default 3)"
    )
    ask.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="SCORE",
        help="minimum score 0-1 (default: the tuned one; 0 shows every candidate)",
    )
    ask.add_argument(
        "--pretty",
        action="store_true",
        help="readable text for staff instead of JSON lines (scores, ids, answers)",
    )
    _add_data_dir(ask)
    ask.set_defaults(handler=cmd_ask)

    test = add_command(
        fsub,
        "test",
        "Measure the FAQ like `nlu test`: top-1 and top-3 (the right entry first / among "
        "the matches) and no-answer (questions no entry answers get nothing), with every "
        "miss. --data FILE is a YAML list of {text, faq_id} (faq_id null: nothing should "
        "answer); without it, the figures cross-validated on the phrasings when the "
        "ranker was fitted.",
        "tongxin faq test --data tests/flows/faq_blind.yml",
    )
    test.add_argument(
        "--data", metavar="FILE", action="append", help="labelled questions (repeatable)"
    )
    test.add_argument("--quiet", action="store_true", help="only the summary line")
    _add_data_dir(test)
    test.set_defaults(handler=cmd_test)

    lst = add_command(
        fsub, "list", "List the FAQ entries: id and first question.", "tongxin faq list --json"
    )
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    _add_data_dir(lst)
    lst.set_defaults(handler=cmd_list)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder with faq/ and facts.yml (default: $TONGXIN_DATA_DIR or the bundled one)",
    )


def _data_dir(args: argparse.Namespace) -> Path:
    from flows.paths import data_dir_from_env

    return Path(args.data_dir) if args.data_dir else data_dir_from_env(os.environ)


def _load_base(args: argparse.Namespace) -> FaqBase:
    from flows.faq import FaqDataError, load_faq_base, validate_faq

    data_dir = _data_dir(args)
    try:
        base = load_faq_base(data_dir)
    except FaqDataError as exc:
        raise CliError(f"cannot load the FAQ from {data_dir}: {exc}") from exc
    # The bot skips bad entries; say so, so that an operator fixes them.
    problems = validate_faq(data_dir / "faq", data_dir / "facts.yml")
    if problems:
        print(
            f"tongxin: warning: {len(problems)} problem(s) in the FAQ data, first: {problems[0]}",
            file=sys.stderr,
        )
    return base


def _write_line(obj: Any) -> None:
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    # Bytes, so that a non-UTF-8 locale cannot turn Chinese output into an error.
    sys.stdout.buffer.write(line.encode("utf-8"))


def _retriever(args: argparse.Namespace) -> FaqRetriever:
    from flows.faq import build_index
    from nlu.settings import NluSettings, SettingsError

    try:
        model_dir = NluSettings.from_env(os.environ).resolved_model_dir()
    except SettingsError as exc:
        raise CliError(str(exc)) from exc
    return build_index(
        _load_base(args),
        cache_dir=model_dir,
        notify=lambda note: print(f"tongxin: {note}", file=sys.stderr),
    )


def _pretty(text: str, matches: list[FaqMatch]) -> str:
    lines = [f"问：{text}"]
    if not matches:
        lines.append("  （没有合适的条目：机器人会说没有这方面的信息，并提供转人工）")
    for n, m in enumerate(matches, 1):
        lines.append(f"  {n}. {m.id}  得分 {m.score:.2f}  「{m.question}」")
        if n == 1:
            lines += [f"     {line}" for line in m.answer.splitlines()]
    return "\n".join(lines) + "\n\n"


def cmd_ask(args: argparse.Namespace) -> int:
    if not 1 <= args.k <= MAX_K:
        raise CliError(f"--k must be between 1 and {MAX_K}, got {args.k}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise CliError(f"--threshold must be between 0 and 1, got {args.threshold}")
    questions = [args.text] if args.text is not None else read_stdin_lines()
    index = _retriever(args)
    for raw in questions:
        text = _SURROGATE.sub("\ufffd", raw)
        matches = index.search(text, args.k, threshold=args.threshold)
        if args.pretty:
            sys.stdout.buffer.write(_pretty(text, matches).encode("utf-8"))
        else:
            _write_line({"text": text, "matches": [m.to_dict() for m in matches]})
    sys.stdout.flush()
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from flows.faq_eval import FaqTestDataError, evaluate, load_labelled

    index = _retriever(args)
    out: list[str] = []
    if not args.data:
        report = index.model.report
        out.append(
            f"cross-validated on {int(report.get('phrasings', 0))} phrasings and "
            f"{int(report.get('uncovered', 0))} uncovered questions "
            f"(threshold {index.threshold:.3f}):"
        )
        out.append(
            f"faq: top1={report.get('cv_top1', 0):.3f} "
            f"answered_right={report.get('cv_answered_right', 0):.3f} "
            f"no_answer={report.get('cv_uncovered_declined', 0):.3f}"
        )
    for path in args.data or []:
        try:
            items = load_labelled(Path(path))
        except FaqTestDataError as exc:
            raise CliError(str(exc)) from exc
        report_ = evaluate(index, items)
        out.append(f"{path}:")
        if not args.quiet:
            for want, got, best, text in report_.misses:
                shown = got or "(no answer)"
                out.append(f"  miss {want:28s} got {shown:28s} best [{', '.join(best)}] {text}")
            for got_id, score, text in report_.false_answers:
                out.append(f"  false answer {got_id} {score:.2f} for {text}")
        out.append(report_.summary())
    sys.stdout.buffer.write(("\n".join(out) + "\n").encode("utf-8"))
    sys.stdout.flush()
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    base = _load_base(args)
    if args.json:
        rows = [
            {"id": e.id, "intent": e.intent, "question": e.questions[0], "tags": list(e.tags)}
            for e in base.entries
        ]
        sys.stdout.buffer.write(
            (json.dumps(rows, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        )
        sys.stdout.flush()
        return 0
    width = max(len(e.id) for e in base.entries)
    out = "".join(f"{e.id:<{width}}  {e.questions[0]}\n" for e in base.entries)
    sys.stdout.buffer.write(out.encode("utf-8"))
    sys.stdout.flush()
    return 0
