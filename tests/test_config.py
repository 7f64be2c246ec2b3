"""Config validation (schema, friendly messages) and dry runs of the real rule graph."""

import copy
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, job_blocks, snakemake

from ercsynth.config import ConfigError, check_config, coerce, config_errors, load_config, load_schema

SCHEMA = REPO / "rules" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_and_paper_configs_are_valid():
    check_config(DEFAULT, SCHEMA)
    for overlay in ("paper.yaml", "meld_full_baselines.yaml"):
        check_config(load_config(REPO / "config.yaml", REPO / "configs" / overlay), SCHEMA)


def test_every_default_key_is_commented():
    for lineno, line in enumerate((REPO / "config.yaml").read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            assert "#" in line, f"config.yaml:{lineno} has no comment: {line}"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"benchmarks": []}, "config key 'benchmarks': bad value []"),
        ({"seeds": "1"}, "config key 'seeds': bad value '1': '1' is not of type 'array'"),
        ({"generation": {"batch_size": "eight"}}, "config key 'generation.batch_size': bad value 'eight'"),
        ({"training": {"recipe": {"batch_size": 0}}}, "config key 'training.recipe.batch_size': bad value 0"),
        (
            {"training": {"recipes": {"compm": {"per_benchmark": {"MELD": {"batch_unit": "turns"}}}}}},
            "config key 'training.recipes.compm.per_benchmark.MELD.batch_unit': bad value 'turns'",
        ),
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


