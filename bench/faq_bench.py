"""FAQ retrieval: time per question, and accuracy on the development questions.

    .venv/bin/python bench/faq_bench.py            # build time, median/p99 per question
    .venv/bin/python bench/faq_bench.py --sweep    # + accuracy per threshold, misses
    .venv/bin/python bench/faq_bench.py --heldout  # + accuracy on the test questions

Timing runs every development question (paraphrases and unanswered ones)
`--rounds` times through `FaqIndex.search` after the index is built; the target
is a median of at most 1 ms per question. The sweep reports, per threshold,
top-1 accuracy on paraphrases (right entry returned first) and the share of
unanswered questions that get no match; DEFAULT_THRESHOLD in flows/faq.py is
chosen from it. `--heldout` reports the same two figures at the default
threshold on tests/flows/faq_heldout.yml, which is never used for tuning.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.faq import (  # noqa: E402
    DEFAULT_THRESHOLD,
    FaqIndex,
    build_index,
    load_faq_base,
)
from flows.paths import data_dir_from_env  # noqa: E402

DEV_FILE = Path(__file__).resolve().parent / "faq_dev.yml"
HELDOUT_FILE = ROOT / "tests" / "flows" / "faq_heldout.yml"


def load_dev(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    pairs = [(q, entry_id) for entry_id, qs in data["paraphrases"].items() for q in qs]
    return pairs, list(data["unanswered"])


def load_heldout(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [(q, entry_id) for q, entry_id in data["paraphrases"]], list(data["unanswered"])


def report_heldout(index: FaqIndex, pairs: list[tuple[str, str]], unanswered: list[str]) -> None:
    hits = 0
    for q, want in pairs:
        matches = index.search(q)
        hits += bool(matches) and matches[0].id == want
    rejected = sum(1 for q in unanswered if not index.search(q))
    print(
        f"held-out at threshold {DEFAULT_THRESHOLD:.2f}: top1 {hits}/{len(pairs)} "
        f"({hits / len(pairs):.1%}), unanswered rejected {rejected}/{len(unanswered)} "
        f"({rejected / len(unanswered):.1%})"
    )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


def time_search(index: FaqIndex, questions: list[str], rounds: int) -> list[float]:
    timings: list[float] = []
    for _ in range(rounds):
        for q in questions:
            start = time.perf_counter()
            index.search(q, k=3)
            timings.append((time.perf_counter() - start) * 1000)
    return timings


def sweep(index: FaqIndex, pairs: list[tuple[str, str]], unanswered: list[str]) -> None:
    ranked = {q: index.scores(q) for q, _ in pairs}
    ranked_out = {q: index.scores(q) for q in unanswered}
    entries = index.entries
    print(f"{'threshold':>9} {'top1':>6} {'rejected':>8} {'sum':>6}")
    for step in range(20, 66, 2):
        t = step / 100
        hits = sum(
            1
            for q, want in pairs
            if ranked[q] and ranked[q][0][1] >= t and entries[ranked[q][0][0]].id == want
        )
        rejected = sum(1 for q in unanswered if not ranked_out[q] or ranked_out[q][0][1] < t)
        top1, rej = hits / len(pairs), rejected / len(unanswered)
        mark = "  <- default" if abs(t - DEFAULT_THRESHOLD) < 1e-9 else ""
        print(f"{t:9.2f} {top1:6.1%} {rej:8.1%} {top1 + rej:6.3f}{mark}")
    print("\nmisses at the default threshold:")
    for q, want in pairs:
        r = ranked[q]
        got = entries[r[0][0]].id if r else "-"
        score = r[0][1] if r else 0.0
        if got != want or score < DEFAULT_THRESHOLD:
            print(f"  {q}  want {want}  got {got} {score:.3f}")
    for q in unanswered:
        r = ranked_out[q]
        if r and r[0][1] >= DEFAULT_THRESHOLD:
            print(f"  {q}  want nothing  got {entries[r[0][0]].id} {r[0][1]:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sweep", action="store_true", help="print accuracy per threshold")
    parser.add_argument(
        "--heldout", action="store_true", help="print accuracy on the held-out test questions"
    )
    args = parser.parse_args()

    start = time.perf_counter()
    base = load_faq_base(data_dir_from_env(os.environ))
    index = build_index(base)
    build_s = time.perf_counter() - start
    pairs, unanswered = load_dev(DEV_FILE)
    questions = [q for q, _ in pairs] + unanswered

    timings = time_search(index, questions, args.rounds)
    phrasings = sum(len(e.questions) for e in base.entries)
    print(f"entries {len(base.entries)}, phrasings {phrasings}, load+build {build_s:.2f} s")
    print(
        f"faq search per question ({len(timings)} searches): "
        f"median {statistics.median(timings):.3f} ms, p99 {percentile(timings, 99):.3f} ms"
    )
    if args.sweep:
        sweep(index, pairs, unanswered)
    if args.heldout:
        report_heldout(index, *load_heldout(HELDOUT_FILE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
