"""Snakemake adapter: raw shards -> dialogues.jsonl, parse_report.json and the exports."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

import json

from ercsynth.dialogues import write_dialogues
from ercsynth.parsing import parse_records, read_raw, write_compm_tsv, write_hf_dataset
from ercsynth.runtime import job_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(sm.log[0])
gen = sm.config["generation"]
records = read_raw(sm.input.shards)
dialogues, report = parse_records(
    records,
    sm.wildcards.benchmark,
    sm.wildcards.distribution,
    gen.get("min_utterances", 4),
    gen.get("max_output_chars", 20000),
)
write_dialogues(sm.output.dialogues, dialogues)
with open(sm.output.report, "w", encoding="utf-8") as fh:
    json.dump(report.to_json(), fh, indent=2)
write_compm_tsv(sm.output.compm, dialogues)
example = records[0]["prompt"] if records and "prompt" in records[0] else ""
write_hf_dataset(sm.output.card.rsplit("/", 1)[0], dialogues, report, example, ", ".join(report.models))
log.info(
    "%d attempts -> %d valid dialogues; rejected: %s",
    report.attempted,
    report.valid,
    {k: v for k, v in report.rejected.items() if v},
)
