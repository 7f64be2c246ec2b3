"""The recipe each classifier trains with: `python -m ercsynth.recipe` prints the originals' values
from configs/paper.yaml (per-benchmark overrides included), pre-training lays its blocks over the
fine-tuning recipe, and a recipe the trainer cannot run is refused naming the config key."""

import json
import subprocess
import sys

import pytest
from conftest import REPO

from ercsynth.config import load_config
from ercsynth.recipe import Recipe, RecipeError, resolve


def printed(*configfiles: str, phase: str = "finetune") -> dict[tuple[str, str], dict]:
    args = [a for f in configfiles for a in ("--configfile", str(REPO / f))]
    proc = subprocess.run(
        [sys.executable, "-m", "ercsynth.recipe", *args, "--phase", phase],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    return {(r["classifier"], r["benchmark"]): r for r in lines}


# The originals' values (docs/recipes.md gives each one's file and line).
ORIGINALS = {
    "compm": dict(
        batch_size=1, batch_unit="utterances", shuffle="utterances", lr=1e-5, adam_eps=1e-8,
        decay_bias_and_norm=True, epochs=10, warmup_ratio=0.1, max_grad_norm=10.0, precision="no",
        select_on="weighted_f1", max_length=512,
    ),
    "emoberta": dict(
        batch_size=4, batch_unit="utterances", shuffle="utterances", lr=3.2297523123022245e-06, adam_eps=1e-8,
        decay_bias_and_norm=False, epochs=5, warmup_ratio=0.2, max_grad_norm=1.0, precision="fp16",
        select_on="weighted_f1", max_length=512,
    ),
    "todkat": dict(
        batch_size=2, batch_unit="dialogues", shuffle="dialogues", lr=2e-5, adam_eps=1e-6,
        decay_bias_and_norm=False, epochs=100, warmup_ratio=0.5, max_grad_norm=1.0, precision="no",
        select_on="accuracy", max_length=108,
    ),
}  # fmt: skip
OVERRIDES = {
    ("compm", "IEMOCAP"): {"epochs": 12, "warmup_ratio": pytest.approx(1 / 12)},
    ("emoberta", "IEMOCAP"): {"lr": 4.109718463975063e-06},
    ("todkat", "IEMOCAP"): {"max_length": 100, "select_on": "weighted_f1"},
}


def test_the_paper_config_prints_the_originals_recipes():
    table = printed("configs/paper.yaml")
    assert {b for _, b in table} == {"MELD", "EmoryNLP", "IEMOCAP"} and len(table) == 9
    for (classifier, benchmark), line in table.items():
        expected = ORIGINALS[classifier] | OVERRIDES.get((classifier, benchmark), {})
        got = {k: line[k] for k in expected}
        assert got == expected, (classifier, benchmark)
        assert line["encoder"] == "roberta-large" and line["head_lr"] is None and line["weight_decay"] == 0.01
        assert line["phase"] == "finetune"


def test_pre_training_uses_the_fine_tuning_recipe_with_its_own_epochs():
    table = printed("configs/paper.yaml", phase="pretrain")
    compm = table[("compm", "MELD")]
    assert compm["epochs"] == 3 and compm["warmup_ratio"] == pytest.approx(1 / 3)  # one warm-up epoch of three
    assert compm["lr"] == 1e-5 and compm["batch_size"] == 1
    assert table[("todkat", "IEMOCAP")]["max_length"] == 100  # the benchmark's override holds in both phases


def test_the_default_prints_config_yamls_recipe_for_each_classifier():
    table = printed()
    assert len(table) == 6  # MELD and EmoryNLP x three classifiers
    line = table[("compm", "MELD")]
    assert (line["batch_size"], line["shuffle"], line["lr"], line["head_lr"]) == (4, "dialogues", 1e-4, 1e-3)


def test_a_classifier_override_and_a_benchmark_override_reach_only_their_jobs():
    training = load_config(REPO / "config.yaml")["training"]
    training["recipes"]["compm"] = {"lr": 3e-5, "per_benchmark": {"EmoryNLP": {"batch_size": 8}}}
    assert resolve(training, "compm", "MELD").lr == 3e-5
    assert resolve(training, "compm", "EmoryNLP").batch_size == 8 and resolve(training, "compm", "MELD").batch_size == 4
    assert resolve(training, "emoberta", "EmoryNLP") == resolve(
        load_config(REPO / "config.yaml")["training"], "emoberta", "EmoryNLP"
    )
    # The rule's params and back: the same object.
    r = resolve(training, "compm", "EmoryNLP", "pretrain")
    assert Recipe.from_params(r.params()) == r and r.epochs == 1


def test_impossible_recipes_are_refused_naming_the_key():
    training = load_config(REPO / "config.yaml")["training"]
    training["recipes"]["emoberta"] = {"batch_unit": "dialogues", "shuffle": "utterances"}
    with pytest.raises(RecipeError, match=r"training.recipes.emoberta: .*needs 'shuffle: dialogues'"):
        resolve(training, "emoberta", "MELD")


def test_a_bad_config_file_is_an_error_that_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  recipes:\n    todkat: {select_on: loss}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ercsynth.recipe", "--configfile", str(bad)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 2 and "training.recipes.todkat.select_on" in proc.stderr
