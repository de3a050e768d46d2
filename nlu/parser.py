"""`Parser.parse(text) -> ParseResult`: tokenise, classify, extract entities, apply fallback.

Use `load_parser(settings)` to get one: it loads the saved model, retrains it
when the training data changed (or refuses with a clear error when it cannot),
and wires the optional Rasa backend. A `Parser` holds no mutable state after
construction, so one instance can serve many threads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from nlu.classifier import (
    ClassifierConfig,
    IntentModel,
    ModelError,
    ModelIncompatibleError,
    ModelNotFoundError,
    compatibility_problem,
    load_model,
    read_metadata,
    save_model,
)
from nlu.entities import extract_entities
from nlu.features import FeatureConfig, Featurizer
from nlu.form_acts import FormActReader, ensure_form_acts
from nlu.rasa_backend import RasaClient
from nlu.settings import NluSettings
from nlu.tokenizer import Tokenizer, normalize_text, sanitize_text
from nlu.training import fingerprint_extras, train_from_files
from nlu.training_data import data_fingerprint
from nlu.types import FALLBACK_INTENT, Entity, IntentScore, ParseResult
from nlu.word_vectors import WordVectorsError, load_word_vectors

Notify = Callable[[str], None]

# Longer messages are not chat turns (a pasted document, a flood): they get
# `nlu_fallback`, with the ranking of their first part still reported.
MAX_MESSAGE_CHARS = 2000
# Text with no letter, digit or CJK character (emoji only, punctuation,
# whitespace) carries no request we could act on.
_CONTENT = re.compile(r"\w")


class ModelStaleError(ModelError):
    """The saved model was trained on other data and retraining is not allowed here."""


class Parser:
    """Message -> ParseResult with Rasa's fallback rules.

    `fallback_threshold`: below this top confidence the intent is `nlu_fallback`.
    `ambiguity_threshold`: when top1 - top2 is below this, the intent is `nlu_fallback`.
    In both cases `intent_ranking` keeps the classifier's real ranking.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        model: IntentModel,
        *,
        fallback_threshold: float,
        ambiguity_threshold: float,
        remote: RasaClient | None = None,
        model_dir: Path | None = None,
        form_acts: FormActReader | None = None,
    ):
        self.model = model
        # Reads a reply inside a form against the question asked (nlu/form_acts.py).
        self.form_acts = form_acts
        self.model_dir = model_dir  # where the model was loaded from, if anywhere
        # Shared with whoever else needs Chinese words (the FAQ index): one
        # jieba dictionary per process is ~70 MB.
        self.tokenizer = tokenizer
        self.featurizer = Featurizer(tokenizer, model.feature_config, model.patterns)
        self.fallback_threshold = fallback_threshold
        self.ambiguity_threshold = ambiguity_threshold
        self.remote = remote

    def backend_status(self) -> dict[str, Any]:
        """For /healthz: the configured backend and, with a Rasa server, who answered last."""
        if self.remote is None:
            return {"backend": "embedded"}
        return {"backend": "rasa, embedded as fallback", "rasa": self.remote.status()}

    def rank(self, text: str, entities: Sequence[Entity] = ()) -> tuple[list[IntentScore], int]:
        """The embedded model's ranking, best first, and how many features it knew."""
        return self._rank_normalized(normalize_text(text), entities)

    def _rank_normalized(
        self, norm: str, entities: Sequence[Entity]
    ) -> tuple[list[IntentScore], int]:
        norm = norm[: self.model.feature_config.max_chars]
        encoded = self.featurizer.encode_normalized(norm, entities)
        ranking, known = self.model.rank(encoded.features, encoded.dense)
        return [IntentScore(name, conf) for name, conf in ranking], known

    def parse(self, text: str) -> ParseResult:
        """Never raises for any string: unusable input gives `nlu_fallback`."""
        clean = sanitize_text(text if isinstance(text, str) else str(text))
        norm = normalize_text(clean)
        entities = extract_entities(clean)
        usable = len(clean) <= MAX_MESSAGE_CHARS and _CONTENT.search(norm) is not None
        remote = self.remote.parse(clean) if self.remote is not None and usable else None
        if remote is not None:
            # Rasa's confidences and ranking stand as ours; our thresholds decide.
            ranking = [IntentScore(name, conf) for name, conf in remote.ranking]
            known = 1
            # Ours first: Rasa's spans come from its own jieba cut and its values are
            # strings; it only adds entities ours did not find.
            entities = _merge_entities(entities, remote.entities)
        else:
            ranking, known = self._rank_normalized(norm, entities)
        if not usable:
            known = 0
        return ParseResult(
            text=clean,
            intent=self.decide(ranking, known),
            intent_ranking=tuple(ranking),
            entities=tuple(entities),
            backend="rasa" if remote is not None else "embedded",
        )

    def decide(self, ranking: Sequence[IntentScore], known_features: int = 1) -> IntentScore:
        """Top intent, or `nlu_fallback`: see `decide`."""
        return decide(ranking, self.fallback_threshold, self.ambiguity_threshold, known_features)


