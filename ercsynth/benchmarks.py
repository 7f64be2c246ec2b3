"""Benchmarks as data: definitions (built-in or from the config) and the loaders of their files.

A definition names a benchmark's ordered labels, its files per split (relative to
``benchmarks_dir``), their format and, optionally, where to download them. MELD, EmoryNLP and
IEMOCAP are built-in definitions (``builtin_benchmarks.yaml``) in the same form a user writes
under ``benchmark_definitions``. Every loader returns dialogues with canonical labels, utterances
in order, text kept exactly as written; a malformed file raises :class:`BenchmarkFormatError`
naming file, line and reason, and a bad definition raises :class:`DefinitionError` naming the
config key.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ercsynth import design
from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.labels import _BUILTIN, UnknownLabel, Vocabulary
from ercsynth.textfiles import NotUtf8, read_utf8

SPLITS: tuple[str, ...] = ("train", "dev", "test")
# tsv: speaker<TAB>utterance<TAB>label, blank line between dialogues; csv: one utterance a row,
# columns named by `columns`; jsonl: {"dialogue_id", "utterances": [{"speaker", "text", "label"}]};
# emorynlp_json: the official EmoryNLP release (episodes -> scenes -> utterances).
FORMATS: tuple[str, ...] = ("tsv", "csv", "jsonl", "emorynlp_json")
CSV_COLUMNS: tuple[str, ...] = ("dialogue_id", "turn", "speaker", "text", "label")
CSV_REQUIRED: tuple[str, ...] = ("dialogue_id", "speaker", "text", "label")
NAME = re.compile(rf"^{design.NAME}$")
# Generation settings a definition (or generation.per_benchmark) may set for its benchmark.
GENERATION_KEYS: tuple[str, ...] = (
    "dialogues",
    "max_new_tokens",
    "speakers",
    "turns",
    "min_utterances",
    "max_output_chars",
    "max_repeated_share",
    "scenes",
    "topics",
    "natural_topics",
    "names",
)


class BenchmarkFormatError(ValueError):
    """A benchmark file that cannot be read; the message names the file, line and reason."""


class BenchmarkMissing(FileNotFoundError):
    """The benchmark's files are not where the config says."""


class DefinitionError(ValueError):
    """A benchmark definition that cannot work; the message names the config key."""


@dataclass(frozen=True)
class Source:
    """Where one split of one benchmark comes from, and in which format."""

    path: Path
    fmt: str
    columns: dict[str, str] | None = None


@dataclass(frozen=True)
class Form:
    """One way a benchmark's files are stored: a format, a file per split, optional downloads."""

    format: str
    files: dict[str, str]
    columns: dict[str, str] | None = None
    url: dict[str, str] | None = None
    sha256: dict[str, str | None] | None = None


