"""Snakemake adapter: download one public benchmark file and check its SHA-256."""

import os

os.environ["ERCSYNTH_NETWORK_JOB"] = "1"  # a local rule: it runs where Snakemake runs
from _job import fail, start  # noqa: E402

from ercsynth.download import DownloadError, fetch  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
try:
    fetch(sm.params.url, sm.output[0], sm.params.sha256, log)
except DownloadError as exc:
    fail(log, "download_benchmark", exc)
