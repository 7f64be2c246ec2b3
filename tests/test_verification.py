"""Label verification: the generator re-labels synthetic utterances; agreement and what is kept."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import copy_workflow, seed_generator, snakemake

from ercsynth.backends import TransformersBackend
from ercsynth.dialogues import Dialogue, Utterance, read_dialogues
from ercsynth.labels import Vocabulary
from ercsynth.verification import agreement, keep, relabel, symbol_tokens, verify_prompts

V = Vocabulary.of("MELD")
D = [
    Dialogue(
        "a", [Utterance("Ann", "Hi!", "joy"), Utterance("Bo", "No.", "anger"), Utterance("Ann", "So.", "neutral")]
    ),
    Dialogue("b", [Utterance("Cy", "Oh.", "surprise"), Utterance("Di", "Hm.", "neutral")]),
]


def test_prompts_hide_the_generated_labels_of_earlier_lines():
    items = list(verify_prompts(D, V, []))
    assert [(i.dialogue, i.utterance) for i in items] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    third = items[2].prompt
    assert third.endswith("Ann | So. | ") and "Ann | Hi! | ?\nBo | No. | ?\n" in third
    assert "| 2\n" not in third and "1 = neutral, 2 = joy" in third


def test_agreement_and_keep():
    verified = [["joy", "sadness", "neutral"], ["surprise", "neutral"]]
    table = agreement(D, verified, V.labels)
    assert (table["utterances"], table["agreeing"]) == (5, 4)
    assert table["per_label"]["anger"] == {"generated": 1, "verified": 0, "both": 0, "kappa": 0.0}
    assert table["per_label"]["joy"]["kappa"] == 1.0
    assert 0 < table["kappa"] < 1
    assert keep(D, verified, "all", 2) == D
    # 'a' keeps Hi! and So., both Ann's: one speaker, dropped; 'b' keeps both lines of two speakers.
    assert [d.dialogue_id for d in keep(D, verified, "agree", 2)] == ["b"]
    assert keep(D, verified, "agree", 3) == []


def test_relabel_gives_each_utterance_the_symbol_the_model_ranks_highest(tiny_llama):
    """The exact labels, against one unbatched forward pass per utterance computed here."""
    import torch

    backend = TransformersBackend(str(tiny_llama))
    labels = relabel(backend, D, V, D[:1], batch_size=2)
    ids, end = symbol_tokens(backend.tokenizer, V)
    allowed: dict[tuple[int, int], set[str]] = {}
    for item in verify_prompts(D, V, D[:1], end):
        enc = backend.tokenizer(item.prompt, return_tensors="pt")
        with torch.inference_mode():
            scores = backend.lm(**enc).logits[0, -1, ids]
        # Random weights can leave two symbols within float noise of each other, and padding in a
        # batch may flip such a pair: there either label is right; elsewhere exactly one is.
        near = (scores >= scores.max() - 1e-4).nonzero().flatten().tolist()
        allowed[item.dialogue, item.utterance] = {V.labels[i] for i in near}
    assert sum(len(a) == 1 for a in allowed.values()) >= 4  # the check stays exact on most utterances
    got = {(d, u): label for d, dialogue in enumerate(labels) for u, label in enumerate(dialogue)}
    assert got.keys() == allowed.keys()
    # A symbol offset shifts every label; a misplaced utterance leaves an empty label.
    assert all(got[k] in allowed[k] for k in allowed), (got, allowed)


@pytest.mark.workflow
def test_each_symbol_is_its_own_token_after_the_prompt(generator_checkpoint, tiny_llama):
    """Gemma (SentencePiece) and the byte-level BPE of the tiny Llama: seven distinct symbol tokens,
    each the token that really follows the prompt's end (a shared token would make every label one)."""
    from transformers import AutoTokenizer

    for folder in (generator_checkpoint, tiny_llama):
        tok = AutoTokenizer.from_pretrained(str(folder))
        ids, end = symbol_tokens(tok, V)
        assert len(set(ids)) == 7
        for symbol, token in zip(range(1, 8), ids, strict=True):
            prompt = tok("Ann | Hi " + end, add_special_tokens=False)["input_ids"]
            gap = "" if end.endswith(" ") else " "
            assert tok("Ann | Hi " + end + gap + str(symbol), add_special_tokens=False)["input_ids"] == prompt + [token]


@pytest.mark.workflow
def test_verify_rule_in_the_workflow(tmp_path, generator_checkpoint):
    """The opt-in verify jobs: agreement per dataset, the table, and pre-training reads what they kept."""
    seed_generator(tmp_path, generator_checkpoint)
    extra = ["distributions=[natural]", "generation={verify: {enabled: true, keep: agree}}"]
    snakemake(tmp_path, "results/stats/verification.csv", "-n", extra_config=extra)  # a dry run first: the DAG
    snakemake(tmp_path, "results/stats/verification.csv", extra_config=extra)
    folder = tmp_path / "results" / "generated" / "MELD" / "natural"
    parsed = read_dialogues(folder / "dialogues.jsonl")
    table = json.loads((folder / "verified" / "agreement.json").read_text())
    assert table["utterances"] == sum(len(d.utterances) for d in parsed) > 0
    rows = [json.loads(x) for x in (folder / "verified" / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == table["utterances"] and all(r["verified"] in V.labels for r in rows)
    kept = read_dialogues(folder / "verified" / "dialogues.jsonl")
    assert all(u.label == next(r["verified"] for r in rows if r["text"] == u.text) for d in kept for u in d.utterances)
    csv = pd.read_csv(tmp_path / "results" / "stats" / "verification.csv")
    assert list(csv["distribution"]) == ["natural"] and "kappa_joy" in csv
    dry = snakemake(tmp_path, "results/models/MELD/compm/natural/seed1/pretrained.pt", "-n", extra_config=extra)
    assert "verified/dialogues.jsonl" in dry.stdout

    # The verifier's code is what its imports reach: an edit to constraints.py changes the verify
    # job's own code param. Snakemake's --summary says so per output ("params changed"); generation
    # reruns too, so a verify job without constraints.py in its fingerprint would show only
    # "update pending" for its updated input.
    copy = copy_workflow(tmp_path / "edited")

    def status(output: str) -> str:
        proc = snakemake(tmp_path, "--summary", extra_config=extra, snakefile=copy / "Snakefile")
        rows = [line.split("\t") for line in proc.stdout.splitlines() if line.startswith(output + "\t")]
        return rows[0][4]

    verified = "results/generated/MELD/natural/verified/agreement.json"
    assert status(verified) == "ok"
    constraints = copy / "ercsynth" / "constraints.py"
    constraints.write_text(constraints.read_text() + "\n# an edit\n")
    assert status(verified) == "params changed"
