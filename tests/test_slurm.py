"""The workflow through `snakemake --profile slurm` on a real local SLURM cluster
(scripts/start_slurm.sh; .ci/run starts it): a full tiny run, a failing target, and a rerun of
that single target alone."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BENCH, REPO, job_blocks
from hub_server import HubStandIn, Repo

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

CONFIG = REPO / "tests" / "configs" / "tiny_slurm.yaml"
TARGET = "results/models/MELD/emoberta/natural/seed1/pretrained.pt"


# Where scripts/start_slurm.sh keeps its test cluster's configuration (its own folder, not /etc/slurm).
TEST_CLUSTER_CONF = Path(os.environ.get("ERCSYNTH_SLURM_DIR", "/var/lib/ercsynth-slurm")) / "slurm.conf"


@pytest.fixture(scope="module")
def cluster():
    if "SLURM_CONF" not in os.environ and TEST_CLUSTER_CONF.is_file():
        os.environ["SLURM_CONF"] = str(TEST_CLUSTER_CONF)  # sbatch, squeue and sinfo read it
    if shutil.which("sinfo") is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("CI must run the SLURM test: start the cluster with scripts/start_slurm.sh")
        pytest.skip(
            "no SLURM cluster here: start the test cluster with scripts/start_slurm.sh (root; docs/development.md)"
        )


def slurm_snakemake(
    workdir: Path,
    *args: str,
    timeout: int = 900,
    config: tuple[str, ...] = (),
    env: dict | None = None,
    test_resources: bool = True,
) -> subprocess.CompletedProcess:
    """`snakemake --profile slurm`, typed from the repository root, with the test cluster's overrides."""
    cmd = [
        # SIGINT on timeout: Snakemake cancels its SLURM jobs then; SIGTERM does not stop it.
        "timeout",
        "-s",
        "INT",
        "-k",
        "30",
        str(timeout),
        *slurm_command(workdir, *args, config=config, test_resources=test_resources),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)


def slurm_command(workdir: Path, *args: str, config: tuple[str, ...] = (), test_resources: bool = True) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "slurm",
        "-d",
        str(workdir),
        # The test cluster's sizes (no GPU); without them, the real profile's paper-scale resources.
        *(["--workflow-profile", str(REPO / "tests" / "profiles" / "slurm-cpu")] if test_resources else []),
        # The plugin logs each sbatch call at debug level: --verbose shows what sbatch received.
        "--verbose",
        # Without slurmdbd, sacct fails: poll with squeue, and start polling after 1 s.
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        # A finished or failed job is seen within 3 s (the plugin's own pace is about 40 s).
        "--seconds-between-status-checks",
        "3",
        "--latency-wait",
        "5",
        *args,
        "--configfile",
        str(CONFIG),
        "--config",
        f"benchmarks_dir={BENCH}",
        *config,
    ]


def sbatch_calls(out: str) -> list[str]:
    """The sbatch command lines the plugin ran (logged with --verbose), one per submitted job."""
    return [line.split("sbatch call: ", 1)[1] for line in out.splitlines() if "sbatch call: " in line]


