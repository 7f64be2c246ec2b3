"""Snakemake adapter: generate one shard of one synthetic dataset (benchmark x generator x distribution; resumable)."""

import time

from _job import fail, start

from ercsynth.backends import make_backend
from ercsynth.dialogues import read_dialogues
from ercsynth.generation import GenerationSettings, plan_shard, run_shard
from ercsynth.prompts import TemplateError, Templates

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm)
gen = GenerationSettings.from_params(sm.params.settings)
pool = read_dialogues(sm.input.examples) if gen.prompt_style == "completion" else None
plan = plan_shard(sm.wildcards.benchmark, sm.params.distribution, int(sm.wildcards.shard), gen, pool)
try:
    templates = Templates.load(*sm.input.prompts)
except TemplateError as exc:
    fail(log, f"generate {sm.wildcards.benchmark}", exc)
t0 = time.perf_counter()
backend = make_backend(gen, sm.params.model or None, threads=sm.threads)
log.info("backend %s, model %s loaded in %.1f s", backend.name, backend.model, time.perf_counter() - t0)
totals = run_shard(plan, backend, templates, gen, sm.output[0], pool)
log.info(
    "generated %d attempts, %d tokens in %.1f s (%.1f tokens/s)",
    totals["attempts"],
    totals["completion_tokens"],
    totals["seconds"],
    totals["completion_tokens"] / max(totals["seconds"], 1e-9),
)
