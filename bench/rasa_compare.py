"""Rasa 3.6 (DIET, built by scripts/rasa.sh) and our classifier on one labelled file, in one run.

    .venv/bin/python bench/rasa_compare.py DATA [DATA ...] [--epochs 30] [--max-per-intent N]
                                           [--work DIR] [--reuse]

Both models are trained on the same training data (nlu/data/, or $TONGXIN_NLU_DATA),
never on DATA; then each parses every DATA message in a fresh process of its own
(ours in this venv, Rasa in its venv through bench/rasa_worker.py). Rasa's answers go
through the same validation and the same fallback thresholds as in production
(`nlu.rasa_backend.validate_rasa_response`, `nlu.parser.decide`), so the figures are
what `TONGXIN_RASA_URL` would give.

Scoring follows ../shared/eval/score_intents.py: an answer is right when it is the gold
intent or one of its `accept` alternatives, and `nlu_fallback` is right for
`out_of_scope` (the bot treats both alike).

Prints, per DATA file: accuracy, macro-F1, the share of `nlu_fallback` answers, per-intent
recall; and for both models the
cost per message (in-process median / p95), start-up (process start to a loaded model),
training time and peak RSS of training and of parsing. Needs `scripts/rasa.sh setup`.
Training Rasa on the full data takes about 15-25 minutes on 2 cores; --reuse keeps the
models (and their training figures) of an earlier run in --work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlu_bench import percentile, run_child  # noqa: E402

from nlu.parser import decide, load_parser  # noqa: E402
from nlu.rasa_backend import RasaResponseError, validate_rasa_response  # noqa: E402
from nlu.settings import NluSettings  # noqa: E402
from nlu.types import FALLBACK_INTENT, IntentScore  # noqa: E402

RASA_SH = ROOT / "scripts" / "rasa.sh"
WORKER = Path(__file__).resolve().parent / "rasa_worker.py"
Labelled = tuple[str, str, frozenset[str]]  # text, gold intent, intents also accepted


def load_labelled(path: Path) -> list[Labelled]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(raw, list):
        return [
            (str(i["text"]).replace("\n", " "), i["intent"], frozenset(i.get("accept") or ()))
            for i in raw
        ]
    from nlu.training_data import load_examples

    return [(e.text, e.intent, frozenset()) for e in load_examples(path)]


def right(predicted: str, gold: str, accept: frozenset[str]) -> bool:
    return (
        predicted == gold
        or predicted in accept
        or (predicted == FALLBACK_INTENT and gold == "out_of_scope")
    )


def scores(items: list[Labelled], predicted: list[str]) -> dict[str, Any]:
    support: Counter[str] = Counter()
    hits: Counter[str] = Counter()
    said: Counter[str] = Counter()
    for (_text, gold, accept), pred in zip(items, predicted, strict=True):
        support[gold] += 1
        if right(pred, gold, accept):
            hits[gold] += 1
            said[gold] += 1
        else:
            said[pred] += 1
    recall = {label: hits[label] / support[label] for label in sorted(support)}
    f1s = []
    for label in support:
        precision = hits[label] / said[label] if said[label] else 0.0
        f1s.append(
            2 * precision * recall[label] / (precision + recall[label])
            if precision + recall[label]
            else 0.0
        )
    return {
        "fallback_rate": predicted.count(FALLBACK_INTENT) / len(items),
        "accuracy": sum(hits.values()) / len(items),
        "macro_f1": sum(f1s) / len(f1s),
        "recall": recall,
        "support": dict(support),
    }


def timed(args: list[str], env: dict[str, str]) -> dict[str, float]:
    wall, rss_mb, code = run_child(args, b"", env)
    if code != 0:
        raise SystemExit(f"failed ({code}): {' '.join(args)}")
    return {"seconds": wall, "peak_rss_mb": rss_mb}


def train_both(work: Path, epochs: int, max_per_intent: int | None, reuse: bool) -> dict:
    record = work / "training.json"
    if reuse and record.is_file():
        return dict(json.loads(record.read_text(encoding="utf-8")))
    env = dict(os.environ)
    ours = timed(
        [sys.executable, "-m", "bot.cli.main", "nlu", "train", "--out", str(work / "ours")], env
    )
    export = ["--epochs", str(epochs)]
    if max_per_intent is not None:
        export += ["--max-per-intent", str(max_per_intent)]
    rasa = timed(["bash", str(RASA_SH), "train", str(work / "rasa"), *export], env)
    figures = {"ours": ours, "rasa": rasa, "epochs": epochs, "max_per_intent": max_per_intent}
    record.write_text(json.dumps(figures, indent=1), encoding="utf-8")
    return figures


def rasa_venv() -> Path:
    path = subprocess.run(
        ["bash", str(RASA_SH), "venv"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(path)


def run_rasa(work: Path, texts: list[str], settings: NluSettings) -> dict[str, Any]:
    messages = work / "messages.json"
    messages.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    model = work / "rasa" / "models" / "tongxin.tar.gz"
    done = subprocess.run(
        [str(rasa_venv() / "bin" / "python"), str(WORKER), str(model), str(messages)],
        capture_output=True,
        text=True,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
        cwd=work / "rasa",  # the pipeline's jieba dictionary path is relative
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit("the Rasa worker failed")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    predicted, unusable = [], 0
    for text, answer in zip(texts, result["answers"], strict=True):
        try:
            remote = validate_rasa_response(answer, text)
        except RasaResponseError:
            unusable += 1
            predicted.append(FALLBACK_INTENT)
            continue
        ranking = [IntentScore(n, c) for n, c in remote.ranking]
        predicted.append(
            decide(ranking, settings.fallback_threshold, settings.ambiguity_threshold).name
        )
    result["predicted"], result["unusable"] = predicted, unusable
    return result


def run_ours_worker(model_dir: str, messages: str) -> int:
    """`--worker-ours`: our side of run_rasa, in a process of its own."""
    import resource

    started = time.perf_counter()
    parser = load_parser(NluSettings.from_env(os.environ), model_dir=Path(model_dir))
    startup = time.perf_counter() - started
    texts = json.loads(Path(messages).read_text(encoding="utf-8"))
    predicted, seconds = [], []
    for text in texts:
        t0 = time.perf_counter()
        predicted.append(parser.parse(text).intent.name)
        seconds.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"startup_s": startup, "seconds": seconds, "predicted": predicted,
                      "peak_rss_mb": peak}))  # fmt: skip
    return 0


def run_ours(work: Path, texts: list[str]) -> dict[str, Any]:
    messages = work / "messages.json"
    messages.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--worker-ours", str(work / "ours"), str(messages)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit("our worker failed")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    # Interpreter start and imports count too, as they do in the Rasa worker.
    result["startup_s"] = time.perf_counter() - started - sum(result["seconds"])
    return result


def ms(values: list[float], q: float | None = None) -> str:
    value = statistics.median(values) if q is None else percentile(values, q)
    return f"{value * 1000:.2f}"


def report(name: str, items: list[Labelled], ours: dict, rasa: dict) -> None:
    a, b = scores(items, ours["predicted"]), scores(items, rasa["predicted"])
    print(f"\n## {name} ({len(items)} messages)\n")
    print("| | 同心 | Rasa 3.6 DIET |\n|---|---|---|")
    print(f"| accuracy | {a['accuracy']:.3f} | {b['accuracy']:.3f} |")
    print(f"| macro-F1 | {a['macro_f1']:.3f} | {b['macro_f1']:.3f} |")
    print(f"| answered nlu_fallback | {a['fallback_rate']:.1%} | {b['fallback_rate']:.1%} |")
    print(
        f"| ms per message, median / p95 | {ms(ours['seconds'])} / {ms(ours['seconds'], 0.95)} "
        f"| {ms(rasa['seconds'])} / {ms(rasa['seconds'], 0.95)} |"
    )
    print(f"| start-up, s | {ours['startup_s']:.1f} | {rasa['startup_s']:.1f} |")
    print(f"| peak RSS parsing, MB | {ours['peak_rss_mb']:.0f} | {rasa['peak_rss_mb']:.0f} |")
    if rasa["unusable"]:
        print(f"| Rasa answers rejected by validation | | {rasa['unusable']} |")
    print("\n| intent (n) | recall 同心 | recall Rasa |\n|---|---|---|")
    for label, support in sorted(a["support"].items()):
        print(f"| {label} ({support}) | {a['recall'][label]:.2f} | {b['recall'][label]:.2f} |")


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker-ours":
        return run_ours_worker(sys.argv[2], sys.argv[3])
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("data", nargs="+", type=Path, help="labelled YAML files to score on")
    options.add_argument("--epochs", type=int, default=30, help="DIET epochs (default: 30)")
    options.add_argument(
        "--max-per-intent",
        type=int,
        help="train Rasa on an even sample of N per intent (ours always on all)",
    )
    options.add_argument("--work", type=Path, help="where models go (default: a cache folder)")
    options.add_argument("--reuse", action="store_true", help="keep models trained in --work")
    opts = options.parse_args()
    settings = NluSettings.from_env(os.environ)
    work = (opts.work or settings.resolved_cache_dir() / "rasa-compare").resolve()
    work.mkdir(parents=True, exist_ok=True)
    training = train_both(work, opts.epochs, opts.max_per_intent, opts.reuse)
    sample = f", {training['max_per_intent']} per intent" if training["max_per_intent"] else ""
    print(f"# 同心 vs Rasa 3.6 (DIET {training['epochs']} epochs{sample}); trained on nlu/data")
    print("\n| training | 同心 | Rasa 3.6 DIET |\n|---|---|---|")
    print(
        f"| time, s | {training['ours']['seconds']:.1f} | {training['rasa']['seconds']:.0f} |\n"
        f"| peak RSS, MB | {training['ours']['peak_rss_mb']:.0f} "
        f"| {training['rasa']['peak_rss_mb']:.0f} |"
    )
    for path in opts.data:
        items = load_labelled(path)
        texts = [text for text, _gold, _accept in items]
        report(str(path), items, run_ours(work, texts), run_rasa(work, texts, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
