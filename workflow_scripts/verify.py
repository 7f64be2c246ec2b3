"""Snakemake adapter: re-label one synthetic dataset with the generator; agreement and kept dialogues."""

import json
import random

from _job import start

from ercsynth.backends import TransformersBackend
from ercsynth.dialogues import read_dialogues, write_dialogues
from ercsynth.labels import vocabulary
from ercsynth.prompts import pick_examples
from ercsynth.verification import agreement, keep, relabel

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm)
w, s = sm.wildcards, sm.params.settings
vocab = vocabulary(w.benchmark, s["labels"])
dialogues = read_dialogues(sm.input.dialogues)
pool = read_dialogues(sm.input.examples)
examples = [pool[i] for i in pick_examples(pool, random.Random(s["seed"]))]
backend = TransformersBackend(sm.params.model)
verified = relabel(backend, dialogues, vocab, examples, s["batch_size"]) if dialogues else []
table = agreement(dialogues, verified, vocab.labels)
kept = keep(dialogues, verified, s["keep"], s["min_utterances"])
write_dialogues(sm.output.dialogues, kept)
with open(sm.output.labels, "w", encoding="utf-8") as fh:
    for d, labels in zip(dialogues, verified, strict=True):
        for u, v in zip(d.utterances, labels, strict=True):
            row = {
                "dialogue_id": d.dialogue_id,
                "speaker": u.speaker,
                "text": u.text,
                "generated": u.label,
                "verified": v,
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
with open(sm.output.agreement, "w", encoding="utf-8") as fh:
    json.dump(table | {"keep": s["keep"], "dialogues": len(dialogues), "kept_dialogues": len(kept)}, fh, indent=2)
log.info(
    "%d utterances: kappa %.3f, %d agree; keep %s: %d of %d dialogues",
    table["utterances"],
    table["kappa"],
    table["agreeing"],
    s["keep"],
    len(kept),
    len(dialogues),
)
