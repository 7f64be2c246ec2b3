"""Aggregate results: the results table, the summary, Friedman tests with post-hoc
comparisons, and the quality of the synthetic labels."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ercsynth.design import ALL, AXES, BASELINE, CONTROLS, DISTRIBUTIONS, Run
from ercsynth.effects import ALPHA, POWER, BootstrapSettings, dialogue_confusions, holm, paired_bootstrap, unit_of
from ercsynth.labels import label_distribution, vocabulary
from ercsynth.metrics import classification_metrics, cohen_kappa

CONDITION_ORDER = (BASELINE, *DISTRIBUTIONS, *CONTROLS)


def results_table(metric_files: list[str | Path]) -> pd.DataFrame:
    rows = []
    for path in metric_files:
        m = json.loads(Path(path).read_text(encoding="utf-8"))
        row = {
            k: m[k]
            for k in (
                "benchmark",
                "classifier",
                "condition",
                "seed",
                "weighted_f1",
                "macro_f1",
                "accuracy",
                "epochs",
                "pretrain_epochs",
                "train_seconds",
                "utterances_per_second",
                "best_dev_weighted_f1",
            )
        }
        row["encoder"] = m["encoder"]
        # The design's axes (ercsynth/design.py) and the run's path token.
        row["generator"] = m["generator"]
        row["synthetic_size"] = str(m["synthetic_size"])
        row["real_fraction"] = float(m["real_fraction"])
        row["run"] = m["run"]
        # The majority-class predictor's test weighted F1 on the same data.
        row["majority_floor_f1"] = m["majority_floor_f1"]
        for split, n in m["data"].items():
            row[f"{split}_dialogues"] = n
        for label, pc in m["per_class"].items():
            row[f"f1_{label}"] = pc["f1"]
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["condition"] = pd.Categorical(df["condition"], categories=list(CONDITION_ORDER), ordered=True)
    df["_size"] = df["synthetic_size"].map(size_number)
    order = ["benchmark", "classifier", "real_fraction", "condition", "generator", "_size", "seed"]
    return df.sort_values(order).drop(columns="_size").reset_index(drop=True)


def size_number(size: str) -> float:
    """A synthetic_size cell as a number to sort and plot by: all is the largest, none (baseline) 0."""
    return math.inf if size == ALL else float(size) if size else 0.0


def with_axes(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with the axis columns results_table writes, each at its one default value where missing
    (a table built by hand, or from runs of one design cell)."""
    baseline = df["condition"].astype(str) == BASELINE
    defaults = {
        "generator": "",
        "synthetic_size": np.where(baseline, "", ALL),
        "real_fraction": 1.0,
        "run": df["condition"].astype(str),
    }
    return df.assign(**{k: v for k, v in defaults.items() if k not in df})


def varied_axes(df: pd.DataFrame) -> list[str]:
    """The axes with more than one value: the synthetic runs' generators and sizes, every run's fractions."""
    synthetic = df[df["condition"].astype(str) != BASELINE]
    out = [a for a in ("generator", "synthetic_size") if synthetic[a].nunique() > 1]
    return out + (["real_fraction"] if df["real_fraction"].nunique() > 1 else [])


def with_baselines_per_cell(df: pd.DataFrame) -> pd.DataFrame:
    """The baseline rows repeated for each generator x size of the synthetic runs at the same
    benchmark, classifier and real fraction: the baseline each of those runs is compared with."""
    key = ["benchmark", "classifier", "real_fraction"]
    synthetic = df[df["condition"].astype(str) != BASELINE]
    base = df[df["condition"].astype(str) == BASELINE].drop(columns=["generator", "synthetic_size"])
    cells = synthetic[[*key, "generator", "synthetic_size"]].drop_duplicates()
    base = base.merge(cells, on=key, how="left").fillna({"generator": "", "synthetic_size": ""})
    out = pd.concat([base, synthetic], ignore_index=True)
    out["condition"] = pd.Categorical(out["condition"].astype(str), categories=list(CONDITION_ORDER), ordered=True)
    return out


