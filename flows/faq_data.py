"""The FAQ files: loading and validating entries, synonyms and district facts,
and rendering answers with facts filled in.

Files (under the data directory, see `flows.paths`):
  faq/*.yml          a list of entries: id, questions, answer, tags, intent
  faq/synonyms.yml   canonical spelling -> variants and typos
  faq/phrasings.yml  entry id -> more phrasings (merged into the entry's questions)
  faq/reviewed_phrasings.yml  the same, written by the review queue (flows/review_labels.py)
  faq/uncovered.yml  in-domain questions no entry answers (negatives for the ranker)
  facts.yml          district facts that answers reference as `{group.name}`

A fact nobody has confirmed yet is an explicit placeholder; it renders as
`UNKNOWN_FACT_TEXT` and the answer then ends with `UNKNOWN_FACT_NOTE`, so the
bot never states an invented address, phone number, rate, limit or time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from flows.faq_text import SynonymTable, normalize

# Ids that outside checks rely on (shared/CONTRACT.md, "FAQ entry ids").
REQUIRED_FAQ_IDS: tuple[str, ...] = (
    "mediation.about",
    "mediation.scope",
    "mediation.process",
    "mediation.fee",
    "mediation.hours_location",
    "mediation.agreement",
    "mediation.bangbangtuan",
    "redcredit.about",
    "redcredit.eligibility",
    "redcredit.amount",
    "redcredit.rate",
    "redcredit.materials",
    "redcredit.apply",
    "redcredit.repayment",
    "redcredit.service_station",
    "legal.workstation",
    "legal.aid_eligibility",
    "legal.cloud_court",
    "legal.fee",
    "volunteer.teams",
    "volunteer.signup",
    "volunteer.public_market",
    "volunteer.hours",
    "platform.baixing",
    "platform.process",
    "ticket.howto_status",
    "service.chuxin_station",
    "service.privacy",
)

UNKNOWN_FACT_TEXT = "（待确认）"
UNKNOWN_FACT_NOTE = (
    "标“待确认”的信息还在核实中，请以服务站现场公布为准，或回复“人工”向工作人员确认。"
)

FAQ_FILE_GLOB = "*.yml"
SYNONYMS_FILE = "synonyms.yml"
PHRASINGS_FILE = "phrasings.yml"
REVIEWED_PHRASINGS_FILE = "reviewed_phrasings.yml"
UNCOVERED_FILE = "uncovered.yml"
_NOT_ENTRY_FILES = frozenset(
    {SYNONYMS_FILE, PHRASINGS_FILE, REVIEWED_PHRASINGS_FILE, UNCOVERED_FILE}
)
FACTS_FILE = "facts.yml"
MAX_ANSWER_CHARS = 600  # a WeChat text reply holds about 2,000 bytes

_ID_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
_FACT_REF_RE = re.compile(r"\{([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)\}")
_ENTRY_KEYS = frozenset({"id", "questions", "answer", "tags", "intent", "alias_of"})
_FACT_RECORD_KEYS = frozenset({"value", "placeholder", "note", "source"})


class FaqDataError(Exception):
    """The FAQ or facts files have problems; `problems` lists them (file, item, reason)."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems[:5]) + ("" if len(problems) <= 5 else " ..."))


# --- data types -------------------------------------------------------------


@dataclass(frozen=True)
class FaqEntry:
    id: str
    questions: tuple[str, ...]
    answer: str  # a template with {group.name} fact references until rendered
    tags: tuple[str, ...] = ()
    intent: str | None = None
    source: str = ""  # "file.yml item 3", for messages
    # An id kept so that its phrasings still count: they are folded into this
    # entry's questions at load time, and only that entry is ever answered.
    alias_of: str | None = None


