"""`tongxin nlu train --gate` and `tongxin nlu models list|use`: gated retraining
and the kept model versions (nlu/gate.py, nlu/model_versions.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import CliError, add_command, add_group, data_error
from bot.cli.nlu_cmds import settings_from_args

if TYPE_CHECKING:
    from nlu.gate import GateResult
    from nlu.settings import NluSettings


def register(nsub: Any) -> None:
    msub = add_group(
        nsub,
        "models",
        "list the kept model versions, or make one current (rollback)",
        "The intent models the gate accepted, newest first, with their held-out figures; "
        "`use VERSION` makes one current again (a running server picks it up within "
        "seconds).",
        "tongxin nlu models list\n  tongxin nlu models use v2",
    )
    listing = add_command(
        msub, "list", "List kept model versions, newest first.", "tongxin nlu models list --json"
    )
    listing.add_argument("--model-dir", metavar="DIR", help="trained model location")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.set_defaults(handler=cmd_list)
    use = add_command(
        msub, "use", "Make a kept model version current (roll back).", "tongxin nlu models use v2"
    )
    use.add_argument("version", help="a version from `tongxin nlu models list`, e.g. v2")
    use.add_argument("--model-dir", metavar="DIR", help="trained model location")
    use.set_defaults(handler=cmd_use)


def format_gate(result: GateResult) -> str:
    def row(name: str, figures: Any) -> str:
        if figures is None:
            return f"  {name:<12} —"
        return f"  {name:<12} {figures.accuracy:>8.2%}   {figures.macro_f1:.4f}"

    lines = [
        f"held-out: {result.heldout} ({result.after.examples} messages)",
        f"  {'':<12} {'accuracy':>8}   macro-F1",
        row("current", result.before),
        row("candidate", result.after),
    ]
    if result.accepted:
        lines.append(
            f"accepted ({result.reason}): the candidate is now current as {result.version} "
            f"(trained on {result.n_examples} examples, {result.seconds:.1f} s)"
        )
    else:
        lines.append(f"refused: {result.reason}; the current model is unchanged")
    return "\n".join(lines)


def gated(settings: NluSettings, heldout: str, keep: int) -> int:
    from nlu.gate import DEFAULT_HELDOUT, gated_train
    from nlu.training_data import TrainingDataError

    if keep < 1:
        raise CliError("--keep needs N >= 1")
    try:
        result = gated_train(
            settings,
            Path(heldout) if heldout else DEFAULT_HELDOUT,
            keep=keep,
            notify=lambda m: print(f"tongxin: note: {m}", file=sys.stderr, flush=True),
        )
    except TrainingDataError as exc:
        raise data_error(exc) from None
    except OSError as exc:
        raise CliError(
            f"cannot write the model to {settings.resolved_model_dir()}: {exc}"
        ) from None
    print(format_gate(result))
    return 0 if result.accepted else 1


def _model_dir(args: argparse.Namespace) -> Path:
    return settings_from_args(args).resolved_model_dir()


def cmd_list(args: argparse.Namespace) -> int:
    from nlu.model_versions import list_versions

    versions = list_versions(_model_dir(args))
    if args.json:
        print(json.dumps([v.to_dict() for v in versions], ensure_ascii=False))
        return 0
    if not versions:
        print("no kept model versions yet: `tongxin nlu train --gate` keeps one")
        return 0
    for v in versions:
        f = v.figures or {}
        figures = (
            f"accuracy {f['accuracy']:.2%}, macro-F1 {f['macro_f1']:.4f}"
            if "accuracy" in f and "macro_f1" in f
            else "no held-out figures"
        )
        mark = "*" if v.current else " "
        print(
            f"{mark} {v.version:<5} {v.trained_at:<25} {v.n_examples:>6} examples  {figures}  "
            f"data {v.data_hash[:12]}"
        )
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    from nlu.model_versions import VersionError, make_current
    from nlu.parser import parser_for_model
    from nlu.tokenizer import Tokenizer

    settings = settings_from_args(args)
    model_dir = settings.resolved_model_dir()
    try:
        model = make_current(model_dir, args.version)
        # Fitted here rather than by a server on its next turn (nlu/live_parser.py).
        parser_for_model(
            model, Tokenizer(settings.userdict, settings.resolved_cache_dir()), settings
        )
    except VersionError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write the model to {model_dir}: {exc}") from None
    print(f"{args.version} is now the current model in {model_dir}")
    return 0