NEAR_FLOOR_POINTS = 2.0  # a baseline this close to the majority-class floor has learned next to nothing


def near_floor(runs: pd.DataFrame) -> bool:
    """Whether these runs' mean test weighted F1 is within NEAR_FLOOR_POINTS of their majority-class floor."""
    mean, floor = runs["weighted_f1"].mean() * 100, runs["majority_floor_f1"].mean() * 100
    return not math.isnan(floor) and mean - floor < NEAR_FLOOR_POINTS


def floor_warnings(df: pd.DataFrame) -> list[str]:
    """One line per baseline whose mean test weighted F1 is within NEAR_FLOOR_POINTS of its floor."""
    lines = []
    base = with_axes(df)
    base = base[base["condition"].astype(str) == "baseline"]
    several = base["real_fraction"].nunique() > 1  # a baseline per real fraction, each judged alone
    for (bench, clf, frac), grp in base.groupby(["benchmark", "classifier", "real_fraction"], observed=True):
        if not near_floor(grp):
            continue
        mean, floor = grp["weighted_f1"].mean() * 100, grp["majority_floor_f1"].mean() * 100
        name = f"{bench} {clf} baseline" + (f" at real fraction {frac:g}" if several else "")
        lines.append(
            f"**Warning: the {name} ({mean:.2f}) is within {NEAR_FLOOR_POINTS:g} points of the "
            f"majority-class floor ({floor:.2f})**: it has learned next to nothing, so its row says nothing "
            "about synthetic data. Train on more real data or for more steps (docs/configuration.md)."
        )
    return lines


OVERLAP_WARNING = 0.01  # summary.md warns above this share of utterances copied from dev or test


def overlap_warnings(rows: Sequence[dict]) -> list[str]:
    """summary.md's warning for each synthetic dataset (data_quality.csv rows) that copies more than
    OVERLAP_WARNING of its utterances from the real dev or test lines."""
    out = []
    for row in rows:
        if row["dataset"] == "train":
            continue
        shares = {k: row[k] for k in ("test_overlap_exact", "test_overlap_8gram") if row[k] > OVERLAP_WARNING}
        if shares:
            found = ", ".join(f"{k} {v:.1%}" for k, v in shares.items())
            out.append(
                f"> **Warning:** {row['benchmark']} {row['dataset']}: {found} of its utterances copy the real "
                "dev or test lines (over 1 %): its gains may come from the test set (data_quality.csv)."
            )
    return out


def summary_markdown(df: pd.DataFrame, effects: pd.DataFrame | None = None, notes: Sequence[str] = ()) -> str:
    """Mean ± std of weighted F1 over seeds; best per row in bold; deltas against baseline with their
    95 % interval (from `effects`, effects_table's); the majority-class floor per row, and a warning
    first for every baseline near it; one sentence on the smallest detectable effect."""
    df = with_axes(df)
    conditions = [c for c in CONDITION_ORDER if c in set(df["condition"].astype(str))]
    warnings = [*notes, *floor_warnings(df)]  # notes: e.g. quality.overlap_warnings
    axes = varied_axes(df)  # a row per value of each axis that varies; the baseline at the same real fraction
    cells = with_baselines_per_cell(df) if axes else df
    has_ci = effects is not None and len(effects) > 0
    lines = ["# Weighted F1 (test), mean ± std over seeds", ""]
    if warnings:
        lines += [*warnings, ""]
    lines += [
        "| benchmark | classifier | "
        + "".join(f"{a} | " for a in axes)
        + "seeds | floor | "
        + " | ".join(conditions)
        + " |",
        "|---|---|" + "---|" * len(axes) + "---|---|" + "---|" * len(conditions),
    ]
    for keys, grp in cells.groupby(["benchmark", "classifier", *axes], observed=True, sort=False):
        bench, clf, *values = keys
        stats_by = {}
        for cond in conditions:
            vals = grp.loc[grp["condition"].astype(str) == cond, "weighted_f1"].to_numpy() * 100
            if len(vals):
                stats_by[cond] = (vals.mean(), vals.std(ddof=1) if len(vals) > 1 else 0.0)
        best = max(stats_by, key=lambda c: stats_by[c][0]) if stats_by else None
        base = stats_by.get("baseline", (None,))[0]
        floor = grp["majority_floor_f1"].mean() * 100
        row = []
        for cond in conditions:
            if cond not in stats_by:
                row.append("–")
                continue
            mean, sd = stats_by[cond]
            text = f"{mean:.2f} ± {sd:.2f}"
            if cond != "baseline" and base is not None:
                text += f" ({effect_text(effects, bench, clf, grp, cond) or f'{mean - base:+.2f}'})"
            row.append(f"**{text}**" if cond == best else text)
        floor_cell = "–" if math.isnan(floor) else f"{floor:.2f}"
        head = f"| {bench} | {clf} | " + "".join(f"{v} | " for v in values)
        lines.append(head + f"{grp['seed'].nunique()} | {floor_cell} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Deltas in parentheses are against the baseline (real data only, the same real fraction), in F1 points"
        + (", with their 95 % paired-bootstrap interval over test dialogues and seeds (effects.csv)" if has_ci else "")
        + ". floor: the test weighted F1 of always predicting the train split's most frequent label, on the same test "
        "utterances.",
    ]
    if has_ci:
        lines += ["", power_sentence(effects)]
    if "real_fraction" in axes:
        lines += ["", *fraction_table(df)]
    return "\n".join(lines) + "\n"


