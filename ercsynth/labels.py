"""Fixed, ordered label vocabularies shared by generation, parsing and the classifiers.

The order is part of the contract: symbol ``i + 1`` in prompts and class index ``i`` in
every classifier head refer to ``LABELS[benchmark][i]``, so no index can ever shift.
"""

from __future__ import annotations

from dataclasses import dataclass

BENCHMARKS: tuple[str, ...] = ("MELD", "EmoryNLP", "IEMOCAP")

LABELS: dict[str, tuple[str, ...]] = {
    "MELD": ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"),
    "EmoryNLP": ("neutral", "joyful", "peaceful", "powerful", "scared", "mad", "sad"),
    "IEMOCAP": ("neutral", "frustrated", "angry", "sad", "excited", "happy"),
}

# Raw spellings found in the released files -> canonical names.
_RAW: dict[str, dict[str, str]] = {
    "MELD": {name: name for name in LABELS["MELD"]},
    "EmoryNLP": {name.capitalize(): name for name in LABELS["EmoryNLP"]},
    "IEMOCAP": {
        "neu": "neutral",
        "fru": "frustrated",
        "ang": "angry",
        "sad": "sad",
        "exc": "excited",
        "hap": "happy",
    },
}


class UnknownLabel(ValueError):
    """A label that is not in the benchmark's vocabulary."""


@dataclass(frozen=True)
class Vocabulary:
    """A benchmark's label vocabulary with its numeric prompt symbols (1-based)."""

    benchmark: str
    labels: tuple[str, ...]

    @classmethod
    def of(cls, benchmark: str) -> Vocabulary:
        if benchmark not in LABELS:
            raise KeyError(f"unknown benchmark {benchmark!r}; expected one of {', '.join(BENCHMARKS)}")
        return cls(benchmark, LABELS[benchmark])

    def __len__(self) -> int:
        return len(self.labels)

    def index(self, label: str) -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            raise UnknownLabel(f"{label!r} is not a {self.benchmark} label ({', '.join(self.labels)})") from None

    def symbol(self, label: str) -> int:
        return self.index(label) + 1

    def from_symbol(self, symbol: int) -> str:
        if not 1 <= symbol <= len(self.labels):
            raise UnknownLabel(f"symbol {symbol} is outside 1..{len(self.labels)} for {self.benchmark}")
        return self.labels[symbol - 1]

    def canonical(self, raw: str) -> str:
        """Map a raw label spelling from a benchmark file to its canonical name."""
        raw = raw.strip()
        mapping = _RAW[self.benchmark]
        if raw in mapping:
            return mapping[raw]
        if raw.lower() in self.labels:
            return raw.lower()
        raise UnknownLabel(f"unknown {self.benchmark} label {raw!r} (expected one of {', '.join(sorted(mapping))})")

    def legend(self) -> str:
        """'1 = neutral, 2 = joy, ...' as shown in prompts."""
        return ", ".join(f"{i} = {name}" for i, name in enumerate(self.labels, start=1))
