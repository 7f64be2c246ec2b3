"""Job plumbing shared by the workflow: one log file per job, threads, GPUs, code fingerprints."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def job_logging(log_path: str | Path | None) -> logging.Logger:
    """Send logging, warnings, progress bars (stderr) and stdout of this job to its log file."""
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives for the job
        sys.stderr = stream
        sys.stdout = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.captureWarnings(True)
    return logging.getLogger("ercsynth")


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


# --------------------------------------------------------------------------- code fingerprints
def code_fingerprint(*modules: str) -> str:
    """A short hash of package source files (paths relative to the package, e.g. 'models/compm.py').

    Rules pass it in `params:`, so Snakemake reruns exactly the jobs whose code changed.
    """
    h = hashlib.sha256()
    for name in sorted(set(modules)):
        path = PACKAGE_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"code_fingerprint: no module {path}")
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- GPUs
def count_gpus(setting: int | str = "auto") -> int:
    """GPUs this machine offers to local jobs: a number from the config, or detected.

    Detection never imports torch (this runs while Snakemake parses the workflow): it reads
    CUDA_VISIBLE_DEVICES, else asks nvidia-smi.
    """
    if setting != "auto":
        return int(setting)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
        return len(devices)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


LOCAL_GPUS_VAR = "ERCSYNTH_LOCAL_GPUS"


def export_local_gpus(count: int) -> None:
    """Tell local jobs (child processes of Snakemake) how many GPUs they share."""
    os.environ.update({LOCAL_GPUS_VAR: str(count)})


_GPU_LOCK = None  # held for the life of the job process


def claim_gpu(wanted: int, available: int, lock_dir: str | Path = "/tmp") -> int | None:
    """Give a local GPU job one GPU of its own on a machine with several.

    Snakemake's `gpu` resource keeps at most `available` GPU jobs running, but does not say which
    card each one gets. Each job takes the first card whose lock file it can lock and hides the
    others. A scheduler that already chose (SLURM sets CUDA_VISIBLE_DEVICES) is left alone.
    """
    global _GPU_LOCK
    if wanted < 1 or available < 2 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    for index in range(available):
        fh = open(Path(lock_dir) / f"ercsynth-gpu{index}.lock", "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _GPU_LOCK = fh
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
        return index
    return None