def effect_text(effects: pd.DataFrame | None, bench: str, clf: str, grp: pd.DataFrame, cond: str) -> str:
    """`+1.23 [-0.40, +2.90]` for the run of `cond` in this summary row, '' where effects has none."""
    if effects is None or effects.empty:
        return ""
    runs = set(grp.loc[grp["condition"].astype(str) == cond, "run"])
    hit = effects[(effects["benchmark"] == bench) & (effects["classifier"] == clf) & effects["run"].isin(runs)]
    if len(hit) != 1:
        return ""
    e = hit.iloc[0]
    return f"{e['delta']:+.2f} [{e['ci_low']:+.2f}, {e['ci_high']:+.2f}]"


def power_sentence(effects: pd.DataFrame) -> str:
    """One sentence: what effect these cells could detect, and how many seeds 1 point would take."""
    mde = effects["min_detectable_delta"]
    text = (
        f"Power: with {int(effects['seeds'].min())}-{int(effects['seeds'].max())} seed(s) per cell, the smallest "
        f"delta a cell could detect (two-sided alpha {ALPHA:g}, power {POWER:g}) is {mde.min():.2f} to {mde.max():.2f} "
        f"F1 points (median {mde.median():.2f})"
    )
    need = effects["seeds_for_1_point"].dropna()
    if need.empty:
        return text + "; with one seed the seed-to-seed spread is unknown, so no seed count can be given."
    finite = need[np.isfinite(need)]
    tail = (
        f"; detecting 1 point would take a median of {finite.median():.0f} seeds"
        if len(finite)
        else "; no number of seeds detects 1 point here: the test set's own noise is larger (use more test dialogues)"
    )
    if len(finite) and len(finite) < len(need):
        tail += f" ({len(need) - len(finite)} cell(s) never: their test set alone is too noisy)"
    return text + tail + "."


