"""Job plumbing shared by the workflow: one log file per job, threads, GPUs, code fingerprints."""

from __future__ import annotations

import ast
import fcntl
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
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
PACKAGE = PACKAGE_DIR.name


def _module_file(name: str, package_dir: Path) -> Path | None:
    """The source file of a module of the package (`ercsynth.models.compm`), or None."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = package_dir.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _package_name(path: Path, package_dir: Path) -> str:
    rel = path.relative_to(package_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, package_dir: Path) -> frozenset[str]:
    """Every module name an `import` in this file may load, at any depth (local imports inside
    functions too), with the packages whose `__init__` each import runs."""
    # Each rule's closure walks the shared modules again: parse each file once per version of it.
    return _parsed_imports(path, package_dir, path.stat().st_mtime_ns)


@functools.cache
def _parsed_imports(path: Path, package_dir: Path, _version: int) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _package_name(path, package_dir) if path.is_relative_to(package_dir) else ""
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against this module's package
                anchor = here.split(".") if is_package else here.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            # `from ercsynth.models import compm` imports a submodule; `... import CoMPM` a name.
            names.update(f"{module}.{alias.name}" for alias in node.names)
    out = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(out)


def code_closure(script: str | Path, exclude: Iterable[str] = ()) -> list[Path]:
    """The files a workflow script runs: itself, the helper modules beside it (`_job.py`) and every
    package module reached through imports, transitively. Modules in `exclude` are not followed
    (a CoMPM job is not rerun by an edit to TODKAT). The package is the one beside the script's
    folder (the workflow's own copy), else this one."""
    script = Path(script).resolve()
    package_dir = script.parent.parent / PACKAGE
    package_dir = package_dir if package_dir.is_dir() else PACKAGE_DIR
    skip = set(exclude)
    seen: dict[Path, None] = {}
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        for name in _imports(path, package_dir):
            if name in skip:
                continue
            found = _module_file(name, package_dir)
            if found is None and path.parent == script.parent and "." not in name:
                sibling = script.parent / f"{name}.py"  # a helper beside the script, such as _job.py
                found = sibling if sibling.is_file() else None
            if found is not None and found not in seen:
                todo.append(found)
    return sorted(seen)


def code_fingerprint(script: str | Path, exclude: Iterable[str] = ()) -> str:
    """A short hash of the content of every file a workflow script runs (`code_closure`).

    Rules pass it in `params:`, so Snakemake reruns exactly the jobs whose code changed; the list
    of files comes from the imports themselves, so it cannot drift from the code.
    """
    root = Path(script).resolve().parent.parent
    h = hashlib.sha256()
    for path in code_closure(script, exclude):
        name = path.relative_to(root) if path.is_relative_to(root) else path.relative_to(PACKAGE_DIR.parent)
        h.update(str(name).encode() + b"\0" + path.read_bytes() + b"\0")
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
        # One lock file per user and card: a file another user left in /tmp is not ours to open.
        lock = Path(lock_dir) / f"ercsynth-{os.getuid()}-gpu{index}.lock"
        fh = open(lock, "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _GPU_LOCK = fh
        os.environ["CUDA_VISIBLE_DEVICES"] = str(index)
        return index
    return None
