"""`tongxin faq ask` and `tongxin faq list`: the FAQ base from the command line."""

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
    from flows.faq import FaqBase

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
    _add_data_dir(ask)
    ask.set_defaults(handler=cmd_ask)

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


def cmd_ask(args: argparse.Namespace) -> int:
    from flows.faq import build_index

    if not 1 <= args.k <= MAX_K:
        raise CliError(f"--k must be between 1 and {MAX_K}, got {args.k}")
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise CliError(f"--threshold must be between 0 and 1, got {args.threshold}")
    questions = [args.text] if args.text is not None else read_stdin_lines()
    index = build_index(_load_base(args))
    for raw in questions:
        text = _SURROGATE.sub("\ufffd", raw)
        matches = index.search(text, args.k, threshold=args.threshold)
        _write_line({"text": text, "matches": [m.to_dict() for m in matches]})
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
