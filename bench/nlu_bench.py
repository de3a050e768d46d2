"""NLU speed, memory and accuracy figures (issue targets in brackets).

    .venv/bin/python bench/nlu_bench.py            # everything, ~1 minute
    .venv/bin/python bench/nlu_bench.py --no-cv    # skip the 10-fold cross-validation

Prints: parse median / p99 in ms after warm-up [<= 0.5 / <= 2], in-process batch
messages per second [>= 3000], `tongxin nlu parse` batch throughput including
start-up, cold `tongxin nlu parse "text"` wall time (median of runs, trained model
present) [<= 1.5 s], training seconds [<= 10], peak RSS of the parse and train
commands [<= 250 MB], and 10-fold CV macro-F1 [>= 0.95].
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nlu.evaluate import cross_validate  # noqa: E402
from nlu.parser import load_parser  # noqa: E402
from nlu.settings import NluSettings  # noqa: E402
from nlu.tokenizer import Tokenizer  # noqa: E402
from nlu.training import train_and_save  # noqa: E402
from nlu.training_data import default_data_paths, load_training_data  # noqa: E402

# Linux keeps the peak RSS of a forked child's copy of its parent across exec,
# so a child of this (large) process would report our size. A small launcher
# process forks the command instead and reports its wall time and peak RSS.
LAUNCHER = """
import os, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_pid, status, usage = os.wait4(proc.pid, 0)
print(time.perf_counter() - started, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def run_child(args: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB and exit status of one command."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *args], input=stdin, capture_output=True, env=env
    )
    if done.returncode != 0 or not done.stdout.strip():
        sys.stderr.write(done.stderr.decode("utf-8", "replace"))
        return 0.0, 0.0, done.returncode or 1
    wall, rss_kb, code = done.stdout.split()
    if int(code) != 0:
        sys.stderr.write(done.stderr.decode("utf-8", "replace"))
    return float(wall), int(rss_kb) / 1024, int(code)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--no-cv", action="store_true", help="skip 10-fold cross-validation")
    options.add_argument("--cold-runs", type=int, default=7)
    opts = options.parse_args()

    settings = NluSettings.from_env(os.environ)
    data_files = list(settings.data_paths) or default_data_paths()
    data, _problems = load_training_data(data_files)
    texts = [e.text for e in data.examples]
    print(f"data: {len(texts)} examples, {len(data.intents())} intents, {len(data_files)} files")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        tokenizer = Tokenizer(settings.userdict, settings.resolved_cache_dir())
        started = time.perf_counter()
        _model, summary = train_and_save(data_files, model_dir, tokenizer)
        train_seconds = time.perf_counter() - started
        print(
            f"training (in-process, featurise + calibrate + fit + save): {train_seconds:.2f} s "
            f"[<= 10]  ({summary.n_features} features, temperature {summary.temperature:.2f})"
        )

        parser = load_parser(settings, model_dir=model_dir, auto_train=False)
        for text in texts[:300]:  # warm-up
            parser.parse(text)
        timings = []
        for _ in range(2):
            for text in texts:
                t0 = time.perf_counter()
                parser.parse(text)
                timings.append((time.perf_counter() - t0) * 1000)
        print(
            f"parse, one message after warm-up: median {statistics.median(timings):.3f} ms "
            f"[<= 0.5], p99 {percentile(timings, 0.99):.3f} ms [<= 2], "
            f"max {max(timings):.2f} ms  (n={len(timings)})"
        )
        started = time.perf_counter()
        batch = texts * 3
        for text in batch:
            parser.parse(text)
        rate = len(batch) / (time.perf_counter() - started)
        print(f"batch, in-process: {rate:,.0f} messages/s [>= 3000]")

        env = {**os.environ, "TONGXIN_MODEL_DIR": str(model_dir)}
        cli = [sys.executable, "-m", "bot.cli.main", "nlu", "parse"]
        colds = []
        rss_parse = 0.0
        for _ in range(opts.cold_runs):
            wall, rss, code = run_child([*cli, "开小吃店想贷五万块钱，利息多少"], b"", env)
            if code != 0:
                print("cold parse failed")
                return 1
            colds.append(wall)
            rss_parse = max(rss_parse, rss)
        print(
            f'cold `tongxin nlu parse "..."` wall: median {statistics.median(colds):.2f} s '
            f"[<= 1.5], min {min(colds):.2f}, max {max(colds):.2f}  (runs={len(colds)})"
        )
        stdin = ("\n".join(texts) + "\n").encode("utf-8")
        wall, rss, _ = run_child(cli, stdin, env)
        rss_parse = max(rss_parse, rss)
        print(
            f"batch, `tongxin nlu parse` < {len(texts)} lines: {wall:.2f} s wall incl. start-up "
            f"= {len(texts) / wall:,.0f} messages/s"
        )
        train_cli = [sys.executable, "-m", "bot.cli.main", "nlu", "train", "--out"]
        wall_train, rss_train, _ = run_child([*train_cli, str(Path(tmp) / "m2")], b"", env)
        print(f"training, `tongxin nlu train` wall: {wall_train:.2f} s [<= 10]")
        print(f"peak RSS: parse {rss_parse:.0f} MB, train {rss_train:.0f} MB [<= 250]")

    if not opts.no_cv:
        started = time.perf_counter()
        report = cross_validate(
            data,
            tokenizer,
            10,
            fallback_threshold=settings.fallback_threshold,
            ambiguity_threshold=settings.ambiguity_threshold,
        )
        print(
            f"10-fold CV: macro-F1 {report.ranking_macro_f1:.4f} [>= 0.95] (classifier), "
            f"{report.macro_f1:.4f} with fallback (rate {report.fallback_rate:.1%}); accuracy "
            f"{report.ranking_accuracy:.4f} / {report.accuracy:.4f}; ECE "
            f"{report.calibration_error:.3f}  ({time.perf_counter() - started:.0f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
