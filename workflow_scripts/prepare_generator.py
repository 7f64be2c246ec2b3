"""Snakemake adapter: convert an embedded GGUF model once to a plain checkpoint."""

import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from pathlib import Path

from ercsynth.backends import convert_embedded
from ercsynth.runtime import job_logging

sm = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(sm.log[0])
out = convert_embedded(sm.wildcards.model, Path(sm.output[0]).parent)
log.info("converted %s to %s", sm.wildcards.model, out)
