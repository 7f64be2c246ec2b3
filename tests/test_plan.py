"""The experiment plan (ercsynth/plan.py): the start-up checks as fast unit tests, the structure and
settings the rules get, and the one place each fact lives. One dry run in test_config.py shows that
Snakemake runs these checks before any job; `python -m ercsynth.plan` is checked against the paper's DAG."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import BENCH, REPO

from ercsynth import design, recipe
from ercsynth.benchmarks import GENERATION_KEYS
from ercsynth.config import load_config, load_schema
from ercsynth.generation import GenerationSettings
from ercsynth.plan import SCHEMA, Plan, PlanError, main

SCHEMA_DICT = load_schema(SCHEMA)


def make_plan(*overlays: dict, bench: Path = BENCH, **kwargs) -> Plan:
    return Plan.from_config(load_config(REPO / "config.yaml", {"benchmarks_dir": str(bench)}, *overlays), **kwargs)


def plan_error(*overlays: dict, bench: Path = BENCH) -> str:
    with pytest.raises(PlanError) as caught:
        make_plan(*overlays, bench=bench)
    return str(caught.value)


# --------------------------------------------------------------------------- the structure
def test_the_default_plan_has_the_default_runs_and_targets():
    plan = make_plan()
    assert plan.benchmarks == ["MELD", "EmoryNLP"]
    assert plan.datasets == [("MELD", "natural"), ("MELD", "balanced"), ("MELD", "planned"), ("EmoryNLP", "balanced")]
    runs = plan.all_runs()
    # MELD: baseline + 3 datasets, EmoryNLP: baseline + 1, each x 3 classifiers x 1 seed.
    assert len(runs) == (4 + 2) * 3 * len(plan.seeds) and len(set(runs)) == len(runs)
    assert "results/models/EmoryNLP/todkat/balanced/seed1/metrics.json" in runs
    assert plan.reference == "baseline"
    assert "results/generated/EmoryNLP/balanced/dialogues.jsonl" in plan.final_targets()


def test_generators_and_sizes_multiply_the_runs_not_the_baselines():
    plan = make_plan({"generators": {"hot": {"temperature": 1.2}, "cold": {"temperature": 0.3}}})
    assert [d for b, d in plan.datasets if b == "EmoryNLP"] == ["hot/balanced", "cold/balanced"]
    assert plan.generation_params("MELD", "hot/natural")["temperature"] == 1.2
    assert plan.generation_params("MELD", "cold/natural")["temperature"] == 0.3
    baselines = [r for r in plan.all_runs() if "/baseline/" in r]
    assert len(baselines) == 2 * 3 * len(plan.seeds)


def test_a_job_gets_exactly_the_generation_keys_it_reads():
    """One list (GenerationSettings.params_for) decides what a generate job is given and what it reads."""

    class Recorder(dict):
        read: set[str] = set()

        def __getitem__(self, key):
            Recorder.read.add(key)
            return super().__getitem__(key)

        def get(self, key, default=None):
            Recorder.read.add(key)
            return super().get(key, default)

    plan = make_plan()
    for dataset in ("natural", "balanced", "planned"):
        given = plan.generation_params("MELD", dataset)
        Recorder.read = set()
        GenerationSettings.from_params(Recorder(given))
        assert Recorder.read >= set(given), f"{dataset}: given, never read: {set(given) - Recorder.read}"
        assert "prompts" not in given and not set(given) & {"min_utterances", "verify", "min_valid"}
    assert plan.generation_params("MELD", "natural")["topics"] == plan.config["generation"]["natural_topics"]
    assert plan.generation_params("MELD", "balanced")["topics"] == plan.config["generation"]["topics"]


def test_per_benchmark_settings_reach_that_benchmark_only():
    plan = make_plan({"generation": {"per_benchmark": {"EmoryNLP": {"turns": [5, 5], "min_utterances": 5}}}})
    assert plan.generation_params("EmoryNLP", "balanced")["turns"] == [5, 5]
    assert plan.parse_params("EmoryNLP", "balanced")["min_utterances"] == 5
    assert plan.generation_params("MELD", "balanced")["turns"] == [4, 8]
    assert plan.parse_params("MELD", "balanced")["min_utterances"] == 4


def test_recipes_and_caps_per_job():
    plan = make_plan({"training": {"recipes": {"compm": {"lr": 0.5}}}})
    assert plan.recipe("MELD", "compm", "finetune")["lr"] == 0.5
    assert plan.recipe("MELD", "emoberta", "finetune")["lr"] != 0.5
    assert plan.caps("train", "dev") == {k: plan.training["max_dialogues"][k] for k in ("train", "dev")}
    assert plan.design_cell("natural/n8/real0.5") == {
        "distribution": "natural",
        "generator": "",
        "size": 8,
        "fraction": 0.5,
    }
    inputs = plan.finetune_inputs("MELD", "todkat", "natural/n8", "2")
    assert inputs["init"] == ["results/models/MELD/todkat/natural/n8/seed2/pretrained.pt"]
    assert plan.finetune_inputs("MELD", "todkat", "baseline", "2")["init"] == []


# --------------------------------------------------------------------------- the start-up checks
@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"benchmarks": ["MELD", "Friends"]}, "config key 'benchmarks': unknown benchmark(s) Friends"),
        (
            {"generation": {"per_benchmark": {"Friends": {"turns": [4, 4]}}}},
            "config key 'generation.per_benchmark': unknown benchmark(s) Friends",
        ),
        (
            {"distributions_by_benchmark": {"Friends": ["natural"]}},
            "config key 'distributions_by_benchmark': unknown benchmark(s) Friends",
        ),
        # The per-benchmark schema is generation's own: the same minimum for max_new_tokens.
        (
            {"generation": {"per_benchmark": {"MELD": {"max_new_tokens": 4}}}},
            "'generation.per_benchmark.MELD.max_new_tokens': bad value 4",
        ),
        ({"seeds": []}, "config key 'seeds'"),
        (
            {"generation": {"prompts": {"chat": "no/such/chat.txt"}}},
            "config key 'generation.prompts.chat': no such file 'no/such/chat.txt'",
        ),
        (
            {"generation": {"llamacpp": {"model": "no/such/model.gguf"}}},
            "config key 'generation.llamacpp.model': 'no/such/model.gguf' is neither an embedded model",
        ),
        (
            {"generation": {"backend": "openai", "verify": {"enabled": True}}},
            "config key 'generation.verify.enabled': label verification scores symbols with a local transformers",
        ),
        (
            {"training": {"encoder": "./no/such/model"}},
            "config key 'training.encoder': './no/such/model' is neither a local folder nor a hub id",
        ),
        ({"generators": {"baseline": {}}}, "config key 'generators.baseline': a generator name is a letter"),
    ],
)
def test_bad_configs_stop_the_plan_naming_the_key(overlay, message):
    assert message in plan_error(overlay)


def test_a_template_with_an_unknown_field_stops_the_plan(tmp_path):
    """Caught at start-up (snakemake -n), not when the first generate job reads the template."""
    template = tmp_path / "completion.txt"
    template.write_text((REPO / "prompts" / "completion.txt").read_text() + "\nThe mood: {mood}\n")
    message = plan_error({"generation": {"prompts": {"completion": str(template)}}})
    assert "config key 'generation.prompts'" in message and "unknown field(s) mood" in message
    assert str(template) in message


def test_a_named_generators_template_names_its_key(tmp_path):
    template = tmp_path / "chat.txt"
    template.write_text("{legend} {oops")
    message = plan_error({"generators": {"mine": {"prompts": {"chat": str(template)}}}})
    assert "config key 'generators.mine.prompts'" in message and "malformed template" in message


def test_missing_benchmark_files_name_them(tmp_path):
    (tmp_path / "MELD").mkdir()
    for split in ("train", "dev", "test"):
        shutil.copy(BENCH / "MELD" / f"{split}_sent_emo.csv", tmp_path / "MELD")
    message = plan_error({"benchmarks": ["MELD", "IEMOCAP"]}, bench=tmp_path)
    assert "config key 'benchmarks' selects IEMOCAP, but these files are missing" in message
    assert "iemocap_train.txt" in message and "IEMOCAP is licensed by USC SAIL and is never downloaded" in message


def test_iemocap_joins_the_run_when_present_and_asked(iemocap):
    plan = make_plan({"add_iemocap_if_present": True})
    assert plan.benchmarks[-1] == "IEMOCAP" and any("adding IEMOCAP" in n for n in plan.notes)
    assert "results/generated/IEMOCAP/balanced/dialogues.jsonl" in plan.final_targets()
    assert "IEMOCAP" not in make_plan({"add_iemocap_if_present": False}).benchmarks


def test_downloading_needs_no_files_there(tmp_path):
    plan = Plan.from_config(load_config(REPO / "config.yaml"))  # benchmarks_dir: resources/benchmarks
    assert plan.downloading("MELD") and plan.downloading("EmoryNLP") and not plan.downloading("IEMOCAP")


# --------------------------------------------------------------------------- one list per fact
def _enum(key: str) -> list[str]:
    return SCHEMA_DICT["properties"][key]["items"]["enum"]


def test_names_come_from_one_module_and_the_schema_agrees():
    from ercsynth.models import MODELS

    assert _enum("classifiers") == list(design.CLASSIFIERS) == list(MODELS)
    assert _enum("distributions") == list(design.DISTRIBUTIONS)
    generation = SCHEMA_DICT["properties"]["generation"]["properties"]
    assert generation["constrained"]["items"]["enum"] == list(design.DISTRIBUTIONS)
    per_benchmark = SCHEMA_DICT["definitions"]["benchmark_generation"]["properties"]
    assert list(per_benchmark) == list(GENERATION_KEYS)
    assert all(v == {"$ref": f"#/properties/generation/properties/{k}"} for k, v in per_benchmark.items())


def test_recipe_keys_are_the_recipe_fields_and_the_schema_agrees():
    keys = SCHEMA_DICT["definitions"]["recipe_keys"]["properties"]
    assert set(recipe.CONFIG_KEYS) <= set(keys) and "per_benchmark" not in recipe.CONFIG_KEYS
    assert keys["batch_unit"]["enum"] == list(recipe.BATCH_UNITS) == keys["shuffle"]["enum"]
    assert keys["select_on"]["enum"] == list(recipe.SELECT_ON)


def test_the_docs_name_every_classifier_and_distribution():
    rows = {
        line.split("|")[1].strip(): line
        for line in (REPO / "docs" / "configuration.md").read_text().splitlines()
        if line.startswith("| `")
    }
    assert all(name in rows["`classifiers`"] for name in design.CLASSIFIERS)
    assert all(name in rows["`distributions`"] for name in design.DISTRIBUTIONS)
    classifiers = (REPO / "docs" / "classifiers.md").read_text()
    assert all(f"`{name}`" in classifiers for name in design.CLASSIFIERS)


# --------------------------------------------------------------------------- python -m ercsynth.plan
@pytest.mark.workflow
def test_the_plan_command_prints_every_job_of_the_paper_dag(paper_workdir):
    lines: list[str] = []
    rc = main(
        ["--configfile", str(REPO / "configs" / "paper.yaml"), "--directory", str(paper_workdir)],
        out=lines.append,
    )
    assert rc == 0
    jobs = [json.loads(line) for line in lines]
    counts = Counter(job["rule"] for job in jobs)
    paper = load_config(REPO / "config.yaml", REPO / "configs" / "paper.yaml")
    kinds = len(paper["distributions"]) + len(paper["controls"])
    runs = 3 * len(paper["seeds"]) * 3 * (1 + kinds * len(paper.get("synthetic_sizes", ["all"])))
    assert counts["finetune"] == runs and counts["generate"] > 0 and counts["pretrain"] > 0
    generate = next(j for j in jobs if j["rule"] == "generate" and j["wildcards"]["dataset"] == "natural")
    assert generate["params"]["settings"]["temperature"] == paper["generation"]["temperature"]
    finetune = next(j for j in jobs if j["rule"] == "finetune")
    assert finetune["params"]["recipe"]["phase"] == "finetune" and set(finetune["wildcards"]) >= {"seed"}


def test_the_plan_command_names_the_bad_key(capsys):
    assert main(["--config", "benchmarks=[MELD,Friends]"]) == 2
    assert "config key 'benchmarks': unknown benchmark(s) Friends" in capsys.readouterr().err


# --------------------------------------------------------------------------- controls
def test_the_shuffled_control_is_a_condition_of_every_generator_made_from_the_first_distribution():
    plan = make_plan({"controls": ["shuffled"], "generators": {"hot": {}, "cold": {}}})
    assert plan.control_datasets == [(b, f"{g}/shuffled") for b in ("MELD", "EmoryNLP") for g in ("hot", "cold")]
    runs = plan.all_runs()
    assert "results/models/MELD/compm/hot/shuffled/seed1/metrics.json" in runs
    assert "results/models/EmoryNLP/compm/cold/shuffled/seed1/metrics.json" in runs
    assert plan.control_source("MELD", "hot/shuffled") == "results/generated/MELD/hot/natural/dialogues.jsonl"
    assert (
        plan.control_source("EmoryNLP", "cold/shuffled") == "results/generated/EmoryNLP/cold/balanced/dialogues.jsonl"
    )
    # Made from the generated set as pre-training reads it, and never itself verified.
    verified = make_plan(
        {"controls": ["shuffled"], "generation": {"backend": "transformers", "verify": {"enabled": True}}}
    )
    assert verified.control_source("MELD", "shuffled") == "results/generated/MELD/natural/verified/dialogues.jsonl"
    assert verified.synthetic_dialogues("MELD", "shuffled") == "results/generated/MELD/shuffled/dialogues.jsonl"
    assert not make_plan().control_datasets


def test_a_control_source_a_benchmark_lacks_names_the_key():
    message = plan_error({"controls": ["shuffled"], "control_source": "natural"})
    assert "config key 'control_source': 'natural' is not a distribution of EmoryNLP" in message
    message = plan_error({"controls": ["real_pretrained"], "real_fractions": [0.5, 1.0]})
    assert "config key 'controls': real_pretrained pre-trains on the whole real train split" in message


def test_the_real_pretrained_control_reads_the_real_split_and_counts_the_synthetic_steps():
    plan = make_plan({"controls": ["real_pretrained"]})
    assert not plan.control_datasets  # nothing to make: it reads the real train split
    assert "results/models/MELD/todkat/real_pretrained/seed1/metrics.json" in plan.all_runs()
    assert plan.pretrain_real("MELD", "real_pretrained/n8") == ["results/benchmarks/MELD/train.jsonl"]
    assert plan.pretrain_real("MELD", "natural") == []
    assert plan.synthetic_dialogues("MELD", "real_pretrained") == "results/generated/MELD/natural/dialogues.jsonl"
    assert plan.pretrain_caps("real_pretrained") == plan.caps("synthetic", "train")
    assert plan.pretrain_caps("natural") == plan.caps("synthetic")
    assert plan.pretrain_knowledge_source("real_pretrained") == "train"
