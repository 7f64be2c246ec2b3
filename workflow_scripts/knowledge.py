"""Snakemake adapter: COMET knowledge for every utterance of one real split or synthetic dataset."""

import time

from _job import start

from ercsynth.dialogues import cap, read_dialogues
from ercsynth.models.knowledge import CometGenerator, write_knowledge

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm)
p = sm.params
dialogues = cap(read_dialogues(sm.input.dialogues), p.caps.get(sm.wildcards.source))
texts = [u.text for d in dialogues for u in d.utterances]
t0 = time.perf_counter()
comet = CometGenerator(p.model)
log.info("COMET %s loaded on %s in %.1f s", p.model, comet.device, time.perf_counter() - t0)
t0 = time.perf_counter()
table = comet.generate(texts, list(p.relations), p.batch_size)
seconds = time.perf_counter() - t0
write_knowledge(sm.output[0], table)
log.info(
    "%d distinct utterances x %d relations in %.1f s (%.1f queries/s)",
    len(table),
    len(p.relations),
    seconds,
    len(table) * len(p.relations) / max(seconds, 1e-9),
)