def fraction_table(df: pd.DataFrame) -> list[str]:
    """Per benchmark and classifier: the best pre-trained run's gain over the baseline at each real
    fraction, and the fraction from which pre-training no longer helps (no gain there or above)."""
    fractions = sorted(df["real_fraction"].unique())
    lines = [
        "## Where pre-training stops helping",
        "",
        "Gain of the best pre-trained run (generator, distribution, size; mean over seeds) over the baseline at the "
        "same real fraction, in F1 points. A fraction whose baseline is within "
        f"{NEAR_FLOOR_POINTS:g} points of the majority-class floor has learned nothing to compare with: left out.",
        "",
        "| benchmark | classifier | " + " | ".join(f"real {f:g}" for f in fractions) + " | stops helping at |",
        "|---|---|" + "---|" * len(fractions) + "---|",
    ]
    for (bench, clf), grp in df.groupby(["benchmark", "classifier"], observed=True):
        gains, floored = {}, set()
        for f in fractions:
            at = grp[grp["real_fraction"] == f]
            means = at.groupby("run", observed=True)["weighted_f1"].mean() * 100
            base = at.loc[at["condition"].astype(str) == BASELINE, "run"].unique()
            pretrained = means.drop(index=list(base), errors="ignore")
            if len(base) and near_floor(at[at["condition"].astype(str) == BASELINE]):
                floored.add(f)  # a baseline that learned nothing: no gain to read there
            elif len(base) and len(pretrained):
                gains[f] = (float(pretrained.max() - means[base[0]]), str(pretrained.idxmax()))
        cells = [
            f"{gains[f][0]:+.2f} ({gains[f][1]})" if f in gains else "baseline at the floor" if f in floored else "–"
            for f in fractions
        ]
        helping = [f for f in fractions if f in gains and gains[f][0] > 0]
        if not gains:
            verdict = "–"
        elif not helping:
            verdict = "never helps"
        elif all(gains[f][0] > 0 for f in gains):
            verdict = "helps wherever the baseline learns" if floored else "helps at every fraction"
        else:
            # the smallest fraction from which no larger one gains
            later = [f for f in sorted(gains) if all(gains[g][0] <= 0 for g in gains if g >= f)]
            verdict = f"real {later[0]:g}" if later else "no single point (gains come and go)"
        lines.append(f"| {bench} | {clf} | " + " | ".join(cells) + f" | {verdict} |")
    return lines


def _blocks(df: pd.DataFrame, block_cols: list[str], conditions: list[str], column: str = "condition") -> pd.DataFrame:
    """One row per block, one column per value of `column`: the mean weighted F1 of the block's runs
    (its seeds: replicates of one problem, averaged, Demšar 2006); blocks missing a value are dropped."""
    wide = df.assign(**{column: df[column].astype(str)}).pivot_table(
        index=block_cols, columns=column, values="weighted_f1", aggfunc="mean"
    )
    return wide.reindex(columns=conditions).dropna()


def smallest_p(k: int, n_blocks: int) -> float:
    """The smallest p-value the test of k values over n blocks can give, whatever the data: every
    block ranking the values alike. Friedman (k >= 3, chi-square, as scipy computes it): the
    statistic is then n (k - 1); Wilcoxon signed-rank (k = 2, exact, two-sided): 2 / 2^n."""
    if n_blocks < 1:
        return 1.0
    if k == 2:
        return min(1.0, 2.0 / 2**n_blocks)
    return float(stats.chi2.sf(n_blocks * (k - 1), k - 1))


def nemenyi(mean_ranks: dict[str, float], n_blocks: int) -> list[dict]:
    k = len(mean_ranks)
    se = math.sqrt(k * (k + 1) / (6.0 * n_blocks))
    out = []
    for a, b in combinations(mean_ranks, 2):
        q = abs(mean_ranks[a] - mean_ranks[b]) / se
        p = float(stats.studentized_range.sf(q * math.sqrt(2), k, np.inf))
        out.append({"a": a, "b": b, "rank_difference": mean_ranks[a] - mean_ranks[b], "p_value": min(1.0, p)})
    return out


def wilcoxon_holm(wide: pd.DataFrame) -> list[dict]:
    pairs = list(combinations(wide.columns, 2))
    raw = []
    for a, b in pairs:
        diff = wide[a] - wide[b]
        p = 1.0 if np.allclose(diff, 0) else float(stats.wilcoxon(wide[a], wide[b]).pvalue)
        raw.append(p)
    adjusted = holm(raw)
    return [
        {"a": a, "b": b, "p_value": raw[i], "p_holm": adjusted[i], "significant": adjusted[i] < ALPHA}
        for i, (a, b) in enumerate(pairs)
    ]


