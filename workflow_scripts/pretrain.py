"""Snakemake adapter: pre-train one classifier on one synthetic dataset -> pretrained.pt (resumable)."""

from pathlib import Path

from _job import fail, start

from ercsynth.design import REAL_PRETRAINED, DesignError, synthetic_subset
from ercsynth.dialogues import cap, read_dialogues
from ercsynth.models import save_weights
from ercsynth.training import Trainer, real_for_steps, steps_per_epoch

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm)
w, p = sm.wildcards, sm.params
synthetic = cap(read_dialogues(sm.input.synthetic), p.caps["synthetic"])
if not synthetic:
    # accept_synthetic checks the parsed set; what label verification kept can still be nothing.
    fail(log, "pretrain", ValueError(f"{sm.input.synthetic} holds no dialogue to pre-train on"))
try:  # the size axis: a seeded subset, nested in the larger sizes of the same seed
    synthetic = synthetic_subset(synthetic, p.cell["size"], int(w.seed))
except DesignError as exc:
    fail(log, "pretrain", ValueError(f"{sm.input.synthetic}: {exc}"))
params = {"model": p.model, "recipe": p.recipe, "caps": p.caps, "cell": p.cell}
run_dir = Path(sm.output[0]).parent
trainer = Trainer.for_job(
    "pretrain", run_dir, w.benchmark, w.classifier, int(w.seed), params, list(sm.input), sm.input.knowledge
)
data, what = synthetic, "synthetic"
if p.cell["distribution"] == REAL_PRETRAINED:  # the control: real dialogues, the synthetic set's step count
    target = steps_per_epoch(synthetic, trainer.recipe)
    data = real_for_steps(cap(read_dialogues(sm.input.real[0]), p.caps["train"]), target, trainer.recipe, int(w.seed))
    what = f"real (as many steps per epoch as {len(synthetic)} synthetic dialogues: {target})"
    log.info("real_pretrained: %d real dialogues, %d steps per epoch", len(data), steps_per_epoch(data, trainer.recipe))
log.info("pre-training on %d %s dialogues: %s", len(data), what, trainer.recipe)
summary = trainer.fit("pretrain", data, trainer.recipe.epochs)
meta = {"benchmark": w.benchmark, "classifier": w.classifier, "labels": list(trainer.vocab.labels), "phase": "pretrain"}
save_weights(trainer.model, sm.output[0], meta | {"summary": summary, "synthetic_dialogues": len(synthetic)})
trainer.discard_state()
log.info("pre-trained %d epochs in %.1f s", summary["epochs"], summary["train_seconds"])
