"""Snakemake adapter: one benchmark split -> results/benchmarks/{benchmark}/{split}.jsonl."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from ercsynth.benchmarks import load_split
from ercsynth.dialogues import write_dialogues
from ercsynth.runtime import job_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(sm.log[0])
fmt = "json" if sm.input[0].endswith(".json") else "tsv"
dialogues = load_split(sm.config["benchmarks_dir"], sm.wildcards.benchmark, sm.wildcards.split, fmt)
n = write_dialogues(sm.output[0], dialogues)
log.info(
    "%s %s: %d dialogues, %d utterances from %s",
    sm.wildcards.benchmark,
    sm.wildcards.split,
    n,
    sum(len(d.utterances) for d in dialogues),
    sm.input[0],
)
