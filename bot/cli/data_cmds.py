"""`tongxin check-data`: validate every data file, with file- and item-level messages.

Each kind of data registers a `DataCheck` in `DATA_CHECKS`: a name, where its
files are by default, and a function from paths to problems. A problem is any
object with a `level` ("error" or "warning") whose `str()` names the file and
item (nlu.training_data.Problem, flows.checks.DataProblem). A new kind of data
plugs in by adding an entry; it also gets a `--NAME PATH` option.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.cli.common import add_command


class ProblemLike(Protocol):
    @property
    def level(self) -> str: ...

    def __str__(self) -> str: ...


@dataclass(frozen=True)
class DataCheck:
    name: str
    description: str
    # Default files or directories, given the environment (the CLI is a composition root).
    default_paths: Callable[[dict[str, str]], list[Path]]
    check: Callable[[Sequence[Path]], Sequence[ProblemLike]]


def _nlu_paths(environ: dict[str, str]) -> list[Path]:
    from flows.paths import data_dir_from_env, operator_nlu_dir
    from nlu.settings import ENV_DATA
    from nlu.training_data import default_data_paths, resolve_data_paths

    # The operator's labels (the review queue's) are checked with the rest.
    operator = operator_nlu_dir(data_dir_from_env(environ))
    labels = resolve_data_paths([operator]) if operator.is_dir() else []
    if environ.get(ENV_DATA):
        return [Path(p) for p in environ[ENV_DATA].split(os.pathsep) if p.strip()] + labels
    return default_data_paths() + labels


def _nlu_check(paths: Sequence[Path]) -> Sequence[ProblemLike]:
    from nlu.training_data import check_data

    return check_data(paths)


def _data_dirs(environ: dict[str, str]) -> list[Path]:
    from flows.paths import data_dir_from_env

    return [data_dir_from_env(environ)]


def _faq_check(paths: Sequence[Path]) -> Sequence[ProblemLike]:
    from flows.checks import check_faq

    return check_faq(paths)


def _dialogue_check(paths: Sequence[Path]) -> Sequence[ProblemLike]:
    from flows.checks import check_dialogue

    return check_dialogue(paths)


def _form_turn_paths(environ: dict[str, str]) -> list[Path]:
    from nlu.form_acts import default_form_turn_paths

    return default_form_turn_paths()


def _form_turn_check(paths: Sequence[Path]) -> Sequence[ProblemLike]:
    from nlu.form_acts import check_form_turns

    return check_form_turns(paths)


def _templates_check(paths: Sequence[Path]) -> Sequence[ProblemLike]:
    from bot.channels.wechat.templates import TEMPLATES_FILE, template_problems
    from flows.checks import DataProblem

    problems = []
    for data_dir in paths:
        path = data_dir / TEMPLATES_FILE if data_dir.is_dir() else data_dir
        if path.exists():
            problems += [DataProblem(str(path), text) for text in template_problems(path)]
    return problems


DATA_CHECKS: tuple[DataCheck, ...] = (
    DataCheck(
        "nlu",
        "Rasa NLU training data (nlu/data/*.yml and the labels in <data>/nlu/)",
        _nlu_paths,
        _nlu_check,
    ),
    DataCheck("faq", "data directory with faq/ and facts.yml", _data_dirs, _faq_check),
    DataCheck(
        "dialogue",
        "data directory with flows.yml, routing.yml, replies/",
        _data_dirs,
        _dialogue_check,
    ),
    DataCheck(
        "form-turns",
        "form-turn act data (nlu/data/form_turns/*.yml)",
        _form_turn_paths,
        _form_turn_check,
    ),
    DataCheck(
        "templates",
        "WeChat template messages (data/wechat_templates.yml)",
        _data_dirs,
        _templates_check,
    ),
)


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "check-data",
        "Validate the data files (NLU training data, FAQ and facts, flows, routing and reply "
        "texts) and print every problem with its file, line and item. Exit status 1 when "
        "there are errors (with --strict, also warnings).",
        "tongxin check-data\n  tongxin check-data --launch\n"
        "  tongxin check-data --nlu nlu/data/nlu_microloan.yml",
    )
    for check in DATA_CHECKS:
        parser.add_argument(
            f"--{check.name}",
            dest=f"paths_{check.name}",
            action="append",
            metavar="PATH",
            help=f"check only these {check.description} files (repeatable)",
        )
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument("--quiet", action="store_true", help="print errors and the summary only")
    parser.add_argument(
        "--launch",
        action="store_true",
        help="also list what must be filled in before going live (fact placeholders, "
        "templates, settings of the channels that are on); exit status 1 while any remain",
    )
    parser.set_defaults(handler=cmd_check_data)


def run_checks(
    checks: Sequence[DataCheck], chosen: dict[str, list[Path]], environ: dict[str, str]
) -> dict[str, list[ProblemLike]]:
    """Problems per check; with `chosen` non-empty only the checks named there run."""
    results: dict[str, list[ProblemLike]] = {}
    for check in checks:
        if chosen and check.name not in chosen:
            continue
        paths = chosen.get(check.name) or check.default_paths(environ)
        results[check.name] = list(check.check(paths))
    return results


def cmd_check_data(args: argparse.Namespace) -> int:
    chosen = {
        check.name: [Path(p) for p in getattr(args, f"paths_{check.name}")]
        for check in DATA_CHECKS
        if getattr(args, f"paths_{check.name}", None)
    }
    results = run_checks(DATA_CHECKS, chosen, dict(os.environ))
    errors = warnings = 0
    for name, problems in results.items():
        for problem in problems:
            if problem.level == "error":
                errors += 1
            else:
                warnings += 1
            if problem.level == "error" or not args.quiet:
                print(problem)
        n_errors = sum(1 for p in problems if p.level == "error")
        summary = f"{name}: {n_errors} error(s), {len(problems) - n_errors} warning(s)"
        print(summary, file=sys.stderr)
    failed = errors > 0 or (args.strict and warnings > 0)
    if not chosen:
        failed = _launch_report(dict(os.environ), listing=args.launch) or failed
    print("check-data: " + ("FAILED" if failed else "ok"), file=sys.stderr)
    return 1 if failed else 0


def _launch_report(environ: dict[str, str], *, listing: bool) -> bool:
    """With `listing`, print every gap before going live and return True while
    any remain; else print their count as a warning and return False."""
    from bot.launch import gaps_by_area, launch_gaps
    from flows.paths import data_dir_from_env

    gaps = launch_gaps(data_dir_from_env(environ), environ)
    counts = ", ".join(f"{n} {area}(s)" for area, n in gaps_by_area(gaps).items())
    if not listing:
        if gaps:
            print(
                f"warning: launch: {len(gaps)} item(s) still to fill in before going live "
                f"({counts}); `tongxin check-data --launch` lists them",
                file=sys.stderr,
            )
        return False
    for gap in gaps:
        print(f"launch: {gap}")
    summary = f"{len(gaps)} item(s) to fill in ({counts})" if gaps else "nothing left to fill in"
    print(f"launch: {summary}", file=sys.stderr)
    return bool(gaps)
