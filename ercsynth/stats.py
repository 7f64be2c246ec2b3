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

from ercsynth.labels import label_distribution, vocabulary
from ercsynth.metrics import classification_metrics, cohen_kappa

CONDITION_ORDER = ("baseline", "natural", "balanced", "planned")
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
    return df.sort_values(["benchmark", "classifier", "condition", "seed"]).reset_index(drop=True)


NEAR_FLOOR_POINTS = 2.0  # a baseline this close to the majority-class floor has learned next to nothing


def floor_warnings(df: pd.DataFrame) -> list[str]:
    """One line per baseline whose mean test weighted F1 is within NEAR_FLOOR_POINTS of its floor."""
    lines = []
    base = df[df["condition"].astype(str) == "baseline"]
    for (bench, clf), grp in base.groupby(["benchmark", "classifier"], observed=True):
        mean, floor = grp["weighted_f1"].mean() * 100, grp["majority_floor_f1"].mean() * 100
        if not math.isnan(floor) and mean - floor < NEAR_FLOOR_POINTS:
            lines.append(
                f"**Warning: the {bench} {clf} baseline ({mean:.2f}) is within {NEAR_FLOOR_POINTS:g} points of the "
                f"majority-class floor ({floor:.2f})**: it has learned next to nothing, so its row says nothing "
                "about synthetic data. Train on more real data or for more steps (docs/configuration.md)."
            )
    return lines


def summary_markdown(df: pd.DataFrame) -> str:
    """Mean ± std of weighted F1 over seeds; best per row in bold; deltas against baseline; the
    majority-class floor per row, and a warning first for every baseline near it."""
    conditions = [c for c in CONDITION_ORDER if c in set(df["condition"].astype(str))]
    warnings = floor_warnings(df)
    lines = ["# Weighted F1 (test), mean ± std over seeds", ""]
    if warnings:
        lines += [*warnings, ""]
    lines += [
        "| benchmark | classifier | seeds | floor | " + " | ".join(conditions) + " |",
        "|---|---|---|---|" + "---|" * len(conditions),
    ]
    for (bench, clf), grp in df.groupby(["benchmark", "classifier"], observed=True):
        stats_by = {}
        for cond in conditions:
            vals = grp.loc[grp["condition"].astype(str) == cond, "weighted_f1"].to_numpy() * 100
            if len(vals):
                stats_by[cond] = (vals.mean(), vals.std(ddof=1) if len(vals) > 1 else 0.0)
        best = max(stats_by, key=lambda c: stats_by[c][0]) if stats_by else None
        base = stats_by.get("baseline", (None,))[0]
        floor = grp["majority_floor_f1"].mean() * 100
        cells = []
        for cond in conditions:
            if cond not in stats_by:
                cells.append("–")
                continue
            mean, sd = stats_by[cond]
            text = f"{mean:.2f} ± {sd:.2f}"
            if cond != "baseline" and base is not None:
                text += f" ({mean - base:+.2f})"
            cells.append(f"**{text}**" if cond == best else text)
        floor_cell = "–" if math.isnan(floor) else f"{floor:.2f}"
        lines.append(f"| {bench} | {clf} | {grp['seed'].nunique()} | {floor_cell} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Deltas in parentheses are against the baseline (real data only), in F1 points. floor: the test weighted "
        "F1 of always predicting the train split's most frequent label, on the same test utterances.",
    ]
    return "\n".join(lines) + "\n"


def _blocks(df: pd.DataFrame, block_cols: list[str], conditions: list[str]) -> pd.DataFrame:
    wide = df.assign(condition=df["condition"].astype(str)).pivot_table(
        index=block_cols, columns="condition", values="weighted_f1", aggfunc="mean"
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


def friedman(df: pd.DataFrame, block_cols: list[str], conditions: list[str] | None = None) -> dict:
    conditions = conditions or [c for c in CONDITION_ORDER if c in set(df["condition"].astype(str))]
    wide = _blocks(df, block_cols, conditions)
    result: dict = {"blocks": block_cols, "conditions": conditions, "n_blocks": int(len(wide))}
    if len(conditions) < 3:
        return result | {"result": "not enough conditions", "detail": "Friedman's test needs at least 3 conditions"}
    if len(wide) < MIN_BLOCKS:
        return result | {
            "result": "not enough blocks",
            "detail": f"{len(wide)} complete block(s); at least {MIN_BLOCKS} are needed (add seeds or benchmarks)",
        }
    ranks = wide.rank(axis=1, ascending=False)  # rank 1 = best weighted F1 in the block
    mean_ranks = {c: float(ranks[c].mean()) for c in conditions}
    if np.allclose(wide.to_numpy(), wide.to_numpy()[:, :1]):
        return result | {"result": "all conditions tied", "statistic": 0.0, "p_value": 1.0, "mean_ranks": mean_ranks}
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


def friedman_report(df: pd.DataFrame) -> dict:
    return {
        "test": "Friedman rank-sum test of weighted F1 across conditions (scipy.stats.friedmanchisquare)",
        "overall": friedman(df, ["benchmark", "classifier", "seed"]),
        "per_classifier": {clf: friedman(grp, ["benchmark", "seed"]) for clf, grp in df.groupby("classifier")},
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
