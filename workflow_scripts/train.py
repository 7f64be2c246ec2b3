"""Snakemake adapter: one (benchmark, classifier, condition, seed) training run."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

import json
import shutil

from ercsynth.dialogues import read_dialogues
from ercsynth.labels import Vocabulary
from ercsynth.runtime import job_logging, set_threads
from ercsynth.training import TrainConfig, Trainer, cap, prediction_rows, write_jsonl

sm = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(sm.log[0])
set_threads(sm.threads)
w = sm.wildcards
condition = w.get("condition", "baseline")
training = sm.config["training"]
caps = training.get("max_dialogues", {})
train = cap(read_dialogues(sm.input.train), caps.get("train"))
dev = cap(read_dialogues(sm.input.dev), caps.get("dev"))
test = cap(read_dialogues(sm.input.test), caps.get("test"))
synthetic = cap(read_dialogues(sm.input.synthetic), caps.get("synthetic")) if sm.input.get("synthetic") else None
if synthetic is not None and not synthetic:
    log.warning("the synthetic dataset %s holds no valid dialogue: no pre-training for this run", sm.input.synthetic)
log.info(
    "data: train %d, dev %d, test %d dialogues, synthetic %s",
    len(train),
    len(dev),
    len(test),
    len(synthetic) if synthetic is not None else "-",
)

cfg = TrainConfig.from_config(training, w.classifier, w.benchmark, int(w.seed))
run_dir = sm.output.metrics.rsplit("/", 1)[0]
trainer = Trainer(cfg, run_dir)
summary = trainer.run(train, dev, synthetic)
metrics, preds = trainer.evaluate(test)
vocab = Vocabulary.of(w.benchmark)
metrics |= {
    "benchmark": w.benchmark,
    "classifier": w.classifier,
    "condition": condition,
    "seed": int(w.seed),
    "encoder": training["encoder"],
    "epochs": summary["epochs"],
    "pretrain_epochs": summary["pretrain_epochs"],
    "train_seconds": round(summary["train_seconds"], 2),
    "utterances_per_second": round(summary["utterances_per_second"], 2),
    "best_dev_weighted_f1": summary["best_dev_weighted_f1"],
    "history": summary["history"],
    "data": {
        "train": len(train),
        "dev": len(dev),
        "test": len(test),
        "synthetic": len(synthetic) if synthetic is not None else 0,
    },
}
write_jsonl(sm.output.predictions, prediction_rows(test, preds, vocab))
if sm.output.get("model"):
    shutil.copyfile(trainer.ckpt_dir / "best.pt", sm.output.model)
with open(sm.output.metrics, "w", encoding="utf-8") as fh:
    json.dump(metrics, fh, indent=2)
# The run is complete: its resume state is no longer needed.
shutil.rmtree(trainer.ckpt_dir, ignore_errors=True)
log.info("test weighted F1 %.4f", metrics["weighted_f1"])
