"""Snakemake adapter: synthetic label quality and the label-distribution plot."""

import json

import pandas as pd
from _job import start
from scipy.spatial.distance import jensenshannon

from ercsynth.dialogues import read_dialogues
from ercsynth.labels import label_distribution, vocabulary
from ercsynth.plots import plot_label_distributions
from ercsynth.stats import label_quality_row, reference_check

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
p = sm.params


def labels_of(path):
    return [u.label for d in read_dialogues(path) for u in d.utterances]


# The rule lists its inputs in the order of params.benchmarks, and of params.datasets (x classifiers).
real = dict(zip(p.benchmarks, sm.input.real, strict=True))
pairs = [tuple(pair) for pair in p.datasets]  # (benchmark, distribution)
synthetic = dict(zip(pairs, sm.input.synthetic, strict=True))
triples = [(b, d, c) for b, d in pairs for c in p.classifiers]
predictions = dict(zip(triples, sm.input.predictions, strict=True))


def jsonl(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# Each reference classifier's own test predictions, read once for all distributions.
baselines = [(b, c) for b in p.benchmarks for c in p.classifiers]
references = {key: jsonl(path) for key, path in zip(baselines, sm.input.reference, strict=True)}

rows, dists = [], {}
for bench in p.benchmarks:
    vocab = vocabulary(bench, p.labels[bench])
    real_labels = labels_of(real[bench])
    dists[bench] = {"original": label_distribution(real_labels, vocab.labels)}
    for dist in [d for b, d in pairs if b == bench]:
        synthetic_labels = labels_of(synthetic[(bench, dist)])
        dists[bench][dist] = label_distribution(synthetic_labels, vocab.labels)
        for clf in p.classifiers:
            preds = jsonl(predictions[(bench, dist, clf)])
            row = label_quality_row(bench, dist, clf, preds, synthetic_labels, real_labels, p.labels[bench])
            rows.append(row | reference_check(references[(bench, clf)], preds, vocab.labels))
            if not rows[-1]["reference_ok"]:
                log.warning("%s %s %s: the reference cannot judge: %s", bench, dist, clf, rows[-1]["reference_note"])
pd.DataFrame(rows).to_csv(sm.output.csv, index=False)
# Each dataset's label distribution next to the real training split's, with their distance.
shares = [
    {"benchmark": b, "dataset": src, "label": label, "share": round(float(share), 4)}
    | {
        "js_distance_to_real": round(float(jensenshannon(dist, dists[b]["original"], base=2)), 4)
        if dist.sum()
        else None
    }
    for b in dists
    for src, dist in dists[b].items()
    for label, share in zip(p.labels[b], dist, strict=True)
]
pd.DataFrame(shares).to_csv(sm.output.distributions, index=False)
plot_label_distributions(dists, sm.output.plot, p.labels)
log.info("label quality for %d generated datasets", len(rows))
