"""Load and validate Rasa 3.x NLU training data (YAML), with file- and item-level problems.

The files are the ones a Rasa user would train on: `version: "3.1"` and an
`nlu:` list of `intent`, `synonym`, `regex` and `lookup` items. Examples may
carry Rasa entity annotations (`[五万](amount)`, `[五万]{"entity": "amount",
"value": "50000"}`); they are stripped from the training text and kept as
`EntityAnnotation`s for evaluation.

Like Rasa's reader, a broken item is skipped with an error that names the file,
line and item, and the rest of the data is still used; `check_data` returns
every problem so that the `check-data` command (and a test) can show them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nlu.tokenizer import normalize_text
from nlu.types import ENTITY_NAMES, FALLBACK_INTENT, INTENTS, SERVICE_INTENTS

DATA_DIR = Path(__file__).resolve().parent / "data"
SUPPORTED_VERSION = "3.1"
# The issue asks for at least this many examples per intent.
MIN_SERVICE_EXAMPLES = 80
MIN_DIALOGUE_EXAMPLES = 30
DATA_SUFFIXES = (".yml", ".yaml")

Level = Literal["error", "warning"]

# Rasa's annotation syntax: [text](entity), [text](entity:value), [text]{"entity": ...}
_ANNOTATION = re.compile(
    r"\[(?P<text>[^\]\[]+?)\]"
    r"(?:\((?P<entity>[^:()\s]+?)(?::(?P<value>[^()]+))?\)|(?P<json>\{[^{}]+?\}))"
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Problem:
    level: Level
    file: str
    message: str
    line: int | None = None
    item: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        item = f" [{self.item}]" if self.item else ""
        return f"{where}: {self.level}{item}: {self.message}"


@dataclass(frozen=True)
class EntityAnnotation:
    entity: str
    start: int
    end: int
    value: str | None  # None: the annotated text itself is the value


@dataclass(frozen=True)
class Example:
    text: str
    intent: str
    entities: tuple[EntityAnnotation, ...] = ()
    source: str = ""  # "file:line", for messages


@dataclass(frozen=True)
class TrainingData:
    examples: tuple[Example, ...]
    synonyms: dict[str, str] = field(default_factory=dict)  # variant -> canonical value
    regexes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lookups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    files: tuple[Path, ...] = ()

    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.examples})

    def counts(self) -> Counter[str]:
        return Counter(e.intent for e in self.examples)


class TrainingDataError(Exception):
    """The data cannot be used at all (missing, unparsable, no examples)."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.problems = list(problems)


class AnnotationError(ValueError):
    pass


def default_data_paths() -> list[Path]:
    """The NLU files shipped with the package: every YAML file in nlu/data/."""
    return resolve_data_paths([DATA_DIR])


def resolve_data_paths(paths: Iterable[Path]) -> list[Path]:
    """Expand directories into their YAML files (sorted); keep files as given."""
    resolved: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            resolved.extend(sorted(p for p in path.iterdir() if p.suffix in DATA_SUFFIXES))
        else:
            resolved.append(path)
    return resolved


