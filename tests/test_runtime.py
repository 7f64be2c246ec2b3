"""Job plumbing: GPU counting and per-job GPU claims, code fingerprints, and the GPU benchmark
script's CPU check."""

import os
import subprocess
import sys

import pytest
from conftest import BENCH, REPO, has_iemocap

from ercsynth import runtime


def test_count_gpus_reads_the_config_then_cuda_visible_devices(monkeypatch):
    assert runtime.count_gpus(3) == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,2")
    assert runtime.count_gpus("auto") == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert runtime.count_gpus("auto") == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: no GPU
    assert runtime.count_gpus("auto") == 0


def test_each_local_gpu_job_gets_its_own_card(tmp_path):
    """Two jobs at once on a two-GPU machine take different cards; a third finds none free."""
    code = (
        "import os, sys, time; from ercsynth.runtime import claim_gpu; "
        f"card = claim_gpu(1, 2, {str(tmp_path)!r}); print(card, os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True); "
        "sys.stdin.read()"  # hold the card until the test closes stdin: no timing involved
    )
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"} | {"PYTHONPATH": str(REPO)}
    outs = []
    procs = []
    for _ in range(3):  # one after the other: each has claimed (printed) before the next starts
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
            )
        )
        outs.append(procs[-1].stdout.readline().split()[0])
    for p in procs:
        p.communicate("")
    assert outs == ["0", "1", "None"]
    # A scheduler that chose already (SLURM sets CUDA_VISIBLE_DEVICES) is left alone.
    taken = subprocess.run(
        [sys.executable, "-c", code], input="", capture_output=True, text=True, env=env | {"CUDA_VISIBLE_DEVICES": "5"}
    )
    assert taken.stdout.split() == ["None", "5"]


def test_code_fingerprint_follows_the_source():
    a = runtime.code_fingerprint("stats.py", "labels.py")
    assert a == runtime.code_fingerprint("labels.py", "stats.py") != runtime.code_fingerprint("stats.py")
    with pytest.raises(FileNotFoundError):
        runtime.code_fingerprint("no_such_module.py")


@pytest.mark.slow
def test_bench_gpu_smoke_runs_on_the_cpu():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_gpu.py"), "--smoke", "--benchmarks-dir", str(BENCH)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for name in ("compm", "emoberta", "todkat"):
        line = next(x for x in out.splitlines() if x.startswith(name + " "))
        train, bare, ratio = (float(v) for v in line.split()[1:4])
        assert train > 0 and bare > 0 and ratio == pytest.approx(train / bare, rel=0.02, abs=0.002)
    assert "longest dialogue" in out and "MELD" in out and ("IEMOCAP" in out) == has_iemocap()
    assert '"tokens_s"' in out and '"auto": true' in out


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "scripts").glob("*.py")))
def test_every_script_imports_and_explains_itself(script):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage" in proc.stdout, proc.stderr[-2000:]
