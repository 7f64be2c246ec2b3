"""Aggregate results: the results table, the summary, Friedman tests with post-hoc
comparisons, and the quality of the synthetic labels."""

from __future__ import annotations

import json
import math
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ercsynth.design import ALL, AXES, BASELINE, DISTRIBUTIONS
from ercsynth.labels import label_distribution, vocabulary
from ercsynth.metrics import classification_metrics, cohen_kappa

CONDITION_ORDER = (BASELINE, *DISTRIBUTIONS)
MIN_BLOCKS = 3  # below this the chi-square approximation of Friedman's test means nothing
ALPHA = 0.05


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
        row["encoder"] = m.get("encoder")
        # The design's axes (ercsynth/design.py); runs written before them had one value of each.
        baseline = m["condition"] == BASELINE
        row["generator"] = m.get("generator", "")
        row["synthetic_size"] = str(m.get("synthetic_size", "" if baseline else ALL))
        row["real_fraction"] = float(m.get("real_fraction", 1.0))
        row["run"] = m.get("run", m["condition"])
        # The majority-class predictor's test weighted F1 on the same data (NaN for older runs).
        row["majority_floor_f1"] = m.get("majority_floor_f1", math.nan)
        for split, n in m.get("data", {}).items():
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


def summary_markdown(df: pd.DataFrame) -> str:
    """Mean ± std of weighted F1 over seeds; best per row in bold; deltas against baseline; the
    majority-class floor per row, and a warning first for every baseline near it."""
    df = with_axes(df)
    conditions = [c for c in CONDITION_ORDER if c in set(df["condition"].astype(str))]
    warnings = floor_warnings(df)
    axes = varied_axes(df)  # a row per value of each axis that varies; the baseline at the same real fraction
    cells = with_baselines_per_cell(df) if axes else df
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
                text += f" ({mean - base:+.2f})"
            row.append(f"**{text}**" if cond == best else text)
        floor_cell = "–" if math.isnan(floor) else f"{floor:.2f}"
        head = f"| {bench} | {clf} | " + "".join(f"{v} | " for v in values)
        lines.append(head + f"{grp['seed'].nunique()} | {floor_cell} | " + " | ".join(row) + " |")
    lines += [
        "",
        "Deltas in parentheses are against the baseline (real data only, the same real fraction), in F1 points. "
        "floor: the test weighted F1 of always predicting the train split's most frequent label, on the same test "
        "utterances.",
    ]
    if "real_fraction" in axes:
        lines += ["", *fraction_table(df)]
    return "\n".join(lines) + "\n"


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
    wide = df.assign(**{column: df[column].astype(str)}).pivot_table(
        index=block_cols, columns=column, values="weighted_f1", aggfunc="mean"
    )
    return wide.reindex(columns=conditions).dropna()


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
    order = np.argsort(raw)
    adjusted = [0.0] * len(raw)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[idx]))
        adjusted[idx] = running
    return [
        {"a": a, "b": b, "p_value": raw[i], "p_holm": adjusted[i], "significant": adjusted[i] < ALPHA}
        for i, (a, b) in enumerate(pairs)
    ]


def friedman(
    df: pd.DataFrame, block_cols: list[str], conditions: list[str] | None = None, column: str = "condition"
) -> dict:
    """Friedman's test of weighted F1 across the values (`conditions`) of `column`, blocks formed by
    `block_cols`; with two values, the paired Wilcoxon signed-rank test, which Friedman's needs three for."""
    conditions = conditions or [c for c in CONDITION_ORDER if c in set(df["condition"].astype(str))]
    wide = _blocks(df, block_cols, conditions, column)
    result: dict = {"blocks": block_cols, "conditions": conditions, "n_blocks": int(len(wide))}
    if len(conditions) < 2:
        return result | {"result": "one value", "detail": "nothing to compare"}
    if len(wide) < MIN_BLOCKS:
        return result | {
            "result": "not enough blocks",
            "detail": f"{len(wide)} complete block(s); at least {MIN_BLOCKS} are needed (add seeds or benchmarks)",
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
        result["posthoc"] = {"nemenyi": nemenyi(mean_ranks, len(wide)), "wilcoxon_holm": wilcoxon_holm(wide)}
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


def axis_test(df: pd.DataFrame, axis: str) -> dict:
    """The test across the values of one design axis, blocks formed by every other factor (benchmark,
    classifier, seed and the other axes). Generator and size compare pre-trained runs only; the real
    fraction compares every run, the baseline included, each against itself at other fractions."""
    other = [a for a in ("condition", *AXES) if a != axis]
    data = df if axis == "real_fraction" else df[df["condition"].astype(str) != BASELINE]
    data = data.assign(**{a: data[a].astype(str) for a in (*AXES, "condition")})
    order = {"synthetic_size": size_number, "real_fraction": float}.get(axis, str)
    values = sorted(data[axis].unique(), key=order)
    return friedman(data, ["benchmark", "classifier", "seed", *other], list(values), column=axis)


def friedman_report(df: pd.DataFrame) -> dict:
    df = with_axes(df)
    cells = with_baselines_per_cell(df)  # conditions compared at equal generator, size and real fraction
    return {
        "test": "Friedman rank-sum test of weighted F1 across conditions (scipy.stats.friedmanchisquare); "
        "two values: Wilcoxon signed-rank; post-hoc: Nemenyi and Holm-corrected Wilcoxon",
        "overall": friedman(cells, ["benchmark", "classifier", "seed", *AXES]),
        "per_classifier": {
            clf: friedman(grp, ["benchmark", "seed", *AXES]) for clf, grp in cells.groupby("classifier")
        },
        "per_axis": {axis: axis_test(df, axis) for axis in AXES},
    }


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
