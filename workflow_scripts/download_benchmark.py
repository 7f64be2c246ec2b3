"""Snakemake adapter: download one public benchmark file and check its SHA-256."""

from ercsynth.download import fetch
from ercsynth.runtime import job_logging

log = job_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
fetch(snakemake.params.url, snakemake.output[0], snakemake.params.sha256, log)  # noqa: F821
