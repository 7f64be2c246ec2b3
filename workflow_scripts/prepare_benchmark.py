"""Snakemake adapter: one benchmark split -> results/benchmarks/{benchmark}/{split}.jsonl."""

from _job import fail, start

from ercsynth.benchmarks import BenchmarkFormatError, load_file
from ercsynth.dialogues import write_dialogues
from ercsynth.labels import Vocabulary

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
r = sm.params.reading  # the benchmark definition's format, columns and labels
vocab = Vocabulary(sm.wildcards.benchmark, tuple(r["labels"]), r["raw_labels"])
try:
    dialogues = load_file(sm.input[0], vocab, r["format"], r["columns"])
except BenchmarkFormatError as exc:
    fail(log, f"prepare_benchmark {sm.wildcards.benchmark} {sm.wildcards.split}", exc)
n = write_dialogues(sm.output[0], dialogues)
log.info(
    "%s %s: %d dialogues, %d utterances from %s",
    sm.wildcards.benchmark,
    sm.wildcards.split,
    n,
    sum(len(d.utterances) for d in dialogues),
    sm.input[0],
)