def leaf_keys(cfg: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, value in cfg.items():
        if isinstance(value, dict):
            out += leaf_keys(value, (*prefix, key))
        out.append((*prefix, key))
    return out


def test_config_yaml_is_the_one_source_of_defaults():
    """The schema fills nothing in and every key of config.yaml is required, so no default can
    hide anywhere but config.yaml (the Python code reads keys strictly)."""
    schema_text = SCHEMA.read_text()
    assert not re.search(r"\bdefault\s*:", schema_text)
    keys = leaf_keys(DEFAULT)
    assert len(keys) > 60
    # Maps keyed by benchmark name (distributions_by_benchmark) hold entries, not keys: each may go.
    maps = {
        key
        for key, node in load_schema(SCHEMA)["properties"].items()
        if "additionalProperties" in node
        and "properties" not in node
        and isinstance(node["additionalProperties"], dict)
    }
    assert "distributions_by_benchmark" in maps
    for path in keys:
        if len(path) == 2 and path[0] in maps:
            continue
        cfg = copy.deepcopy(DEFAULT)
        node = cfg
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
        errors = config_errors(cfg, SCHEMA)
        assert any(f"'{path[-1]}' is a required property" in e for e in errors), (path, errors)


def test_command_line_strings_are_coerced_to_the_schema_types():
    schema = load_schema(SCHEMA)
    # What `snakemake --config` hands over: YAML's base loader keeps list items and nested values as text.
    raw = {
        "seeds": ["1", "2", "3"],
        "add_iemocap_if_present": "False",
        "local_gpus": "0",
        "benchmarks_dir": 2024,
        "generation": {"temperature": "0.5", "batch_size": "auto", "turns": ["3", "6"]},
        "training": {
            "recipe": {"epochs": "3", "lr": "1.0e-5"},
            "recipes": {"compm": {"per_benchmark": {"MELD": {"head_lr": "null"}}}},
            "max_dialogues": {"train": "null", "dev": "12"},
        },
    }
    out = coerce(raw, schema)
    assert out["seeds"] == [1, 2, 3] and out["add_iemocap_if_present"] is False and out["local_gpus"] == 0
    assert out["benchmarks_dir"] == "2024"
    assert out["generation"] == {"temperature": 0.5, "batch_size": "auto", "turns": [3, 6]}
    assert out["training"]["recipe"] == {"epochs": 3, "lr": 1e-5}
    assert out["training"]["recipes"]["compm"]["per_benchmark"]["MELD"] == {"head_lr": None}
    assert out["training"]["max_dialogues"] == {"train": None, "dev": 12}
    # What cannot be read as the type stays wrong, and validation names it.
    cfg = copy.deepcopy(DEFAULT) | {"seeds": ["one"]}
    with pytest.raises(ConfigError, match="config key 'seeds\\[0\\]': bad value 'one'"):
        check_config(cfg, SCHEMA)


def test_missing_key():
    cfg = copy.deepcopy(DEFAULT)
    del cfg["classifiers"]
    with pytest.raises(ConfigError, match="'classifiers' is a required property"):
        check_config(cfg, SCHEMA)


@pytest.mark.workflow
def test_snakemake_stops_before_any_job_on_a_bad_config(tmp_path):
    proc = snakemake(tmp_path, "-n", check=False, configfile=None)  # valid: proves the next one fails for its value
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = snakemake(tmp_path, "-n", check=False, configfile=None, extra_config=["benchmarks=[MELD,Friends]"])
    assert proc.returncode != 0
    assert "config key 'benchmarks': unknown benchmark(s) Friends" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_dry_run_default_config(tmp_path):
    proc = snakemake(tmp_path, "-n", configfile=None)
    out = proc.stdout + proc.stderr
    assert "not added (add_iemocap_if_present is false)" in out
    assert "IEMOCAP" not in out.split("Job stats")[0].split("benchmarks for this run")[1].splitlines()[0]
    assert "rule fetch_model:" not in out  # the embedded models ship in PyPI packages: nothing to fetch
    assert "prepare_generator" not in out  # llama.cpp reads the embedded GGUF itself: no conversion
    for rule in (
        "prepare_benchmark",
        "generate",
        "parse",
        "pretrain",
        "finetune",
        "predict_synthetic",
        "aggregate",
        "label_quality",
    ):
        assert rule in out


@pytest.mark.workflow
def test_dry_run_paper_config(paper_workdir):
    """The paper graph: download rule, Vicuna (no GGUF conversion), 3 benchmarks x 5 seeds."""
    proc = snakemake(paper_workdir, "-n", configfile=REPO / "configs" / "paper.yaml", bench=None)
    out = proc.stdout + proc.stderr
    assert "download_benchmark" in out
    assert "prepare_generator" not in out
    assert "results/models/IEMOCAP/todkat/balanced/seed5/metrics.json" in out
    assert out.count("rule generate:") == 3 * 2 * 10
    # This machine has no GPU: a local run asks for none, whatever the paper's scale.
    assert "gpu=0" in out and "gpu=1" not in out
    # each real split, synthetic set and the shuffled control, once (real_pretrained reads train's)
    assert out.count("rule knowledge:") == 3 * (3 + 2 + 1)
    # 2 distributions and 2 controls pre-trained; those and the baseline fine-tuned
    assert out.count("rule pretrain:") == 3 * 3 * 4 * 5 and out.count("rule finetune:") == 3 * 3 * 5 * 5
    assert "results/models/IEMOCAP/todkat/real_pretrained/seed5/metrics.json" in out
    blocks = job_blocks(out)
    name, inputs = blocks["results/models/IEMOCAP/todkat/balanced/seed5/model.pt"]
    assert name == "finetune"
    assert "results/models/IEMOCAP/todkat/balanced/seed5/pretrained.pt" in inputs  # pre-training feeds it
    assert all(f"results/knowledge/IEMOCAP/{s}.jsonl" in inputs for s in ("train", "dev", "test"))
    name, inputs = blocks["results/models/IEMOCAP/todkat/balanced/seed5/pretrained.pt"]
    assert name == "pretrain" and "results/knowledge/IEMOCAP/balanced.jsonl" in inputs
    _, inputs = blocks["results/models/IEMOCAP/compm/baseline/seed5/model.pt"]
    assert "pretrained.pt" not in inputs and "knowledge" not in inputs
    # Each hub model is fetched once (by the fetch_model local rule), and every job that loads it
    # waits for its folder; nothing is downloaded from inside a GPU job.
    fetches = {o: name for o, (name, _) in blocks.items() if name == "fetch_model"}
    vicuna, roberta, comet = (f"resources/models/{m}/fetched.json" for m in MODELS)
    assert set(fetches) == {vicuna, roberta, comet}
    for output, (name, inputs) in blocks.items():
        needs = {"generate": [vicuna], "knowledge": [comet], "pretrain": [roberta], "finetune": [roberta]}
        needs["predict_synthetic"] = [roberta]
        for marker in needs.get(name, []):
            assert marker in inputs, (output, inputs)
    assert out.count("rule fetch_model:") == 3


MODELS = ("lmsys--vicuna-13b-v1.5", "roberta-large", "mismayil--comet-bart-ai2")


@pytest.mark.workflow
def test_a_local_model_folder_removes_its_fetch(paper_workdir, tiny_roberta, tiny_llama):
    """Models that are already folders are read where they are: no fetch_model job for them."""
    local = [f"training={{encoder: {tiny_roberta}}}", f"generation={{transformers: {{model: {tiny_llama}}}}}"]
    proc = snakemake(paper_workdir, "-n", configfile=REPO / "configs" / "paper.yaml", bench=None, extra_config=local)
    blocks = job_blocks(proc.stdout)
    assert {o for o, (name, _) in blocks.items() if name == "fetch_model"} == {
        "resources/models/mismayil--comet-bart-ai2/fetched.json"
    }
    _, inputs = blocks["results/models/IEMOCAP/todkat/balanced/seed5/model.pt"]
    assert "resources/models/" not in inputs


@pytest.mark.workflow
def test_list_rules_shows_the_stages(tmp_path):
    out = snakemake(tmp_path, "--list-rules", configfile=None).stdout.split()
    assert {"knowledge", "pretrain", "finetune", "generate", "parse", "aggregate"} <= set(out)


@pytest.mark.workflow
def test_workflow_lints_clean_and_is_formatted(tmp_path):
    proc = snakemake(tmp_path, "--lint", configfile=None)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
    fmt = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_per_benchmark_strings_are_coerced_through_the_schemas_chain_of_references():
    """generation.per_benchmark's keys refer to generation's own, which may refer to a shared
    definition: `--config` strings still become the schema's types."""
    cfg = load_config(REPO / "config.yaml", {"generation": {"per_benchmark": {"IEMOCAP": {"turns": ["30", "60"]}}}})
    assert check_config(cfg, SCHEMA)["generation"]["per_benchmark"]["IEMOCAP"]["turns"] == [30, 60]