@dataclass(frozen=True)
class BenchmarkDefinition:
    name: str
    labels: tuple[str, ...]
    forms: tuple[Form, ...]  # the first is the main form; the others are alternatives
    raw_labels: dict[str, str] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)
    help: str = ""
    licence: str = ""
    licence_id: str = "other"  # the dataset card's `license:` (a Hugging Face licence id)
    builtin: bool = False

    @property
    def vocab(self) -> Vocabulary:
        return Vocabulary(self.name, self.labels, dict(self.raw_labels))

    @property
    def download_form(self) -> Form | None:
        return next((f for f in self.forms if f.url), None)

    def form(self, benchmarks_dir: str | Path, prefer: str = "auto", downloading: bool = False) -> Form:
        """The form to read: the downloaded one, the preferred format, else the first whose files
        all exist, else the main form (whose missing files the error then names)."""
        if downloading and self.download_form:
            return self.download_form
        if prefer != "auto":
            for f in self.forms:
                if f.format == prefer or (prefer == "json" and f.format == "emorynlp_json"):
                    return f
        root = Path(benchmarks_dir)
        for f in self.forms:
            if all((root / f.files[s]).exists() for s in SPLITS):
                return f
        return self.forms[0]

    def source(self, benchmarks_dir: str | Path, split: str, prefer: str = "auto", downloading: bool = False) -> Source:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}")
        f = self.form(benchmarks_dir, prefer, downloading)
        return Source(Path(benchmarks_dir) / f.files[split], f.format, f.columns)

    def missing_files(self, benchmarks_dir: str | Path, prefer: str = "auto", downloading: bool = False) -> list[Path]:
        paths = (self.source(benchmarks_dir, s, prefer, downloading).path for s in SPLITS)
        return [p for p in paths if not p.exists()]

    def missing_help(self, benchmarks_dir: str | Path) -> str:
        if self.help:
            return self.help.format(dir=benchmarks_dir)
        if self.download_form:
            return (
                "set 'benchmarks_dir' in the config, or leave it at resources/benchmarks to download the public release"
            )
        return (
            f"Put the files there (paths in the definition are relative to 'benchmarks_dir' = {benchmarks_dir}), "
            "or give the definition a 'url' and 'sha256' per split so the download rule fetches them"
        )

    def downloads(self) -> dict[str, tuple[str, str | None]]:
        """File name under `<name>/` -> (URL, SHA-256 or None) of the downloadable form."""
        f = self.download_form
        if not f:
            return {}
        prefix = f"{self.name}/"
        return {f.files[s][len(prefix) :]: (f.url[s], (f.sha256 or {}).get(s)) for s in SPLITS}

    def reading(self, source: Source) -> dict:
        """What a prepare job needs to read one file: the job's params, so an edit reruns it."""
        return {
            "format": source.fmt,
            "columns": source.columns,
            "labels": list(self.labels),
            "raw_labels": dict(self.raw_labels),
        }


# --------------------------------------------------------------------------- definitions
def _key(name: str, *parts: str, builtin: bool = False) -> str:
    root = "builtin benchmark" if builtin else "benchmark_definitions"
    return ".".join([f"{root}.{name}", *parts])


def _split_map(value: Any, key: str, what: str, nullable: bool = False) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DefinitionError(f"config key '{key}': {what} must map each split (train, dev, test) to a value")
    missing = [s for s in SPLITS if s not in value]
    extra = sorted(set(value) - set(SPLITS))
    if missing or extra:
        raise DefinitionError(
            f"config key '{key}': needs exactly the splits train, dev, test"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(extra)}" if extra else "")
        )
    for s in SPLITS:
        v = value[s]
        if v is None and nullable:
            continue
        if not isinstance(v, str) or not v.strip():
            raise DefinitionError(f"config key '{key}.{s}': {what} must be a non-empty string, not {v!r}")
    return dict(value)


def _form(name: str, d: dict, key: str) -> Form:
    fmt = d.get("format")
    if fmt not in FORMATS:
        raise DefinitionError(
            f"config key '{key}.format': unknown format {fmt!r} (expected one of {', '.join(FORMATS)})"
        )
    files = _split_map(d.get("files"), f"{key}.files", "files")
    for s, path in files.items():
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise DefinitionError(f"config key '{key}.files.{s}': {path!r} must be a path inside 'benchmarks_dir'")
    columns = None
    if fmt == "csv":
        columns = d.get("columns")
        if not isinstance(columns, dict):
            raise DefinitionError(
                f"config key '{key}.columns': a csv benchmark names its columns: {', '.join(CSV_COLUMNS)} "
                "(turn is optional: rows are then in file order)"
            )
        unknown = sorted(set(columns) - set(CSV_COLUMNS))
        missing = [c for c in CSV_REQUIRED if c not in columns]
        if unknown or missing:
            raise DefinitionError(
                f"config key '{key}.columns': "
                + "; ".join(
                    ([f"missing {', '.join(missing)}"] if missing else [])
                    + ([f"unknown {', '.join(unknown)} (known: {', '.join(CSV_COLUMNS)})"] if unknown else [])
                )
            )
    elif d.get("columns") is not None:
        raise DefinitionError(f"config key '{key}.columns': only the csv format has columns (this one is {fmt})")
    url = sha = None
    if d.get("url") is not None:
        url = _split_map(d["url"], f"{key}.url", "url")
        sha = _split_map(d.get("sha256") or {s: None for s in SPLITS}, f"{key}.sha256", "sha256", nullable=True)
        for s, digest in sha.items():
            if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise DefinitionError(f"config key '{key}.sha256.{s}': {digest!r} is not a SHA-256 hex digest")
        outside = [p for p in files.values() if not p.startswith(f"{name}/")]
        if outside:
            raise DefinitionError(
                f"config key '{key}.files': downloaded files live under '{name}/' in benchmarks_dir; "
                f"not {', '.join(outside)}"
            )
    elif d.get("sha256") is not None:
        raise DefinitionError(f"config key '{key}.sha256': checksums need a 'url' per split")
    return Form(fmt, files, columns, url, sha)


