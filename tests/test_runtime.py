"""Job plumbing: GPU counting and per-job GPU claims, code fingerprints, and the GPU benchmark
script's CPU check."""

import os
import shutil
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


@pytest.fixture
def code_copy(tmp_path):
    """The package and the workflow scripts, copied so that a test can edit a module."""
    for name in ("ercsynth", "workflow_scripts"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def closure(script, exclude=()):
    return {str(p.relative_to(REPO)) for p in runtime.code_closure(REPO / "workflow_scripts" / script, exclude)}


def test_code_closure_follows_the_imports_local_ones_included():
    generate = closure("generate.py")
    # The backends package reaches embedded.py and llamacpp.py only through imports inside make_backend.
    assert {"ercsynth/backends/embedded.py", "ercsynth/backends/llamacpp.py", "ercsynth/constraints.py"} <= generate
    assert {"workflow_scripts/generate.py", "workflow_scripts/_job.py", "ercsynth/runtime.py"} <= generate
    assert "ercsynth/stats.py" not in generate and "ercsynth/plots.py" not in generate
    verify = closure("verify.py")
    assert {
        "ercsynth/constraints.py",
        "ercsynth/backends/embedded.py",
        "ercsynth/backends/llamacpp.py",
        "ercsynth/metrics.py",
    } <= verify
    assert "ercsynth/plots.py" in closure("aggregate.py") and "ercsynth/plots.py" not in closure("finetune.py")
    # A classifier's jobs leave the other classifiers' modules out.
    compm = closure("finetune.py", ["ercsynth.models.emoberta", "ercsynth.models.todkat"])
    assert "ercsynth/models/compm.py" in compm and "ercsynth/models/base.py" in compm
    assert not {"ercsynth/models/emoberta.py", "ercsynth/models/todkat.py"} & compm


def test_relative_imports_resolve_inside_the_package(tmp_path):
    pkg = tmp_path / "ercsynth"
    (pkg / "sub").mkdir(parents=True)
    (tmp_path / "workflow_scripts").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "sub" / "b.py").write_text("from ..d import x\n")
    (pkg / "sub" / "c.py").write_text("")
    (pkg / "d.py").write_text("x = 1\n")
    (tmp_path / "workflow_scripts" / "job.py").write_text("def f():\n    import ercsynth.a\n")
    found = {str(p.relative_to(tmp_path)) for p in runtime.code_closure(tmp_path / "workflow_scripts" / "job.py")}
    assert found == {
        "workflow_scripts/job.py",
        "ercsynth/__init__.py",
        "ercsynth/a.py",
        "ercsynth/sub/__init__.py",
        "ercsynth/sub/b.py",
        "ercsynth/sub/c.py",
        "ercsynth/d.py",
    }


def test_code_fingerprint_changes_with_the_content_of_what_a_script_runs(code_copy):
    scripts = code_copy / "workflow_scripts"

    def prints():
        return {s: runtime.code_fingerprint(scripts / s) for s in ("generate.py", "aggregate.py", "finetune.py")}

    before = prints()
    assert before == prints()  # stable
    embedded = code_copy / "ercsynth" / "backends" / "embedded.py"
    embedded.write_text(embedded.read_text() + "\n# an edit\n")
    after = prints()
    assert after["generate.py"] != before["generate.py"]
    assert after["aggregate.py"] == before["aggregate.py"] and after["finetune.py"] == before["finetune.py"]
    plots = code_copy / "ercsynth" / "plots.py"
    plots.write_text(plots.read_text().replace("def ", "def  ", 1))  # same names, other content
    again = prints()
    assert again["aggregate.py"] != after["aggregate.py"] and again["finetune.py"] == after["finetune.py"]


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