@dataclass(frozen=True)
class Fact:
    name: str
    value: str | None  # None while it is a placeholder
    note: str = ""

    @property
    def known(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Facts:
    by_name: Mapping[str, Fact] = field(default_factory=dict)

    def get(self, name: str) -> Fact | None:
        return self.by_name.get(name)


@dataclass(frozen=True)
class FaqBase:
    entries: tuple[FaqEntry, ...]
    facts: Facts
    synonyms: SynonymTable
    uncovered: tuple[str, ...] = ()  # questions no entry answers (faq/uncovered.yml)

    def entry(self, entry_id: str) -> FaqEntry | None:
        for e in self.entries:
            if e.id == entry_id:
                return e
        return None

    def rendered_entries(self) -> list[FaqEntry]:
        """Entries whose `answer` is the text a user sees (facts filled in)."""
        return [replace(e, answer=render_answer(e.answer, self.facts)) for e in self.entries]


# --- loading and validation -------------------------------------------------


# libyaml's parser when PyYAML has it: the FAQ files hold ~2,000 phrasings and
# the pure-Python parser takes a third of a second over them at every start.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that reports a repeated key instead of silently keeping the last one."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            continue  # unhashable key: construct_mapping reports it
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_duplicates,
)


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problems.append(f"{path}: {where}invalid YAML: {reason}")
        return None
    if data is None:
        problems.append(f"{path}: empty file; skipped")
    return data


def _flatten_facts(
    node: Any, prefix: str, path: Path, out: dict[str, Fact], problems: list[str]
) -> None:
    if not isinstance(node, dict):
        problems.append(f"{path}: {prefix or 'top level'}: expected a mapping of facts")
        return
    for key, value in node.items():
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            problems.append(
                f"{path}: {prefix}{key!r}: fact names are lower-case letters, digits and _; skipped"
            )
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "value" in value:
            _fact_record(name, value, path, out, problems)
        elif isinstance(value, dict):
            _flatten_facts(value, name + ".", path, out, problems)
        elif value is None:
            problems.append(
                f"{path}: fact {name}: bare null; write "
                '{value: null, placeholder: true, note: "待运营人员填写"}'
            )
            out[name] = Fact(name, None, "")
        else:
            text = _fact_text(value)
            if text is None:
                problems.append(f"{path}: fact {name}: value must be text, a number or a list")
                out[name] = Fact(name, None, "")
            else:
                out[name] = Fact(name, text)
    if prefix == "" and not node:
        problems.append(f"{path}: no facts")


def _fact_record(
    name: str, record: dict[Any, Any], path: Path, out: dict[str, Fact], problems: list[str]
) -> None:
    unknown_keys = sorted(str(k) for k in record if k not in _FACT_RECORD_KEYS)
    if unknown_keys:
        problems.append(f"{path}: fact {name}: unknown keys {', '.join(unknown_keys)}")
    note = record.get("note")
    note_text = note if isinstance(note, str) else ""
    placeholder = record.get("placeholder", False)
    if not isinstance(placeholder, bool):
        problems.append(f"{path}: fact {name}: placeholder must be true or false")
        placeholder = True
    raw = record.get("value")
    if raw is None:
        if not placeholder:
            problems.append(
                f"{path}: fact {name}: value is null but placeholder is not true; "
                "fill in the value or mark it `placeholder: true`"
            )
        out[name] = Fact(name, None, note_text)
        return
    if placeholder:
        # An operator filled the value but left the flag: do not guess which is right.
        problems.append(
            f"{path}: fact {name}: has a value but is still marked placeholder: true; "
            "remove the flag once the value is confirmed (shown as unknown until then)"
        )
        out[name] = Fact(name, None, note_text)
        return
    text = _fact_text(raw)
    if text is None:
        problems.append(f"{path}: fact {name}: value must be text, a number or a list")
    out[name] = Fact(name, text, note_text)


def _fact_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return "、".join(str(v) for v in value)
    return None


def load_facts(path: Path) -> tuple[Facts, list[str]]:
    """Read facts.yml; returns the facts that could be read and the problems found."""
    problems: list[str] = []
    data = _read_yaml(path, problems)
    out: dict[str, Fact] = {}
    if data is not None:
        _flatten_facts(data, "", path, out, problems)
    return Facts(out), problems