def parse_definition(name: str, d: Any, builtin: bool = False) -> BenchmarkDefinition:
    """A definition dict (the config's form) -> BenchmarkDefinition, or a DefinitionError."""
    key = _key(name, builtin=builtin)
    if not NAME.match(name):
        raise DefinitionError(
            f"config key '{key}': a benchmark name starts with a letter and holds letters, digits, '_' or '-' "
            "(it becomes part of file names and wildcards)"
        )
    if not isinstance(d, dict):
        raise DefinitionError(f"config key '{key}': a definition is a mapping (format, labels, files, ...)")
    labels = d.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise DefinitionError(f"config key '{key}.labels': a list of label names, in symbol order")
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise DefinitionError(f"config key '{key}.labels': duplicate label(s) {', '.join(duplicates)}")
    if len(labels) < 2:
        raise DefinitionError(f"config key '{key}.labels': at least two labels are needed, found {len(labels)}")
    raw = d.get("raw_labels") or {}
    if not isinstance(raw, dict):
        raise DefinitionError(f"config key '{key}.raw_labels': a mapping from spellings in the files to labels")
    bad = {k: v for k, v in raw.items() if v not in labels}
    if bad:
        k, v = next(iter(bad.items()))
        raise DefinitionError(
            f"config key '{key}.raw_labels.{k}': {v!r} is not one of the definition's labels ({', '.join(labels)})"
        )
    forms = [_form(name, d, key)]
    for i, alt in enumerate(d.get("alternatives") or []):
        forms.append(_form(name, alt if isinstance(alt, dict) else {}, f"{key}.alternatives[{i}]"))
    gen = d.get("generation") or {}
    unknown = sorted(set(gen) - set(GENERATION_KEYS))
    if unknown:
        raise DefinitionError(
            f"config key '{key}.generation': unknown setting(s) {', '.join(unknown)} "
            f"(per-benchmark settings: {', '.join(GENERATION_KEYS)})"
        )
    return BenchmarkDefinition(
        name=name,
        labels=tuple(labels),
        forms=tuple(forms),
        raw_labels={str(k): v for k, v in raw.items()},
        generation=dict(gen),
        help=str(d.get("help") or ""),
        licence=str(d.get("licence") or ""),
        licence_id=str(d.get("licence_id") or "other"),
        builtin=builtin,
    )


def builtin_definitions() -> dict[str, BenchmarkDefinition]:
    return {name: parse_definition(name, d, builtin=True) for name, d in _BUILTIN.items()}


def all_definitions(user: dict | None = None) -> dict[str, BenchmarkDefinition]:
    """The built-in definitions plus the config's `benchmark_definitions`."""
    defs = builtin_definitions()
    for name, d in (user or {}).items():
        if name in defs:
            raise DefinitionError(
                f"config key 'benchmark_definitions.{name}': {name} is a built-in benchmark; "
                "give your definition another name (per-benchmark generation settings go under generation.per_benchmark)"
            )
        defs[name] = parse_definition(name, d)
    return defs


