"""Snakemake adapter: every dataset's verification agreement -> results/stats/verification.csv."""

import json

import pandas as pd
from _job import start

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
p = sm.params
pairs = [tuple(pair) for pair in p.datasets]  # (benchmark, distribution), the rule's input order
rows = []
for (bench, dist), path in zip(pairs, sm.input, strict=True):
    with open(path, encoding="utf-8") as fh:
        a = json.load(fh)
    row = {"benchmark": bench, "distribution": dist, "utterances": a["utterances"], "kappa": a["kappa"]}
    row |= {"accuracy": a["accuracy"], "dialogues": a["dialogues"], "kept_dialogues": a["kept_dialogues"]}
    row |= {f"kappa_{label}": v["kappa"] for label, v in a["per_label"].items()}
    rows.append(row)
pd.DataFrame(rows).to_csv(sm.output[0], index=False)
log.info("verification agreement for %d datasets", len(rows))
