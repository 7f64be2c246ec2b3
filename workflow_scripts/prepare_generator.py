"""Snakemake adapter: convert an embedded GGUF model once to a plain checkpoint."""

from pathlib import Path

from _job import start

from ercsynth.backends.embedded import convert_embedded

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm)
out = convert_embedded(sm.wildcards.model, Path(sm.output[0]).parent)
log.info("converted %s to %s", sm.wildcards.model, out)
