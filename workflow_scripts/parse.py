"""Snakemake adapter: raw shards -> dialogues.jsonl, parse_report.json and the exports."""

import json
from pathlib import Path

from _job import start

from ercsynth.dialogues import write_dialogues
from ercsynth.parsing import parse_records, read_raw, write_compm_tsv, write_hf_dataset

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
records = read_raw(sm.input.shards)
dialogues, report = parse_records(
    records,
    sm.wildcards.benchmark,
    sm.params.distribution,
    sm.params.min_utterances,
    sm.params.max_output_chars,
    sm.params.labels,
    sm.params.max_repeated_share,
)
write_dialogues(sm.output.dialogues, dialogues)
Path(sm.output.report).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
write_compm_tsv(sm.output.compm, dialogues)
example = records[0]["prompt"] if records and "prompt" in records[0] else ""
card = Path(sm.output.card).parent
write_hf_dataset(card, dialogues, report, example, ", ".join(report.models), sm.params.licence, sm.params.licence_id)
log.info(
    "%d attempts -> %d valid dialogues; rejected: %s",
    report.attempted,
    report.valid,
    {k: v for k, v in report.rejected.items() if v},
)
