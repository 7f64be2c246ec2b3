"""Benchmarks as data: a researcher's own corpus plugs in through the config alone.

The corpus here is real MELD dialogue text relabelled into a DailyDialog-style 7-label set with
its own order and its own spellings, written by the test into a temporary folder (the benchmark
data never enters the repository).
"""

from __future__ import annotations

import json

import jsonschema
import pandas as pd
import pytest
import yaml
from conftest import BENCH, REPO, seed_generator, snakemake

from ercsynth.benchmarks import (
    BenchmarkFormatError,
    DefinitionError,
    all_definitions,
    builtin_definitions,
    load_file,
    load_split,
)
from ercsynth.config import load_config
from ercsynth.dialogues import read_dialogues
from ercsynth.labels import BUILTIN_FILE
from ercsynth.plan import Plan, PlanError

OWN_LABELS = ["neutral", "happiness", "surprise", "sadness", "anger", "fear", "disgust"]
# MELD's labels -> the corpus's spellings in its files (raw_labels maps them back).
SPELLING = {
    "neutral": "neu",
    "joy": "hap",
    "surprise": "sur",
    "sadness": "sad",
    "anger": "ang",
    "fear": "fea",
    "disgust": "dis",
}
RAW = {"neu": "neutral", "hap": "happiness", "sur": "surprise", "sad": "sadness", "ang": "anger", "fea": "fear"}
RAW |= {"dis": "disgust"}
OWN_NAMES = ["Ann", "Bo", "Cy", "Di"]
SIZES = {"train": 8, "dev": 4, "test": 6}  # dialogues per split


def write_corpus(root, fmt="tsv"):
    """MyCorpus/{split}.{ext} from consecutive MELD dev dialogues; returns the expected (dialogues, utterances)."""
    source = load_split(BENCH, "MELD", "dev")
    folder = root / "MyCorpus"
    folder.mkdir(parents=True, exist_ok=True)
    expected, start = {}, 0
    for split, n in SIZES.items():
        chunk = source[start : start + n]
        start += n
        expected[split] = (n, sum(len(d.utterances) for d in chunk), [SPELLING[u.label] for u in chunk[0].utterances])
        if fmt == "tsv":
            text = "\n".join(
                "".join(f"{u.speaker}\t{' '.join(u.text.split())}\t{SPELLING[u.label]}\n" for u in d.utterances)
                for d in chunk
            )
            (folder / f"{split}.txt").write_text(text, encoding="utf-8")
        elif fmt == "jsonl":
            lines = [
                json.dumps(
                    {
                        "dialogue_id": d.dialogue_id,
                        "utterances": [
                            {"speaker": u.speaker, "text": u.text, "label": SPELLING[u.label]} for u in d.utterances
                        ],
                    }
                )
                for d in chunk
            ]
            (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:  # csv, turns deliberately shuffled within each dialogue: the turn column restores the order
            rows = [
                {"conv": d.dialogue_id, "turn": t, "who": u.speaker, "utt": u.text, "emo": SPELLING[u.label]}
                for d in chunk
                for t, u in reversed(list(enumerate(d.utterances)))
            ]
            pd.DataFrame(rows).to_csv(folder / f"{split}.csv", index=False)
    return expected


def definition(fmt="tsv", **extra):
    ext = {"tsv": "txt", "jsonl": "jsonl", "csv": "csv"}[fmt]
    d = {
        "format": fmt,
        "labels": list(OWN_LABELS),
        "files": {s: f"MyCorpus/{s}.{ext}" for s in SIZES},
        "raw_labels": dict(RAW),
    }
    if fmt == "csv":
        d["columns"] = {"dialogue_id": "conv", "turn": "turn", "speaker": "who", "text": "utt", "label": "emo"}
    return d | extra


# --------------------------------------------------------------------------- the package
def test_builtin_definitions_are_config_definitions():
    """The built-in file is written in the user's form: it validates against the config schema's definition."""
    schema = yaml.safe_load((REPO / "rules" / "schemas" / "config.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator(
        {**schema["definitions"]["benchmark"], "definitions": schema["definitions"]}
    )
    builtin = yaml.safe_load(BUILTIN_FILE.read_text())
    assert list(builtin) == ["MELD", "EmoryNLP", "IEMOCAP"]
    for name, d in builtin.items():
        assert not list(validator.iter_errors(d)), name
    defs = builtin_definitions()
    assert defs["MELD"].labels == ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
    assert defs["IEMOCAP"].vocab.canonical("fru") == "frustrated"


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_each_format_loads_with_exact_counts_and_own_labels(tmp_path, fmt):
    expected = write_corpus(tmp_path, fmt)
    defn = all_definitions({"MyCorpus": definition(fmt)})["MyCorpus"]
    for split, (n, utts, first_labels) in expected.items():
        dialogues = load_split(tmp_path, defn, split)
        assert len(dialogues) == n
        assert sum(len(d.utterances) for d in dialogues) == utts
        assert [u.label for u in dialogues[0].utterances] == [RAW[x] for x in first_labels]
    if fmt == "csv":  # the turn column, not the file order, orders the utterances
        meld = load_split(BENCH, "MELD", "dev")[0]
        assert [u.text for u in load_split(tmp_path, defn, "train")[0].utterances] == [u.text for u in meld.utterances]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"format": "xlsx"}, "config key 'benchmark_definitions.MyCorpus.format': unknown format 'xlsx'"),
        (
            {"labels": ["neutral", "joy", "neutral"]},
            "benchmark_definitions.MyCorpus.labels': duplicate label(s) neutral",
        ),
        ({"labels": ["neutral"]}, "benchmark_definitions.MyCorpus.labels': at least two labels are needed, found 1"),
        (
            {"files": {"train": "a.txt", "dev": "b.txt"}},
            "benchmark_definitions.MyCorpus.files': needs exactly the splits",
        ),
        ({"raw_labels": {"hap": "joy"}}, "benchmark_definitions.MyCorpus.raw_labels.hap': 'joy' is not one of"),
        ({"format": "csv"}, "benchmark_definitions.MyCorpus.columns': a csv benchmark names its columns"),
        (
            {
                "url": {"train": "https://x/t", "dev": "https://x/d", "test": "https://x/e"},
                "files": {"train": "t.txt", "dev": "d.txt", "test": "e.txt"},
            },
            "downloaded files live under 'MyCorpus/'",
        ),
        (
            {"generation": {"temperature": 0.1}},
            "benchmark_definitions.MyCorpus.generation': unknown setting(s) temperature",
        ),
    ],
)
def test_bad_definitions_name_the_key(patch, message):
    with pytest.raises(DefinitionError) as err:
        all_definitions({"MyCorpus": definition() | patch})
    assert message in str(err.value)