def test_workflow_on_slurm_then_fail_and_rerun_one_target(cluster, tmp_path):
    # The plugin deletes the SLURM logs of successful jobs unless asked to keep them.
    # Generation -> parsing -> training -> statistics (the label-quality branch is left to the local test).
    first = slurm_snakemake(tmp_path, "--slurm-keep-successful-logs", "results/stats/summary.md")
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-6000:]
    assert "Job " in out and "has been submitted with SLURM jobid" in out
    for name in ("results.csv", "summary.md", "friedman.json"):
        assert (tmp_path / "results" / "stats" / name).exists()
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs"
    assert {p.name for p in slurm_logs.iterdir()} >= {"rule_generate", "rule_pretrain", "rule_finetune", "rule_parse"}
    calls = sbatch_calls(out)
    assert len(calls) == out.count("has been submitted with SLURM jobid") >= 8
    assert not [c for c in calls if "--gpus" in c]  # the test profile asks for no GPU (see the GPU test below)

    # Break the synthetic dataset the pre-training reads, and rerun that target: its SLURM job fails.
    outputs = sorted((tmp_path / "results" / "models").rglob("*.pt")) + sorted(
        (tmp_path / "results" / "models").rglob("metrics.json")
    )
    stamps = {p: p.stat().st_mtime_ns for p in outputs}
    synthetic = tmp_path / "results/generated/MELD/natural/dialogues.jsonl"
    good = synthetic.read_bytes()
    synthetic.write_bytes(good + b'{"dialogue_id": "broken", "utterances": [{"speaker": "A"}]}\n')
    # A failure that no resubmission mends: the profile's retries are left out here to keep it short.
    failed = slurm_snakemake(tmp_path, TARGET, "--retries", "0")
    out = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Error in rule pretrain" in out and re.search(r"SLURM-job '\d+' failed", out), out[-3000:]
    job_logs = "\n".join(p.read_text() for p in (slurm_logs / "rule_pretrain").rglob("*.log"))
    rule_log = (tmp_path / "results/logs/pretrain/MELD_emoberta_natural_seed1.log").read_text()
    assert "dialogues.jsonl:" in rule_log + job_logs and "not a dialogue record" in rule_log + job_logs

    # Mend it and rerun the single failed target alone; every other result stays untouched.
    synthetic.write_bytes(good)
    rerun = slurm_snakemake(tmp_path, TARGET)
    out = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, out[-6000:]
    assert out.count("has been submitted with SLURM jobid") == 1
    for path, stamp in stamps.items():
        if not str(path).endswith(TARGET):
            assert path.stat().st_mtime_ns == stamp, path
    assert (tmp_path / TARGET).stat().st_mtime_ns > stamps[tmp_path / TARGET]


def test_profiles_request_gpus_only_for_gpu_jobs(cluster, tmp_path):
    """The real profiles, dry-run: GPU jobs ask for a GPU, CPU jobs do not."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "slurm",
        "-d",
        str(tmp_path),
        "-n",
        "--configfile",
        str(CONFIG),
        "--config",
        f"benchmarks_dir={BENCH}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    blocks = out.split("rule ")
    for block in blocks:
        name = block.split(":", 1)[0].strip()
        if name in ("generate", "pretrain", "finetune", "predict_synthetic", "knowledge"):
            assert "gpu=1" in block, block
        elif name in ("parse", "aggregate", "label_quality", "prepare_benchmark"):
            assert "gpu=" not in block, block


def test_downloads_run_where_snakemake_runs_not_on_compute_nodes(cluster, tmp_path, tiny_roberta):
    """fetch_model and download_benchmark are local rules: with --profile slurm they run in the
    Snakemake process's machine (the login node), never through sbatch."""
    hub = HubStandIn({"ercsynth-test/tiny-roberta": Repo(tiny_roberta)})
    url = hub.start()
    marker = "resources/models/ercsynth-test--tiny-roberta/fetched.json"
    try:
        proc = slurm_snakemake(
            tmp_path,
            marker,
            config=("training={encoder: ercsynth-test/tiny-roberta}",),
            env={"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")},
        )
    finally:
        hub.stop()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "localrule fetch_model:" in out and "submitted with SLURM jobid" not in out
    assert (tmp_path / marker).exists() and hub.requests
    # The benchmark download too (it fails or succeeds here depending on the network: either way,
    # it ran in this process, not in a SLURM job).
    proc = slurm_snakemake(tmp_path, "resources/benchmarks/MELD/dev_sent_emo.csv", timeout=300)
    out = proc.stdout + proc.stderr
    assert "localrule download_benchmark:" in out and "submitted with SLURM jobid" not in out


def test_paper_profile_dry_run_fetches_models_before_the_gpu_jobs(cluster, paper_workdir):
    """`snakemake --profile slurm --dry-run` as typed, on the paper config: three fetch_model jobs
    (no GPU asked), and each GPU job waits for the folder of the model it loads."""
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "-d", str(paper_workdir), "--dry-run"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    blocks = job_blocks(out)
    fetches = [o for o, (name, _) in blocks.items() if name == "fetch_model"]
    assert len(fetches) == 3
    for block in out.split("rule fetch_model:")[1:]:
        assert "gpu=" not in block.split("\n[")[0], block  # up to the next job's time stamp
    gpu_jobs = [(o, i) for o, (name, i) in blocks.items() if name in ("generate", "knowledge", "pretrain", "finetune")]
    assert len(gpu_jobs) > 200 and all(any(f in inputs for f in fetches) for _, inputs in gpu_jobs)


