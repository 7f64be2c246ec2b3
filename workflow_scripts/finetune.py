"""Snakemake adapter: fine-tune on the real train split (from pretrained.pt, or the plain encoder
for the baseline), keep the best dev epoch, score on test (resumable)."""

import json
from pathlib import Path

from _job import start

from ercsynth.design import Run, real_subset
from ercsynth.dialogues import cap, read_dialogues
from ercsynth.metrics import majority_floor
from ercsynth.models import load_weights, save_weights
from ercsynth.training import Trainer, assemble_metrics, evaluate, prediction_rows, write_jsonl

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm)
w, p = sm.wildcards, sm.params
train, dev, test = (cap(read_dialogues(sm.input[s]), p.caps[s]) for s in ("train", "dev", "test"))
cell = Run(**p.cell)
train = real_subset(train, cell.fraction, int(w.seed))  # the fraction axis: a seeded subset, nested by seed
log.info("data: train %d (fraction %g), dev %d, test %d dialogues", len(train), cell.fraction, len(dev), len(test))
params = {"model": p.model, "recipe": p.recipe, "caps": p.caps, "cell": p.cell}
run_dir = Path(sm.output.model).parent
trainer = Trainer.for_job(
    "finetune", run_dir, w.benchmark, w.classifier, int(w.seed), params, list(sm.input), sm.input.knowledge
)
# condition: baseline or the distribution; the other axes beside it, and the run's path token.
identity = {"benchmark": w.benchmark, "classifier": w.classifier, "condition": cell.distribution, "seed": int(w.seed)}
identity |= cell.axes() | {"run": cell.token}
pretrain, synthetic = None, 0
if sm.input.init:
    saved = load_weights(trainer.model, sm.input.init[0], {"benchmark": w.benchmark, "classifier": w.classifier})
    pretrain, synthetic = saved["summary"], saved["synthetic_dialogues"]
    log.info("starting from %s (%d pre-training epochs)", sm.input.init[0], pretrain["epochs"])
log.info("recipe: %s", trainer.recipe)
finetune = trainer.fit("finetune", train, trainer.recipe.epochs, dev)
test_metrics, preds = evaluate(trainer.model, test, trainer.vocab, trainer.recipe)
data = {"train": len(train), "dev": len(dev), "test": len(test), "synthetic": synthetic}
floor = majority_floor(train, test, trainer.vocab.labels)
run = identity | {"encoder": trainer.recipe.encoder, "precision": trainer.precision, "majority_floor_f1": floor}
metrics = assemble_metrics(test_metrics, finetune, pretrain, run, data)
write_jsonl(sm.output.predictions, prediction_rows(test, preds, trainer.vocab))
save_weights(trainer.model, sm.output.model, identity | {"labels": list(trainer.vocab.labels), "phase": "finetune"})
Path(sm.output.metrics).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
trainer.discard_state()
log.info("test weighted F1 %.4f (majority-class floor %.4f)", metrics["weighted_f1"], floor)