def data_fingerprint(paths: Iterable[Path], extra: Iterable[Path] = ()) -> str:
    """sha256 over the training files' names and bytes plus `extra` files (the userdict).

    Names, not absolute paths, so moving a checkout doesn't make a model stale.
    """
    digest = hashlib.sha256()
    for group in (sorted(paths, key=lambda p: p.name), list(extra)):
        for path in group:
            digest.update(path.name.encode() + b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def parse_annotated(text: str) -> tuple[str, tuple[EntityAnnotation, ...]]:
    """Strip Rasa entity annotations; return the plain text and the entity spans in it."""
    parts: list[str] = []
    entities: list[EntityAnnotation] = []
    pos = 0
    length = 0
    for m in _ANNOTATION.finditer(text):
        before = text[pos : m.start()]
        parts.append(before)
        length += len(before)
        surface = m.group("text")
        if m.group("json"):
            try:
                spec = json.loads(m.group("json"))
            except json.JSONDecodeError as exc:
                message = f"entity annotation {m.group(0)!r} is not valid JSON"
                raise AnnotationError(message) from exc
            if not isinstance(spec, dict) or not isinstance(spec.get("entity"), str):
                raise AnnotationError(f"entity annotation {m.group(0)!r} has no entity name")
            name = spec["entity"]
            value = spec.get("value")
            value = None if value is None else str(value)
        else:
            name = m.group("entity")
            value = m.group("value")
        entities.append(EntityAnnotation(name, length, length + len(surface), value))
        parts.append(surface)
        length += len(surface)
        pos = m.end()
    parts.append(text[pos:])
    return "".join(parts), tuple(entities)


# --- YAML walking -----------------------------------------------------------


def _loader() -> type:
    # libyaml's loader is ~10x faster on large files; same node tree.
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _mapping(node: yaml.Node) -> dict[str, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    result: dict[str, yaml.Node] = {}
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode):
            result[str(key.value)] = value
    return result


def _example_lines(node: yaml.Node) -> list[tuple[str, int]] | str:
    """(text, line) pairs of an `examples` value, or a message saying why it is malformed."""
    if isinstance(node, yaml.ScalarNode):
        first = _line(node) + (1 if node.style in ("|", ">") else 0)
        lines = []
        for offset, raw in enumerate(str(node.value).split("\n")):
            stripped = raw.strip()
            if not stripped:
                continue
            if not stripped.startswith("- ") and stripped != "-":
                return f"line {first + offset}: example lines must start with '- ', got {raw!r}"
            lines.append((stripped[1:].strip(), first + offset))
        return lines
    if isinstance(node, yaml.SequenceNode):
        seq = []
        for entry in node.value:
            if isinstance(entry, yaml.ScalarNode):
                seq.append((str(entry.value).strip(), _line(entry)))
                continue
            mapping = _mapping(entry)
            text = mapping.get("text") if mapping else None
            if not isinstance(text, yaml.ScalarNode):
                return f"line {_line(entry)}: list examples must be strings or have a 'text'"
            seq.append((str(text.value).strip(), _line(entry)))
        return seq
    return "'examples' must be a block string ('|') or a list"


@dataclass
class _Collector:
    file: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, level: Level, message: str, line: int | None = None, item: str | None = None):
        self.problems.append(Problem(level, self.file, message, line, item))


_ITEM_KEYS = ("intent", "synonym", "regex", "lookup")