def definition(name: str, user: dict | None = None) -> BenchmarkDefinition:
    defs = all_definitions(user)
    if name not in defs:
        raise KeyError(f"unknown benchmark {name!r}; defined: {', '.join(defs)}")
    return defs[name]


# --------------------------------------------------------------------------- built-in shortcuts
IEMOCAP_HELP = str(_BUILTIN["IEMOCAP"]["help"])


def source(benchmarks_dir: str | Path, benchmark: str, split: str, emorynlp_format: str = "auto") -> Source:
    """The file of a built-in benchmark's split. EmoryNLP 'auto' prefers the TSV, then the official JSON."""
    return definition(benchmark).source(benchmarks_dir, split, emorynlp_format)


def missing_files(benchmarks_dir: str | Path, benchmark: str, emorynlp_format: str = "auto") -> list[Path]:
    return definition(benchmark).missing_files(benchmarks_dir, emorynlp_format)


def load_split(
    benchmarks_dir: str | Path,
    benchmark: str | BenchmarkDefinition,
    split: str,
    emorynlp_format: str = "auto",
) -> list[Dialogue]:
    defn = benchmark if isinstance(benchmark, BenchmarkDefinition) else definition(benchmark)
    src = defn.source(benchmarks_dir, split, emorynlp_format)
    if not src.path.exists():
        raise BenchmarkMissing(f"{src.path}: no such file for {defn.name} {split}. {defn.missing_help(benchmarks_dir)}")
    return load_file(src.path, defn.vocab, src.fmt, src.columns)


# --------------------------------------------------------------------------- loaders
def load_file(
    path: str | Path, vocab: Vocabulary | str, fmt: str, columns: dict[str, str] | None = None
) -> list[Dialogue]:
    """One file in one of the FORMATS, read with `vocab` (a Vocabulary or a built-in's name)."""
    vocab = Vocabulary.of(vocab) if isinstance(vocab, str) else vocab
    path = Path(path)
    readers = {
        "csv": lambda: load_csv(path, vocab, columns or {}),
        "tsv": lambda: load_tsv(path, vocab),
        "jsonl": lambda: load_jsonl(path, vocab),
        "emorynlp_json": lambda: load_emory_json(path, vocab),
    }
    if fmt not in readers:
        raise ValueError(f"unknown benchmark file format {fmt!r} (expected one of {', '.join(FORMATS)})")
    dialogues = readers[fmt]()
    if not dialogues:
        # A split that loads empty would train or score on nothing and report it as a result.
        raise BenchmarkFormatError(f"{path}: no dialogue in this {fmt} file (is it the right file, or cut short?)")
    return dialogues