def decide(
    ranking: Sequence[IntentScore],
    fallback_threshold: float,
    ambiguity_threshold: float,
    known_features: int = 1,
) -> IntentScore:
    """Top intent, or `nlu_fallback` (with Rasa's convention: confidence = threshold).

    The same rule for the embedded model's ranking and a Rasa server's.
    `known_features == 0` means the message had nothing the model knows
    (or no content at all): always a fallback, whatever the priors say."""
    fallback = IntentScore(FALLBACK_INTENT, fallback_threshold)
    if not ranking or known_features == 0:
        return fallback
    top = ranking[0]
    second = ranking[1].confidence if len(ranking) > 1 else 0.0
    if not math.isfinite(top.confidence) or top.confidence < fallback_threshold:
        return fallback
    if top.confidence - second < ambiguity_threshold:
        return fallback
    return top


def _merge_entities(ours: Sequence[Entity], theirs: Sequence[Entity]) -> list[Entity]:
    merged = list(ours)
    for entity in theirs:
        if not any(entity.start < e.end and e.start < entity.end for e in merged):
            merged.append(entity)
    return sorted(merged, key=lambda e: e.start)


def jieba_version() -> str:
    try:
        return importlib_metadata.version("jieba")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def ensure_model(
    settings: NluSettings,
    tokenizer: Tokenizer,
    notify: Notify | None = None,
    feature_config: FeatureConfig | None = None,
    classifier_config: ClassifierConfig | None = None,
) -> IntentModel:
    """The model for `settings`: loaded when current, retrained when missing, stale or
    incompatible and the data is available (and `auto_train`), otherwise an error
    saying why. A stale model is never used silently."""
    feature_config = feature_config or FeatureConfig()
    classifier_config = classifier_config or ClassifierConfig()
    if feature_config.word_vectors:
        try:
            load_word_vectors()  # cached: the featurizer gets this same instance
        except WordVectorsError as exc:
            raise ModelIncompatibleError(f"{exc}; it ships with tongxin: reinstall") from exc
    model_dir = settings.resolved_model_dir()
    data_files = settings.training_files()
    data_available = bool(data_files) and all(p.is_file() for p in data_files)
    extra = fingerprint_extras(settings.userdict, feature_config)
    data_hash = data_fingerprint(data_files, extra) if data_available else None

    error: type[ModelError]
    try:
        metadata = read_metadata(model_dir)
    except ModelNotFoundError:
        reason, error = f"no NLU model in {model_dir} yet", ModelNotFoundError
    except ModelIncompatibleError as exc:
        reason, error = str(exc), ModelIncompatibleError
    else:
        problem = compatibility_problem(metadata, jieba_version(), tokenizer.signature())
        if problem is not None:
            reason, error = (
                f"NLU model in {model_dir} is incompatible: {problem}",
                (ModelIncompatibleError),
            )
        elif (
            data_available
            and metadata.get("data_hash") != data_hash
            and not only_labels_changed(metadata, settings, extra)
        ):
            reason, error = (
                f"NLU model in {model_dir} is stale (training data changed)",
                (ModelStaleError),
            )
        elif data_available and (
            metadata.get("feature_config") != feature_config.to_dict()
            or metadata.get("classifier") != classifier_config.to_dict()
        ):
            reason, error = f"NLU model in {model_dir} used other feature settings", ModelStaleError
        else:
            try:
                model = load_model(model_dir, metadata)
            except ModelIncompatibleError as exc:
                reason, error = str(exc), ModelIncompatibleError
            else:
                if notify is not None and data_available and metadata.get("data_hash") != data_hash:
                    notify(
                        "labels from the review queue are not in the NLU model yet: run "
                        "`tongxin nlu train --gate` (or the button on /staff/review)"
                    )
                return model
    if not (data_available and settings.auto_train):
        why = "no training data found" if not data_available else "automatic training is off"
        raise error(f"{reason}; {why}: run `tongxin nlu train`")
    if notify is not None:
        notify(f"{reason}: training it now from {len(data_files)} data file(s)...")
    model, summary = train_from_files(
        data_files, model_dir, tokenizer, feature_config, classifier_config, settings.base_files()
    )
    try:
        save_model(model, model_dir, {})
        where = f"saved to {model_dir}"
    except OSError as exc:
        # Still usable for this process; the next start will try again.
        where = f"NOT saved ({exc}); using it for this run only"
    if notify is not None:
        notify(f"trained on {summary.n_examples} examples in {summary.seconds:.1f} s; {where}")
    return model


