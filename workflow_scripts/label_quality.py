"""Snakemake adapter: synthetic label quality and the label-distribution plot."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

import json

import pandas as pd

from ercsynth.dialogues import read_dialogues
from ercsynth.labels import Vocabulary
from ercsynth.plots import plot_label_distributions
from ercsynth.runtime import job_logging
from ercsynth.stats import label_distribution, label_quality_row

sm = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(sm.log[0])


def labels_of(path):
    return [u.label for d in read_dialogues(path) for u in d.utterances]


rows, dists = [], {}
for bench in sm.params.benchmarks:
    vocab = Vocabulary.of(bench)
    real = labels_of(f"results/benchmarks/{bench}/train.jsonl")
    dists[bench] = {"original": label_distribution(real, vocab)}
    for dist in sm.params.distributions:
        synthetic = labels_of(f"results/generated/{bench}/{dist}/dialogues.jsonl")
        dists[bench][dist] = label_distribution(synthetic, vocab)
        for clf in sm.params.classifiers:
            path = f"results/stats/synthetic_predictions/{bench}/{dist}/{clf}_seed{sm.params.seed}.jsonl"
            with open(path, encoding="utf-8") as fh:
                preds = [json.loads(line) for line in fh if line.strip()]
            rows.append(label_quality_row(bench, dist, clf, preds, synthetic, real))
pd.DataFrame(rows).to_csv(sm.output.csv, index=False)
plot_label_distributions(dists, sm.output.plot)
log.info("label quality for %d generated datasets", len(rows))