def load_synonyms(path: Path) -> tuple[SynonymTable, list[str]]:
    """Read synonyms.yml (canonical: [variants]); a missing file means no synonyms."""
    problems: list[str] = []
    if not path.exists():
        return SynonymTable({}), problems
    data = _read_yaml(path, problems)
    if data is None:
        return SynonymTable({}), problems
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping `标准说法: [说法, ...]`")
        return SynonymTable({}), problems
    groups: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for canonical, variants in data.items():
        if not isinstance(canonical, str) or not normalize(canonical):
            problems.append(f"{path}: {canonical!r}: canonical form must be non-empty text")
            continue
        if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
            problems.append(f"{path}: {canonical}: variants must be a list of text; skipped")
            continue
        kept: list[str] = []
        for variant in variants:
            key = normalize(variant).replace(" ", "")
            if not key:
                problems.append(f"{path}: {canonical}: empty variant")
                continue
            if key in owner and owner[key] != canonical:
                problems.append(
                    f"{path}: {canonical}: variant {variant!r} is already a variant of "
                    f"{owner[key]}; skipped"
                )
                continue
            owner[key] = canonical
            kept.append(variant)
        groups[canonical] = kept
    for canonical in groups:
        key = normalize(canonical).replace(" ", "")
        if key in owner and owner[key] != canonical:
            problems.append(
                f"{path}: {canonical}: is also listed as a variant of {owner[key]}; "
                "the canonical form wins"
            )
    return SynonymTable.from_groups(groups), problems


def _check_entry(raw: Any, where: str, facts: Facts | None, problems: list[str]) -> FaqEntry | None:
    from nlu.types import INTENTS

    if not isinstance(raw, dict):
        problems.append(f"{where}: not a mapping; skipped")
        return None
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not _ID_RE.match(entry_id):
        problems.append(
            f"{where}: missing or malformed id {entry_id!r} (like `mediation.fee`); skipped"
        )
        return None
    label = f"{where} ({entry_id})"
    unknown = sorted(str(k) for k in raw if k not in _ENTRY_KEYS)
    if unknown:
        problems.append(f"{label}: unknown keys {', '.join(unknown)}")
    raw_questions = raw.get("questions")
    if not isinstance(raw_questions, list):
        problems.append(f"{label}: `questions` must be a list of phrasings; skipped")
        return None
    questions: list[str] = []
    for q in raw_questions:
        if isinstance(q, str | int) and normalize(str(q)):
            questions.append(str(q).strip())
        else:
            problems.append(f"{label}: question {q!r} is empty or not text; ignored")
    if not questions:
        problems.append(f"{label}: no usable questions; skipped")
        return None
    alias_of = raw.get("alias_of")
    if alias_of is not None and (not isinstance(alias_of, str) or not _ID_RE.match(alias_of)):
        problems.append(f"{label}: alias_of must be an entry id; ignored")
        alias_of = None
    answer = raw.get("answer", "" if alias_of else None)
    if alias_of and answer:
        problems.append(f"{label}: an alias has no answer of its own (it answers with {alias_of})")
    if alias_of:
        return FaqEntry(entry_id, tuple(questions), "", (), None, where, alias_of)
    if not isinstance(answer, str) or not answer.strip():
        problems.append(f"{label}: `answer` must be non-empty text; skipped")
        return None
    answer = answer.strip()
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(f"{label}: `tags` must be a list of text; ignored")
        tags = []
    intent = raw.get("intent")
    if intent is not None and intent not in INTENTS:
        problems.append(f"{label}: unknown intent {intent!r}; ignored")
        intent = None
    _check_answer_template(answer, label, facts, problems)
    return FaqEntry(entry_id, tuple(questions), answer, tuple(tags), intent, where)


