"""Snakemake adapter: download one public benchmark file and check its SHA-256."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from ercsynth.download import fetch
from ercsynth.runtime import job_logging

log = job_logging(snakemake.log[0])  # noqa: F821 - injected by Snakemake
fetch(snakemake.params.url, snakemake.output[0], snakemake.params.sha256, log)  # noqa: F821
