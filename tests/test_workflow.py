"""The real workflow through the real Snakemake: a tiny end-to-end run, killed jobs that
resume, the report, and the OpenAI-compatible backend inside the workflow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import BENCH, REPO, TINY, seed_generator, snakemake
from openai_server import Server

from ercsynth.dialogues import read_dialogues
from ercsynth.labels import LABELS

pytestmark = pytest.mark.slow


def overlay(tmp_path: Path, **sections) -> Path:
    """tiny.yaml with some keys replaced, written as this test's config file."""
    cfg = yaml.safe_load(TINY.read_text())
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = tmp_path / "test-config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def popen_snakemake(workdir: Path, configfile: Path, *targets: str) -> subprocess.Popen:
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
        *targets,
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
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_tiny_workflow_end_to_end(tmp_path, generator_checkpoint):
    seed_generator(tmp_path, generator_checkpoint)
    snakemake(tmp_path)
    r = tmp_path / "results"
    # Generation and parsing
    for dist in ("natural", "balanced"):
        gen = r / "generated" / "MELD" / dist
        report = json.loads((gen / "parse_report.json").read_text())
        for key in ("attempted", "valid", "rejected", "label_counts", "duplicates", "tokens_per_second"):
            assert key in report
        assert report["attempted"] == 4 and report["tokens_per_second"] > 0
        assert report["valid"] + sum(report["rejected"].values()) == 4
        dialogues = read_dialogues(gen / "dialogues.jsonl")
        assert len(dialogues) == report["valid"]
        assert all(u.label in LABELS["MELD"] for d in dialogues for u in d.utterances)
        raw = [
            json.loads(line) for f in sorted((gen / "raw").glob("shard*.jsonl")) for line in f.read_text().splitlines()
        ]
        assert sorted(x["index"] for x in raw) == [0, 1, 2, 3]
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
    # Training
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
            assert not (run / "checkpoint").exists()
            if cond != "baseline":
                assert m["pretrain_epochs"] == (1 if m["data"]["synthetic"] else 0)
    # Statistics
    stats = r / "stats"
    for name in ("results.csv", "summary.md", "friedman.json", "label_quality.csv"):
        assert (stats / name).stat().st_size > 0
    for png in ("f1_by_condition.png", "label_distributions.png", "confusion_matrices.png"):
        assert (stats / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    fr = json.loads((stats / "friedman.json").read_text())
    assert fr["overall"]["n_blocks"] == 3 and fr["overall"]["result"] in ("tested", "all conditions tied")
    assert fr["per_classifier"]["compm"]["result"] == "not enough blocks"
    assert len((stats / "results.csv").read_text().splitlines()) == 1 + 9
    # One log per job
    assert len(list((r / "logs").rglob("*.log"))) >= 20
    # Nothing is redone
    again = snakemake(tmp_path, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # The report
    snakemake(tmp_path, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "Friedman rank-sum test" in html and "Jensen-Shannon" in html


def test_killed_generation_resumes_without_redoing_attempts(tmp_path, generator_checkpoint):
    seed_generator(tmp_path, generator_checkpoint)
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


def test_killed_training_resumes_from_its_last_epoch(tmp_path, tiny_roberta):
    cfg = overlay(
        tmp_path,
        training={
            "encoder": str(tiny_roberta),
            "epochs": 30,
            "max_length": 40,
            "max_dialogues": {"train": 40, "dev": 4, "test": 4, "synthetic": None},
        },
    )
    target = "results/models/MELD/emoberta/baseline/seed1/metrics.json"
    last = tmp_path / "results/models/MELD/emoberta/baseline/seed1/checkpoint/last.pt"
    snakemake(tmp_path, *(f"results/benchmarks/MELD/{s}.jsonl" for s in ("train", "dev", "test")), configfile=cfg)
    proc = popen_snakemake(tmp_path, cfg, target)
    wait_for(last.exists, 600, proc)
    time.sleep(0.5)
    kill(proc)
    assert not (tmp_path / target).exists()
    snakemake(tmp_path, "--unlock", configfile=cfg)
    snakemake(tmp_path, target, "--rerun-incomplete", configfile=cfg)
    log = (tmp_path / "results/logs/train/MELD_emoberta_baseline_seed1.log").read_text()
    assert "resuming after finetune epoch" in log
    m = json.loads((tmp_path / target).read_text())
    assert [h["epoch"] for h in m["history"]] == list(range(1, 31))


def test_openai_backend_in_the_workflow(tmp_path):
    server = Server()
    try:
        cfg = overlay(
            tmp_path,
            distributions=["natural"],
            generation={
                "backend": "openai",
                "prompt_style": "chat",
                "dialogues": 6,
                "shards": 2,
                "openai": {"base_url": server.url, "model": "test-model", "concurrency": 2, "retries": 1},
            },
        )
        snakemake(tmp_path, "results/generated/MELD/natural/dialogues.jsonl", configfile=cfg)
    finally:
        server.close()
    report = json.loads((tmp_path / "results/generated/MELD/natural/parse_report.json").read_text())
    assert report["attempted"] == 6 and report["valid"] == 6 and report["models"] == ["openai:test-model"]
    assert len(server.requests) == 6 and all("messages" in r for r in server.requests)


def test_dead_openai_server_fails_the_job_clearly(tmp_path):
    cfg = overlay(
        tmp_path,
        distributions=["natural"],
        generation={
            "backend": "openai",
            "prompt_style": "chat",
            "dialogues": 2,
            "shards": 1,
            "openai": {"base_url": "http://127.0.0.1:9/v1", "model": "m", "timeout_s": 2, "retries": 0},
        },
    )
    proc = snakemake(tmp_path, "results/generated/MELD/natural/raw/shard0.jsonl", configfile=cfg, check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/generate/MELD_natural_shard0.log").read_text()
    assert "no OpenAI-compatible server answers at http://127.0.0.1:9/v1" in log
