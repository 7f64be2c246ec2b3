"""Job plumbing shared by the workflow scripts: one log file per rule, threads, seeds."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


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

    threads = max(1, int(threads))
    torch.set_num_threads(threads)
