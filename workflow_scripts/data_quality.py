"""Snakemake adapter: one dataset's text and label figures (ercsynth.quality) -> a JSON file."""

import json
from pathlib import Path

from _job import start

from ercsynth.dialogues import read_dialogues
from ercsynth.quality import QualitySettings, dataset_quality

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
w, p = sm.wildcards, sm.params
row = {"benchmark": w.benchmark, "dataset": w.source}
row |= dataset_quality(
    read_dialogues(sm.input.dialogues),
    read_dialogues(sm.input.real),
    p.labels,
    QualitySettings.from_config(p.settings),
    [d for path in sm.input.held_out for d in read_dialogues(path)],
)
Path(sm.output[0]).write_text(json.dumps(row, indent=2), encoding="utf-8")
log.info("%s %s: %s", w.benchmark, w.source, row)
