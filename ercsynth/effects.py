"""Per-cell effects: how much a condition changes test weighted F1 against its baseline, with a
95 % interval and a p-value from a paired bootstrap, and the smallest change the cell could detect.

The bootstrap follows the paired test-set bootstrap that Dror et al. (2018, "The Hitchhiker's Guide
to Testing Statistical Significance in NLP") recommend for F1, with two choices of ours:
- the unit resampled is a test **dialogue**, the unit the benchmarks' test sets are drawn in (an
  utterance's label depends on its dialogue, so utterances are not independent draws);
- where a cell has several seeds, the seeds are resampled too (the same seed for the condition and
  its baseline: they share the seed's real-data subset and data order), so the interval covers the
  training randomness as well as the test set. With one seed it covers the test set only.

Each resample draws the same dialogues for every run of the cell, so the condition and the
baseline are compared on the same test items (paired). Weighted F1 is computed from per-dialogue
confusion matrices, so a resample costs one matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class BootstrapSettings:
    """config.yaml's `statistics:` block."""

    resamples: int = 1000
    seed: int = 0

    @classmethod
    def from_config(cls, block: Mapping) -> BootstrapSettings:
        """From the validated block (the schema requires both keys; config.yaml holds the defaults)."""
        return cls(resamples=int(block["bootstrap_resamples"]), seed=int(block["bootstrap_seed"]))


def unit_of(row: Mapping) -> str:
    """The resampling unit of a test prediction row: its whole dialogue (an utterance's label depends
    on its dialogue, so the utterances of one are not independent draws)."""
    return str(row["dialogue_id"])


def dialogue_confusions(rows: Iterable[Mapping], labels: tuple[str, ...], dialogues: list[str]) -> np.ndarray:
    """(dialogues, labels, labels) counts of (gold, predicted) per test dialogue, in `dialogues` order.
    `rows` are a run's test_predictions.jsonl lines (dialogue_id, gold, pred)."""
    index = {label: i for i, label in enumerate(labels)}
    where = {d: i for i, d in enumerate(dialogues)}
    out = np.zeros((len(dialogues), len(labels), len(labels)), dtype=np.int64)
    for row in rows:
        out[where[unit_of(row)], index[row["gold"]], index[row["pred"]]] += 1
    return out


def weighted_f1(confusion: np.ndarray) -> np.ndarray:
    """Support-weighted mean of per-class F1 for confusion matrices (..., L, L), rows gold: the same
    number as sklearn's f1_score(average="weighted", zero_division=0)."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(float)
    support = confusion.sum(-1).astype(float)
    predicted = confusion.sum(-2).astype(float)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    total = support.sum(-1)
    return np.divide((support * f1).sum(-1), total, out=np.zeros_like(total), where=total > 0)


def resample_plan(rng: np.random.Generator, n_dialogues: int, n_seeds: int, resamples: int):
    """(dialogue weights (resamples, dialogues): how often each test dialogue is drawn; seed draws
    (resamples, seeds): indices into the cell's seeds). One seed: every draw is that seed."""
    weights = rng.multinomial(n_dialogues, np.full(n_dialogues, 1.0 / n_dialogues), size=resamples)
    seeds = rng.integers(0, n_seeds, size=(resamples, n_seeds)) if n_seeds > 1 else np.zeros((resamples, 1), int)
    return weights, seeds


@dataclass(frozen=True)
class Effect:
    """One condition against its baseline in one cell; F1 in points (0-100)."""

    delta: float  # seed-mean weighted F1 of the condition minus that of the baseline
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, of 'no difference'
    seeds: int
    se: float  # bootstrap standard error of delta
    min_detectable_delta: float  # at ALPHA (two-sided) with POWER, from se
    seeds_for_1_point: float  # seeds that would detect 1 point (inf: the test set alone is too small; nan: one seed)
    interval_covers: str  # "test dialogues" or "test dialogues and seeds"


def paired_bootstrap(
    condition: Mapping[int, np.ndarray], baseline: Mapping[int, np.ndarray], settings: BootstrapSettings, salt: str = ""
) -> Effect:
    """The effect of `condition` over `baseline`, each {seed: dialogue_confusions(...)} on the same
    test dialogues; seeds present in both are used, paired."""
    seeds = sorted(set(condition) & set(baseline))
    if not seeds:
        raise ValueError("no seed common to the condition and its baseline")
    n_dialogues = condition[seeds[0]].shape[0]
    # A seed per cell, derived from the config's seed and the cell's name: adding a cell leaves the
    # draws of the others as they were.
    rng = np.random.default_rng([settings.seed, *salt.encode()])
    weights, draws = resample_plan(rng, n_dialogues, len(seeds), settings.resamples)
    flat = {s: (condition[s].reshape(n_dialogues, -1), baseline[s].reshape(n_dialogues, -1)) for s in seeds}
    size = condition[seeds[0]].shape[-1]

    def f1_of(counts: np.ndarray) -> np.ndarray:
        return weighted_f1(counts.reshape(*counts.shape[:-1], size, size)) * 100

    # per-seed deltas: at the full test set, and under each resample of dialogues (seeds, resamples)
    point = np.array([f1_of(c.sum(0)) - f1_of(b.sum(0)) for c, b in flat.values()])
    per_seed = np.stack([f1_of(weights @ c) - f1_of(weights @ b) for c, b in flat.values()])
    boot = per_seed[draws, np.arange(settings.resamples)[:, None]].mean(1)
    delta = float(point.mean())
    low, high = np.quantile(boot, [ALPHA / 2, 1 - ALPHA / 2])
    # Two-sided p of 'no difference' from the bootstrap distribution shifted to the null (centred at 0):
    # the share of resamples at least as far from delta as delta is from 0.
    p = (1 + np.count_nonzero(np.abs(boot - delta) >= abs(delta) - 1e-12)) / (settings.resamples + 1)
    se = float(boot.std(ddof=1))
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
    return Effect(
        delta=delta,
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(min(1.0, p)),
        seeds=len(seeds),
        se=se,
        min_detectable_delta=float(z * se),
        seeds_for_1_point=seeds_needed(point, per_seed.mean(0), z),
        interval_covers="test dialogues and seeds" if len(seeds) > 1 else "test dialogues",
    )


def seeds_needed(point: np.ndarray, test_only: np.ndarray, z: float, target: float = 1.0) -> float:
    """Seeds that would detect a `target`-point effect: the smallest n with z * sqrt(v_test + v_seed / n)
    <= target, v_seed the variance of the per-seed deltas and v_test that of the seed-mean delta
    under test resampling alone. inf where the test set's own noise is too large; nan with one seed."""
    if len(point) < 2:
        return math.nan
    v_seed, v_test = float(np.var(point, ddof=1)), float(np.var(test_only, ddof=1))
    room = (target / z) ** 2 - v_test
    if room <= 0:
        return math.inf
    return float(max(1, math.ceil(v_seed / room)))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input order; NaN entries are not tests."""
    tested = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(tested)):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted
