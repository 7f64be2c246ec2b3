"""Snakemake adapter: label a synthetic dataset with a baseline model trained on real data."""

from _job import start

from ercsynth.dialogues import read_dialogues
from ercsynth.labels import vocabulary
from ercsynth.models import ModelSettings, build_model, load_weights
from ercsynth.recipe import Recipe
from ercsynth.training import configure_device, predict, prediction_rows, write_jsonl

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm)
w, p = sm.wildcards, sm.params
vocab = vocabulary(w.benchmark, p.model["labels"])
recipe = Recipe.from_params(p.recipe)  # the baseline's: its encoder, input length and precision
model = build_model(ModelSettings.from_config(p.model, recipe, len(vocab)), sm.input.knowledge)
load_weights(model, sm.input.model, {"benchmark": w.benchmark, "classifier": w.classifier})
model.to(configure_device())
data = read_dialogues(sm.input.dialogues)
preds = predict(model, data, recipe.max_tokens_per_step, recipe.precision) if data else []
write_jsonl(sm.output[0], prediction_rows(data, preds, vocab))
log.info("labelled %d synthetic utterances", len(preds))
