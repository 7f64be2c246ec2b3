"""Ordered label vocabularies shared by generation, parsing and the classifiers.

The order is part of the contract: symbol ``i + 1`` in prompts and class index ``i`` in
every classifier head refer to ``labels[i]`` of the benchmark's definition, so no index can
ever shift. The built-in benchmarks' labels come from ``builtin_benchmarks.yaml``, the same file
form a user writes for their own corpus (``ercsynth.benchmarks``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

BUILTIN_FILE = Path(__file__).with_name("builtin_benchmarks.yaml")
_BUILTIN: dict = yaml.safe_load(BUILTIN_FILE.read_text(encoding="utf-8"))

BENCHMARKS: tuple[str, ...] = tuple(_BUILTIN)
LABELS: dict[str, tuple[str, ...]] = {name: tuple(d["labels"]) for name, d in _BUILTIN.items()}


class UnknownLabel(ValueError):
    """A label that is not in the benchmark's vocabulary."""


@dataclass(frozen=True)
class Vocabulary:
    """A benchmark's label vocabulary with its numeric prompt symbols (1-based).

    `raw` maps spellings found in the benchmark's files to canonical labels; a canonical label
    in any letter case is accepted as well.
    """

    benchmark: str
    labels: tuple[str, ...]
    raw: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, benchmark: str) -> Vocabulary:
        """A built-in benchmark's vocabulary; user benchmarks come from their definition."""
        if benchmark not in LABELS:
            raise KeyError(f"unknown benchmark {benchmark!r}; expected one of {', '.join(BENCHMARKS)}")
        return cls(benchmark, LABELS[benchmark], dict(_BUILTIN[benchmark].get("raw_labels") or {}))

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
        if raw in self.raw:
            return self.raw[raw]
        if raw in self.labels:
            return raw
        if raw.lower() in self.labels:
            return raw.lower()
        expected = sorted(set(self.raw) | set(self.labels)) if self.raw else list(self.labels)
        raise UnknownLabel(f"unknown {self.benchmark} label {raw!r} (expected one of {', '.join(expected)})")

    def legend(self) -> str:
        """'1 = neutral, 2 = joy, ...' as shown in prompts."""
        return ", ".join(f"{i} = {name}" for i, name in enumerate(self.labels, start=1))


def vocabulary(benchmark: str, labels: list[str] | tuple[str, ...] | None = None) -> Vocabulary:
    """The vocabulary a job was given (`labels` from its params), else the built-in benchmark's."""
    return Vocabulary(benchmark, tuple(labels)) if labels is not None else Vocabulary.of(benchmark)


def label_distribution(values: Iterable[str], order: Sequence[str]):
    """The share of each label of `order` among `values`, as an array (zeros if there are none)."""
    import numpy as np  # lazily: the Snakefile imports this module at every start

    counts = Counter(values)
    v = np.array([counts.get(label, 0) for label in order], dtype=float)
    return v / v.sum() if v.sum() else v