def _check_answer_template(
    answer: str, label: str, facts: Facts | None, problems: list[str]
) -> None:
    stray = _FACT_REF_RE.sub("", answer)
    if "{" in stray or "}" in stray:
        problems.append(f"{label}: answer has a brace that is not a fact reference like {{a.b}}")
    refs = _FACT_REF_RE.findall(answer)
    if facts is not None:
        for name in refs:
            if facts.get(name) is None:
                problems.append(f"{label}: answer refers to unknown fact {{{name}}}")
    if facts is not None and len(render_answer(answer, facts)) > MAX_ANSWER_CHARS:
        problems.append(f"{label}: rendered answer is longer than {MAX_ANSWER_CHARS} characters")


def faq_files(faq_dir: Path) -> list[Path]:
    return sorted(p for p in faq_dir.glob(FAQ_FILE_GLOB) if p.name not in _NOT_ENTRY_FILES)


def load_entries(faq_dir: Path, facts: Facts | None = None) -> tuple[list[FaqEntry], list[str]]:
    """Read every faq/*.yml; bad items are skipped and reported, good ones kept."""
    problems: list[str] = []
    if not faq_dir.is_dir():
        return [], [f"{faq_dir}: FAQ directory not found"]
    entries: list[FaqEntry] = []
    first_seen: dict[str, str] = {}
    question_owner: dict[str, str] = {}
    for path in faq_files(faq_dir):
        data = _read_yaml(path, problems)
        if data is None:
            continue
        if not isinstance(data, list):
            problems.append(f"{path}: expected a list of entries (`- id: ...`); file skipped")
            continue
        for number, raw in enumerate(data, start=1):
            where = f"{path.name} item {number}"
            entry = _check_entry(raw, f"{path}: item {number}", facts, problems)
            if entry is None:
                continue
            entry = replace(entry, source=where)
            if entry.id in first_seen:
                problems.append(
                    f"{path}: item {number} ({entry.id}): duplicate id, first defined in "
                    f"{first_seen[entry.id]}; skipped"
                )
                continue
            first_seen[entry.id] = where
            for q in entry.questions:
                key = normalize(q).replace(" ", "")
                other = question_owner.setdefault(key, entry.id)
                if other != entry.id:
                    problems.append(
                        f"{path}: item {number} ({entry.id}): question {q!r} is also a "
                        f"question of {other}"
                    )
            entries.append(entry)
    if not entries and not problems:
        problems.append(f"{faq_dir}: no FAQ entries found")
    for name in (PHRASINGS_FILE, REVIEWED_PHRASINGS_FILE):
        entries = _merge_phrasings(faq_dir / name, entries, question_owner, problems)
    return _fold_aliases(entries, problems), problems


def _fold_aliases(entries: list[FaqEntry], problems: list[str]) -> list[FaqEntry]:
    """Entries with each alias's questions appended to the entry it names."""
    by_id = {e.id: e for e in entries}
    extra: dict[str, list[str]] = {}
    for e in entries:
        if e.alias_of is None:
            continue
        target = by_id.get(e.alias_of)
        if target is None or target.alias_of is not None:
            problems.append(
                f"{e.source} ({e.id}): alias_of {e.alias_of} is not an entry with an answer; "
                "skipped"
            )
            continue
        extra.setdefault(target.id, []).extend(e.questions)
    out = []
    for e in entries:
        if e.alias_of is not None:
            continue
        added = tuple(dict.fromkeys(q for q in extra.get(e.id, ()) if q not in e.questions))
        out.append(replace(e, questions=e.questions + added) if added else e)
    return out


def _text_list(raw: Any, label: str, problems: list[str]) -> list[str]:
    if not isinstance(raw, list):
        problems.append(f"{label}: expected a list of questions; skipped")
        return []
    out = []
    for q in raw:
        if isinstance(q, str | int) and normalize(str(q)):
            out.append(str(q).strip())
        else:
            problems.append(f"{label}: question {q!r} is empty or not text; ignored")
    return out


