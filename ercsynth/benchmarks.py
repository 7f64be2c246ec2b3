"""Loaders for the released MELD, EmoryNLP and IEMOCAP files.

Every loader returns dialogues with canonical labels, utterances in order, text kept exactly
as released. A malformed file raises :class:`BenchmarkFormatError` naming file, line, reason.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.labels import UnknownLabel, Vocabulary

SPLITS: tuple[str, ...] = ("train", "dev", "test")


class BenchmarkFormatError(ValueError):
    """A benchmark file that cannot be read; the message names the file, line and reason."""


class BenchmarkMissing(FileNotFoundError):
    """The benchmark's files are not where the config says."""


@dataclass(frozen=True)
class Source:
    """Where one split of one benchmark comes from, and in which format."""

    path: Path
    fmt: str  # "meld_csv" | "tsv" | "emory_json"


MELD_COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
_EMORY_JSON = {
    "train": "emotion-detection-trn.json",
    "dev": "emotion-detection-dev.json",
    "test": "emotion-detection-tst.json",
}

IEMOCAP_HELP = (
    "IEMOCAP is licensed by USC SAIL and is never downloaded by ercsynth. Request it at "
    "https://sail.usc.edu/iemocap/, convert the transcripts to tab-separated "
    "'speaker<TAB>utterance<TAB>label' files with a blank line between dialogues "
    "(labels neu, fru, ang, sad, exc, hap) and put them at {dir}/IEMOCAP/iemocap_{{train,dev,test}}.txt, "
    "or drop IEMOCAP from 'benchmarks' in the config."
)


def source(benchmarks_dir: str | Path, benchmark: str, split: str, emorynlp_format: str = "auto") -> Source:
    """Resolve the file for a split. EmoryNLP 'auto' prefers the TSV, then the official JSON."""
    root = Path(benchmarks_dir)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    if benchmark == "MELD":
        return Source(root / "MELD" / f"{split}_sent_emo.csv", "meld_csv")
    if benchmark == "IEMOCAP":
        return Source(root / "IEMOCAP" / f"iemocap_{split}.txt", "tsv")
    if benchmark == "EmoryNLP":
        tsv = Source(root / "EmoryNLP" / f"emorynlp_{split}.txt", "tsv")
        js = Source(root / "EmoryNLP" / _EMORY_JSON[split], "emory_json")
        if emorynlp_format == "tsv":
            return tsv
        if emorynlp_format == "json":
            return js
        return tsv if tsv.path.exists() or not js.path.exists() else js
    raise KeyError(f"unknown benchmark {benchmark!r}")


def missing_files(benchmarks_dir: str | Path, benchmark: str, emorynlp_format: str = "auto") -> list[Path]:
    return [
        s.path for s in (source(benchmarks_dir, benchmark, sp, emorynlp_format) for sp in SPLITS) if not s.path.exists()
    ]


def load_split(benchmarks_dir: str | Path, benchmark: str, split: str, emorynlp_format: str = "auto") -> list[Dialogue]:
    src = source(benchmarks_dir, benchmark, split, emorynlp_format)
    if not src.path.exists():
        hint = (
            IEMOCAP_HELP.format(dir=benchmarks_dir)
            if benchmark == "IEMOCAP"
            else (
                "set 'benchmarks_dir' in the config, or leave it at resources/benchmarks to download the public release"
            )
        )
        raise BenchmarkMissing(f"{src.path}: no such file for {benchmark} {split}. {hint}")
    return load_file(src.path, benchmark, src.fmt)


def load_file(path: str | Path, benchmark: str, fmt: str) -> list[Dialogue]:
    """One released file in one of the formats of `Source.fmt`."""
    vocab = Vocabulary.of(benchmark)
    path = Path(path)
    if fmt == "meld_csv":
        return load_meld_csv(path, vocab)
    if fmt == "tsv":
        return load_tsv(path, vocab)
    if fmt == "emory_json":
        return load_emory_json(path, vocab)
    raise ValueError(f"unknown benchmark file format {fmt!r}")


def _label(vocab: Vocabulary, raw: str, where: str) -> str:
    try:
        return vocab.canonical(raw)
    except UnknownLabel as exc:
        raise BenchmarkFormatError(f"{where}: {exc}") from None


def load_meld_csv(path: Path, vocab: Vocabulary | None = None) -> list[Dialogue]:
    vocab = vocab or Vocabulary.of("MELD")
    # newline="" lets csv handle CRLF and newlines inside quoted utterances.
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in MELD_COLUMNS if c not in header]
        if missing:
            raise BenchmarkFormatError(
                f"{path}:1: wrong columns: missing {', '.join(missing)} (found {', '.join(header)})"
            )
        dialogues: dict[str, list[tuple[int, Utterance]]] = {}
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row or any(row[c] is None for c in MELD_COLUMNS):
                raise BenchmarkFormatError(f"{where}: wrong number of columns (expected {len(header)})")
            try:
                uid = int(row["Utterance_ID"])
            except ValueError:
                raise BenchmarkFormatError(f"{where}: Utterance_ID {row['Utterance_ID']!r} is not an integer") from None
            label = _label(vocab, row["Emotion"], where)
            dialogues.setdefault(row["Dialogue_ID"].strip(), []).append(
                (uid, Utterance(row["Speaker"], row["Utterance"], label))
            )
    return [
        Dialogue(did, [u for _, u in sorted(utts, key=lambda t: t[0])])
        for did, utts in sorted(dialogues.items(), key=lambda kv: _numeric_key(kv[0]))
    ]


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

    with path.open(encoding="utf-8", newline="") as fh:
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


def load_emory_json(path: Path, vocab: Vocabulary | None = None) -> list[Dialogue]:
    """Official EmoryNLP JSON: season -> episodes -> scenes -> utterances."""
    vocab = vocab or Vocabulary.of("EmoryNLP")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
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
