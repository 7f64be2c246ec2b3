"""Snakemake adapter: download one hub model into resources/models/{model}/ (a local rule: it runs
where Snakemake runs, the one place on a cluster that is sure to reach the internet)."""

import os

os.environ["ERCSYNTH_NETWORK_JOB"] = "1"  # this job, unlike every other, may use the network
from _job import fail, start  # noqa: E402

from ercsynth.hub import FetchError, fetch  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
try:
    fetch(sm.params.repo_id, os.path.dirname(sm.output[0]), tuple(sm.params.config_keys), log=log)
except FetchError as exc:
    fail(log, f"fetch_model {sm.wildcards.model}", exc)
