"""The one dialogue schema every stage reads and writes, and its JSON Lines I/O."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Utterance:
    speaker: str
    text: str
    label: str


@dataclass
class Dialogue:
    dialogue_id: str
    utterances: list[Utterance] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> Dialogue:
        return cls(str(obj["dialogue_id"]), [Utterance(**u) for u in obj["utterances"]])


class DialogueFileError(ValueError):
    """A dialogue file that does not follow the schema; the message names file and line."""


def write_dialogues(path: str | Path, dialogues: Iterable[Dialogue]) -> int:
    """Write atomically (temp file + rename) so a killed job never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for d in dialogues:
            fh.write(json.dumps(d.to_json(), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


def read_dialogues(path: str | Path, limit: int | None = None) -> list[Dialogue]:
    return list(iter_dialogues(path, limit))


def iter_dialogues(path: str | Path, limit: int | None = None) -> Iterator[Dialogue]:
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        count = 0
        for lineno, line in enumerate(fh, start=1):
            if limit is not None and count >= limit:
                return
            if not line.strip():
                continue
            try:
                yield Dialogue.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise DialogueFileError(f"{path}:{lineno}: not a dialogue record ({exc})") from exc
            count += 1


def cap(dialogues: list[Dialogue], limit: int | None) -> list[Dialogue]:
    """A fixed subset (independent of the training seed, so every run sees the same data)."""
    if limit is None or limit >= len(dialogues):
        return dialogues
    keep = sorted(random.Random(0).sample(range(len(dialogues)), limit))
    return [dialogues[i] for i in keep]


def line_key(text: str) -> str:
    """What makes two lines the same line: their text, lower-cased, without spaces."""
    return "".join(text.lower().split())


def repeated_lines(utterances: list[Utterance]) -> int:
    """Lines whose text repeats an earlier line's of the same dialogue (case and spaces ignored)."""
    keys = [line_key(u.text) for u in utterances]
    return len(keys) - len(set(keys))
