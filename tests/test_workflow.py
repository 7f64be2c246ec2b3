"""The real workflow through the real Snakemake: a tiny end-to-end run, killed jobs that
resume, the report, and the OpenAI-compatible backend inside the workflow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import BENCH, REPO, TINY, copy_workflow, snakemake
from openai_server import Server

from ercsynth.config import merge
from ercsynth.dialogues import read_dialogues
from ercsynth.labels import LABELS

pytestmark = pytest.mark.workflow


def overlay(tmp_path: Path, **sections) -> Path:
    """tiny.yaml with some keys replaced (merged as Snakemake merges config files), written as this
    test's config file."""
    cfg = merge(yaml.safe_load(TINY.read_text()), sections)
    path = tmp_path / "test-config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def openai_generation(url: str, dialogues: int, shards: int, **client) -> dict:
    """Generation through an OpenAI-compatible server (the chat prompt style)."""
    options = {"base_url": url, "model": "test-model", "concurrency": 2, "retries": 1} | client
    return {"backend": "openai", "prompt_style": "chat", "dialogues": dialogues, "shards": shards, "openai": options}


def popen_snakemake(workdir: Path, configfile: Path, target: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--cores",
        "2",
        target,
        "--configfile",
        str(configfile),
        "--config",
        f"benchmarks_dir={BENCH}",
    ]
    # Its own process group, so the kill takes the job's Python process down with Snakemake.
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError("the run ended before it could be killed")
        time.sleep(0.01)  # the state is checked, not waited for: a fast poll only narrows the gap
    raise AssertionError("timed out waiting")


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One complete tiny run of the real workflow; the rerun tests dry-run against it.

    ERCSYNTH_TINY_RUN=<folder of a finished tiny run> copies that one instead (for development:
    checking the rerun tests against changed rules without five minutes of training).
    """
    work = tmp_path_factory.mktemp("tiny_run")
    if os.environ.get("ERCSYNTH_TINY_RUN"):
        shutil.copytree(os.environ["ERCSYNTH_TINY_RUN"], work, dirs_exist_ok=True, symlinks=True)
        return work
    # Prompt files in the working folder take precedence over the workflow's: the same input paths
    # for the repository's Snakefile and for the edited copy below.
    shutil.copytree(REPO / "prompts", work / "prompts")
    snakemake(work)
    return work


def test_tiny_workflow_end_to_end(tiny_run):
    r = tiny_run / "results"
    # Generation and parsing
    for dist in ("natural", "balanced"):
        gen = r / "generated" / "MELD" / dist
        report = json.loads((gen / "parse_report.json").read_text())
        for key in ("attempted", "valid", "rejected", "label_counts", "duplicates", "tokens_per_second"):
            assert key in report
        assert report["attempted"] == 4 and report["tokens_per_second"] > 0
        assert report["valid"] + sum(report["rejected"].values()) == 4
        assert report["valid"] >= 2  # the embedded Gemma follows the format (4/4 and 3/4 here)
        # Constrained decoding, the default for both: no attempt and no line is lost to its format.
        assert report["skipped_lines"] == 0 and report["truncated_lines_dropped"] == 0
        format_reasons = ("no_parsable_lines", "label_out_of_vocabulary", "missing_speaker_or_text", "single_speaker")
        assert all(report["rejected"][reason] == 0 for reason in format_reasons), report["rejected"]
        dialogues = read_dialogues(gen / "dialogues.jsonl")
        assert len(dialogues) == report["valid"]
        assert all(u.label in LABELS["MELD"] for d in dialogues for u in d.utterances)
        raw = [
            json.loads(line) for f in sorted((gen / "raw").glob("shard*.jsonl")) for line in f.read_text().splitlines()
        ]
        assert sorted(x["index"] for x in raw) == [0, 1, 2, 3]
        assert all(x["constrained"] for x in raw)
        for rec in raw:
            for key in (
                "prompt",
                "completion",
                "backend",
                "model",
                "decoding",
                "seed",
                "target_emotion",
                "prompt_tokens",
                "completion_tokens",
                "seconds",
            ):
                assert key in rec
        if dist == "balanced":
            target = {x["attempt_id"]: x["target_emotion"] for x in raw}
            assert [target[f"MELD-balanced-{i:06d}"] for i in range(4)] == ["neutral", "joy", "surprise", "anger"]
            for d in dialogues:
                assert target[d.dialogue_id] in {u.label for u in d.utterances}
        assert (gen / "compm.tsv").exists() and (gen / "hf" / "README.md").exists()
    # Training: pre-training and fine-tuning are separate targets
    for clf in ("compm", "emoberta", "todkat"):
        for cond in ("baseline", "natural", "balanced"):
            run = r / "models" / "MELD" / clf / cond / "seed1"
            m = json.loads((run / "metrics.json").read_text())
            for key in (
                "weighted_f1",
                "macro_f1",
                "accuracy",
                "labels",
                "per_class",
                "confusion_matrix",
                "epochs",
                "train_seconds",
                "utterances_per_second",
            ):
                assert key in m
            assert m["labels"] == list(LABELS["MELD"]) and 0 <= m["weighted_f1"] <= 1
            assert sum(c["support"] for c in m["per_class"].values()) == len(
                (run / "test_predictions.jsonl").read_text().splitlines()
            )
            assert (run / "model.pt").exists() and not (run / "checkpoint").exists()
            assert (run / "pretrained.pt").exists() == (cond != "baseline")
            assert (r / "timing" / "finetune" / f"MELD_{clf}_{cond}_seed1.tsv").exists()
            if cond != "baseline":
                assert m["data"]["synthetic"] >= 2 and m["pretrain_epochs"] == 1
                assert [h["phase"] for h in m["history"]][-1] == "finetune"
    # Statistics
    stats = r / "stats"
    for name in ("results.csv", "summary.md", "friedman.json", "label_quality.csv"):
        assert (stats / name).stat().st_size > 0
    for png in ("f1_by_condition.png", "label_distributions.png", "confusion_matrices.png"):
        assert (stats / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    fr = json.loads((stats / "friedman.json").read_text())
    assert fr["overall"]["n_blocks"] == 3 and fr["overall"]["result"] == "tested"
    assert set(fr["overall"]["mean_ranks"]) == {"baseline", "natural", "balanced"}
    f1 = pd.read_csv(stats / "results.csv").pivot_table("weighted_f1", "classifier", "condition")
    assert f1.nunique(axis=1).max() > 1  # pre-training changed something, for some classifier
    assert fr["per_classifier"]["compm"]["result"] == "cannot reach significance"
    assert len((stats / "results.csv").read_text().splitlines()) == 1 + 9
    # The per-cell effects: one row per classifier x distribution, each delta the difference of the
    # seed means, inside its interval; the summary shows it with the interval.
    effects = pd.read_csv(stats / "effects.csv")
    results = pd.read_csv(stats / "results.csv")
    assert len(effects) == 6 and {"delta", "ci_low", "ci_high", "p_value", "p_holm", "min_detectable_delta"} <= set(
        effects
    )
    for _, e in effects.iterrows():
        mean = results.groupby(["classifier", "condition"])["weighted_f1"].mean() * 100
        assert e["delta"] == pytest.approx(mean[e["classifier"], e["condition"]] - mean[e["classifier"], "baseline"])
        assert e["ci_low"] <= e["delta"] <= e["ci_high"] and e["interval_covers"] == "test dialogues"
    summary = (stats / "summary.md").read_text()
    assert f"({effects['delta'][0]:+.2f} [{effects['ci_low'][0]:+.2f}, {effects['ci_high'][0]:+.2f}])" in summary
    assert "Power: with 1-1 seed(s) per cell" in summary
    # python -m ercsynth.stats recomputes the same files from the run's results/ alone.
    again = tiny_run / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "ercsynth.stats", str(r), "--out", str(again)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("results.csv", "effects.csv", "friedman.json", "summary.md"):
        assert (again / name).read_text() == (stats / name).read_text(), name
    quality = pd.read_csv(stats / "label_quality.csv")
    assert len(quality) == 6 and {"kappa", "reference_ok", "reference_note", "majority_floor_f1"} <= set(quality)
    degenerate = quality[~quality["reference_ok"]]
    assert degenerate["reference_note"].str.contains("majority-class floor|of the synthetic utterances").all()
    # One log per job
    assert len(list((r / "logs").rglob("*.log"))) >= 26
    # The report
    snakemake(tiny_run, "--report", str(tiny_run / "report.html"))
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert "Friedman rank-sum test" in html and "Jensen-Shannon" in html
    # docutils writes its warnings into the page as "System Message" boxes (a duplicate target, a bad caption)
    assert "System Message" not in html
    assert "Statistical tests" in html and "Parse reports" in html and "training_curves.png" in html


# --------------------------------------------------------------------------- reruns
def planned(workdir: Path, *args: str, extra_config: list[str] | None = None, snakefile: Path | None = None) -> dict:
    """{rule: job count} that the real Snakemake would run now (a dry run's job table)."""
    proc = snakemake(workdir, "-n", *args, extra_config=extra_config, snakefile=snakefile or REPO / "Snakefile")
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:", 1)[1].split("total", 1)[0]
    jobs = {}
    for line in table.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    jobs.pop("all", None)
    return jobs


UPSTREAM = {"prepare_benchmark", "prepare_generator", "generate", "parse"}
# A change to generation: every synthetic dataset and what follows from it, never a baseline.
REGENERATED = {
    "generate": 2,
    "parse": 2,
    "accept_synthetic": 2,
    "pretrain": 6,
    "finetune": 6,
    "predict_synthetic": 6,
    "aggregate": 1,
    "label_quality": 1,
    "data_quality": 2,
    "data_quality_table": 1,
}


def test_no_change_schedules_nothing(tiny_run):
    assert planned(tiny_run) == {}


def test_changed_epochs_reruns_fine_tuning_and_statistics_only(tiny_run):
    jobs = planned(tiny_run, extra_config=["training={recipe: {epochs: 2}}"])
    assert jobs["finetune"] == 9 and jobs["aggregate"] == 1
    # The baseline models are new, so are their labels of the synthetic data.
    assert jobs["predict_synthetic"] == 6 and jobs["label_quality"] == 1
    assert not (UPSTREAM | {"pretrain"}) & set(jobs), jobs


def test_changed_pretrain_epochs_reruns_pre_training_and_what_follows(tiny_run):
    jobs = planned(tiny_run, extra_config=["training={recipe: {pretrain: {epochs: 2}}}"])
    assert jobs == {"pretrain": 6, "finetune": 6, "aggregate": 1}  # no baseline, no generation


def test_changed_compm_learning_rate_reruns_compms_jobs_only(tiny_run):
    """The recipe reaches each job per classifier: CoMPM's learning rate reruns CoMPM's pre-training,
    fine-tuning (baseline included) and the labels its baseline gives, and no job of another classifier."""
    change = ["training={recipes: {compm: {lr: 3.0e-5}}}"]
    jobs = planned(tiny_run, extra_config=change)
    assert jobs == {"pretrain": 2, "finetune": 3, "predict_synthetic": 2, "aggregate": 1, "label_quality": 1}
    out = snakemake(tiny_run, "-n", extra_config=change).stdout
    assert set(re.findall(r"classifier=(\w+)", out)) == {"compm"}


def test_changed_temperature_reruns_generation_and_everything_downstream(tiny_run):
    jobs = planned(tiny_run, extra_config=["generation={temperature: 0.5}"])
    assert jobs == REGENERATED


def test_changed_natural_topics_rerun_the_natural_dataset_only(tiny_run):
    jobs = planned(tiny_run, extra_config=["generation={natural_topics: [the weather]}"])
    assert jobs == {
        "generate": 1,
        "parse": 1,
        "accept_synthetic": 1,
        "pretrain": 3,
        "finetune": 3,
        "predict_synthetic": 3,
        "aggregate": 1,
        "label_quality": 1,
        "data_quality": 1,
        "data_quality_table": 1,
    }


def test_per_benchmark_generation_settings_rerun_that_benchmark_only(tiny_run):
    assert planned(tiny_run, extra_config=["generation={per_benchmark: {IEMOCAP: {turns: [30, 60]}}}"]) == {}
    jobs = planned(tiny_run, extra_config=["generation={per_benchmark: {MELD: {turns: [4, 4]}}}"])
    assert jobs["generate"] == 2 and jobs["parse"] == 2 and "prepare_benchmark" not in jobs


def test_turning_verification_on_never_regenerates(tiny_run):
    jobs = planned(tiny_run, extra_config=["generation={verify: {enabled: true}}"])
    # The verify jobs, their table, and the pre-training that now reads what they kept.
    assert {"verify": 2, "verification_table": 1}.items() <= jobs.items() and jobs["pretrain"] == 6
    # The verifier scores with transformers: under llamacpp it needs the embedded model converted, once.
    assert jobs.get("prepare_generator") == 1
    assert not (UPSTREAM - {"prepare_generator"}) & set(jobs), jobs


def test_forcerun_finetune_never_repeats_pre_training(tiny_run):
    jobs = planned(tiny_run, "--forcerun", "finetune")
    assert jobs["finetune"] == 9 and "pretrain" not in jobs and not UPSTREAM & set(jobs)
    one = planned(tiny_run, "--forcerun", "results/models/MELD/compm/natural/seed1/metrics.json")
    assert one == {"finetune": 1, "aggregate": 1}


def linked_copy(run: Path, dest: Path) -> Path:
    """A finished run to change without touching it: results hard-linked (Snakemake deletes an output
    before its job writes it anew, so the original's files stay), Snakemake's records copied."""
    shutil.copytree(run, dest, copy_function=os.link, ignore=shutil.ignore_patterns(".snakemake"), dirs_exist_ok=True)
    shutil.copytree(run / ".snakemake", dest / ".snakemake", dirs_exist_ok=True)
    return dest


def test_a_third_synthetic_size_trains_that_size_only(tiny_run, tmp_path):
    """Synthetic sizes are seeded subsets of one generation: a run with sizes all and 2 finished,
    adding a third schedules pre-training and fine-tuning of that size only (and the statistics),
    never generation, parsing or another size's jobs. A new real fraction fine-tunes only."""
    work = linked_copy(tiny_run, tmp_path / "run")
    two = ["classifiers=[emoberta]", "synthetic_sizes=[all,2]"]
    snakemake(work, extra_config=two)
    metrics = json.loads((work / "results/models/MELD/emoberta/balanced/n2/seed1/metrics.json").read_text())
    assert (metrics["synthetic_size"], metrics["data"]["synthetic"], metrics["run"]) == (2, 2, "balanced/n2")
    three = ["classifiers=[emoberta]", "synthetic_sizes=[all,2,1]"]
    assert planned(work, extra_config=three) == {"pretrain": 2, "finetune": 2, "aggregate": 1}
    out = snakemake(work, "-n", extra_config=three).stdout
    assert set(re.findall(r"condition=(\S+),", out)) == {"natural/n1", "balanced/n1"}
    half = [*two, "real_fractions=[1.0,0.5]"]  # the baseline and each pre-trained model, on half the dialogues
    assert planned(work, extra_config=half) == {"finetune": 5, "aggregate": 1}


def test_the_controls_run_beside_the_finished_conditions(tiny_run, tmp_path):
    """controls: [shuffled, real_pretrained] on a finished run adds the controls only: the shuffled
    dataset (the natural set's texts, labels permuted), each control's pre-training and fine-tuning,
    and the statistics, which name both. real_pretrained pre-trains on the real train split for the
    natural set's step count."""
    work = linked_copy(tiny_run, tmp_path / "run")
    control = ["classifiers=[emoberta]", "controls=[shuffled,real_pretrained]"]
    # (label quality reruns for the narrower classifier list, not for the controls: it reads generated sets only)
    expected = {"shuffle_labels": 1, "pretrain": 2, "finetune": 2, "aggregate": 1, "label_quality": 1}
    assert planned(work, extra_config=control) == expected
    snakemake(work, extra_config=control)
    source, shuffled = (
        [
            u
            for line in (work / f"results/generated/MELD/{d}/dialogues.jsonl").read_text().splitlines()
            for u in json.loads(line)["utterances"]
        ]
        for d in ("natural", "shuffled")
    )
    assert [u["text"] for u in shuffled] == [u["text"] for u in source]
    if len({u["label"] for u in source}) > 1:
        assert sum(a["label"] != b["label"] for a, b in zip(source, shuffled, strict=True)) / len(source) >= 0.3
    log = (work / "results/logs/pretrain/MELD_emoberta_real_pretrained_seed1.log").read_text()
    counts = re.search(r"as many steps per epoch as \d+ synthetic dialogues: (\d+)", log)
    assert counts and f"{counts.group(1)} steps per epoch" in log
    results = (work / "results/stats/results.csv").read_text()
    assert ",shuffled," in results and ",real_pretrained," in results
    summary = (work / "results/stats/summary.md").read_text()
    assert "| shuffled" in summary and "real_pretrained" in summary


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow_copy"))


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("models/compm.py", {"pretrain": 2, "finetune": 3, "predict_synthetic": 2, "aggregate": 1, "label_quality": 1}),
        ("stats.py", {"aggregate": 1, "label_quality": 1, "data_quality_table": 1}),
        # plots.py: the statistics draw with it; no training job imports it.
        ("plots.py", {"aggregate": 1, "label_quality": 1, "data_quality_table": 1}),
        # quality.py: the data-quality figures of every dataset (the train splits' too), and the
        # summary, whose test-overlap warnings read them; no training job.
        ("quality.py", {"data_quality": 3, "data_quality_table": 1, "aggregate": 1}),
        (
            "parsing.py",
            {"parse": 2, "accept_synthetic": 2, "pretrain": 6, "finetune": 6, "aggregate": 1}
            | {"predict_synthetic": 6, "label_quality": 1, "data_quality": 2, "data_quality_table": 1},
        ),
        # embedded.py is reached from generation only through a function's local import.
        ("backends/embedded.py", REGENERATED),
    ],
)
def test_changed_module_reruns_the_rules_that_use_it(tiny_run, workflow_copy, module, expected):
    path = workflow_copy / "ercsynth" / module
    original = path.read_text()
    try:
        path.write_text(original + "\n# a change\n")
        assert planned(tiny_run, snakefile=workflow_copy / "Snakefile") == expected
    finally:
        path.write_text(original)


