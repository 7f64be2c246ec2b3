"""The experimental design: the axes a run varies (generator, synthetic size, real-data fraction),
the path of every run, and the seeded subsets behind the size and fraction axes.

A run's path token joins the parts that differ from the defaults, so the default design keeps the
short paths (`natural`, `baseline`) and adding an axis value never moves an existing run:

    [<generator>/]<distribution>[/n<size>][/real<fraction>]      (pre-trained on synthetic data)
    baseline[/real<fraction>]                                      (real data only)

The generator part is absent for the `generation:` block itself (no `generators:`), the size part
for `all` and the fraction part for 1.0. Generator names may not look like any other part
(`generator_blocks` refuses them, see RESERVED), so every token reads back one way (`Run.parse`).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ercsynth.config import config_errors, merge

BASELINE = "baseline"
DISTRIBUTIONS = ("natural", "balanced", "planned")
# Controls: conditions that take out what is to be tested. `shuffled` pre-trains on a distribution's
# texts with its labels permuted across the dataset (texts and label counts kept, the link between
# them gone): is it the labels, or just more in-domain text? `real_pretrained` pre-trains on the real
# train split for as many steps as the synthetic pre-training of the same cell: is it just more steps?
CONTROLS = ("shuffled", "real_pretrained")
REAL_PRETRAINED = "real_pretrained"
# The classifiers, each with its module ercsynth/models/<name>.py (the schema's enum is tested against it).
CLASSIFIERS = ("compm", "emoberta", "todkat")
ALL = "all"  # the synthetic size that uses every accepted dialogue
AXES = ("generator", "synthetic_size", "real_fraction")  # results.csv columns, friedman.json keys

T = TypeVar("T")


class DesignError(ValueError):
    """A design the workflow cannot run; the message names the config key."""


def fraction_text(fraction: float) -> str:
    """0.1 -> '0.1', 0.25 -> '0.25': the shortest text that reads back as the same number."""
    return repr(float(fraction)).removesuffix(".0")


@dataclass(frozen=True)
class Run:
    """One cell of the design: what was pre-trained on (nothing for the baseline) and how much real data."""

    distribution: str  # BASELINE or a distribution
    generator: str = ""  # "" = the generation block itself
    size: int | None = None  # synthetic dialogues pre-trained on; None = all accepted ones
    fraction: float = 1.0  # share of the real training dialogues fine-tuned on

    @property
    def baseline(self) -> bool:
        return self.distribution == BASELINE

    @property
    def dataset(self) -> str:
        """The synthetic dataset's folder under results/generated/<benchmark>/."""
        if self.baseline:
            raise DesignError("the baseline has no synthetic dataset")
        return f"{self.generator}/{self.distribution}" if self.generator else self.distribution

    @property
    def pretrained(self) -> str:
        """The token of the pre-training run (generator x distribution x size)."""
        return self.dataset + (f"/n{self.size}" if self.size is not None else "")

    @property
    def token(self) -> str:
        """The path token of the fine-tuning run: results/models/<benchmark>/<classifier>/<token>/seed<seed>/."""
        head = BASELINE if self.baseline else self.pretrained
        return head + ("" if self.fraction == 1.0 else f"/real{fraction_text(self.fraction)}")

    @classmethod
    def parse(cls, token: str) -> Run:
        match = TOKEN.fullmatch(token)
        if not match:
            raise DesignError(f"not a run path token: {token!r}")
        size, fraction = match["size"], match["fraction"]
        return cls(
            distribution=match["distribution"],
            generator=match["generator"] or "",
            size=int(size) if size else None,
            fraction=float(fraction) if fraction else 1.0,
        )

    def axes(self) -> dict:
        """The axis columns of results.csv (empty text where an axis does not apply: the baseline's generator)."""
        return {
            "generator": self.generator,
            "synthetic_size": "" if self.baseline else (ALL if self.size is None else self.size),
            "real_fraction": self.fraction,
        }


# A benchmark or generator name (benchmarks.py checks definitions with it).
NAME = r"[A-Za-z][A-Za-z0-9_-]{0,39}"
FRACTION = r"(?:0|1)?\.\d+|1(?:\.0)?|\d(?:\.\d+)?e-\d+"
DISTRIBUTION = "|".join((*DISTRIBUTIONS, *CONTROLS))  # what a run token's dataset part may be
TOKEN = re.compile(
    rf"(?:(?P<generator>{NAME})/)?(?P<distribution>{BASELINE}|{DISTRIBUTION})"
    rf"(?:/n(?P<size>[1-9]\d*))?(?:/real(?P<fraction>{FRACTION}))?"
)
# A generator name that reads as another part of a token, or as a folder the workflow writes.
RESERVED = re.compile(rf"(?:{BASELINE}|{DISTRIBUTION}|n\d+|real[0-9.e-]+|seed\d+|raw|hf|verified)")


def dataset_pattern(generators: Sequence[str], kinds: Sequence[str] = (*DISTRIBUTIONS, *CONTROLS)) -> str:
    """The regular expression of the dataset tokens of these generator names ('' = none named), of
    these kinds (by default generated datasets and controls)."""
    named = "|".join(re.escape(g) for g in generators if g)
    head = f"(?:(?:{named})/)?" if named else ""
    return f"{head}(?:{'|'.join(kinds)})"


