"""The three classifiers on tiny random encoders of the paper's family (RoBERTa), saved locally."""

import pytest
import torch
from conftest import BENCH

from ercsynth.benchmarks import load_split
from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.models import CoMPM, EmoBERTa, KnowledgeSource, ModelConfig, build_model

DIALOGUES = load_split(BENCH, "MELD", "dev")[:4]


def cfg(encoder, **kw):
    return ModelConfig(str(encoder), num_labels=7, max_length=40, **kw)


@pytest.mark.parametrize("name", ["compm", "emoberta", "todkat"])
def test_forward_backward_and_batching_is_exact(name, tiny_roberta):
    torch.manual_seed(0)
    model = build_model(name, cfg(tiny_roberta))
    logits, aux = model(DIALOGUES)
    n = sum(len(d.utterances) for d in DIALOGUES)
    assert logits.shape == (n, 7)
    (logits.sum() + aux).backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    if name == "todkat":
        assert aux.item() > 0  # the VAE topic loss is part of training
    # Dynamic padding must not change predictions: batched == one dialogue at a time.
    model.eval()
    with torch.no_grad():
        batched, _ = model(DIALOGUES)
        single = torch.cat([model([d])[0] for d in DIALOGUES])
    assert torch.allclose(batched, single, atol=1e-4), (batched - single).abs().max()


def test_compm_memory_frozen_and_context_keeps_current_utterance(tiny_roberta):
    model = CoMPM(cfg(tiny_roberta, compm={"context_turns": 8, "freeze_memory": True}))
    assert not any(p.requires_grad for p in model.memory.parameters())
    assert any(p.requires_grad for p in model.encoder.parameters())
    d = DIALOGUES[0]
    spk = [0, 1] * len(d.utterances)
    seq = model.context_sequence(d, spk, len(d.utterances) - 1)
    cur = model.tokens(d.utterances[-1].text)
    assert len(seq) <= 40 and seq[-1] == model.sep_id
    assert seq[-1 - len(cur[:38]) : -1] == cur[:38]


def test_emoberta_truncates_from_the_far_end(tiny_roberta):
    model = EmoBERTa(ModelConfig(str(tiny_roberta), num_labels=7, max_length=100, emoberta={"past": 10, "future": 2}))
    long = Dialogue(
        "x", [Utterance("A" if i % 2 else "B", f"utterance number {i} with some words", "neutral") for i in range(12)]
    )
    seq = model.sequence(long, 8)
    assert len(seq) <= 100
    text = model.tokenizer.decode(seq)
    assert "number 8" in text and "number 7" in text
    assert "number 0 " not in text  # the oldest turns go first
    assert seq[0] == model.cls_id


def test_todkat_with_comet_knowledge(tiny_roberta, tiny_bart):
    source = KnowledgeSource("comet", ["xReact", "oReact"], str(tiny_bart))
    texts = source.texts(["I lost my keys.", "We won!"])
    assert len(texts) == 2 and all(len(t) == 2 for t in texts)
    assert texts[0][0].startswith("xReact:") and texts[1][1].startswith("oReact:")
    model = build_model(
        "todkat",
        cfg(
            tiny_roberta,
            todkat={
                "knowledge": "comet",
                "comet_model": str(tiny_bart),
                "relations": ["xReact", "oReact"],
                "topic_layer": 2,
            },
        ),
    )
    logits, aux = model(DIALOGUES[:2])
    assert logits.shape[0] == sum(len(d.utterances) for d in DIALOGUES[:2])


def test_comet_needs_a_model():
    with pytest.raises(ValueError, match="training.todkat.comet_model"):
        KnowledgeSource("comet", ["xReact"], None)