def test_a_run_whose_every_attempt_is_rejected_stops_before_any_training(tmp_path):
    """min_utterances above the turns asked for: every attempt is rejected as too short. The run
    stops at the hard stop, names dataset, counts and reasons, and trains nothing."""
    cfg = overlay(
        tmp_path,
        distributions=["natural"],
        generation={"dialogues": 2, "max_new_tokens": 48, "min_utterances": 40},
    )
    proc = snakemake(tmp_path, configfile=cfg, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "synthetic dataset MELD/natural: 0 of 2 generation attempts are valid dialogues" in out, out[-3000:]
    assert "config key 'generation.min_valid'" in out and "most frequent rejections: too_few_utterances 2" in out
    assert not (tmp_path / "results" / "models").exists()
    # Nothing is lost: the report that explains it stays.
    report = json.loads((tmp_path / "results/generated/MELD/natural/parse_report.json").read_text())
    assert report["valid"] == 0 and report["rejected"]["too_few_utterances"] == 2


def test_killed_generation_resumes_without_redoing_attempts(tmp_path):
    cfg = overlay(tmp_path, generation={"dialogues": 4, "shards": 1, "batch_size": 1, "max_new_tokens": 48})
    target = "results/generated/MELD/natural/raw/shard0.jsonl"
    partial = tmp_path / (target + ".partial")
    # prepare the benchmark first so the kill lands inside generation
    snakemake(tmp_path, "results/benchmarks/MELD/train.jsonl", configfile=cfg)
    proc = popen_snakemake(tmp_path, cfg, target)
    wait_for(lambda: partial.exists() and partial.read_text().count("\n") >= 2, 600, proc)
    kill(proc)
    before = partial.read_text().splitlines()
    assert 2 <= len(before) < 4 and not (tmp_path / target).exists()
    snakemake(tmp_path, "--unlock", configfile=cfg)
    snakemake(tmp_path, target, "--rerun-incomplete", configfile=cfg)
    after = (tmp_path / target).read_text().splitlines()
    assert len(after) == 4
    assert after[: len(before)] == before  # finished attempts were kept, byte for byte
    log = (tmp_path / "results/logs/generate/MELD_natural_shard0.log").read_text()
    assert f"{len(before)} already finished, {4 - len(before)} to generate" in log


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_killed_training_resumes_from_its_last_epoch(tmp_path, tiny_roberta, phase):
    server = Server()  # generation by the OpenAI-compatible test server: seconds, not minutes
    try:
        cfg = overlay(
            tmp_path,
            distributions=["natural"],
            generation=openai_generation(server.url, dialogues=8, shards=1),
            training={
                "encoder": str(tiny_roberta),
                "recipe": {"epochs": 30, "max_length": 40, "pretrain": {"epochs": 30 if phase == "pretrain" else 1}},
                "max_dialogues": {"train": 40, "dev": 4, "test": 4, "synthetic": None},
            },
        )
        run = "results/models/MELD/emoberta/natural/seed1"
        target = f"{run}/pretrained.pt" if phase == "pretrain" else f"{run}/metrics.json"
        last = tmp_path / run / "checkpoint" / phase / "last.pt"
        # Everything before the phase first, so that the kill lands inside it.
        before = f"{run}/pretrained.pt" if phase == "finetune" else "results/generated/MELD/natural/dialogues.jsonl"
        snakemake(
            tmp_path, before, *(f"results/benchmarks/MELD/{s}.jsonl" for s in ("train", "dev", "test")), configfile=cfg
        )
        proc = popen_snakemake(tmp_path, cfg, target)
        # The first checkpoint is written atomically after epoch 1: from then on a kill loses
        # at most the epoch in progress, and there are 29 more to land in.
        wait_for(last.exists, 600, proc)
        kill(proc)
        assert not (tmp_path / target).exists()
        snakemake(tmp_path, "--unlock", configfile=cfg)
        snakemake(tmp_path, target, "--rerun-incomplete", configfile=cfg)
        if phase == "finetune":  # the same job, never interrupted, in a workdir of its own
            snakemake(tmp_path / "whole", target, configfile=cfg)
    finally:
        server.close()
    log = (tmp_path / f"results/logs/{phase}/MELD_emoberta_natural_seed1.log").read_text()
    assert f"resuming {phase} from epoch" in log
    if phase == "finetune":
        m = json.loads((tmp_path / target).read_text())
        assert [h["epoch"] for h in m["history"] if h["phase"] == "finetune"] == list(range(1, 31))
        # Exact resume (model, optimiser, scheduler and RNG states): to the last digit on a CPU.
        whole = json.loads((tmp_path / "whole" / target).read_text())
        timing = ("train_seconds", "utterances_per_second", "seconds")
        strip = lambda h: {k: v for k, v in h.items() if k not in timing}  # noqa: E731
        assert [strip(h) for h in m["history"]] == [strip(h) for h in whole["history"]]
        for key in ("weighted_f1", "macro_f1", "accuracy", "confusion_matrix", "best_dev_weighted_f1"):
            assert m[key] == whole[key], key
    else:
        import torch

        summary = torch.load(tmp_path / target, weights_only=True)["meta"]["summary"]
        assert [h["epoch"] for h in summary["history"]] == list(range(1, 31))
    assert not last.exists()


def test_openai_backend_in_the_workflow(tmp_path):
    server = Server()
    try:
        cfg = overlay(
            tmp_path,
            distributions=["natural"],
            generation=openai_generation(server.url, dialogues=6, shards=2),
        )
        snakemake(tmp_path, "results/generated/MELD/natural/dialogues.jsonl", configfile=cfg)
    finally:
        server.close()
    report = json.loads((tmp_path / "results/generated/MELD/natural/parse_report.json").read_text())
    assert report["attempted"] == 6 and report["valid"] == 6 and report["models"] == ["openai:test-model"]
    assert len(server.requests) == 6 and all("messages" in r for r in server.requests)


def test_dead_openai_server_fails_the_job_clearly(tmp_path):
    import socket

    # A port bound but never listening refuses connections; it stays ours for the whole test.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        cfg = overlay(
            tmp_path,
            distributions=["natural"],
            generation=openai_generation(url, dialogues=2, shards=1, timeout_s=2, retries=0),
        )
        proc = snakemake(tmp_path, "results/generated/MELD/natural/raw/shard0.jsonl", configfile=cfg, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/generate/MELD_natural_shard0.log").read_text()
    assert f"no OpenAI-compatible server answers at {url}" in log


def job_span(log: Path) -> tuple[float, float]:
    """(first, last) timestamp of a job's log."""
    import datetime

    stamps = [
        datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for line in log.read_text().splitlines()
        if line[:4].isdigit() and line[4] == "-"
    ]
    return min(stamps), max(stamps)


@pytest.mark.parametrize("gpus", [1, 2])
def test_comet_knowledge_jobs_feed_todkat_one_gpu_job_per_gpu(tmp_path, tiny_roberta, tiny_bart, gpus):
    """The knowledge rule runs a tiny random BART as COMET; TODKAT reads its files. With one
    (pretend) GPU, GPU jobs never overlap though the cores would allow it; with two, two jobs held
    a card each at once: a job takes card 1 only while card 0's lock is held by another."""
    cfg = overlay(
        tmp_path,
        local_gpus=gpus,
        distributions=[],  # the baseline alone: no synthetic dataset to wait for
        training={
            "encoder": str(tiny_roberta),
            "recipe": {"max_length": 40},
            "todkat": {"knowledge": "comet", "comet_model": str(tiny_bart), "relations": ["xReact", "oReact"]},
        },
    )
    target = "results/models/MELD/todkat/baseline/seed1/metrics.json"
    snakemake(tmp_path, *(f"results/benchmarks/MELD/{s}.jsonl" for s in ("train", "dev", "test")), configfile=cfg)
    snakemake(tmp_path, "--cores", "6", target, configfile=cfg)
    knowledge = {s: tmp_path / f"results/knowledge/MELD/{s}.jsonl" for s in ("train", "dev", "test")}
    for path in knowledge.values():
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert records and all(set(r["knowledge"]) == {"xReact", "oReact"} for r in records)
    assert json.loads((tmp_path / target).read_text())["data"]["test"] == 6
    logs = [tmp_path / f"results/logs/knowledge/MELD_{s}.log" for s in knowledge]
    cards = [int(m) for log in logs for m in re.findall(r"local GPU (\d+) of 2", log.read_text())]
    if gpus == 2:
        assert len(cards) == 3 and 1 in cards, cards  # the lock state, read back from each job's claim
    else:
        assert cards == []  # one card: nothing to choose; the scheduler alone keeps the jobs apart
        spans = sorted(job_span(log) for log in logs)
        # Never overlapping is a guarantee of the scheduler, not a race: it holds however slow the machine.
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)), spans