def _label(vocab: Vocabulary, raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise BenchmarkFormatError(f"{where}: label {raw!r} is not text")
    try:
        return vocab.canonical(raw)
    except UnknownLabel as exc:
        raise BenchmarkFormatError(f"{where}: {exc}; add it to the definition's labels or raw_labels") from None


def _text(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark dropped); another encoding is a format error naming
    the file, line and column."""
    try:
        return read_utf8(path)
    except NotUtf8 as exc:
        raise BenchmarkFormatError(str(exc)) from None


def load_csv(path: Path, vocab: Vocabulary, columns: dict[str, str]) -> list[Dialogue]:
    """One utterance a row; `columns` maps dialogue_id, turn (optional), speaker, text, label to headers."""
    # newline="" lets csv handle CRLF and newlines inside quoted utterances.
    with io.StringIO(_text(path), newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        wanted = [columns[c] for c in CSV_COLUMNS if c in columns]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise BenchmarkFormatError(
                f"{path}:1: wrong columns: missing {', '.join(missing)} (found {', '.join(header)})"
            )
        turn = columns.get("turn")
        dialogues: dict[str, list[tuple[int, Utterance]]] = {}
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row or any(row[c] is None for c in wanted):
                raise BenchmarkFormatError(f"{where}: wrong number of columns (expected {len(header)})")
            did = row[columns["dialogue_id"]].strip()
            order = len(dialogues.get(did, []))
            if turn:
                try:
                    order = int(row[turn])
                except ValueError:
                    raise BenchmarkFormatError(f"{where}: {turn} {row[turn]!r} is not an integer") from None
            label = _label(vocab, row[columns["label"]], where)
            dialogues.setdefault(did, []).append(
                (order, Utterance(row[columns["speaker"]], row[columns["text"]], label))
            )
    return [
        Dialogue(did, [u for _, u in sorted(utts, key=lambda t: t[0])])
        for did, utts in sorted(dialogues.items(), key=lambda kv: _numeric_key(kv[0]))
    ]


def load_meld_csv(path: Path, vocab: Vocabulary | None = None) -> list[Dialogue]:
    meld = definition("MELD")
    return load_csv(path, vocab or meld.vocab, meld.forms[0].columns or {})


def _numeric_key(value: str) -> tuple[int, str]:
    return (int(value), "") if value.isdigit() else (1 << 62, value)


def load_tsv(path: Path, vocab: Vocabulary) -> list[Dialogue]:
    """speaker<TAB>utterance<TAB>label, a blank line between dialogues."""
    dialogues: list[Dialogue] = []
    current: list[Utterance] = []
    stem = path.stem

    def flush() -> None:
        if current:
            dialogues.append(Dialogue(f"{stem}_{len(dialogues)}", list(current)))
            current.clear()

    with io.StringIO(_text(path), newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                flush()
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise BenchmarkFormatError(
                    f"{path}:{lineno}: expected 'speaker<TAB>utterance<TAB>label', found {len(parts)} field(s)"
                )
            speaker, text, raw = parts
            current.append(Utterance(speaker, text, _label(vocab, raw, f"{path}:{lineno}")))
    flush()
    return dialogues


def load_jsonl(path: Path, vocab: Vocabulary) -> list[Dialogue]:
    """One dialogue a line: {"dialogue_id", "utterances": [{"speaker", "text", "label"}, ...]}."""
    dialogues: list[Dialogue] = []
    with io.StringIO(_text(path)) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkFormatError(f"{where}: not valid JSON ({exc.msg})") from None
            try:
                utts = [
                    Utterance(str(u["speaker"]), str(u["text"]), _label(vocab, u["label"], where))
                    for u in rec["utterances"]
                ]
                did = str(rec.get("dialogue_id", f"{path.stem}_{len(dialogues)}"))
            except (KeyError, TypeError) as exc:
                raise BenchmarkFormatError(
                    f'{where}: expected {{"dialogue_id", "utterances": [{{"speaker", "text", "label"}}]}} '
                    f"(missing {exc})"
                ) from None
            if utts:
                dialogues.append(Dialogue(did, utts))
    return dialogues


def load_emory_json(path: Path, vocab: Vocabulary | None = None) -> list[Dialogue]:
    """Official EmoryNLP JSON: season -> episodes -> scenes -> utterances."""
    vocab = vocab or Vocabulary.of("EmoryNLP")
    try:
        data = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise BenchmarkFormatError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    dialogues: list[Dialogue] = []
    try:
        for episode in data["episodes"]:
            for scene in episode["scenes"]:
                utts = []
                for u in scene["utterances"]:
                    where = f"{path}: utterance {u.get('utterance_id', '?')}"
                    # A few utterances are spoken by several people at once; keep them all.
                    utts.append(
                        Utterance(", ".join(u["speakers"]), u["transcript"], _label(vocab, u["emotion"], where))
                    )
                dialogues.append(Dialogue(scene["scene_id"], utts))
    except (KeyError, TypeError) as exc:
        raise BenchmarkFormatError(f"{path}: not the EmoryNLP JSON layout (missing {exc})") from None
    return dialogues
