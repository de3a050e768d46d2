"""`tongxin nlu train|parse|test|export-rasa|models`: the NLU layer from the command line.

Settings come from the environment (TONGXIN_NLU_DATA, TONGXIN_MODEL_DIR,
TONGXIN_NLU_THRESHOLD, TONGXIN_NLU_AMBIGUITY, TONGXIN_RASA_URL, XDG_CACHE_HOME)
and are overridden by options. Heavy imports stay inside the handlers so that
`tongxin nlu parse` starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import CliError, add_command, add_group, data_error

if TYPE_CHECKING:
    from nlu.settings import NluSettings


def register(sub: Any) -> None:
    nsub = add_group(
        sub,
        "nlu",
        "train, parse, test and export the NLU model",
        "Understand messages: train, parse, test and export the intent/entity model.",
        'tongxin nlu parse "开小吃店想贷五万块钱，利息多少"',
    )

    train = add_command(
        nsub,
        "train",
        "Train the intent classifier on the Rasa NLU files and save it with its metadata "
        "(data hash, library versions). Default model dir: $TONGXIN_MODEL_DIR or "
        "~/.cache/tongxin/model.",
        "tongxin nlu train --out /tmp/tongxin-model",
    )
    _add_data_option(
        train,
        "training data file or directory (repeatable; default: nlu/data/ and the operator's "
        "labels in $TONGXIN_DATA_DIR/nlu/)",
    )
    train.add_argument("--out", metavar="DIR", help="where to save the model")
    train.add_argument(
        "--gate",
        nargs="?",
        const="",
        metavar="FILE",
        help="compare with the current model on this held-out file (default: "
        "nlu/data/gate/heldout.yml) and make the new model current only if accuracy and "
        "macro-F1 do not drop; exit status 1 when refused",
    )
    train.add_argument(
        "--keep", type=int, default=5, metavar="N", help="with --gate: model versions kept"
    )
    train.set_defaults(handler=cmd_train)
    from bot.cli import nlu_models_cmds  # it imports this module

    nlu_models_cmds.register(nsub)

    parse = add_command(
        nsub,
        "parse",
        "Parse messages into Rasa-style JSON (intent, intent_ranking, entities): one JSON "
        "object per line. Reads one message per line from stdin unless messages are given. "
        "Trains the model first when none exists (a note goes to stderr).",
        "printf '你好\\n楼上天天半夜吵\\n' | tongxin nlu parse\n"
        '  tongxin nlu parse "开小吃店想贷五万块钱，利息多少"',
    )
    parse.add_argument("text", nargs="*", help="message(s) to parse (default: stdin lines)")
    _add_model_options(parse)
    parse.add_argument(
        "--rasa-url", metavar="URL", help="ask this Rasa server first (default: $TONGXIN_RASA_URL)"
    )
    parse.add_argument(
        "--debug",
        action="store_true",
        help='add "backend": which model answered ("rasa" or "embedded") to each line',
    )
    parse.set_defaults(handler=cmd_parse)

    test = add_command(
        nsub,
        "test",
        "Evaluate like `rasa test nlu`: accuracy, macro-F1, per-intent precision/recall/F1, "
        "worst confusions, entity scores. --data FILE tests the trained model on FILE (a Rasa "
        "NLU file or a YAML list of {text, intent}); --cv K runs K-fold cross-validation on "
        "the training data (or on --data FILE); with neither, the model is tested on its own "
        "training data.",
        "tongxin nlu test --cv 10 --json-report /tmp/nlu-report.json",
    )
    test.add_argument("--data", metavar="FILE", help="labelled test messages")
    test.add_argument("--cv", type=int, metavar="K", help="K-fold stratified cross-validation")
    test.add_argument(
        "--group-variants",
        action="store_true",
        help="with --cv: keep variants of one message (你好 / 你好呀！) in the same fold",
    )
    test.add_argument("--seed", type=int, default=0, help="with --cv: the fold order (default: 0)")
    test.add_argument("--json-report", metavar="FILE", help="also write the full report as JSON")
    test.add_argument("--errors", type=int, default=0, metavar="N", help="print N misclassified")
    _add_data_option(test, "training data file or directory (repeatable)", flag="--train-data")
    _add_model_options(test)
    test.set_defaults(handler=cmd_test)

    export = add_command(
        nsub,
        "export-rasa",
        "Write a Rasa project (config.yml with a JiebaTokenizer pipeline, domain.yml, data/, "
        "the jieba user dictionary) ready for `rasa train nlu`; scripts/rasa.sh train DIR "
        "exports and trains in one go.",
        "tongxin nlu export-rasa /tmp/tongxin-rasa\n"
        "  tongxin nlu export-rasa /tmp/rasa-small --max-per-intent 40 --epochs 10",
    )
    export.add_argument("out", metavar="DIR", help="output directory")
    export.add_argument(
        "--epochs",
        type=_positive_int,
        default=RASA_EPOCHS,
        metavar="N",
        help=f"DIET training epochs (default: {RASA_EPOCHS}; the README has timings)",
    )
    export.add_argument(
        "--max-per-intent",
        type=_positive_int,
        metavar="N",
        help="train on an even sample of at most N examples per intent (a quick model)",
    )
    _add_data_option(export, "training data file or directory (repeatable)")
    _add_threshold_options(export)
    export.set_defaults(handler=cmd_export)


# nlu.export.RasaTraining().epochs, repeated so that `--help` needs no import.
RASA_EPOCHS = 30


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} must be at least 1")
    return value


def _add_data_option(parser: argparse.ArgumentParser, help_text: str, flag: str = "--data") -> None:
    parser.add_argument(
        flag, dest="train_data", action="append", metavar="PATH", default=None, help=help_text
    )


def _add_threshold_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="P",
        help="fallback below this confidence (default: $TONGXIN_NLU_THRESHOLD or 0.4)",
    )
    parser.add_argument(
        "--ambiguity",
        type=float,
        metavar="P",
        help="fallback when the top two are closer than this (default: $TONGXIN_NLU_AMBIGUITY "
        "or 0.1)",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", metavar="DIR", help="trained model location")
    _add_threshold_options(parser)


def settings_from_args(args: argparse.Namespace) -> NluSettings:
    """Environment first, then options: the CLI is a composition root."""
    from flows.paths import data_dir_from_env, operator_nlu_dir
    from nlu.settings import NluSettings, SettingsError

    try:
        settings = NluSettings.from_env(os.environ)
        changes: dict[str, Any] = {
            "operator_data": (operator_nlu_dir(data_dir_from_env(os.environ)),)
        }
        if getattr(args, "train_data", None):
            changes["data_paths"] = tuple(Path(p) for p in args.train_data)
        if getattr(args, "model_dir", None):
            changes["model_dir"] = Path(args.model_dir)
        if getattr(args, "threshold", None) is not None:
            changes["fallback_threshold"] = args.threshold
        if getattr(args, "ambiguity", None) is not None:
            changes["ambiguity_threshold"] = args.ambiguity
        if getattr(args, "rasa_url", None):
            changes["rasa_url"] = args.rasa_url
        return replace(settings, **changes)
    except SettingsError as exc:
        raise CliError(str(exc)) from None


def _note(message: str) -> None:
    print(f"tongxin: note: {message}", file=sys.stderr, flush=True)


def _data_files(settings: NluSettings) -> list[Path]:
    files = settings.training_files()
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise CliError(f"NLU data file(s) not found: {', '.join(missing)}")
    if not files:
        raise CliError("no NLU data files found")
    return files


def _load_parser(settings: NluSettings) -> Any:
    from nlu.classifier import ModelError
    from nlu.parser import load_parser
    from nlu.training_data import TrainingDataError

    try:
        return load_parser(settings, notify=_note)
    except TrainingDataError as exc:
        raise data_error(exc) from None
    except ModelError as exc:
        raise CliError(str(exc)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from nlu.tokenizer import Tokenizer
    from nlu.training import train_and_save
    from nlu.training_data import TrainingDataError

    settings = settings_from_args(args)
    if args.out:
        settings = replace(settings, model_dir=Path(args.out))
    files = _data_files(settings)
    if args.gate is not None:
        from bot.cli.nlu_models_cmds import gated

        return gated(settings, args.gate, args.keep)
    tokenizer = Tokenizer(settings.userdict, settings.resolved_cache_dir())
    try:
        _model, summary = train_and_save(
            files, settings.resolved_model_dir(), tokenizer, base_files=settings.base_files()
        )
    except TrainingDataError as exc:
        raise data_error(exc) from None
    except OSError as exc:
        raise CliError(
            f"cannot write the model to {settings.resolved_model_dir()}: {exc}"
        ) from None
    for problem in summary.problems:
        print(problem, file=sys.stderr)
    print(
        f"trained on {summary.n_examples} examples, {summary.n_intents} intents, "
        f"{summary.n_features} features in {summary.seconds:.1f} s "
        f"(temperature {summary.temperature:.2f}); model saved to {summary.model_dir}"
    )
    return 0


def _stdin_messages() -> Iterator[str]:
    # Bytes, split on \n only, decoded per line: invalid UTF-8 in one line
    # becomes U+FFFD there and cannot stop the batch.
    for raw in sys.stdin.buffer:
        yield raw.rstrip(b"\n").rstrip(b"\r").decode("utf-8", errors="replace")


def _argv_text(text: str) -> str:
    # Undecodable argv bytes arrive as surrogate escapes; make them U+FFFD.
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def cmd_parse(args: argparse.Namespace) -> int:
    from nlu.types import FALLBACK_INTENT

    settings = settings_from_args(args)
    parser = _load_parser(settings)
    messages = (_argv_text(t) for t in args.text) if args.text else _stdin_messages()
    out = sys.stdout
    out.flush()
    for text in messages:
        try:
            parsed = parser.parse(text)
            result = parsed.to_dict()
            if args.debug:
                result["backend"] = parsed.backend
        except Exception as exc:  # one bad message must not stop the batch
            print(f"tongxin: error parsing a message: {type(exc).__name__}", file=sys.stderr)
            result = {
                "text": text,
                "intent": {"name": FALLBACK_INTENT, "confidence": settings.fallback_threshold},
                "intent_ranking": [],
                "entities": [],
            }
        line = json.dumps(result, ensure_ascii=False) + "\n"
        out.buffer.write(line.encode("utf-8", "replace"))
        out.buffer.flush()
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from nlu.evaluate import cross_validate, evaluate_parser, format_report
    from nlu.tokenizer import Tokenizer
    from nlu.training_data import (
        TrainingData,
        TrainingDataError,
        load_examples,
        load_training_data,
    )

    settings = settings_from_args(args)
    try:
        if args.cv is not None:
            if args.cv < 2:
                raise CliError("--cv needs K >= 2")
            if args.data:
                data = TrainingData(tuple(load_examples(Path(args.data))))
            else:
                data, _problems = load_training_data(_data_files(settings))
            tokenizer = Tokenizer(settings.userdict, settings.resolved_cache_dir())
            try:
                report = cross_validate(
                    data,
                    tokenizer,
                    args.cv,
                    fallback_threshold=settings.fallback_threshold,
                    ambiguity_threshold=settings.ambiguity_threshold,
                    seed=args.seed,
                    group_variants=args.group_variants,
                    progress=lambda i, k: print(f"fold {i}/{k}", file=sys.stderr, flush=True),
                )
            except ValueError as exc:
                raise CliError(str(exc)) from None
        else:
            parser = _load_parser(settings)
            if args.data:
                path = Path(args.data)
                examples = load_examples(path)
                source = str(path)
            else:
                data, _problems = load_training_data(_data_files(settings))
                examples = list(data.examples)
                source = "training data (use --cv K for an honest estimate)"
            report = evaluate_parser(parser, examples, source)
    except TrainingDataError as exc:
        raise data_error(exc) from None
    print(format_report(report))
    if args.errors:
        print(f"\n  first {args.errors} misclassified (gold -> predicted, top confidence):")
        for error in report.errors[: args.errors]:
            print(
                f"  {error['intent']} -> {error['predicted']} ({error['confidence']:.2f}) "
                f"{error['text'][:60]}"
            )
    if args.json_report:
        target = Path(args.json_report)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            json.dumps(report.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8"
        )
        print(f"\nJSON report written to {target}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from nlu.export import RasaTraining, export_rasa

    settings = settings_from_args(args)
    files = _data_files(settings)
    out = Path(args.out)
    try:
        written = export_rasa(
            out,
            files,
            settings.userdict,
            fallback_threshold=settings.fallback_threshold,
            ambiguity_threshold=settings.ambiguity_threshold,
            training=replace(RasaTraining(), epochs=args.epochs),
            max_per_intent=args.max_per_intent,
        )
    except OSError as exc:
        raise CliError(f"cannot write the Rasa project to {out}: {exc}") from None
    for path in written:
        print(path)
    print(
        f"\nnext: cd {out} && rasa train nlu --config config.yml --nlu data "
        "(or: scripts/rasa.sh train DIR)",
        file=sys.stderr,
    )
    return 0
