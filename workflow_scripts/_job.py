"""The start every rule script shares: the package importable, one log per job, threads, a GPU.

Snakemake puts this folder on the script's import path; the scripts themselves only adapt
Snakemake's inputs, outputs and params to the `ercsynth` package.
"""

import os
import sys
from pathlib import Path

# The package beside the workflow, importable also in a --use-conda environment.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Jobs never touch the hub: models come from the folders the fetch_model rule filled, and compute
# nodes of most clusters have no internet. Set before anything imports huggingface_hub (it reads
# these once). The two download rules, which run where Snakemake runs, opt out.
if os.environ.get("ERCSYNTH_NETWORK_JOB") != "1":
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"

from ercsynth.runtime import LOCAL_GPUS_VAR, claim_gpu, job_logging, set_threads  # noqa: E402


def fail(log, what: str, exc: Exception) -> None:
    """End a job on an expected error: its reason, not a traceback, in the log and on the console
    where snakemake runs (a job's stderr goes to its log)."""
    log.error("%s", exc)
    print(f"{what}: {exc}", file=sys.__stderr__)
    sys.exit(1)


def start(snakemake, torch_threads: bool = True):
    """Log to the rule's log file; on a local machine with several GPUs, take one of them."""
    log = job_logging(snakemake.log[0] if snakemake.log else None)
    wanted = int(snakemake.resources.get("gpu", 0) or 0)
    available = int(os.environ.get(LOCAL_GPUS_VAR, "0"))
    log.info("job %s started: %d threads, %d GPU requested", snakemake.rule, snakemake.threads, wanted)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        log.info("hub offline (HF_HUB_OFFLINE=1): models are read from local folders only")
    card = claim_gpu(wanted, available)
    if card is not None:
        log.info("local GPU %d of %d", card, available)
    if torch_threads:
        set_threads(snakemake.threads)
    return log
