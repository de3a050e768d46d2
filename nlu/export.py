"""Write a Rasa 3.x NLU project from our data: `rasa train nlu` can run on it as is.

Layout of the output directory:
  config.yml           JiebaTokenizer pipeline + DIET + our fallback thresholds
  domain.yml           the intents and entities, for `rasa data validate` (`rasa run`
                       serves an NLU-only model without it)
  data/*.yml           the NLU training files, copied unchanged (or, with
                       `max_per_intent`, one file holding an even sample of them)
  jieba_dict/userdict.txt  the domain dictionary (JiebaTokenizer's dictionary_path
                       is a directory whose files are all loaded as user dicts)
Run `rasa train nlu --config config.yml --nlu data` from inside the directory,
because `dictionary_path` is relative. `scripts/rasa.sh train DIR` does all of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

USERDICT_DIR = "jieba_dict"
SAMPLE_FILE = "nlu_sample.yml"


@dataclass(frozen=True)
class RasaTraining:
    """The DIET budget for 2 cores (figures in the README, "Rasa beside 同心"). With
    characters up to 4-grams, uncapped vocabularies and two transformer layers an epoch on
    the full data took about 40 s; these sizes make it cheaper. On a 600-example sample
    accuracy still rose from 10 to 20 epochs, hence 30 for the full data."""

    epochs: int = 30
    char_max_ngram: int = 2
    max_features: int | None = 20000
    transformer_layers: int = 1


def rasa_config(
    fallback_threshold: float,
    ambiguity_threshold: float,
    training: RasaTraining = RasaTraining(),
) -> dict[str, object]:
    char_featurizer: dict[str, Any] = {
        "name": "CountVectorsFeaturizer",
        "analyzer": "char_wb",
        "min_ngram": 1,
        "max_ngram": training.char_max_ngram,
    }
    word_featurizer: dict[str, Any] = {"name": "CountVectorsFeaturizer"}
    if training.max_features is not None:
        char_featurizer["max_features"] = training.max_features
        word_featurizer["max_features"] = training.max_features
    return {
        "recipe": "default.v1",
        "assistant_id": "tongxin",
        "language": "zh",
        "pipeline": [
            {"name": "JiebaTokenizer", "dictionary_path": USERDICT_DIR},
            {"name": "RegexFeaturizer"},
            {"name": "LexicalSyntacticFeaturizer"},
            word_featurizer,
            char_featurizer,
            {
                "name": "DIETClassifier",
                "epochs": training.epochs,
                "number_of_transformer_layers": training.transformer_layers,
                "constrain_similarities": True,
            },
            {"name": "EntitySynonymMapper"},
            {
                "name": "FallbackClassifier",
                "threshold": fallback_threshold,
                "ambiguity_threshold": ambiguity_threshold,
            },
        ],
        # `rasa train nlu` ignores policies; an empty list stops Rasa warning about them.
        "policies": [],
    }


def _example_lines(block: object) -> list[str]:
    if not isinstance(block, str):
        return []
    return [line for line in block.splitlines() if line.strip().startswith("- ")]


def _read_items(path: Path) -> list[dict[str, Any]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    items = raw.get("nlu") if isinstance(raw, dict) else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def sample_items(data_files: Sequence[Path], max_per_intent: int) -> list[dict[str, Any]]:
    """At most `max_per_intent` examples per intent, evenly spread over all the files
    (so that every file's kind of message is in the sample); synonyms, lookups and
    regexes are kept whole."""
    by_intent: dict[str, list[str]] = {}
    others: list[dict[str, Any]] = []
    for path in data_files:
        for item in _read_items(path):
            intent = item.get("intent")
            if isinstance(intent, str):
                by_intent.setdefault(intent, []).extend(_example_lines(item.get("examples")))
            else:
                others.append(item)
    sampled: list[dict[str, Any]] = []
    for intent, lines in by_intent.items():
        if len(lines) > max_per_intent:
            step = len(lines) / max_per_intent
            lines = [lines[int(i * step)] for i in range(max_per_intent)]
        sampled.append({"intent": intent, "examples": "\n".join(lines) + "\n"})
    return sampled + others


def _block_strings(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


class _RasaDumper(yaml.SafeDumper):
    pass


_RasaDumper.add_representer(str, _block_strings)


def _dump(data: object) -> str:
    return yaml.dump(data, Dumper=_RasaDumper, allow_unicode=True, sort_keys=False, width=1000)


def domain(data_files: Sequence[Path]) -> dict[str, object]:
    """Intents and entity names found in the data: what `rasa data validate` checks against."""
    from nlu.training_data import parse_annotated

    intents: list[str] = []
    entities: set[str] = set()
    for path in data_files:
        for item in _read_items(path):
            intent = item.get("intent")
            if not isinstance(intent, str):
                continue
            if intent not in intents:
                intents.append(intent)
            for line in _example_lines(item.get("examples")):
                try:
                    _text, annotations = parse_annotated(line.strip()[2:])
                except ValueError:
                    continue
                entities.update(a.entity for a in annotations)
    # nlu_fallback is one of Rasa's default intents: listing it would be a duplicate.
    return {"version": "3.1", "intents": intents, "entities": sorted(entities)}


def export_rasa(
    out_dir: Path,
    data_files: Sequence[Path],
    userdict: Path | None,
    *,
    fallback_threshold: float,
    ambiguity_threshold: float,
    training: RasaTraining = RasaTraining(),
    max_per_intent: int | None = None,
) -> list[Path]:
    """Write the Rasa project into `out_dir`; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    config_path = out_dir / "config.yml"
    header = (
        "# Generated by `tongxin nlu export-rasa`. Train with:\n"
        f"#   cd {out_dir} && rasa train nlu --config config.yml --nlu data\n"
    )
    body = _dump(rasa_config(fallback_threshold, ambiguity_threshold, training))
    config_path.write_text(header + body, encoding="utf-8")
    written.append(config_path)
    data_dir = out_dir / "data"
    if data_dir.exists():
        shutil.rmtree(data_dir)  # a re-export must not train on last time's files
    data_dir.mkdir()
    if max_per_intent is not None:
        target = data_dir / SAMPLE_FILE
        sample = {"version": "3.1", "nlu": sample_items(data_files, max_per_intent)}
        target.write_text(_dump(sample), encoding="utf-8")
        written.append(target)
    else:
        names = [p.name for p in data_files]
        duplicates = {n for n in names if names.count(n) > 1}
        for index, path in enumerate(data_files):
            name = f"{index:02d}_{path.name}" if path.name in duplicates else path.name
            target = data_dir / name
            shutil.copyfile(path, target)
            written.append(target)
    domain_path = out_dir / "domain.yml"
    trained_on = sorted(data_dir.glob("*.yml"))
    domain_path.write_text(_dump(domain(trained_on)), encoding="utf-8")
    written.append(domain_path)
    if userdict is not None:
        dict_dir = out_dir / USERDICT_DIR
        dict_dir.mkdir(exist_ok=True)
        target = dict_dir / "userdict.txt"
        shutil.copyfile(userdict, target)
        written.append(target)
    return written