def posthoc(wide: pd.DataFrame, mean_ranks: dict[str, float]) -> dict:
    """Nemenyi and Holm-corrected Wilcoxon over the same blocks; a note where the pairwise Wilcoxon
    tests cannot reach significance after Holm's factor (its first step multiplies by the pairs)."""
    out = {"nemenyi": nemenyi(mean_ranks, len(wide)), "wilcoxon_holm": wilcoxon_holm(wide)}
    pairs = len(wide.columns) * (len(wide.columns) - 1) // 2
    if pairs * smallest_p(2, len(wide)) >= ALPHA:
        out["wilcoxon_note"] = (
            f"the pairwise Wilcoxon tests cannot reach p < {ALPHA:g} after Holm with {len(wide)} blocks "
            f"and {pairs} pairs: read Nemenyi's"
        )
    return out


def friedman(
    df: pd.DataFrame, block_cols: list[str], conditions: list[str] | None = None, column: str = "condition"
) -> dict:
    """Friedman's test of weighted F1 across the values (`conditions`) of `column`, one block per
    value of `block_cols` (repeats within a block, such as seeds, averaged); with two values, the
    paired Wilcoxon signed-rank test, which Friedman's needs three for. Where the number of blocks
    cannot give p < ALPHA whatever the data, no p-value: the result says so."""
    conditions = conditions or [c for c in CONDITION_ORDER if c in set(df["condition"].astype(str))]
    wide = _blocks(df, block_cols, conditions, column)
    result: dict = {"blocks": block_cols, "conditions": conditions, "n_blocks": int(len(wide))}
    if len(conditions) < 2:
        return result | {"result": "one value", "detail": "nothing to compare"}
    floor = smallest_p(len(conditions), len(wide))
    if floor >= ALPHA:
        return result | {
            "result": "cannot reach significance",
            "smallest_possible_p": floor,
            "detail": f"cannot reach p < {ALPHA:g} with {len(wide)} block(s) of {len(conditions)} values "
            f"(the smallest possible p is {floor:.3g}): add benchmarks or classifiers",
        }
    ranks = wide.rank(axis=1, ascending=False)  # rank 1 = best weighted F1 in the block
    mean_ranks = {c: float(ranks[c].mean()) for c in conditions}
    if np.allclose(wide.to_numpy(), wide.to_numpy()[:, :1]):
        return result | {"result": "all conditions tied", "statistic": 0.0, "p_value": 1.0, "mean_ranks": mean_ranks}
    if len(conditions) == 2:
        return result | paired_test(wide, mean_ranks)
    stat, p = stats.friedmanchisquare(*[wide[c].to_numpy() for c in conditions])
    result |= {
        "result": "tested",
        "statistic": float(stat),
        "p_value": float(p),
        "mean_ranks": mean_ranks,
        "significant": bool(p < ALPHA),
        "alpha": ALPHA,
    }
    if p < ALPHA:
        result["posthoc"] = posthoc(wide, mean_ranks)
    return result


def paired_test(wide: pd.DataFrame, mean_ranks: dict[str, float]) -> dict:
    """Two values over enough paired blocks, not all tied: the Wilcoxon signed-rank test
    (scipy.stats.wilcoxon)."""
    a, b = wide.columns
    test = stats.wilcoxon(wide[a], wide[b])
    return {
        "result": "tested",
        "test": "Wilcoxon signed-rank (two values; Friedman's test needs three)",
        "statistic": float(test.statistic),
        "p_value": float(test.pvalue),
        "mean_ranks": mean_ranks,
        "mean_difference": float((wide[a] - wide[b]).mean()),
        "significant": bool(test.pvalue < ALPHA),
        "alpha": ALPHA,
    }


def treatments(df: pd.DataFrame) -> pd.Series:
    """What each run was pre-trained on, as one name: its run token without the real fraction
    (`natural`, `gemma/balanced/n32`, `baseline`). The columns of the overall test."""
    return df["run"].astype(str).map(lambda token: BASELINE if (run := Run.parse(token)).baseline else run.pretrained)