def _merge_phrasings(
    path: Path,
    entries: list[FaqEntry],
    question_owner: dict[str, str],
    problems: list[str],
) -> list[FaqEntry]:
    """Entries with the phrasings of `path` (id -> [question]) appended."""
    if not path.exists():
        return entries
    data = _read_yaml(path, problems)
    if data is None:
        return entries
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping `条目id: [问法, ...]`")
        return entries
    extra: dict[str, list[str]] = {}
    known = {e.id for e in entries}
    for entry_id, raw in data.items():
        label = f"{path}: {entry_id}"
        if entry_id not in known:
            problems.append(f"{label}: no FAQ entry has this id; skipped")
            continue
        kept = extra.setdefault(str(entry_id), [])
        for q in _text_list(raw, label, problems):
            key = normalize(q).replace(" ", "")
            owner = question_owner.setdefault(key, entry_id)
            if owner != entry_id:
                problems.append(f"{label}: question {q!r} is also a question of {owner}; skipped")
            elif q not in kept:
                kept.append(q)
    out = []
    for e in entries:
        added = tuple(q for q in extra.get(e.id, ()) if q not in e.questions)
        out.append(replace(e, questions=e.questions + added) if added else e)
    return out


def load_uncovered(path: Path) -> tuple[tuple[str, ...], list[str]]:
    """Read uncovered.yml (a list of questions); a missing file means none."""
    problems: list[str] = []
    if not path.exists():
        return (), problems
    data = _read_yaml(path, problems)
    if data is None:
        return (), problems
    return tuple(dict.fromkeys(_text_list(data, str(path), problems))), problems


def validate_faq(faq_dir: Path, facts_path: Path) -> list[str]:
    """Every problem in the FAQ, synonyms and facts files, as `file: item (id): reason`.

    Empty means the data is good. Meant for `tongxin check-data` and a test.
    """
    facts, problems = load_facts(facts_path)
    _, synonym_problems = load_synonyms(faq_dir / SYNONYMS_FILE)
    entries, entry_problems = load_entries(faq_dir, facts)
    uncovered, uncovered_problems = load_uncovered(faq_dir / UNCOVERED_FILE)
    problems += synonym_problems + entry_problems + uncovered_problems
    owner = {normalize(q).replace(" ", ""): e.id for e in entries for q in e.questions}
    for q in uncovered:
        other = owner.get(normalize(q).replace(" ", ""))
        if other is not None:
            problems.append(
                f"{faq_dir / UNCOVERED_FILE}: {q!r} is listed as uncovered but is a "
                f"question of {other}"
            )
    present = {e.id for e in entries}
    for required in REQUIRED_FAQ_IDS:
        if required not in present:
            problems.append(f"{faq_dir}: required FAQ id {required} is missing (CONTRACT.md)")
    return problems


def load_faq_base(data_dir: Path, *, strict: bool = False) -> FaqBase:
    """Load `data_dir/faq/` and `data_dir/facts.yml`.

    strict=False (the running bot) keeps every usable entry and skips bad ones;
    strict=True raises FaqDataError listing every problem.
    """
    faq_dir = data_dir / "faq"
    facts, fact_problems = load_facts(data_dir / FACTS_FILE)
    synonyms, synonym_problems = load_synonyms(faq_dir / SYNONYMS_FILE)
    entries, entry_problems = load_entries(faq_dir, facts)
    uncovered, uncovered_problems = load_uncovered(faq_dir / UNCOVERED_FILE)
    problems = fact_problems + synonym_problems + entry_problems + uncovered_problems
    if strict and problems:
        raise FaqDataError(problems)
    if not entries:
        raise FaqDataError(problems or [f"{faq_dir}: no FAQ entries"])
    return FaqBase(tuple(entries), facts, synonyms, uncovered)


# --- rendering --------------------------------------------------------------


def render_answer(template: str, facts: Facts) -> str:
    """Fill `{group.name}` references; unknown or missing facts never show a guess."""
    unknown = False

    def fill(match: re.Match[str]) -> str:
        nonlocal unknown
        fact = facts.get(match.group(1))
        if fact is None or fact.value is None:
            unknown = True
            return UNKNOWN_FACT_TEXT
        return fact.value

    text = _FACT_REF_RE.sub(fill, template).strip()
    if unknown:
        text = f"{text}\n{UNKNOWN_FACT_NOTE}"
    return text
