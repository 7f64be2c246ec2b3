"""Config validation (schema, friendly messages) and dry runs of the real rule graph."""

import copy

import pytest
import yaml
from conftest import BENCH, REPO, snakemake

from ercsynth.config import ConfigError, check_config, config_errors

SCHEMA = REPO / "rules" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_and_paper_configs_are_valid():
    check_config(DEFAULT, SCHEMA)
    merged = copy.deepcopy(DEFAULT)
    paper = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    for key, value in paper.items():
        if isinstance(value, dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    check_config(merged, SCHEMA)


def test_every_default_key_is_commented():
    for lineno, line in enumerate((REPO / "config.yaml").read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            assert "#" in line, f"config.yaml:{lineno} has no comment: {line}"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"benchmarks": ["MELD", "DailyDialog"]}, "config key 'benchmarks[1]': bad value 'DailyDialog'"),
        ({"seeds": "1"}, "config key 'seeds': bad value '1': '1' is not of type 'array'"),
        ({"generation": {"batch_size": "eight"}}, "config key 'generation.batch_size': bad value 'eight'"),
        ({"training": {"epochs": 0}}, "config key 'training.epochs': bad value 0"),
        ({"clasifiers": ["compm"]}, "config key '(top level)': Additional properties are not allowed ('clasifiers'"),
    ],
)
def test_bad_values_name_key_and_value(patch, message):
    cfg = copy.deepcopy(DEFAULT)
    for key, value in patch.items():
        if isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    errors = config_errors(cfg, SCHEMA)
    assert any(message in e for e in errors), errors


def test_missing_key():
    cfg = copy.deepcopy(DEFAULT)
    del cfg["classifiers"]
    with pytest.raises(ConfigError, match="'classifiers' is a required property"):
        check_config(cfg, SCHEMA)


def test_snakemake_stops_before_any_job_on_a_bad_config(tmp_path):
    proc = snakemake(tmp_path, "-n", check=False, configfile=None)  # valid: proves the next one fails for its value
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = snakemake(tmp_path, "-n", check=False, configfile=None, extra_config=["benchmarks=[MELD,Friends]"])
    assert proc.returncode != 0
    assert "config key 'benchmarks[1]': bad value 'Friends'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_iemocap_missing_is_a_clear_error(tmp_path):
    (tmp_path / "bench" / "MELD").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (tmp_path / "bench" / "MELD" / f"{split}_sent_emo.csv").write_bytes(
            (BENCH / "MELD" / f"{split}_sent_emo.csv").read_bytes()
        )
    proc = snakemake(
        tmp_path,
        "-n",
        check=False,
        configfile=None,
        bench=tmp_path / "bench",
        extra_config=["benchmarks=[MELD,IEMOCAP]"],
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "IEMOCAP is licensed by USC SAIL and is never downloaded" in out
    assert "iemocap_train.txt" in out


def test_iemocap_added_at_start_up_when_present(tmp_path):
    proc = snakemake(tmp_path, "-n", configfile=None, extra_config=["add_iemocap_if_present=True"])
    assert "IEMOCAP files found" in proc.stdout + proc.stderr
    assert "results/generated/IEMOCAP/balanced/dialogues.jsonl" in proc.stdout + proc.stderr


def test_dry_run_default_config(tmp_path):
    proc = snakemake(tmp_path, "-n", configfile=None)
    out = proc.stdout + proc.stderr
    assert "not added (add_iemocap_if_present is false)" in out
    assert "IEMOCAP" not in out.split("Job stats")[0].split("benchmarks for this run")[1].splitlines()[0]
    for rule in (
        "prepare_benchmark",
        "prepare_generator",
        "generate",
        "parse",
        "train_baseline",
        "train_pretrained",
        "predict_synthetic",
        "aggregate",
        "label_quality",
    ):
        assert rule in out


def test_dry_run_paper_config(tmp_path):
    """The paper graph: download rule, Vicuna (no GGUF conversion), 3 benchmarks x 5 seeds."""
    # MELD/EmoryNLP come from the download rule; IEMOCAP is put into resources/benchmarks by hand.
    iemocap = tmp_path / "resources" / "benchmarks" / "IEMOCAP"
    iemocap.mkdir(parents=True)
    for f in (BENCH / "IEMOCAP").iterdir():
        (iemocap / f.name).write_bytes(f.read_bytes())
    proc = snakemake(tmp_path, "-n", configfile=REPO / "configs" / "paper.yaml", bench=None)
    out = proc.stdout + proc.stderr
    assert "download_benchmark" in out
    assert "prepare_generator" not in out
    assert "results/models/IEMOCAP/todkat/balanced/seed5/metrics.json" in out
    assert out.count("rule generate:") == 3 * 2 * 10