def treatment_order(names) -> list[str]:
    """The baseline first, then by distribution (CONDITION_ORDER), then by name."""
    rank = {c: i for i, c in enumerate(CONDITION_ORDER)}

    def key(name: str):
        part = next((p for p in name.split("/") if p in rank), "")
        return rank.get(part, len(rank)), name

    return sorted(set(names), key=key)


def axis_test(df: pd.DataFrame, axis: str) -> dict:
    """The test across the values of one design axis, one block per combination of the other factors
    (benchmark, classifier, condition and the other axes), seeds averaged. Generator and size compare
    pre-trained runs only; the real fraction compares every run, the baseline included, each against
    itself at other fractions."""
    other = [a for a in ("condition", *AXES) if a != axis]
    data = df if axis == "real_fraction" else df[df["condition"].astype(str) != BASELINE]
    data = data.assign(**{a: data[a].astype(str) for a in (*AXES, "condition")})
    order = {"synthetic_size": size_number, "real_fraction": float}.get(axis, str)
    values = sorted(data[axis].unique(), key=order)
    return friedman(data, ["benchmark", "classifier", *other], list(values), column=axis)


def friedman_report(df: pd.DataFrame) -> dict:
    """The across-cells level: does a condition help ERC classifiers in general. One block per
    independent problem (benchmark x classifier x real fraction; per classifier: benchmark x real
    fraction), its value the seed mean, each baseline once per block; every pre-training variant
    (distribution, and generator and size where they vary) a column. Holm's adjustment across the
    family of tests made here (overall, per classifier, per axis); post-hoc tests only where the
    adjusted p is below ALPHA."""
    df = with_axes(df)
    df = df.assign(treatment=treatments(df))
    columns = treatment_order(df["treatment"])
    report = {
        "test": "Friedman rank-sum test of seed-mean weighted F1 across conditions (scipy.stats.friedmanchisquare), "
        "one block per benchmark x classifier (x real fraction); two values: Wilcoxon signed-rank; post-hoc: "
        "Nemenyi and Holm-corrected Wilcoxon; p_holm: Holm across the tests of this file",
        "overall": friedman(df, ["benchmark", "classifier", "real_fraction"], columns, column="treatment"),
        "per_classifier": {
            clf: friedman(grp, ["benchmark", "real_fraction"], columns, column="treatment")
            for clf, grp in df.groupby("classifier")
        },
        "per_axis": {axis: axis_test(df, axis) for axis in AXES},
    }
    family = [report["overall"], *report["per_classifier"].values(), *report["per_axis"].values()]
    tested = [r for r in family if r["result"] == "tested"]
    for r, adjusted in zip(tested, holm([r["p_value"] for r in tested]), strict=True):
        r["p_holm"] = adjusted
        r["significant"] = bool(adjusted < ALPHA)
        if not r["significant"]:
            r.pop("posthoc", None)  # no pairwise claims after an omnibus test the family does not support
    return report


def run_key(benchmark: str, classifier: str, run: str, seed) -> tuple[str, str, str, int]:
    return str(benchmark), str(classifier), str(run), int(seed)


@dataclass(frozen=True)
class RunPredictions:
    """One run's test predictions (test_predictions.jsonl), as the per-cell bootstrap reads them."""

    path: Path
    labels: tuple[str, ...]
    rows: list[dict]

    @property
    def dialogues(self) -> list[str]:
        return sorted({unit_of(r) for r in self.rows})


def read_predictions(metric_files: list[str | Path]) -> dict[tuple, RunPredictions]:
    """The test_predictions.jsonl beside each metrics.json, keyed by run_key."""
    out = {}
    for metrics_path in metric_files:
        m = json.loads(Path(metrics_path).read_text(encoding="utf-8"))
        path = Path(metrics_path).with_name("test_predictions.jsonl")
        with path.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        out[run_key(m["benchmark"], m["classifier"], m["run"], m["seed"])] = RunPredictions(
            path, tuple(m["labels"]), rows
        )
    return out


