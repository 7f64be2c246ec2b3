"""Snakemake adapter: download one hub model into the Hugging Face cache and record it in
resources/models/{model}/fetched.json (a local rule: it runs where Snakemake runs, the one place on
a cluster that is sure to reach the internet)."""

import os

os.environ["ERCSYNTH_NETWORK_JOB"] = "1"  # this job, unlike every other, may use the network
from _job import fail, start  # noqa: E402

from ercsynth.hub import FetchError, fetch  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
try:
    folder = os.path.dirname(sm.output[0])
    fetch(sm.params.repo_id, folder, tuple(sm.params.config_keys), log=log, cache_dir=sm.params.cache_dir)
except FetchError as exc:
    fail(log, f"fetch_model {sm.wildcards.model}", exc)
