"""Snakemake adapter: every dataset's figures -> results/stats/data_quality.csv and its plot."""

import json

import pandas as pd
from _job import start

from ercsynth.plots import plot_data_quality
from ercsynth.quality import COLUMNS

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
rows = []
for path in sm.input:
    with open(path, encoding="utf-8") as fh:
        rows.append(json.load(fh))
df = pd.DataFrame(rows)
df.to_csv(sm.output.csv, index=False)
plot_data_quality(df, list(COLUMNS), sm.output.plot)
log.info("data quality of %d datasets", len(df))