EFFECT_COLUMNS = [
    "benchmark",
    "classifier",
    "condition",
    *AXES,
    "run",
    "seeds",
    "baseline_f1",
    "condition_f1",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "se",
    "min_detectable_delta",
    "seeds_for_1_point",
    "interval_covers",
]


def effects_table(
    df: pd.DataFrame, predictions: dict[tuple, RunPredictions], settings: BootstrapSettings
) -> pd.DataFrame:
    """The per-cell level: each pre-trained run (benchmark x classifier x generator x size x real
    fraction x condition) against the baseline of its benchmark, classifier and real fraction, in F1
    points, by the paired bootstrap of ercsynth.effects; p_holm adjusts across the rows."""
    df = with_axes(df)
    is_base = df["condition"].astype(str) == BASELINE
    rows = []
    keys = ["benchmark", "classifier", "real_fraction", "run"]
    for (bench, clf, frac, run), grp in df[~is_base].groupby(keys, observed=True, sort=False):
        base = df[is_base & (df["benchmark"] == bench) & (df["classifier"] == clf) & (df["real_fraction"] == frac)]
        if base.empty:
            continue
        cond_runs = {int(s): predictions[run_key(bench, clf, run, s)] for s in grp["seed"]}
        base_runs = {
            int(s): predictions[run_key(bench, clf, r, s)] for r, s in zip(base["run"], base["seed"], strict=True)
        }
        dialogues = next(iter(base_runs.values())).dialogues
        for pred in [*cond_runs.values(), *base_runs.values()]:
            if pred.dialogues != dialogues:
                raise ValueError(f"{pred.path}: scored on other test dialogues than its cell's baseline")
        labels = next(iter(base_runs.values())).labels
        cond_conf, base_conf = (
            {s: dialogue_confusions(p.rows, labels, dialogues) for s, p in runs.items()}
            for runs in (cond_runs, base_runs)
        )
        effect = paired_bootstrap(cond_conf, base_conf, settings, f"{bench}/{clf}/{run}")
        common = sorted(set(cond_runs) & set(base_runs))
        first = grp.iloc[0]
        rows.append(
            {
                "benchmark": bench,
                "classifier": clf,
                "condition": str(first["condition"]),
                **{a: first[a] for a in AXES},
                "run": run,
                "baseline_f1": float(base[base["seed"].isin(common)]["weighted_f1"].mean() * 100),
                "condition_f1": float(grp[grp["seed"].isin(common)]["weighted_f1"].mean() * 100),
            }
            | asdict(effect)
        )
    out = pd.DataFrame(rows, columns=[c for c in EFFECT_COLUMNS if c != "p_holm"])
    out["p_holm"] = holm(out["p_value"].tolist()) if len(out) else []
    return out[EFFECT_COLUMNS]


@dataclass
class Analysis:
    """Everything `aggregate` writes from a finished run's metrics and test predictions."""

    results: pd.DataFrame
    effects: pd.DataFrame
    friedman: dict
    summary: str


def analyse(metric_files: list[str | Path], settings: BootstrapSettings, notes: Sequence[str] = ()) -> Analysis:
    """Everything the aggregate rule writes; `notes` are warnings summary.md puts first."""
    results = results_table(metric_files)
    effects = effects_table(results, read_predictions(metric_files), settings)
    return Analysis(results, effects, friedman_report(results), summary_markdown(results, effects, notes))


