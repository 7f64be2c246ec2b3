"""PNG plots for the report: label distributions, F1 per condition and along each design axis,
confusion matrices, training curves, data quality."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: cluster nodes and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ercsynth.labels import vocabulary  # noqa: E402
from ercsynth.stats import CONDITION_ORDER  # noqa: E402

COLORS = {
    "original": "#4c72b0",
    "baseline": "#4c72b0",
    "natural": "#dd8452",
    "balanced": "#55a868",
    "planned": "#c44e52",
}


def color_of(name: str) -> str | None:
    """A condition's color, also for a dataset or run token (`gemma/balanced/n32`: balanced's);
    None (matplotlib's next color) for anything else."""
    return COLORS.get(name) or next((COLORS[part] for part in name.split("/") if part in COLORS), None)


def plot_label_distributions(
    dists: dict[str, dict[str, np.ndarray]], out: str | Path, labels: dict[str, list[str]] | None = None
) -> None:
    """dists[benchmark][source] = proportions over the benchmark's labels; source in original/natural/balanced."""
    benches = list(dists)
    fig, axes = plt.subplots(len(benches), 1, figsize=(9, 3.2 * len(benches)), squeeze=False)
    for ax, bench in zip(axes[:, 0], benches, strict=True):
        names = vocabulary(bench, (labels or {}).get(bench)).labels
        sources = list(dists[bench])
        width = 0.8 / max(1, len(sources))
        x = np.arange(len(names))
        for i, src in enumerate(sources):
            ax.bar(x + i * width - 0.4 + width / 2, dists[bench][src], width, label=src, color=color_of(src))
        ax.set_xticks(x, names, rotation=20)
        ax.set_ylabel("share of utterances")
        ax.set_title(f"{bench}: label distribution")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_f1(df: pd.DataFrame, out: str | Path, effects: pd.DataFrame | None = None) -> None:
    """Per benchmark: weighted F1 per classifier and condition (mean ± sd over seeds); with `effects`
    (stats.effects_table), a second row of the deltas against the baseline with their 95 % intervals."""
    benches = sorted(df["benchmark"].unique())
    rows = 2 if effects is not None and len(effects) else 1
    fig, axes = plt.subplots(rows, len(benches), figsize=(5.5 * len(benches), 4 * rows), squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        sub = df[df["benchmark"] == bench]
        clfs = sorted(sub["classifier"].unique())
        conds = [c for c in CONDITION_ORDER if c in set(sub["condition"].astype(str))]
        width = 0.8 / max(1, len(conds))
        x = np.arange(len(clfs))
        for i, cond in enumerate(conds):
            g = sub[sub["condition"].astype(str) == cond].groupby("classifier")["weighted_f1"]
            mean = g.mean().reindex(clfs) * 100
            sd = g.std(ddof=1).reindex(clfs).fillna(0) * 100
            ax.bar(x + i * width - 0.4 + width / 2, mean, width, yerr=sd, capsize=3, label=cond, color=COLORS.get(cond))
        floor = sub["majority_floor_f1"].mean() * 100
        if not np.isnan(floor):
            ax.axhline(floor, color="black", linestyle="--", linewidth=1, label=f"majority floor {floor:.1f}")
        ax.set_xticks(x, clfs)
        ax.set_ylabel("weighted F1 (test, %)")
        ax.set_title(f"{bench}: mean ± sd over seeds")
        ax.legend(fontsize=8)
    if rows == 2:
        for ax, bench in zip(axes[1], benches, strict=True):
            plot_deltas(ax, effects[effects["benchmark"] == bench], bench)
    fig.suptitle("Weighted F1 per condition" + (" and its change against the baseline (95 % interval)" * (rows == 2)))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_deltas(ax, effects: pd.DataFrame, bench: str) -> None:
    """Deltas against the baseline per classifier and run, with their bootstrap intervals as error bars."""
    clfs = sorted(effects["classifier"].unique())
    runs = list(dict.fromkeys(effects["run"]))
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(clfs))
    for i, run in enumerate(runs):
        e = effects[effects["run"] == run].set_index("classifier").reindex(clfs)
        err = np.vstack([e["delta"] - e["ci_low"], e["ci_high"] - e["delta"]])
        pos = x + i * width - 0.4 + width / 2
        ax.bar(pos, e["delta"], width, yerr=err, capsize=3, label=run, color=color_of(run))
    ax.axhline(0, color="black", linewidth=1)
    ax.set_xticks(x, clfs)
    ax.set_ylabel("delta vs baseline (F1 points)")
    ax.set_title(f"{bench}: delta and 95 % paired-bootstrap interval")
    ax.legend(fontsize=8)


def plot_f1_by_axis(df: pd.DataFrame, axis: str, out: str | Path) -> dict[str, list[str]]:
    """Weighted F1 against one design axis (synthetic_size or real_fraction): a panel per benchmark x
    classifier, a line per condition (the other axes' values in its name), mean over seeds with the
    seeds' spread (min to max) shaded. Against size, the baseline at each real fraction is a dashed
    line. One value on the axis: points, and the panel's title says so. Returns each panel's legend."""
    drawn: dict[str, list[str]] = {}
    df = df.assign(_cond=df["condition"].astype(str))
    panels = sorted({(b, c) for b, c in zip(df["benchmark"], df["classifier"], strict=True)}) or [("(no runs)", "")]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.4), squeeze=False)
    by_size = axis == "synthetic_size"
    several = df["real_fraction"].nunique() > 1
    for ax, (bench, clf) in zip(axes[0], panels, strict=True):
        sub = df[(df["benchmark"] == bench) & (df["classifier"] == clf)]
        lines = sub[sub["_cond"] != "baseline"] if by_size else sub
        others = ["generator", "_cond", "real_fraction"] if by_size else ["generator", "_cond", "synthetic_size"]
        for (gen, cond, other), grp in lines.groupby(others, observed=True):
            if by_size:
                label = " ".join(p for p in (gen, cond) if p) + (f" (real {other:g})" if several else "")
            else:
                label = " ".join(p for p in (gen, cond, "" if other in ("", "all") else f"n{other}") if p)
            x = grp["synthetic_dialogues"] if by_size else grp["real_fraction"]
            points = grp.assign(_x=x).groupby("_x")["weighted_f1"]
            mean, low, high = (points.agg(f) * 100 for f in ("mean", "min", "max"))
            (line,) = ax.plot(mean.index, mean.values, marker="o", label=label)
            ax.fill_between(mean.index, low.values, high.values, alpha=0.15, color=line.get_color())
        if by_size:
            for k, (frac, grp) in enumerate(sub[sub["_cond"] == "baseline"].groupby("real_fraction")):
                label = f"baseline (real {frac:g})" if several else "baseline"
                ax.axhline(grp["weighted_f1"].mean() * 100, color=str(0.2 + 0.3 * k), linestyle="--", label=label)
        else:
            ticks = sorted(sub["real_fraction"].unique())
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlabel("synthetic dialogues pre-trained on" if by_size else "share of the real training dialogues")
        ax.set_ylabel("weighted F1 (test, %)")
        values = sub[axis].nunique() if axis in sub else 0
        ax.set_title(f"{bench} {clf}" + (" (one value on this axis)" if values <= 1 else ""), fontsize=9)
        ax.legend(fontsize=6)
        drawn[f"{bench} {clf}"] = ax.get_legend_handles_labels()[1]
    fig.suptitle("Weighted F1, mean over seeds (min-max shaded)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return drawn


def plot_training_curves(histories: list[tuple[str, str, str, list[float]]], out: str | Path) -> None:
    """histories: (benchmark, classifier, condition, dev weighted F1 per fine-tuning epoch)."""
    benches = sorted({h[0] for h in histories}) or ["(no runs)"]
    fig, axes = plt.subplots(1, len(benches), figsize=(5.5 * len(benches), 4), squeeze=False)
    styles = {"compm": "-", "emoberta": "--", "todkat": ":"}
    for ax, bench in zip(axes[0], benches, strict=True):
        for b, clf, cond, scores in sorted(histories):
            if b == bench and scores:
                epochs = range(1, len(scores) + 1)
                ax.plot(epochs, [s * 100 for s in scores], styles.get(clf, "-"), marker="o", color=color_of(cond))
                ax.annotate(f"{clf} {cond}", (len(scores), scores[-1] * 100), fontsize=6)
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel("dev weighted F1 (%)")
        ax.set_title(bench)
    fig.suptitle("Dev weighted F1 per fine-tuning epoch (first seed)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_confusions(items: list[tuple[str, list[str], np.ndarray]], out: str | Path, cols: int = 3) -> None:
    """items: (title, labels, confusion matrix counts); rows are normalised to recall."""
    rows = max(1, -(-len(items) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    # The grid may have spare cells, hence strict=False.
    for ax, (title, labels, cm) in zip(axes.ravel(), items, strict=False):
        cm = np.asarray(cm, dtype=float)
        norm = np.divide(cm, cm.sum(1, keepdims=True), out=np.zeros_like(cm), where=cm.sum(1, keepdims=True) > 0)
        ax.axis("on")
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("gold", fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_data_quality(df: pd.DataFrame, columns: list[str], out: str | Path) -> None:
    """One panel per figure (`columns`), a bar per dataset (the real train split first), per benchmark."""
    shown = [c for c in columns if c in df and df[c].notna().any()]
    benches = sorted(df["benchmark"].unique())
    fig, axes = plt.subplots(len(benches), len(shown), figsize=(2.6 * len(shown), 2.8 * len(benches)), squeeze=False)
    for r, bench in enumerate(benches):
        sub = df[df["benchmark"] == bench]
        order = sorted(sub["dataset"], key=lambda d: (d != "train", d))
        sub = sub.set_index("dataset").loc[order]
        # One color per distribution; datasets of several generators share it, their names tell them apart.
        colors = [color_of("original" if d == "train" else d) or "gray" for d in order]
        for ax, column in zip(axes[r], shown, strict=True):
            ax.bar(range(len(order)), sub[column].fillna(0.0), color=colors)
            ax.set_xticks(range(len(order)), order, rotation=45, fontsize=7)
            ax.set_title(f"{bench}: {column.replace('_', ' ')}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
