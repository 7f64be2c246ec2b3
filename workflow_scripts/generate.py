"""Snakemake adapter: generate one shard of one benchmark x distribution (resumable)."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

import time

from ercsynth.backends import make_backend
from ercsynth.dialogues import read_dialogues
from ercsynth.generation import plan_shard, run_shard
from ercsynth.prompts import Templates
from ercsynth.runtime import job_logging, set_threads

sm = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(sm.log[0])
set_threads(sm.threads)
gen = sm.config["generation"]
pool = read_dialogues(sm.input.examples) if gen["prompt_style"] == "completion" else None
plan = plan_shard(sm.wildcards.benchmark, sm.wildcards.distribution, int(sm.wildcards.shard), gen, pool)
templates = Templates.load(*sm.input.prompts)
t0 = time.perf_counter()
backend = make_backend(gen, sm.params.model or None)
log.info("backend %s, model %s loaded in %.1f s", backend.name, backend.model, time.perf_counter() - t0)
totals = run_shard(plan, backend, templates, gen, sm.output[0], pool)
log.info(
    "generated %d attempts, %d tokens in %.1f s (%.1f tokens/s)",
    totals["attempts"],
    totals["completion_tokens"],
    totals["seconds"],
    totals["completion_tokens"] / max(totals["seconds"], 1e-9),
)
