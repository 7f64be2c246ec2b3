"""Turn raw LLM completions into benchmark-schema dialogues, rejecting bad ones by reason.

Whatever a model writes, parsing never raises: every attempt ends up either as a valid
dialogue or as one counted rejection reason.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from scipy.spatial.distance import jensenshannon

from ercsynth.dialogues import Dialogue, Utterance, repeated_lines, write_dialogues
from ercsynth.labels import Vocabulary, vocabulary

# "Name | utterance | 3", tolerating list numbering and bold markers; the label field is read by LABEL_TEXT.
LINE = re.compile(
    r"^\s*(?:[-*]\s+|\d+[.)]\s+)?\**(?P<speaker>[^|]*?)\**\s*\|\s*(?P<text>.*?)\s*\|\s*(?P<label>[^|]*?)\s*$"
)
# The frequent near-miss "Name: utterance | 3".
COLON_LINE = re.compile(
    r"^\s*(?:[-*]\s+|\d+[.)]\s+)?\**(?P<speaker>[^|:]{1,60}?)\**\s*:\s*(?P<text>[^|]*?)\s*\|\s*(?P<label>[^|]*?)\s*$"
)
# Forms instruction-tuned models write: "Name: text [3]", "**Name**: text (3)",
# "- Name: text (emotion: 3)", numbered "2. Name: text (joy)". The label is the bracket at the end.
BRACKET_LINE = re.compile(
    r"^\s*(?:[-*\u2022]\s+|\d+[.)]\s+)?\**(?P<speaker>[^|:\[\]()*]{1,60}?)\**\s*:\s*\**\s*(?P<text>[^|]*?)\s*"
    r"[\[(]\s*(?P<named>(?:emotion|label|symbol)\s*[:=]\s*)?(?P<label>[^\[\]()|]*?)\s*[\])]\s*\.?\s*$",
    re.IGNORECASE,
)
# A line that reads as an utterance but carries no label: "Name: text", "Name | text" (a speaker
# of one to four words, starting with a letter).
UNLABELLED = re.compile(
    r"^\s*(?:[-*\u2022]\s+|\d+[.)]\s+)?\**(?P<speaker>[A-Za-z][\w'.-]*(?: [\w'.-]+){0,3})\**\s*[:|]\s*\**\s*\S"
)
NUM = r"[+-]?\d+"
WORD = r"[A-Za-z][A-Za-z_'-]*(?: [A-Za-z_'-]+)*"
# What a label field may hold: a symbol, a label name, or both when they agree, as models write
# them: "3", "(3)", "[3]", "3.", "3 = joy", "3: joy", "3 - joy", "3 (joy)", "joy", "joy (3)", "joy: 3".
LABEL_TEXT = re.compile(
    rf"""^[\[(]?\s*(?:
        (?P<n1>{NUM})\s*(?:(?:=|:|-)\s*(?P<w1>{WORD})|\(\s*(?P<w2>{WORD})\s*\))?
      | (?P<w3>{WORD})\s*(?:\(\s*(?P<n2>{NUM})\s*\)|(?:=|:)\s*(?P<n3>{NUM}))?
    )\s*[\])]?\s*\.?$""",
    re.VERBOSE,
)

REASONS = (
    "backend_error",
    "empty_output",
    "huge_output",
    "binary_or_non_utf8",
    "no_parsable_lines",
    "label_out_of_vocabulary",
    "label_conflict",
    "missing_speaker_or_text",
    "unlabelled_line",
    "unknown_speaker",
    "too_few_utterances",
    "single_speaker",
    "repetitive",
    "target_emotion_absent",
    "duplicate",
)


@dataclass
class ParseResult:
    dialogue: Dialogue | None
    reason: str | None
    dropped_truncated_line: bool = False
    skipped_lines: int = 0


def _label_parts(raw: str) -> tuple[str | None, str] | None:
    """(symbol or None, lower-case name or '') of a label field in one of LABEL_TEXT's forms; None
    for anything else."""
    m = LABEL_TEXT.match(raw.strip().strip("*").strip())
    if not m:
        return None
    return m["n1"] or m["n2"] or m["n3"], (m["w1"] or m["w2"] or m["w3"] or "").lower()


def read_label(raw: str, vocab: Vocabulary) -> tuple[str | None, str | None]:
    """(label, problem) of a label field: a numeric symbol, the label's name, or both when they
    agree (LABEL_TEXT lists the forms). problem: label_out_of_vocabulary (a symbol out of range, a
    name outside the labels, no label form at all) or label_conflict (`4 = joy`: a symbol whose
    attached name is another label's). A name that is no label beside a symbol is ignored."""
    parts = _label_parts(raw)
    if parts is None:
        return None, "label_out_of_vocabulary"
    num, word = parts
    if num is None:
        return (word, None) if word in vocab.labels else (None, "label_out_of_vocabulary")
    n = int(num)
    if not 1 <= n <= len(vocab):
        return None, "label_out_of_vocabulary"
    label = vocab.labels[n - 1]
    if word in vocab.labels and word != label:
        return None, "label_conflict"
    return label, None


def _is_label_field(raw: str, vocab: Vocabulary) -> bool:
    """Whether a bracket holds a label field (a symbol, in range or not, or a label's name) rather
    than a stage direction such as "(laughs)"."""
    parts = _label_parts(raw)
    return parts is not None and (parts[0] is not None or parts[1] in vocab.labels)


def _looks_binary(text: str) -> bool:
    if "\ufffd" in text:
        return True
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t")
    return controls > 0


def _unreadable(text: str, max_chars: int, error: str | None) -> str | None:
    """The reason a completion cannot be read at all, or None."""
    if error:
        return "backend_error"
    if not isinstance(text, str) or not text.strip():
        return "empty_output"
    if len(text) > max_chars:
        return "huge_output"
    if _looks_binary(text):
        return "binary_or_non_utf8"
    return None


def _match_line(line: str, vocab: Vocabulary) -> re.Match | None:
    """A labelled line in one of the accepted forms, or None."""
    m = LINE.match(line) or COLON_LINE.match(line)
    if m:
        return m
    b = BRACKET_LINE.match(line)
    # A bracket that is neither a symbol nor a label, nor marked "emotion:", is a stage direction
    # such as "(laughs)": the line carries no label.
    if b and (b.group("named") or _is_label_field(b.group("label"), vocab)):
        return b
    return None


def parse_completion(
    text: str,
    vocab: Vocabulary,
    dialogue_id: str,
    min_utterances: int = 4,
    target: str | None = None,
    max_chars: int = 20000,
    error: str | None = None,
    max_repeated_share: float = 1.0,
    speakers: tuple[str, ...] | None = None,
) -> ParseResult:
    """One attempt's completion as a dialogue, or the reason it is rejected (REASONS, in the order
    they are checked). `speakers`: the attempt's own speakers, where its record names them; a line
    by anyone else is then `unknown_speaker`."""
    unreadable = _unreadable(text, max_chars, error)
    if unreadable:
        return ParseResult(None, unreadable)

    lines = text.replace("\r\n", "\n").split("\n")
    # A completion cut by the token budget ends without a newline: its last line may be torn.
    last_index = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    utterances: list[Utterance] = []
    problems: set[str] = set()
    dropped = False
    skipped = 0
    hole = False  # an unlabelled utterance-like line after an utterance: a hole if another follows
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        m = _match_line(line, vocab)
        if not m:
            if i == last_index and utterances:
                dropped = True
            else:
                hole = hole or bool(utterances and UNLABELLED.match(line))
                skipped += 1
            continue
        speaker, utt, raw = m.group("speaker").strip(), m.group("text").strip(), m.group("label").strip()
        if not raw:
            if i == last_index and utterances:
                dropped = True  # "Name | text |" torn before its label
            else:
                hole = hole or bool(utterances)
                skipped += 1
            continue
        label, problem = read_label(raw, vocab)
        if problem:
            problems.add(problem)
            continue
        if not speaker or not utt:
            problems.add("missing_speaker_or_text")
            continue
        if hole:
            # "Ben | How are you? | 1 / Ben: what's up / Anna | Fine. | 2": the middle line is lost
            # and Anna's reply answers a line the dialogue no longer has.
            problems.add("unlabelled_line")
        utterances.append(Utterance(speaker, utt, label))

    if not utterances and not problems:
        return ParseResult(None, "no_parsable_lines", dropped, skipped)
    for reason in ("label_out_of_vocabulary", "label_conflict", "missing_speaker_or_text", "unlabelled_line"):
        if reason in problems:
            return ParseResult(None, reason, dropped, skipped)
    if speakers and any(u.speaker.lower() not in {s.lower() for s in speakers} for u in utterances):
        return ParseResult(None, "unknown_speaker", dropped, skipped)
    if len(utterances) < min_utterances:
        return ParseResult(None, "too_few_utterances", dropped, skipped)
    if len({u.speaker.lower() for u in utterances}) < 2:
        return ParseResult(None, "single_speaker", dropped, skipped)
    if repeated_lines(utterances) / len(utterances) > max_repeated_share:
        return ParseResult(None, "repetitive", dropped, skipped)
    if target is not None and all(u.label != target for u in utterances):
        return ParseResult(None, "target_emotion_absent", dropped, skipped)
    return ParseResult(Dialogue(dialogue_id, utterances), None, dropped, skipped)


def _key(d: Dialogue) -> tuple:
    return tuple((u.speaker.lower(), " ".join(u.text.split()).lower(), u.label) for u in d.utterances)


@dataclass
class ParseReport:
    benchmark: str
    distribution: str
    attempted: int = 0
    valid: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    truncated_lines_dropped: int = 0
    skipped_lines: int = 0
    completion_tokens: int = 0
    generation_seconds: float = 0.0
    tokens_per_second: float = 0.0
    utterances: int = 0
    models: list[str] = field(default_factory=list)
    # What was asked for, against what came out (label shares over utterances): the plan's labels
    # (planned), the targets (balanced: one per dialogue), nothing (natural).
    asked: dict[str, float] | None = None
    achieved: dict[str, float] = field(default_factory=dict)
    js_distance_asked_achieved: float | None = None
    yield_per_target: dict[str, dict[str, int]] | None = None  # balanced: attempts and valid dialogues per target
    js_distance_to_uniform: float | None = None  # how far from every label equally often

    def to_json(self) -> dict:
        out = dict(self.__dict__)
        out["valid_yield"] = round(self.valid / self.attempted, 4) if self.attempted else 0.0
        return out


class TooFewValid(ValueError):
    """A synthetic dataset too small to pre-train on: the workflow stops before any training."""


def check_yield(report: dict, min_valid: float, dataset: str) -> dict:
    """The hard stop between parsing and training: at least `min_valid` of the attempts (a share,
    and never fewer than one dialogue) must have parsed into valid dialogues. Returns what passed;
    raises TooFewValid naming the dataset, the counts and the most frequent rejections."""
    attempted, valid = int(report["attempted"]), int(report["valid"])
    needed = max(1, math.ceil(min_valid * attempted))
    if valid >= needed:
        return {"dataset": dataset, "attempted": attempted, "valid": valid, "needed": needed, "min_valid": min_valid}
    top = Counter({r: n for r, n in report["rejected"].items() if n}).most_common(3)
    reasons = ", ".join(f"{reason} {n}" for reason, n in top) or "none recorded"
    raise TooFewValid(
        f"synthetic dataset {dataset}: {valid} of {attempted} generation attempts are valid dialogues, "
        f"fewer than the {needed} that config key 'generation.min_valid' ({min_valid}) asks for; "
        f"most frequent rejections: {reasons}. Nothing was trained on it. Raise generation.dialogues or "
        "generation.max_new_tokens, turn on generation.constrained for this distribution, or lower "
        "generation.min_valid to train on what there is (its parse_report.json has every count)."
    )


def record_speakers(rec: dict) -> tuple[str, ...] | None:
    """The speakers an attempt asked for (every record ercsynth writes has them in its spec); None
    for records without them, such as files imported from elsewhere."""
    spec = rec.get("spec")
    names = spec.get("speakers") if isinstance(spec, dict) else None
    return tuple(str(n) for n in names) if isinstance(names, list | tuple) and names else None


def parse_records(
    records: Iterable[dict],
    benchmark: str,
    distribution: str,
    min_utterances: int = 4,
    max_chars: int = 20000,
    labels: list[str] | None = None,
    max_repeated_share: float = 1.0,
) -> tuple[list[Dialogue], ParseReport]:
    """`labels`: the benchmark definition's labels (a built-in benchmark's when None)."""
    vocab = vocabulary(benchmark, labels)
    report = ParseReport(
        benchmark, distribution, rejected={r: 0 for r in REASONS}, label_counts={label: 0 for label in vocab.labels}
    )
    seen: set[tuple] = set()
    dialogues: list[Dialogue] = []
    valid_targets: list[str | None] = []
    records = list(records)
    models: set[str] = set()
    for rec in records:
        report.attempted += 1
        report.completion_tokens += int(rec.get("completion_tokens") or 0)
        report.generation_seconds += float(rec.get("seconds") or 0.0)
        models.add(f"{rec.get('backend')}:{rec.get('model')}")
        completion = rec.get("completion", "")
        if isinstance(completion, str) and completion.strip():
            completion = (rec.get("response_prefix") or "") + completion
        res = parse_completion(
            completion,
            vocab,
            rec.get("attempt_id", f"attempt-{report.attempted}"),
            min_utterances,
            rec.get("target_emotion"),
            max_chars,
            rec.get("error"),
            max_repeated_share,
            record_speakers(rec),
        )
        report.truncated_lines_dropped += int(res.dropped_truncated_line)
        report.skipped_lines += res.skipped_lines
        if res.dialogue is None:
            report.rejected[res.reason] += 1
            continue
        key = _key(res.dialogue)
        if key in seen:
            report.rejected["duplicate"] += 1
            report.duplicates += 1
            continue
        seen.add(key)
        dialogues.append(res.dialogue)
        valid_targets.append((rec.get("target_emotion"), bool(rec.get("target_forced"))))
        for u in res.dialogue.utterances:
            report.label_counts[u.label] += 1
    _asked_and_achieved(report, records, vocab, valid_targets)
    report.valid = len(dialogues)
    report.utterances = sum(len(d.utterances) for d in dialogues)
    report.models = sorted(models)
    if report.generation_seconds > 0:
        report.tokens_per_second = round(report.completion_tokens / report.generation_seconds, 3)
    return dialogues, report


def _shares(counts: Counter, labels: tuple[str, ...]) -> dict[str, float]:
    total = sum(counts[label] for label in labels)
    return {label: round(counts[label] / total, 4) if total else 0.0 for label in labels}


def _asked_and_achieved(report: ParseReport, records: list[dict], vocab: Vocabulary, valid_targets: list) -> None:
    labels = vocab.labels
    report.achieved = _shares(Counter(report.label_counts), labels)
    asked: Counter = Counter()
    for rec in records:
        spec = rec.get("spec") if isinstance(rec.get("spec"), dict) else {}
        if spec.get("plan"):
            asked.update(label for label in spec["plan"] if label in labels)
        elif rec.get("target_emotion") in labels:
            asked[rec["target_emotion"]] += 1
    if report.distribution == "balanced":
        tried = Counter(rec.get("target_emotion") for rec in records)
        kept = Counter(target for target, _ in valid_targets)
        forced = Counter(target for target, was_forced in valid_targets if was_forced)
        # forced: the decoder put the target on the last line because the model had not chosen it, so
        # valid - forced is how often the model wrote the emotion by itself.
        report.yield_per_target = {
            t: {"attempted": tried[t], "valid": kept[t], "free": kept[t] - forced[t], "forced": forced[t]}
            for t in labels
        }
    achieved = [report.achieved[label] for label in labels]
    if sum(achieved):
        report.js_distance_to_uniform = round(float(jensenshannon(achieved, [1.0] * len(labels), base=2)), 4)
    if asked:
        report.asked = _shares(asked, labels)
        p = [report.asked[label] for label in labels]
        q = [report.achieved[label] for label in labels]
        if sum(q):
            report.js_distance_asked_achieved = round(float(jensenshannon(p, q, base=2)), 4)


def read_raw(paths: Iterable[str | Path]) -> list[dict]:
    """Raw shard records; a line that is not JSON counts as an empty attempt, never a crash."""
    records = []
    for path in paths:
        with Path(path).open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    records.append(rec if isinstance(rec, dict) else {"completion": ""})
                except ValueError:
                    records.append({"completion": "", "error": "corrupt raw record"})
    return sorted(records, key=lambda r: r.get("index", 1 << 62))


# --------------------------------------------------------------------------- exports
def write_compm_tsv(path: str | Path, dialogues: list[Dialogue]) -> None:
    """CoMPM's text format: speaker<TAB>utterance<TAB>Label, a blank line between dialogues."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for d in dialogues:
            for u in d.utterances:
                text = " ".join(u.text.replace("\t", " ").split())
                fh.write(f"{u.speaker}\t{text}\t{u.label.capitalize()}\n")
            fh.write("\n")


# What each distribution asked the model for, in the dataset cards' words.
DISTRIBUTION_TEXT = {
    "natural": "no emotional constraint: the labels are whatever the model wrote",
    "balanced": "each dialogue must contain a target emotion; targets cycle through every label",
    "planned": "every line's label was planned before generation (every label equally often over the "
    "dataset, or as configured) and forced by constrained decoding; the model wrote the text",
}


def write_hf_dataset(
    folder: str | Path,
    dialogues: list[Dialogue],
    report: ParseReport,
    prompt_example: str,
    model: str,
    licence: str = "",
    licence_id: str = "other",
) -> None:
    """A folder `datasets.load_dataset(folder)` reads: data/train.jsonl plus a dataset card.

    `licence`: the benchmark definition's licence sentence (its real dialogues may be few-shot
    examples); `licence_id`: its id for the card's `license:` field."""
    folder = Path(folder)
    vocab = vocabulary(report.benchmark, list(report.label_counts))  # in symbol order
    write_dialogues(folder / "data" / "train.jsonl", dialogues)
    counts = "\n".join(f"| {label} | {vocab.symbol(label)} | {n} |" for label, n in report.label_counts.items())
    rejected = "\n".join(f"| {r} | {n} |" for r, n in report.rejected.items() if n)
    card = f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train.jsonl
