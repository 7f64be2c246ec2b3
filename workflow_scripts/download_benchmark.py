"""Snakemake adapter: download one public benchmark file and check its SHA-256."""

from _job import start

from ercsynth.download import fetch

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
fetch(sm.params.url, sm.output[0], sm.params.sha256, log)
