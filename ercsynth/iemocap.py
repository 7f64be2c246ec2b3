"""IEMOCAP from its licensed release to the three files the workflow reads.

    python -m ercsynth.iemocap IEMOCAP_full_release OUT [--dev-ids FILE] [--seed 0]

reads the release's own layout:

    IEMOCAP_full_release/Session{1..5}/dialog/transcriptions/<dialogue>.txt
        Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
    IEMOCAP_full_release/Session{1..5}/dialog/EmoEvaluation/<dialogue>.txt
        [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]

and writes OUT/iemocap_{train,dev,test}.txt: `speaker<TAB>utterance<TAB>label`, a blank line between
dialogues, utterances in order of their start time, speakers F and M (the actor's side of the
recording). As in CoMPM, EmoBERTa and the work they follow (DialogueRNN, COSMIC), the six labels
neu, fru, ang, sad, exc, hap are kept and the utterances the annotators labelled otherwise (xxx, oth,
sur, fea, dis) are left out; Session 5 is the test split and Sessions 1-4 are train and dev.

The dev dialogues: those papers draw 10 % of the Session 1-4 dialogues at random and do not publish
which. `--dev-ids FILE` takes your list (one dialogue id per line); without it, 12 of the 120
dialogues are drawn with `--seed` (our choice, stated in docs/iemocap.md).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from ercsynth.textfiles import NotUtf8, read_utf8

LABELS = ("neu", "fru", "ang", "sad", "exc", "hap")
TEST_SESSION = 5
DEV_SHARE = 0.1
# "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me." (the id's last part names the speaker side)
TRANSCRIPT = re.compile(r"^(?P<id>Ses\d\d[MF]_\S+_(?P<side>[MF])\d+)\s+\[(?P<start>[\d.]+)-[\d.]+\]:\s?(?P<text>.*)$")
# "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]"
EVALUATION = re.compile(r"^\[[\d.]+\s*-\s*[\d.]+\]\s+(?P<id>Ses\S+)\s+(?P<label>[a-z]{3})\s")


class ReleaseError(ValueError):
    """The folder is not laid out like the IEMOCAP release; the message names the path."""


@dataclass(frozen=True)
class Line:
    start: float
    speaker: str
    text: str
    label: str


def read_labels(path: Path) -> dict[str, str]:
    return {m["id"]: m["label"] for m in map(EVALUATION.match, read_utf8(path).splitlines()) if m}


def read_dialogue(transcript: Path, evaluation: Path) -> list[Line]:
    """One dialogue's labelled utterances, in order of start time."""
    labels = read_labels(evaluation)
    lines = []
    for raw in read_utf8(transcript).splitlines():
        m = TRANSCRIPT.match(raw.strip())
        if not m or labels.get(m["id"]) not in LABELS:
            continue  # a line without an utterance id (noise marks), or a label outside the six
        text = " ".join(m["text"].split())
        if text:
            lines.append(Line(float(m["start"]), m["side"], text, labels[m["id"]]))
    return sorted(lines, key=lambda x: x.start)


def read_release(root: Path) -> dict[int, dict[str, list[Line]]]:
    """{session: {dialogue id: utterances}} for Sessions 1-5."""
    sessions: dict[int, dict[str, list[Line]]] = {}
    for number in range(1, 6):
        folder = root / f"Session{number}" / "dialog"
        transcripts, evaluations = folder / "transcriptions", folder / "EmoEvaluation"
        for needed in (transcripts, evaluations):
            if not needed.is_dir():
                raise ReleaseError(
                    f"{needed}: not found; give the folder of the IEMOCAP release (IEMOCAP_full_release)"
                )
        dialogues = {}
        for transcript in sorted(transcripts.glob("*.txt")):
            if transcript.name.startswith("."):
                continue  # macOS resource forks that some copies of the release carry
            evaluation = evaluations / transcript.name
            if not evaluation.is_file():
                raise ReleaseError(f"{evaluation}: no emotion evaluation for the transcript {transcript}")
            lines = read_dialogue(transcript, evaluation)
            if lines:
                dialogues[transcript.stem] = lines
        sessions[number] = dialogues
    return sessions


def split(sessions: dict[int, dict[str, list[Line]]], dev_ids: list[str] | None = None, seed: int = 0) -> dict:
    """{'train'|'dev'|'test': {dialogue id: utterances}}: Session 5 for test, dev from Sessions 1-4."""
    pool = {d: lines for n, s in sessions.items() if n != TEST_SESSION for d, lines in s.items()}
    if dev_ids is None:
        dev_ids = sorted(random.Random(seed).sample(sorted(pool), round(DEV_SHARE * len(pool))))
    unknown = sorted(set(dev_ids) - set(pool))
    if unknown:
        raise ReleaseError(f"--dev-ids: not a Session 1-4 dialogue of this release: {', '.join(unknown)}")
    dev = set(dev_ids)
    return {
        "train": {d: x for d, x in pool.items() if d not in dev},
        "dev": {d: x for d, x in pool.items() if d in dev},
        "test": dict(sessions[TEST_SESSION]),
    }


def write_split(path: Path, dialogues: dict[str, list[Line]]) -> None:
    blocks = ["".join(f"{x.speaker}\t{x.text}\t{x.label}\n" for x in lines) for _, lines in sorted(dialogues.items())]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(blocks), encoding="utf-8")
    tmp.replace(path)


def convert(release: Path, out: Path, dev_ids: list[str] | None = None, seed: int = 0) -> dict[str, tuple[int, int]]:
    """Write OUT/iemocap_{split}.txt; returns {split: (dialogues, utterances)}."""
    parts = split(read_release(Path(release)), dev_ids, seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, dialogues in parts.items():
        write_split(out / f"iemocap_{name}.txt", dialogues)
    return {name: (len(d), sum(map(len, d.values()))) for name, d in parts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ercsynth.iemocap", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("release", type=Path, help="the IEMOCAP_full_release folder")
    parser.add_argument("out", type=Path, help="where the three files go (the workflow reads <benchmarks_dir>/IEMOCAP)")
    parser.add_argument("--dev-ids", type=Path, help="a file of dev dialogue ids, one per line")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev draw when --dev-ids is not given")
    args = parser.parse_args(argv)
    ids = None
    try:
        if args.dev_ids:
            ids = [x.strip() for x in read_utf8(args.dev_ids).splitlines() if x.strip()]
        counts = convert(args.release, args.out, ids, args.seed)
    except (ReleaseError, NotUtf8) as exc:
        print(f"ercsynth.iemocap: {exc}", file=sys.stderr)
        return 2
    for name, (dialogues, utterances) in counts.items():
        print(f"{args.out / f'iemocap_{name}.txt'}: {dialogues} dialogues, {utterances} utterances")
    return 0


if __name__ == "__main__":
    sys.exit(main())