def test_gpu_jobs_reach_sbatch_with_gpus_and_cpu_jobs_without(cluster, tmp_path):
    """The real profile's resources, as sbatch receives them: the generation job asks for `--gpus=1`
    (the test cluster has no GPU, so sbatch refuses it, which the run reports), the benchmark job
    before it for none."""
    target = "results/generated/MELD/natural/raw/shard0.jsonl"
    proc = slurm_snakemake(tmp_path, target, test_resources=False, timeout=600)
    out = proc.stdout + proc.stderr
    calls = {re.search(r"--comment rule_(\w+?)_wildcards", c).group(1): c for c in sbatch_calls(out)}
    assert set(calls) == {"prepare_benchmark", "generate"}, out[-4000:]
    assert "--gpus" not in calls["prepare_benchmark"]
    # The profile's partitions: CPU jobs in the CPU partition, GPU jobs in the GPU partition.
    assert " -p cpu " in calls["prepare_benchmark"] + " " and " -p gpu " in calls["generate"] + " "
    assert re.search(r" --gpus=1 ", calls["generate"]) and "--cpus-per-task=8" in calls["generate"]
    assert proc.returncode != 0 and "Invalid generic resource (gres) specification" in out


# --------------------------------------------------------------------------- jobs that die come back
TARGET_FT = "results/models/MELD/emoberta/baseline/seed1/metrics.json"
TIMING = ("train_seconds", "utterances_per_second", "seconds")


def resume_config(epochs: int, train: int) -> tuple[str, ...]:
    """A baseline fine-tuning long enough to be interrupted between its epochs (a few seconds each here)."""
    return (
        f"training={{recipe: {{epochs: {epochs}}}, max_dialogues: {{train: {train}, dev: 4, test: 6, synthetic: null}}}}",
    )


def local_command(workdir: Path, *args: str, config: tuple[str, ...]) -> list[str]:
    """The same target run here, without SLURM."""
    cmd = [sys.executable, "-m", "snakemake", "-d", str(workdir), "--cores", "2", TARGET_FT, *args]
    return cmd + ["--configfile", str(CONFIG), "--config", f"benchmarks_dir={BENCH}", *config]


def start_run(workdir: Path, cmd: list[str]) -> tuple[subprocess.Popen, Path]:
    """`cmd` in the background, from the repository root; its console goes to a file in `workdir`."""
    console = workdir / "console.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with console.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, text=True, env=env)
    return proc, console


def finetune_log(workdir: Path) -> str:
    return (workdir / "results/logs/finetune/MELD_emoberta_baseline_seed1.log").read_text()