def test_a_builtin_name_cannot_be_redefined():
    with pytest.raises(DefinitionError, match=r"'benchmark_definitions.MELD': MELD is a built-in benchmark"):
        all_definitions({"MELD": definition()})


def test_a_label_outside_the_definition_names_file_and_line(tmp_path):
    write_corpus(tmp_path)
    path = tmp_path / "MyCorpus" / "dev.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tcontempt"
    path.write_text("\n".join(lines) + "\n")
    defn = all_definitions({"MyCorpus": definition()})["MyCorpus"]
    with pytest.raises(BenchmarkFormatError, match=rf"{path}:3: unknown MyCorpus label 'contempt'"):
        load_file(path, defn.vocab, "tsv")


# --------------------------------------------------------------------------- the workflow
def own_config(tmp_path, **definition_extra) -> str:
    cfg = {
        "benchmarks": ["MyCorpus"],
        # Per-benchmark generation settings: the definition's, then generation.per_benchmark over them.
        "benchmark_definitions": {
            "MyCorpus": definition(generation={"speakers": [2, 2], "names": OWN_NAMES, "turns": [4, 4]})
            | definition_extra
        },
        "distributions": ["natural"],
        "classifiers": ["compm"],
        "seeds": [1],
        "generation": {
            # The transformers backend (the paper's GPU and 4-bit path) on the converted Gemma: the
            # workflow's other runs use the llama.cpp default.
            "backend": "transformers",
            "dialogues": 4,
            "shards": 1,
            "batch_size": 4,
            "max_new_tokens": 64,
            "per_benchmark": {"MyCorpus": {"turns": [5, 5]}},
        },
        "training": {
            "recipe": {"max_length": 48, "batch_size": 24, "epochs": 1, "pretrain": {"epochs": 1}},
            "max_dialogues": {"train": None, "dev": None, "test": None, "synthetic": None},
        },
    }
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        ("unknown benchmark", "config key 'benchmarks': unknown benchmark(s) Friends"),
        ("missing file", "config key 'benchmarks' selects MyCorpus, but these files are missing: "),
        (
            "label not defined",
            "benchmark_definitions.MyCorpus: {bench}/MyCorpus/test.txt:3: unknown MyCorpus label 'contempt'",
        ),
        ("duplicate labels", "benchmark_definitions.MyCorpus.labels': duplicate label(s) fear"),
        ("built-in name", "config key 'benchmark_definitions.IEMOCAP': IEMOCAP is a built-in benchmark"),
        ("empty split", "benchmark_definitions.MyCorpus: {bench}/MyCorpus/dev.txt: no dialogue in this tsv file"),
    ],
)
def test_bad_definitions_stop_the_plan_naming_the_key(tmp_path, break_it, message):
    """The start-up checks of a user's benchmark (Snakemake runs them before any job: one dry run
    in test_config.py shows the wiring)."""
    bench = tmp_path / "bench"
    write_corpus(bench)
    config = own_config(tmp_path)
    cfg = yaml.safe_load(config.read_text())
    own = cfg["benchmark_definitions"]["MyCorpus"]
    if break_it == "unknown benchmark":
        cfg["benchmarks"] = ["MyCorpus", "Friends"]
    elif break_it == "missing file":
        (bench / "MyCorpus" / "dev.txt").unlink()
    elif break_it == "label not defined":
        path = bench / "MyCorpus" / "test.txt"
        lines = path.read_text().splitlines()
        lines[2] = lines[2].rsplit("\t", 1)[0] + "\tcontempt"
        path.write_text("\n".join(lines) + "\n")
    elif break_it == "empty split":
        (bench / "MyCorpus" / "dev.txt").write_text("")
    elif break_it == "duplicate labels":
        own["labels"][-1] = "fear"
    else:
        cfg["benchmark_definitions"] = {"IEMOCAP": own}
    with pytest.raises(PlanError) as caught:
        Plan.from_config(load_config(REPO / "config.yaml", cfg | {"benchmarks_dir": str(bench)}))
    assert message.format(bench=bench) in str(caught.value)


