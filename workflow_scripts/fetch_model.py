"""Snakemake adapter: download one hub model into resources/models/{model}/ (a local rule: it runs
where Snakemake runs, the one place on a cluster that is sure to reach the internet)."""

import os
import sys

os.environ["ERCSYNTH_NETWORK_JOB"] = "1"  # this job, unlike every other, may use the network
from _job import start  # noqa: E402

from ercsynth.hub import FetchError, fetch  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
try:
    fetch(sm.params.repo_id, os.path.dirname(sm.output[0]), tuple(sm.params.config_keys), log=log)
except FetchError as exc:
    # The reason, not a traceback, in the log and on the console where snakemake runs.
    log.error("%s", exc)
    print(f"fetch_model {sm.wildcards.model}: {exc}", file=sys.__stderr__)
    sys.exit(1)