def test_a_cancelled_and_a_timed_out_job_come_back_through_the_profile_and_resume(cluster, tmp_path):
    """No flag beyond the profile: its retries resubmit a fine-tuning job scancelled after an epoch
    (an administrator, a preemption, a lost node), and one killed at its time limit, which comes back
    with the larger limit of its next attempt; each resumes from its last complete epoch and each run
    ends with exit 0. The cancelled job's metrics equal an uninterrupted run's to the last digit."""
    # What the fine-tuning job needs (the prepared splits, the hard stop on the synthetic data),
    # made once here and copied into each run's folder, so that SLURM runs the fine-tuning jobs alone.
    one_thread = ("--set-threads", "finetune=1")
    # `long` trains for 1-3 minutes here (epochs of 4-10 s), long after its time limit is cut below.
    small, long = resume_config(2, 12), resume_config(16, 6)
    prepared = tmp_path / "prepared"
    proc = subprocess.run(
        local_command(prepared, "--omit-from", "finetune", config=small),
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name in ("cancelled", "timed_out", "whole"):
        shutil.copytree(prepared, tmp_path / name, symlinks=True)
    # Two runs side by side on the 2-CPU test cluster, one thread each, and the same job here,
    # never interrupted, as the reference.
    slurm_run = ("timeout", "-s", "INT", "-k", "30", "900")
    cancelled, cancelled_out = start_run(
        tmp_path / "cancelled",
        [*slurm_run, *slurm_command(tmp_path / "cancelled", TARGET_FT, *one_thread, config=small)],
    )
    # The profile's runtimes grow with the attempt (slurm/config.yaml); here 10 minutes, then 20.
    limit = ("--set-resources", "finetune:runtime=10 * attempt")
    timed, timed_out = start_run(
        tmp_path / "timed_out",
        [*slurm_run, *slurm_command(tmp_path / "timed_out", TARGET_FT, *one_thread, *limit, config=long)],
    )
    whole, whole_out = start_run(tmp_path / "whole", local_command(tmp_path / "whole", *one_thread, config=small))
    checkpoint = tmp_path / "cancelled" / TARGET_FT.replace("metrics.json", "checkpoint/finetune/last.pt")
    deadline = time.time() + 400
    while not checkpoint.exists():
        assert cancelled.poll() is None and time.time() < deadline, cancelled_out.read_text()[-4000:]
        time.sleep(0.1)
    # The run's one fine-tuning job so far (the plugin prints each job id it submits).
    sbatched = [c for c in sbatch_calls(cancelled_out.read_text()) if "rule_finetune" in c]
    assert len(sbatched) == 1, sbatched
    job_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", cancelled_out.read_text())
    subprocess.run(["scancel", job_ids[-1]], check=True)
    # The timed-out job: once it has a complete epoch, its time limit is cut to one minute, as an
    # administrator may, and SLURM ends it at that limit (TIMEOUT) whenever its start-up took.
    # A fixed one-minute limit ended its first attempt in start-up, before any epoch, on a loaded machine.
    timed_checkpoint = tmp_path / "timed_out" / TARGET_FT.replace("metrics.json", "checkpoint/finetune/last.pt")
    while not timed_checkpoint.exists():
        assert timed.poll() is None and time.time() < deadline, timed_out.read_text()[-4000:]
        time.sleep(0.1)
    timed_id = re.findall(r"has been submitted with SLURM jobid (\d+)", timed_out.read_text())[-1]
    subprocess.run(["scontrol", "update", f"JobId={timed_id}", "TimeLimit=1"], check=True)
    assert cancelled.wait(timeout=600) == 0, cancelled_out.read_text()[-6000:]
    assert timed.wait(timeout=900) == 0, timed_out.read_text()[-6000:]

    out = cancelled_out.read_text()
    assert len([c for c in sbatch_calls(out) if "rule_finetune" in c]) == 2
    assert "SLURM status is: 'CANCELLED'" in out
    assert re.search(
        r"resuming finetune from epoch 1 \(its last complete epoch\)", finetune_log(tmp_path / "cancelled")
    )
    out = timed_out.read_text()
    limits = [re.search(r" -t (\d+)", c).group(1) for c in sbatch_calls(out) if "rule_finetune" in c]
    assert limits == ["10", "20"] and "SLURM status is: 'TIMEOUT'" in out
    assert re.search(
        r"resuming finetune from epoch \d+ \(its last complete epoch\)", finetune_log(tmp_path / "timed_out")
    )

    assert whole.wait(timeout=600) == 0, whole_out.read_text()[-4000:]

    def strip(m: dict) -> dict:
        m = {k: v for k, v in m.items() if k not in TIMING}
        return m | {"history": [{k: v for k, v in h.items() if k not in TIMING} for h in m["history"]]}

    resumed, uninterrupted = (json.loads((tmp_path / run / TARGET_FT).read_text()) for run in ("cancelled", "whole"))
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert strip(resumed) == strip(uninterrupted)


def test_the_profiles_runtimes_grow_with_each_attempt():
    import yaml

    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    assert profile["retries"] >= 1
    for rule, resources in profile["set-resources"].items():
        runtime = resources.get("runtime", profile["default-resources"]["runtime"])
        first, second = (eval(str(runtime), {}, {"attempt": a}) for a in (1, 2))  # as Snakemake evaluates it
        assert second > first > 0, rule
