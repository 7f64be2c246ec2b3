"""The per-cell level (ercsynth.effects): weighted F1 from confusion matrices, the paired bootstrap
over test dialogues and seeds against an independent computation with scikit-learn, its p-value,
power and Holm's adjustment against statsmodels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score
from statsmodels.stats.multitest import multipletests

from ercsynth.effects import (
    BootstrapSettings,
    dialogue_confusions,
    holm,
    paired_bootstrap,
    resample_plan,
    weighted_f1,
)
from ercsynth.stats import RunPredictions, effects_table

LABELS = ("neutral", "joy", "anger", "sadness")


def predictions(rng: np.random.Generator, dialogues: int, accuracy: float, truth: list[list[str]] | None = None):
    """Test prediction rows of `dialogues` dialogues (2 to 6 utterances), right with `accuracy`."""
    rows = []
    for d in range(dialogues):
        golds = truth[d] if truth else list(rng.choice(LABELS, size=int(rng.integers(2, 7))))
        for i, gold in enumerate(golds):
            pred = gold if rng.random() < accuracy else str(rng.choice(LABELS))
            rows.append({"dialogue_id": f"d{d:02d}", "index": i, "gold": str(gold), "pred": pred})
    return rows


def truth_of(rows) -> list[list[str]]:
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["dialogue_id"], []).append(r["gold"])
    return list(out.values())


def cell(seeds=(1, 2, 3), dialogues=30, seed=0):
    """{seed: rows} for a condition (better) and its baseline on the same test dialogues."""
    rng = np.random.default_rng(seed)
    truth = truth_of(predictions(rng, dialogues, 1.0))
    cond = {s: predictions(rng, dialogues, 0.65, truth) for s in seeds}
    base = {s: predictions(rng, dialogues, 0.55, truth) for s in seeds}
    return cond, base


def ids(rows) -> list[str]:
    return sorted({r["dialogue_id"] for r in rows})


def test_weighted_f1_of_a_confusion_matrix_is_scikit_learns():
    rng = np.random.default_rng(3)
    for _ in range(20):
        rows = predictions(rng, 12, rng.random())
        conf = dialogue_confusions(rows, LABELS, ids(rows)).sum(0)
        gold, pred = [r["gold"] for r in rows], [r["pred"] for r in rows]
        assert weighted_f1(conf) == pytest.approx(f1_score(gold, pred, average="weighted", zero_division=0))


def brute_force(cond, base, settings: BootstrapSettings, salt: str):
    """The bootstrap distribution computed the slow way: per resample and seed, scikit-learn's F1
    over the utterances, each weighted by how often its dialogue was drawn."""
    seeds = sorted(cond)
    dialogues = ids(cond[seeds[0]])
    rng = np.random.default_rng([settings.seed, *salt.encode()])
    weights, draws = resample_plan(rng, len(dialogues), len(seeds), settings.resamples)
    where = {d: i for i, d in enumerate(dialogues)}

    def f1(rows, w):
        sw = [w[where[r["dialogue_id"]]] for r in rows]
        golds, preds = [r["gold"] for r in rows], [r["pred"] for r in rows]
        return 100 * f1_score(golds, preds, sample_weight=sw, average="weighted", zero_division=0)

    out = []
    for b in range(settings.resamples):
        per_seed = [f1(cond[s], weights[b]) - f1(base[s], weights[b]) for s in seeds]
        out.append(np.mean([per_seed[j] for j in draws[b]]))
    return np.array(out)


def effect_of(cond, base, settings, salt="MELD/compm/natural"):
    # the units as effects_table takes them from a run's predictions
    dialogues = RunPredictions(Path("baseline"), LABELS, next(iter(base.values()))).dialogues
    conf = {s: dialogue_confusions(r, LABELS, dialogues) for s, r in cond.items()}
    bconf = {s: dialogue_confusions(r, LABELS, dialogues) for s, r in base.items()}
    return paired_bootstrap(conf, bconf, settings, salt)


@pytest.mark.parametrize("seeds", [(1,), (1, 2, 3)])
def test_the_interval_and_p_value_equal_a_brute_force_bootstrap_over_dialogues(seeds):
    cond, base = cell(seeds)
    settings = BootstrapSettings(resamples=200, seed=5)
    effect = effect_of(cond, base, settings)
    boot = brute_force(cond, base, settings, "MELD/compm/natural")
    low, high = np.quantile(boot, [0.025, 0.975])
    assert (effect.ci_low, effect.ci_high) == (pytest.approx(low), pytest.approx(high))
    delta = np.mean(
        [
            100 * f1_score([r["gold"] for r in cond[s]], [r["pred"] for r in cond[s]], average="weighted")
            - 100 * f1_score([r["gold"] for r in base[s]], [r["pred"] for r in base[s]], average="weighted")
            for s in seeds
        ]
    )
    assert effect.delta == pytest.approx(delta) and effect.ci_low <= effect.delta <= effect.ci_high
    shifted = np.count_nonzero(np.abs(boot - delta) >= abs(delta) - 1e-12)
    assert effect.p_value == pytest.approx((1 + shifted) / 201)
    assert effect.se == pytest.approx(boot.std(ddof=1))
    assert effect.seeds == len(seeds)
    assert effect.interval_covers == ("test dialogues and seeds" if len(seeds) > 1 else "test dialogues")


def test_the_unit_resampled_is_the_dialogue_not_the_utterance():
    """Doubling every utterance inside its dialogue adds no independent evidence: a bootstrap over
    dialogues gives the same interval, one over utterances would narrow it."""
    cond, base = cell((1, 2))
    settings = BootstrapSettings(resamples=300, seed=1)
    before = effect_of(cond, base, settings)

    def doubled(rows):
        return [r | {"index": 2 * r["index"] + k} for r in rows for k in (0, 1)]

    after = effect_of({s: doubled(r) for s, r in cond.items()}, {s: doubled(r) for s, r in base.items()}, settings)
    assert after.delta == pytest.approx(before.delta)
    assert (after.ci_low, after.ci_high) == (pytest.approx(before.ci_low), pytest.approx(before.ci_high))


def test_the_draws_are_the_cells_own_and_repeatable():
    cond, base = cell((1, 2))
    settings = BootstrapSettings(resamples=200, seed=0)
    a, b = effect_of(cond, base, settings, "x"), effect_of(cond, base, settings, "x")
    assert a == b
    assert effect_of(cond, base, settings, "y").ci_low != a.ci_low


def test_a_clear_effect_is_significant_and_no_effect_is_not():
    rng = np.random.default_rng(11)
    truth = truth_of(predictions(rng, 60, 1.0))
    good = {s: predictions(rng, 60, 0.9, truth) for s in (1, 2, 3)}
    poor = {s: predictions(rng, 60, 0.4, truth) for s in (1, 2, 3)}
    settings = BootstrapSettings(resamples=500, seed=0)
    clear = effect_of(good, poor, settings)
    assert clear.delta > 20 and clear.p_value < 0.01 and clear.ci_low > 0
    same = effect_of(poor, poor, settings)
    assert same.delta == 0 and same.p_value == 1.0 and same.ci_low == same.ci_high == 0


def test_power_figures_follow_from_the_spread():
    cond, base = cell((1, 2, 3), dialogues=40)
    effect = effect_of(cond, base, BootstrapSettings(resamples=400, seed=2))
    assert effect.min_detectable_delta == pytest.approx((1.959964 + 0.841621) * effect.se, rel=1e-5)
    # One seed: the seed spread is unknown, so no seed count.
    assert math.isnan(effect_of({1: cond[1]}, {1: base[1]}, BootstrapSettings(200, 0)).seeds_for_1_point)
    # 30 small dialogues are far too few to see 1 point at all, whatever the seeds.
    assert effect.seeds_for_1_point == math.inf


def test_seeds_needed_solves_the_variance_sum():
    from ercsynth.effects import seeds_needed

    z = 2.8
    point = np.array([0.0, 2.0, 4.0])  # variance 4 between seeds
    test_only = np.array([-0.1, 0.1] * 50)  # variance ~0.0101 from the test set
    v_test = float(np.var(test_only, ddof=1))
    n = seeds_needed(point, test_only, z)
    assert n == math.ceil(4.0 / ((1 / z) ** 2 - v_test))
    assert z * math.sqrt(v_test + 4.0 / n) <= 1.0 < z * math.sqrt(v_test + 4.0 / (n - 1))


def test_holm_equals_statsmodels_and_skips_what_was_not_tested():
    rng = np.random.default_rng(4)
    for _ in range(30):
        p = list(rng.random(int(rng.integers(1, 9))) ** 3)
        assert holm(p) == pytest.approx(list(multipletests(p, method="holm")[1]))
    assert holm([0.01, math.nan, 0.04])[::2] == pytest.approx([0.02, 0.04]) and math.isnan(holm([math.nan])[0])


def test_effects_table_has_a_row_per_cell_against_its_own_baseline(tmp_path):
    cond, base = cell((1, 2, 3))
    _, other = cell((1, 2, 3), seed=9)
    runs = {"natural": cond, "balanced": other, "baseline": base}
    preds, rows = {}, []
    for run, by_seed in runs.items():
        for s, r in by_seed.items():
            preds[("MELD", "compm", run, s)] = RunPredictions(tmp_path / f"{run}{s}", LABELS, r)
            f1 = f1_score([x["gold"] for x in r], [x["pred"] for x in r], average="weighted")
            rows.append({"benchmark": "MELD", "classifier": "compm", "condition": run, "run": run, "seed": s})
            rows[-1]["weighted_f1"] = f1
    df = pd.DataFrame(rows)
    effects = effects_table(df, preds, BootstrapSettings(resamples=200, seed=0))
    assert list(effects["condition"]) == ["natural", "balanced"]
    means = df.groupby("run")["weighted_f1"].mean() * 100
    for _, e in effects.iterrows():
        assert e["delta"] == pytest.approx(means[e["run"]] - means["baseline"])
        assert e["ci_low"] <= e["delta"] <= e["ci_high"] and e["seeds"] == 3
    assert list(effects["p_holm"]) == pytest.approx(list(multipletests(effects["p_value"], method="holm")[1]))
    # A run scored on other test dialogues than its baseline is refused, naming its file.
    fewer = [r for r in cond[2] if r["dialogue_id"] != "d00"]
    preds[("MELD", "compm", "natural", 2)] = RunPredictions(tmp_path / "odd.jsonl", LABELS, fewer)
    with pytest.raises(ValueError, match="odd.jsonl: scored on other test dialogues"):
        effects_table(df, preds, BootstrapSettings(resamples=200, seed=0))