task_categories:
- text-classification
language:
- en
license: {licence_id}
tags:
- emotion-recognition-in-conversation
- synthetic
pretty_name: ercsynth {report.benchmark} {report.distribution}
---

# Synthetic {report.benchmark}-style ERC dialogues ({report.distribution})

Generated by ercsynth with `{model}`, following Kaplan, Carneiro and
Wermter (2025). Each row is a dialogue: `dialogue_id` and `utterances`, a list of
`{{speaker, text, label}}` with labels from the {report.benchmark} vocabulary.

- Distribution: **{report.distribution}** ({DISTRIBUTION_TEXT.get(report.distribution, report.distribution)}).
- Attempts: {report.attempted}; valid dialogues: {report.valid}; utterances: {report.utterances}.
- Label names (symbol shown to the model): {vocab.legend()}.

| label | symbol | utterances |
|---|---|---|
{counts}

Rejected attempts by reason:

| reason | count |
|---|---|
{rejected or "| (none) | 0 |"}

## Prompt (one example)

```
{prompt_example}
```

## Licence note

Machine-generated text. The generating model's licence and terms of use apply to this data
(for example the Gemma terms of use, or the Llama 2 licence for Vicuna). Real
{report.benchmark} dialogues may appear in the few-shot prompts: {licence or "the benchmark's own licence applies."}
The labels are model-written and unverified.
"""
    (folder / "README.md").write_text(card, encoding="utf-8")
