"""Snakemake adapter: metrics and test predictions of every run -> results.csv, effects.csv,
summary.md, friedman.json (ercsynth.stats.analyse, as `python -m ercsynth.stats` runs it), plots."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from _job import start

from ercsynth.effects import BootstrapSettings
from ercsynth.plots import plot_confusions, plot_f1, plot_f1_by_axis, plot_training_curves
from ercsynth.stats import analyse, overlap_warnings, write_analysis

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
# A synthetic set that copies the real test lines is flagged first in summary.md.
notes = overlap_warnings(pd.read_csv(sm.input.quality).to_dict("records"))
analysis = analyse(sm.input.metrics, BootstrapSettings.from_config(sm.params.statistics), notes)
write_analysis(analysis, Path(sm.output.csv).parent)  # the rule's outputs: results.csv, effects.csv, ...
df = analysis.results
plot_f1(df, sm.output.f1_plot, analysis.effects)
plot_f1_by_axis(df, "synthetic_size", sm.output.size_plot)
plot_f1_by_axis(df, "real_fraction", sm.output.fraction_plot)

# One confusion matrix per benchmark x classifier x condition, summed over seeds; the first seed's
# dev curve per run.
items, curves, first_seed = {}, [], min(int(s) for s in df["seed"]) if len(df) else None
for path in sm.input.metrics:
    with open(path, encoding="utf-8") as fh:
        m = json.load(fh)
    key = f"{m['benchmark']} {m['classifier']} {m['run']}"
    cm = np.asarray(m["confusion_matrix"])
    items[key] = (key, m["labels"], items[key][2] + cm if key in items else cm)
    if int(m["seed"]) == first_seed:
        dev = [h["dev_weighted_f1"] for h in m["history"] if h["phase"] == "finetune" and "dev_weighted_f1" in h]
        curves.append((m["benchmark"], m["classifier"], m["run"], dev))
plot_confusions([items[k] for k in sorted(items)], sm.output.confusion_plot)
plot_training_curves(curves, sm.output.curves_plot)
log.info("aggregated %d runs, %d effects", len(df), len(analysis.effects))