def only_labels_changed(
    metadata: dict[str, Any], settings: NluSettings, extra: Sequence[Path]
) -> bool:
    """True when the model's base data (the files that ship with the package) is
    current and only the operator's labels changed: those wait for a gated
    retraining (`tongxin nlu train --gate`) and must not slip in by an automatic
    one, nor undo a rollback. New base data (an upgrade) still retrains."""
    return metadata.get("base_hash") == data_fingerprint(settings.base_files(), extra)


def load_parser(
    settings: NluSettings | None = None, *, notify: Notify | None = None, **overrides: Any
) -> Parser:
    """A ready Parser. `overrides` replace fields of `settings`, e.g.
    `load_parser(model_dir=Path(...), fallback_threshold=0.5, rasa_url="http://...")`."""
    settings = replace(settings or NluSettings(), **overrides)
    tokenizer = Tokenizer(settings.userdict, settings.resolved_cache_dir())
    model = ensure_model(settings, tokenizer, notify)
    remote = (
        RasaClient(settings.rasa_url, timeout=settings.rasa_timeout) if settings.rasa_url else None
    )
    return parser_for_model(model, tokenizer, settings, remote)


def parser_for_model(
    model: IntentModel,
    tokenizer: Tokenizer,
    settings: NluSettings,
    remote: RasaClient | None = None,
) -> Parser:
    """A Parser around a loaded `model`, with its form-act reader (trained when
    the one saved beside the model belongs to another intent model)."""
    # The act model is trained on the embedded model's own parses (never a
    # remote one's), so that its intent features mean the same at run time.
    embedded = Parser(
        tokenizer,
        model,
        fallback_threshold=settings.fallback_threshold,
        ambiguity_threshold=settings.ambiguity_threshold,
    )
    form_acts = ensure_form_acts(
        settings.resolved_model_dir() / "form_acts",
        tokenizer,
        embedded.parse,
        str(model.metadata.get("data_hash", "")),
    )
    return Parser(
        tokenizer,
        model,
        fallback_threshold=settings.fallback_threshold,
        ambiguity_threshold=settings.ambiguity_threshold,
        remote=remote,
        model_dir=settings.resolved_model_dir(),
        form_acts=form_acts,
    )
