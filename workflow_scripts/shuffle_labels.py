"""Snakemake adapter: the `shuffled` control, a generated dataset with its labels permuted (ercsynth.design)."""

import json
from collections import Counter
from pathlib import Path

from _job import start

from ercsynth.design import shuffled_labels
from ercsynth.dialogues import read_dialogues, write_dialogues

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
source = read_dialogues(sm.input.dialogues)
shuffled = shuffled_labels(source, sm.params.seed)
write_dialogues(sm.output.dialogues, shuffled)
pairs = [
    (a.label, b.label)
    for d, e in zip(source, shuffled, strict=True)
    for a, b in zip(d.utterances, e.utterances, strict=True)
]
report = {
    "source": sm.input.dialogues,
    "seed": sm.params.seed,
    "utterances": len(pairs),
    "changed_share": sum(a != b for a, b in pairs) / len(pairs) if pairs else 0.0,
    "labels": dict(Counter(b for _, b in pairs)),
}
Path(sm.output.report).write_text(json.dumps(report, indent=2), encoding="utf-8")
log.info(
    "shuffled %d utterances of %s: %.1f%% carry another label",
    len(pairs),
    sm.input.dialogues,
    100 * report["changed_share"],
)