def write_analysis(analysis: Analysis, out_dir: str | Path) -> dict[str, Path]:
    """results.csv, effects.csv, friedman.json and summary.md in `out_dir`; their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("results.csv", "effects.csv", "friedman.json", "summary.md")}
    analysis.results.to_csv(paths["results.csv"], index=False)
    analysis.effects.to_csv(paths["effects.csv"], index=False)
    paths["friedman.json"].write_text(json.dumps(analysis.friedman, indent=2), encoding="utf-8")
    paths["summary.md"].write_text(analysis.summary, encoding="utf-8")
    return paths


def label_quality_row(
    benchmark: str,
    distribution: str,
    classifier: str,
    predictions: list[dict],
    synthetic_labels: list[str],
    real_labels: list[str],
    labels: list[str] | None = None,
) -> dict:
    vocab = vocabulary(benchmark, labels)
    gen = [r["gold"] for r in predictions]
    pred = [r["pred"] for r in predictions]
    p, q = label_distribution(synthetic_labels, vocab.labels), label_distribution(real_labels, vocab.labels)
    return {
        "benchmark": benchmark,
        "distribution": distribution,
        "classifier": classifier,
        "utterances": len(gen),
        "kappa": cohen_kappa(gen, pred),
        "accuracy": float(np.mean([g == x for g, x in zip(gen, pred, strict=True)])) if gen else float("nan"),
        "js_distance": float(jensenshannon(p, q, base=2)) if p.sum() and q.sum() else float("nan"),
    }


# A reference classifier that puts one label on more than this share of utterances, or whose test
# weighted F1 is within FLOOR_MARGIN of always predicting the majority class, cannot judge labels:
# its kappa with the LLM's labels is 0 or near it whatever the labels are.
TOP_SHARE_LIMIT = 0.9
FLOOR_MARGIN = 0.01


def reference_check(test_predictions: list[dict], synthetic_predictions: list[dict], labels: tuple[str, ...]) -> dict:
    """Whether a reference classifier can judge synthetic labels: `reference_ok` and why not."""
    index = {label: i for i, label in enumerate(labels)}
    gold = [index[r["gold"]] for r in test_predictions]
    f1 = classification_metrics(gold, [index[r["pred"]] for r in test_predictions], labels)["weighted_f1"]
    majority = Counter(gold).most_common(1)[0][0] if gold else 0
    floor = classification_metrics(gold, [majority] * len(gold), labels)["weighted_f1"]
    top_label, top_n = (
        Counter(r["pred"] for r in synthetic_predictions).most_common(1)[0] if synthetic_predictions else ("", 0)
    )
    share = top_n / max(len(synthetic_predictions), 1)
    problems = []
    if share > TOP_SHARE_LIMIT:
        problems.append(f"predicts '{top_label}' for {share:.0%} of the synthetic utterances")
    if f1 <= floor + FLOOR_MARGIN:
        problems.append(f"test weighted F1 {f1:.3f} is at the majority-class floor {floor:.3f}")
    return {
        "reference_test_f1": f1,
        "majority_floor_f1": floor,
        "reference_top_share": share,
        "reference_ok": not problems,
        "reference_note": "; ".join(problems),
    }


def main(argv: list[str] | None = None) -> int:
    """python -m ercsynth.stats RESULTS_DIR: the statistics of a finished run, again, without Snakemake."""
    parser = argparse.ArgumentParser(
        prog="python -m ercsynth.stats",
        description="Recompute results.csv, effects.csv, friedman.json and summary.md from a finished run's "
        "results/ (its models/**/metrics.json and test_predictions.jsonl), with other bootstrap settings if asked.",
    )
    parser.add_argument("results_dir", type=Path, help="a run's results/ folder")
    defaults = BootstrapSettings()
    parser.add_argument("--resamples", type=int, default=defaults.resamples, help="bootstrap resamples")
    parser.add_argument("--bootstrap-seed", type=int, default=defaults.seed, help="seeds the bootstrap")
    parser.add_argument("--out", type=Path, help="where to write (default: RESULTS_DIR/stats)")
    args = parser.parse_args(argv)
    metric_files = sorted((args.results_dir / "models").glob("**/metrics.json"))
    if not metric_files:
        parser.error(f"{args.results_dir / 'models'}: no metrics.json below it (is it a run's results/ folder?)")
    # The run's data-quality table, where it has one, gives summary.md the same warnings as the workflow's.
    quality = args.results_dir / "stats" / "data_quality.csv"
    notes = overlap_warnings(pd.read_csv(quality).to_dict("records")) if quality.exists() else []
    analysis = analyse(metric_files, BootstrapSettings(args.resamples, args.bootstrap_seed), notes)
    for path in write_analysis(analysis, args.out or args.results_dir / "stats").values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