def read_nlu_file(path: Path) -> tuple[TrainingData, list[Problem]]:
    """Read one Rasa NLU YAML file; bad items are skipped and reported, never raised."""
    out = _Collector(str(path))
    examples: list[Example] = []
    synonyms: dict[str, str] = {}
    regexes: dict[str, tuple[str, ...]] = {}
    lookups: dict[str, tuple[str, ...]] = {}
    empty = TrainingData(())
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        out.add("error", "file not found")
        return empty, out.problems
    except (OSError, UnicodeDecodeError) as exc:
        out.add("error", f"cannot read file: {exc}")
        return empty, out.problems
    try:
        root = yaml.compose(source, Loader=_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else None
        out.add("error", f"invalid YAML: {getattr(exc, 'problem', None) or exc}", line)
        return empty, out.problems
    top = _mapping(root) if root is not None else None
    if top is None:
        out.add("error", "top level must be a mapping with 'version' and 'nlu'")
        return empty, out.problems

    version = top.get("version")
    if version is None:
        out.add("warning", f"no 'version'; Rasa expects version: \"{SUPPORTED_VERSION}\"")
    elif not isinstance(version, yaml.ScalarNode) or version.tag != "tag:yaml.org,2002:str":
        out.add(
            "warning",
            f'version must be a quoted string: version: "{SUPPORTED_VERSION}"',
            _line(version),
        )
    elif not str(version.value).startswith("3."):
        out.add(
            "warning", f"version {version.value!r}: this reader follows Rasa 3.x", _line(version)
        )
    for key, node in top.items():
        if key not in ("version", "nlu"):
            out.add("warning", f"unknown top-level key {key!r} ignored", _line(node))

    items = top.get("nlu")
    if items is None:
        out.add("error", "no 'nlu' list")
        return empty, out.problems
    if not isinstance(items, yaml.SequenceNode):
        out.add("error", "'nlu' must be a list of items", _line(items))
        return empty, out.problems

    for index, item_node in enumerate(items.value, start=1):
        line = _line(item_node)
        item = _mapping(item_node)
        if item is None:
            out.add("error", "item must be a mapping; skipped", line, f"item {index}")
            continue
        kinds = [k for k in _ITEM_KEYS if k in item]
        if len(kinds) != 1:
            message = "item needs exactly one of intent/synonym/regex/lookup; skipped"
            out.add("error", message, line, f"item {index}")
            continue
        kind = kinds[0]
        name_node = item[kind]
        name = str(name_node.value).strip() if isinstance(name_node, yaml.ScalarNode) else ""
        label = f"item {index} ({kind}: {name})"
        if not name:
            out.add("error", f"{kind} needs a name; skipped", line, label)
            continue
        extra = sorted(set(item) - {kind, "examples", "metadata"})
        if extra:
            out.add("warning", f"unknown keys {extra} ignored", line, label)
        if "examples" not in item:
            out.add("error", "no 'examples'; skipped", line, label)
            continue
        lines = _example_lines(item["examples"])
        if isinstance(lines, str):
            out.add("error", f"{lines}; skipped", line, label)
            continue
        if not lines:
            out.add("error", "no examples; skipped", line, label)
            continue

        if kind == "intent":
            if name == FALLBACK_INTENT:
                message = f"{FALLBACK_INTENT} is assigned by the parser; skipped"
                out.add("error", message, line, label)
                continue
            if name not in INTENTS:
                known = ", ".join(INTENTS)
                out.add("error", f"unknown intent {name!r} (known: {known}); skipped", line, label)
                continue
            seen: set[str] = set()
            for raw, example_line in lines:
                try:
                    text, annotations = parse_annotated(raw)
                except AnnotationError as exc:
                    out.add("error", f"{exc}; example skipped", example_line, label)
                    continue
                if not text.strip():
                    out.add("error", "empty example skipped", example_line, label)
                    continue
                for ann in annotations:
                    if not _NAME.match(ann.entity):
                        message = f"entity name {ann.entity!r} must be snake_case; example skipped"
                        out.add("error", message, example_line, label)
                        break
                    if ann.entity not in ENTITY_NAMES:
                        message = f"entity {ann.entity!r} has no extractor here (Rasa only)"
                        out.add("warning", message, example_line, label)
                else:
                    key = normalize_text(text)
                    if key in seen:
                        out.add("warning", f"duplicate example {text!r}", example_line, label)
                        continue
                    seen.add(key)
                    source = f"{path.name}:{example_line}"
                    examples.append(Example(text, name, annotations, source))
        elif kind == "synonym":
            for variant, _ in lines:
                synonyms[variant] = name
        elif kind == "regex":
            patterns = []
            for pattern, example_line in lines:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    out.add(
                        "error", f"invalid regex {pattern!r}: {exc}; skipped", example_line, label
                    )
                    continue
                patterns.append(pattern)
            if patterns:
                regexes[name] = regexes.get(name, ()) + tuple(patterns)
        else:
            lookups[name] = lookups.get(name, ()) + tuple(v for v, _ in lines if v)
    data = TrainingData(tuple(examples), synonyms, regexes, lookups, (path,))
    return data, out.problems


def merge(parts: Iterable[TrainingData]) -> TrainingData:
    examples: list[Example] = []
    synonyms: dict[str, str] = {}
    regexes: dict[str, tuple[str, ...]] = {}
    lookups: dict[str, tuple[str, ...]] = {}
    files: list[Path] = []
    for part in parts:
        examples.extend(part.examples)
        synonyms.update(part.synonyms)
        for name, patterns in part.regexes.items():
            regexes[name] = regexes.get(name, ()) + patterns
        for name, values in part.lookups.items():
            lookups[name] = lookups.get(name, ()) + values
        files.extend(part.files)
    return TrainingData(tuple(examples), synonyms, regexes, lookups, tuple(files))


def _cross_checks(data: TrainingData, files: str) -> list[Problem]:
    problems: list[Problem] = []
    by_text: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for example in data.examples:
        key = normalize_text(example.text)
        by_text[key].add(example.intent)
        where.setdefault((key, example.intent), example.source)
    for key, intents in by_text.items():
        if len(intents) > 1:
            places = ", ".join(f"{i} ({where[(key, i)]})" for i in sorted(intents))
            message = f"example {key!r} is labelled with several intents: {places}"
            problems.append(Problem("error", files, message))
    counts = data.counts()
    for intent in INTENTS:
        n = counts.get(intent, 0)
        minimum = MIN_SERVICE_EXAMPLES if intent in SERVICE_INTENTS else MIN_DIALOGUE_EXAMPLES
        if n == 0:
            problems.append(Problem("error", files, f"intent {intent!r} has no examples"))
        elif n < minimum:
            message = f"intent {intent!r} has {n} examples; at least {minimum} are expected"
            problems.append(Problem("warning", files, message))
    return problems


def read_training_data(paths: Iterable[Path]) -> tuple[TrainingData, list[Problem]]:
    """Read every file (directories expanded); return the merged data and all problems."""
    files = resolve_data_paths(paths)
    parts: list[TrainingData] = []
    problems: list[Problem] = []
    if not files:
        return TrainingData(()), [Problem("error", "-", "no NLU data files given")]
    for path in files:
        part, found = read_nlu_file(path)
        parts.append(part)
        problems.extend(found)
    data = merge(parts)
    problems.extend(_cross_checks(data, ", ".join(str(p) for p in files)))
    return data, problems


def check_data(paths: Iterable[Path]) -> list[Problem]:
    """Every problem in the NLU files; errors mean something was skipped or is unusable."""
    return read_training_data(paths)[1]


def load_training_data(paths: Iterable[Path]) -> tuple[TrainingData, list[Problem]]:
    """Data ready for training, plus the (non-fatal) problems found on the way.

    Raises TrainingDataError when nothing trainable remains.
    """
    data, problems = read_training_data(paths)
    if len(data.intents()) < 2:
        fatal = [p for p in problems if p.level == "error"]
        raise TrainingDataError(
            "no usable NLU training data (need examples of at least two intents)", fatal or problems
        )
    return data, problems


def load_examples(path: Path) -> list[Example]:
    """Labelled examples for evaluation: a Rasa NLU file or a plain YAML list of
    `{text, intent}` mappings (optionally with Rasa annotations in `text`)."""
    try:
        raw: Any = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError(f"cannot read {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"{path}: invalid YAML: {exc}") from exc
    if isinstance(raw, dict) and "nlu" in raw:
        data, problems = read_training_data([path])
        errors = [p for p in problems if p.level == "error" and "has no examples" not in p.message]
        if not data.examples:
            raise TrainingDataError(f"{path}: no examples", errors)
        return list(data.examples)
    if not isinstance(raw, list):
        raise TrainingDataError(f"{path}: expected a Rasa NLU file or a list of {{text, intent}}")
    examples = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise TrainingDataError(f"{path}: entry {index} needs a 'text' string")
        intent = entry.get("intent")
        if not isinstance(intent, str):
            raise TrainingDataError(f"{path}: entry {index} needs an 'intent' string")
        try:
            text, annotations = parse_annotated(entry["text"])
        except AnnotationError as exc:
            raise TrainingDataError(f"{path}: entry {index}: {exc}") from exc
        examples.append(Example(text, intent, annotations, f"{path.name}#{index}"))
    return examples