@pytest.mark.workflow
def test_a_fourth_benchmark_runs_through_the_whole_workflow(tmp_path, generator_checkpoint):
    """Config only: exact counts, generation and parsing with the embedded model in the corpus's own
    labels, one classifier pre-trained and fine-tuned for an epoch, and the corpus in the statistics."""
    bench = tmp_path / "bench"
    expected = write_corpus(bench)
    work = tmp_path / "work"
    seed_generator(work, generator_checkpoint)
    snakemake(work, configfile=own_config(tmp_path), bench=bench)
    r = work / "results"
    for split, (n, utts, first_labels) in expected.items():
        dialogues = read_dialogues(r / "benchmarks" / "MyCorpus" / f"{split}.jsonl")
        assert (len(dialogues), sum(len(d.utterances) for d in dialogues)) == (n, utts)
        assert [u.label for u in dialogues[0].utterances] == [RAW[x] for x in first_labels]
    gen = r / "generated" / "MyCorpus" / "natural"
    raw = [json.loads(line) for line in (gen / "raw" / "shard0.jsonl").read_text().splitlines()]
    assert len(raw) == 4
    legend = ", ".join(f"{i} = {label}" for i, label in enumerate(OWN_LABELS, 1))
    assert all(legend in rec["prompt"] for rec in raw)
    natural_topics = yaml.safe_load((REPO / "config.yaml").read_text())["generation"]["natural_topics"]
    for spec in (rec["spec"] for rec in raw):
        assert len(spec["speakers"]) == 2 and set(spec["speakers"]) <= set(OWN_NAMES)  # the definition's
        assert spec["turns"] == 5  # generation.per_benchmark over the definition
        assert spec["topic"] in natural_topics  # natural attempts draw neutral topics
    report = json.loads((gen / "parse_report.json").read_text())
    assert report["attempted"] == 4 and report["valid"] >= 1
    assert list(report["label_counts"]) == OWN_LABELS
    synthetic = read_dialogues(gen / "dialogues.jsonl")
    assert all(u.label in OWN_LABELS for d in synthetic for u in d.utterances)
    assert "1 = neutral, 2 = happiness" in (gen / "hf" / "README.md").read_text()
    for condition in ("baseline", "natural"):
        metrics = json.loads((r / "models" / "MyCorpus" / "compm" / condition / "seed1" / "metrics.json").read_text())
        assert metrics["labels"] == OWN_LABELS
        phases = ["finetune"] if condition == "baseline" else ["pretrain", "finetune"]
        assert [h["phase"] for h in metrics["history"]] == phases  # one epoch each
        assert sum(map(sum, metrics["confusion_matrix"])) == expected["test"][1]
    results = pd.read_csv(r / "stats" / "results.csv")
    assert sorted(results["condition"]) == ["baseline", "natural"] and set(results["benchmark"]) == {"MyCorpus"}
    friedman = json.loads((r / "stats" / "friedman.json").read_text())
    assert "overall" in friedman
    quality = pd.read_csv(r / "stats" / "label_quality.csv")
    assert list(quality["benchmark"]) == ["MyCorpus"]
    shares = pd.read_csv(r / "stats" / "label_distributions.csv")
    assert list(shares[shares["dataset"] == "original"]["label"]) == OWN_LABELS
    assert shares.groupby("dataset")["share"].sum().round(2).eq(1.0).all()
