"""Snakemake adapter: label a synthetic dataset with a baseline model trained on real data."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

import torch

from ercsynth.dialogues import read_dialogues
from ercsynth.labels import Vocabulary
from ercsynth.runtime import job_logging, set_threads
from ercsynth.training import TrainConfig, Trainer, prediction_rows, write_jsonl

sm = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(sm.log[0])
set_threads(sm.threads)
w = sm.wildcards
cfg = TrainConfig.from_config(sm.config["training"], w.classifier, w.benchmark, int(w.seed))
trainer = Trainer(cfg, Path(sm.output[0]).parent)  # predicts only: writes no checkpoint
trainer.model.load_state_dict(torch.load(sm.input.model, map_location="cpu"))
data = read_dialogues(sm.input.dialogues)
preds = trainer.predict(data) if data else []
write_jsonl(sm.output[0], prediction_rows(data, preds, Vocabulary.of(w.benchmark)))
log.info("labelled %d synthetic utterances", len(preds))