def pretrained_pattern(generators: Sequence[str]) -> str:
    """Pre-training run tokens: a dataset, then an optional size."""
    return rf"{dataset_pattern(generators)}(?:/n[1-9]\d*)?"


def run_pattern(generators: Sequence[str]) -> str:
    """Fine-tuning run tokens: baseline or a pre-training token, then an optional fraction."""
    return rf"(?:{BASELINE}|{pretrained_pattern(generators)})(?:/real(?:{FRACTION}))?"


# --------------------------------------------------------------------------- the config's axes
def setting_key(generator: str, key: str) -> str:
    """The config key a generator's setting comes from, for messages: `generators.<name>.<key>`, or
    `generation.<key>` for the unnamed generator."""
    return f"generators.{generator}.{key}" if generator else f"generation.{key}"


def generator_blocks(config: dict, schema: dict | None = None) -> dict[str, dict]:
    """Each generator's full generation settings: `generation` with its `generators` entry merged
    over it. No `generators`: the `generation` block alone, unnamed (''). With `schema`, each merged
    block is validated as `generation` would be, errors naming `generators.<name>`."""
    named = config.get("generators") or {}
    if not named:
        return {"": config["generation"]}
    blocks, errors = {}, []
    for name, partial in named.items():
        if RESERVED.fullmatch(name) or not re.fullmatch(NAME, name):
            errors.append(
                f"config key 'generators.{name}': a generator name is a letter, then letters, digits, _ or -, "
                "and not a part of a run path (baseline, a distribution, n<size>, real<fraction>, seed<n>)"
            )
            continue
        blocks[name] = merge(merge({}, config["generation"]), partial or {})
        if schema is not None:
            found = config_errors(config | {"generation": blocks[name]}, schema)
            errors += [e.replace("config key 'generation", f"config key 'generators.{name}", 1) for e in found]
    if errors:
        raise DesignError("invalid config:\n  " + "\n  ".join(errors))
    return blocks


def synthetic_sizes(config: dict) -> list[int | None]:
    """The size axis, None for all accepted dialogues."""
    return [None if s == ALL else int(s) for s in config["synthetic_sizes"]]


def runs(config: dict, distributions: Sequence[str]) -> list[Run]:
    """Every fine-tuning run of one benchmark (its distributions, then the controls made from them),
    baselines first, in a stable order."""
    fractions = [float(f) for f in config["real_fractions"]]
    out = [Run(BASELINE, fraction=f) for f in fractions]
    kinds = [*distributions, *(config["controls"] if distributions else [])]
    for generator in generator_blocks(config):
        for dist in kinds:
            for size in synthetic_sizes(config):
                out += [Run(dist, generator, size, f) for f in fractions]
    return out


def reference_baseline(config: dict) -> Run:
    """The baseline that judges synthetic labels: the one trained on the most real data."""
    return Run(BASELINE, fraction=max(float(f) for f in config["real_fractions"]))


# --------------------------------------------------------------------------- subsets
def nested_subset(items: Sequence[T], keep: int, seed: int, salt: str) -> list[T]:
    """`keep` items drawn with a seeded permutation, in their original order. For one seed and salt,
    a smaller subset lies inside a larger one, so a learning curve adds data instead of redrawing it."""
    order = list(range(len(items)))
    random.Random(f"{salt}:{seed}").shuffle(order)
    return [items[i] for i in sorted(order[:keep])]


def synthetic_subset(dialogues: Sequence[T], size: int | None, seed: int) -> list[T]:
    """The synthetic dialogues a run of this size pre-trains on. More asked for than there are is an
    error that stops the pre-training job: a run never quietly trains a smaller size than it says."""
    if size is None:
        return list(dialogues)
    if size > len(dialogues):
        raise DesignError(
            f"synthetic size {size} (config key 'synthetic_sizes') is more than the {len(dialogues)} dialogues "
            "there are to pre-train on; raise generation.dialogues or drop the size"
        )
    return nested_subset(dialogues, size, seed, "synthetic")


def real_subset(dialogues: Sequence[T], fraction: float, seed: int) -> list[T]:
    """The real training dialogues a run fine-tunes on: round(fraction x N), at least one."""
    if fraction >= 1.0:
        return list(dialogues)
    keep = max(1, math.floor(fraction * len(dialogues) + 0.5))
    return nested_subset(dialogues, keep, seed, "real")


def shuffled_labels(dialogues: Sequence, seed: int) -> list:
    """The `shuffled` control: the same dialogues and texts, the labels permuted across the whole
    dataset (seeded), so every label count stays and the link between a text and its label is gone."""
    from ercsynth.dialogues import Dialogue, Utterance

    labels = [u.label for d in dialogues for u in d.utterances]
    random.Random(f"shuffled:{seed}").shuffle(labels)
    drawn = iter(labels)
    return [
        Dialogue(d.dialogue_id, [Utterance(u.speaker, u.text, next(drawn)) for u in d.utterances]) for d in dialogues
    ]
