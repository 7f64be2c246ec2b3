"""The training loop in-process on a tiny random RoBERTa: a resumed run equals an uninterrupted
one, a state from other settings is never resumed, and passes respect the token budget."""

import logging
import random
from dataclasses import replace

import pytest
import torch
from conftest import BENCH, recipe
from test_models import OPTIONS

from ercsynth.benchmarks import load_split
from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.labels import Vocabulary
from ercsynth.models import ModelSettings, all_rows, build_model
from ercsynth.recipe import RecipeError
from ercsynth.training import (
    Trainer,
    evaluate,
    optimizer_groups,
    passes,
    predict,
    seeded_model,
    steps,
    steps_per_epoch,
)

TRAIN = load_split(BENCH, "MELD", "dev")[:10]
VOCAB = Vocabulary.of("MELD")
OPTIM = recipe(batch_size=24, max_tokens_per_step=512, lr=1e-4, head_lr=1e-3, warmup_ratio=0.1)


def model_for(tiny_roberta, name="emoberta"):
    options = {"emoberta": {"past": None, "future": None}, "compm": {"freeze_memory": False, "context_turns": None}}
    return seeded_model(ModelSettings(name, str(tiny_roberta), 7, 40, 8, options[name]), seed=3)


class Killed(Exception):
    pass


def test_a_resumed_run_equals_an_uninterrupted_one(tiny_roberta, tmp_path, monkeypatch):
    # Without dev data the final weights are the last epoch's (no best-epoch pick hides a difference).
    whole = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path / "a", "fp")
    summary = whole.fit("finetune", TRAIN, 3)
    expected = {k: v.clone() for k, v in whole.model.state_dict().items()}

    # The same run, killed during its third epoch ...
    killed = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path / "b", "fp")
    epoch = Trainer._epoch

    def dies_in_epoch_3(self, data, opt, sched, rng, desc):
        if desc.startswith("finetune 3/"):
            raise Killed
        return epoch(self, data, opt, sched, rng, desc)

    monkeypatch.setattr(Trainer, "_epoch", dies_in_epoch_3)
    with pytest.raises(Killed):
        killed.fit("finetune", TRAIN, 3)
    monkeypatch.setattr(Trainer, "_epoch", epoch)
    # ... then resumed by a new job with a freshly built model.
    resumed = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path / "b", "fp")
    again = resumed.fit("finetune", TRAIN, 3)
    assert [h["epoch"] for h in again["history"]] == [1, 2, 3]
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in summary["history"]]
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_a_state_from_other_settings_is_not_resumed(tiny_roberta, tmp_path, caplog):
    first = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path, "settings-a")
    first.fit("pretrain", TRAIN, 1)
    assert (tmp_path / "last.pt").exists()
    with caplog.at_level(logging.INFO):
        Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path, "settings-a").fit("pretrain", TRAIN, 2)
    assert "resuming pretrain from epoch 1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        out = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path, "settings-b").fit("pretrain", TRAIN, 2)
    assert "written for other settings or inputs: starting over" in caplog.text
    assert [h["epoch"] for h in out["history"]] == [1, 2]


def test_a_state_whose_optimizer_groups_differ_starts_over(tiny_roberta, tmp_path, caplog):
    """Same settings and inputs (same fingerprint), but the code between kill and resume groups the
    parameters differently (here: decay on everything, then no decay on biases and LayerNorm): the
    job starts over instead of failing on the optimizer's state."""
    Trainer(model_for(tiny_roberta), recipe(decay_bias_and_norm=True), VOCAB, 3, tmp_path, "fp").fit(
        "pretrain", TRAIN, 1
    )
    with caplog.at_level(logging.INFO):
        regrouped = Trainer(model_for(tiny_roberta), recipe(decay_bias_and_norm=False), VOCAB, 3, tmp_path, "fp")
        out = regrouped.fit("pretrain", TRAIN, 2)
    assert "written by other code" in caplog.text and [h["epoch"] for h in out["history"]] == [1, 2]


@pytest.mark.parametrize("name", ["emoberta", "compm"])
def test_passes_keep_to_the_token_budget_and_cover_every_row_once(tiny_roberta, name):
    model = model_for(tiny_roberta, name)
    for budget in (64, 256, 4096):
        chunks = passes(model, TRAIN, budget)
        rows = [r for c in chunks for r in c]
        assert sorted(rows) == sorted(all_rows(TRAIN))
        for chunk in chunks:
            widths = [model.padded_length(model.row_length(TRAIN[i], t)) for i, t in chunk]
            assert len(chunk) == 1 or max(widths) * len(chunk) <= budget
    assert len(passes(model, TRAIN, 64)) > len(passes(model, TRAIN, 4096))
    # Predictions do not depend on the budget.
    assert predict(model, TRAIN, 64) == predict(model, TRAIN, 4096)


def test_an_unreadable_checkpoint_is_ignored_not_fatal(tiny_roberta, tmp_path, caplog):
    (tmp_path / "last.pt").write_bytes(b"half a checkpoint, cut by a kill")
    with caplog.at_level(logging.WARNING):
        out = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path, "fp").fit("pretrain", TRAIN, 2)
    assert "ignoring unreadable checkpoint" in caplog.text
    assert [h["epoch"] for h in out["history"]] == [1, 2]


def relabelled(dialogues, label):
    return [Dialogue(d.dialogue_id, [Utterance(u.speaker, u.text, label) for u in d.utterances]) for d in dialogues]


def test_the_best_dev_epoch_is_the_model_that_is_returned(tiny_roberta, tmp_path, monkeypatch):
    """A crafted dev set where epoch 1 is best: training teaches 'joy' everywhere, dev says 'neutral',
    so dev F1 can only fall (or stay at its level: then the earliest best epoch is kept). The weights
    after fit() are those of epoch 1, not of the last epoch."""
    train, dev = relabelled(TRAIN, "joy"), relabelled(TRAIN[:4], "neutral")
    trainer = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path, "fp")
    per_epoch = {}
    save = Trainer._save_state

    def keep_weights(self, state):  # a spy: the real save, plus a copy of each epoch's weights
        per_epoch[state["epoch"]] = {k: v.clone() for k, v in state["model"].items()}
        save(self, state)

    monkeypatch.setattr(Trainer, "_save_state", keep_weights)
    summary = trainer.fit("finetune", train, 3, dev)
    scores = [h["dev_weighted_f1"] for h in summary["history"]]
    assert scores.index(max(scores)) == 0, scores  # the crafted set works: epoch 1 is the (earliest) best
    assert summary["best_dev_weighted_f1"] == scores[0]
    final = trainer.model.state_dict()
    assert all(torch.equal(final[k], per_epoch[1][k]) for k in final)
    assert any(not torch.equal(final[k], per_epoch[3][k]) for k in final)
    rescored, _ = evaluate(trainer.model, dev, VOCAB, OPTIM)
    assert rescored["weighted_f1"] == pytest.approx(scores[0])


# --------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("name", ["compm", "emoberta"])
def test_an_utterance_step_holds_b_utterances_encoded_as_in_their_whole_dialogue(tiny_roberta, name):
    """Utterance steps (the CoMPM and EmoBERTa releases): B utterances drawn from the whole split,
    each one exactly once an epoch, and each encoded from exactly the token tensors (context,
    memory) that the dialogue-packed path gives it, so its logits are the same."""
    model = model_for(tiny_roberta, name).eval()
    data = TRAIN[:6]
    b = 3
    drawn = recipe(name, batch_size=b, shuffle="utterances")
    plan = list(steps(data, drawn, True, random.Random(5)))
    assert all(len(s.rows) == b for s in plan[:-1]) and 1 <= len(plan[-1].rows) <= b
    assert len(plan) == steps_per_epoch(data, drawn)
    where = {id(d): i for i, d in enumerate(data)}
    picked = [(where[id(s.dialogues[i])], t) for s in plan for i, t in s.rows]
    assert sorted(picked) == all_rows(data)  # every utterance once
    assert picked != all_rows(data)  # in a shuffled order, across dialogues
    assert any(len(s.dialogues) > 1 for s in plan)
    with torch.no_grad():
        whole = {}
        for i, d in enumerate(data):  # the packed path: a whole dialogue per forward pass
            logits, _ = model([d])
            whole.update({(i, t): logits[t] for t in range(len(d.utterances))})
        for s in plan:
            for i, t in s.rows:
                g = (where[id(s.dialogues[i])], t)
                assert model.sequences(s.dialogues, [(i, t)]) == model.sequences([data[g[0]]], [(0, t)])
            logits, _ = model(s.dialogues, s.rows)
            for row, got in zip(s.rows, logits, strict=True):
                assert torch.allclose(got, whole[(where[id(s.dialogues[row[0]])], row[1])], atol=1e-5)


def test_dialogue_steps_and_packed_steps_keep_dialogues_whole(tiny_roberta):
    data = TRAIN[:7]
    two = list(steps(data, recipe("todkat", batch_size=2, batch_unit="dialogues"), True, random.Random(1)))
    assert [len(s.dialogues) for s in two] == [2, 2, 2, 1]
    assert all(s.rows == all_rows(s.dialogues) for s in two)
    packed = list(steps(data, recipe(batch_size=24), True, random.Random(1)))
    assert all(s.rows == all_rows(s.dialogues) for s in packed)
    assert all(sum(len(d.utterances) for d in s.dialogues) <= 24 for s in packed if len(s.dialogues) > 1)


def test_todkat_refuses_utterance_steps_naming_the_key(tiny_roberta):
    todkat = build_model(ModelSettings("todkat", str(tiny_roberta), 7, 40, 8, OPTIONS["todkat"]))
    drawn = next(steps(TRAIN, recipe("todkat", batch_size=3, shuffle="utterances"), True, random.Random(1)))
    with pytest.raises(RecipeError, match="training.recipes.todkat: .*shuffle: dialogues"):
        passes(todkat, drawn.dialogues, 4096, drawn.rows)


def test_group_by_length_pads_less_and_still_draws_every_utterance_once(tiny_roberta):
    model = model_for(tiny_roberta)
    data = TRAIN
    plain, grouped = (recipe(batch_size=4, shuffle="utterances", group_by_length=g) for g in (False, True))

    def padding(plan):
        return sum(
            len(s.rows) * max(model.row_length(s.dialogues[i], t) for i, t in s.rows)
            - sum(model.row_length(s.dialogues[i], t) for i, t in s.rows)
            for s in plan
        )

    a = list(steps(data, plain, True, random.Random(2), model.row_length))
    b = list(steps(data, grouped, True, random.Random(2), model.row_length))
    assert sorted((s.dialogues[i].dialogue_id, t) for s in b for i, t in s.rows) == sorted(
        (d.dialogue_id, t) for d in data for t in range(len(d.utterances))
    )
    assert len(a) == len(b) and padding(b) < padding(a) / 2


def test_no_decay_exempts_biases_and_layernorm_only(tiny_roberta):
    model = model_for(tiny_roberta, "compm")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = optimizer_groups(model, recipe("compm", decay_bias_and_norm=False))
    undecayed = {names[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] == 0.01 for p in g["params"]}
    assert undecayed and decayed and not undecayed & decayed
    assert undecayed | decayed == {n for n, p in model.named_parameters() if p.requires_grad}
    # Exempt: biases (the GRU's bias_ih_l0 too) and the LayerNorm weights; every weight matrix and
    # embedding is decayed.
    for n in undecayed:
        assert n.rsplit(".", 1)[-1].startswith("bias") or ".LayerNorm." in n, n
    assert any(".LayerNorm.weight" in n for n in undecayed) and any(n.endswith(".dense.bias") for n in undecayed)
    assert any("gru.bias_ih" in n for n in undecayed)
    assert any(n.endswith(".dense.weight") for n in decayed) and any("word_embeddings" in n for n in decayed)
    assert not any(".LayerNorm." in n or "bias" in n for n in decayed)
    # Decaying everything (CoMPM's release): one decayed group per rate, nothing exempt.
    everything = optimizer_groups(model, recipe("compm", decay_bias_and_norm=True))
    assert all(g["weight_decay"] == 0.01 for g in everything)
    # One rate when head_lr is null: every group at lr.
    one = optimizer_groups(model, recipe("compm", head_lr=None, lr=2e-5))
    assert {g["lr"] for g in one} == {2e-5}


def test_selection_on_accuracy_keeps_the_most_accurate_dev_epoch(tiny_roberta, tmp_path, monkeypatch):
    """The epoch is picked by the recipe's metric: with dev accuracy and weighted F1 disagreeing
    (scripted), accuracy picks epoch 2 and weighted F1 epoch 1."""
    scripted = iter([{"weighted_f1": 0.5, "accuracy": 0.4}, {"weighted_f1": 0.3, "accuracy": 0.6}] * 2)
    monkeypatch.setattr("ercsynth.training.evaluate", lambda *a: (next(scripted), []))
    for select_on, epoch in (("weighted_f1", 1), ("accuracy", 2)):
        trainer = Trainer(model_for(tiny_roberta), recipe(select_on=select_on), VOCAB, 3, tmp_path / select_on, "fp")
        summary = trainer.fit("finetune", TRAIN[:2], 2, TRAIN[:1])
        assert summary["select_on"] == select_on
        assert summary["best_dev_weighted_f1"] == [0.5, 0.3][epoch - 1]


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    from ercsynth import training

    cpu = torch.device("cpu")
    for explicit in ("no", "bf16", "fp16"):
        assert training.effective_precision(cpu, explicit) == explicit
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: True)
    assert training.effective_precision(cpu, "auto") == "bf16"
    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: False)
    assert training.effective_precision(cpu, "auto") == "no"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_the_cpu(tiny_roberta, tmp_path, precision):
    """bf16 and fp16 now run on the CPU too: the step's matrix products are in that type, the loss is
    finite and the run records what ran."""
    trainer = Trainer(model_for(tiny_roberta), replace(OPTIM, precision=precision), VOCAB, 3, tmp_path, "p")
    assert trainer.precision == precision and (trainer.scaler is not None) == (precision == "fp16")
    dtypes = []
    layer = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear))
    handle = layer.register_forward_hook(lambda mod, inp, out: dtypes.append(out.dtype))
    out = trainer.fit("pretrain", TRAIN[:4], 1)
    handle.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16 if precision == "bf16" else torch.float16}
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in out["history"])


@pytest.mark.parametrize(
    "shape",
    [
        {},  # the default: whole dialogues packed up to batch_size utterances
        {"batch_size": 2, "shuffle": "utterances"},  # utterance steps: a long dialogue adds several
        {"batch_size": 3, "batch_unit": "dialogues"},
    ],
)
def test_the_real_pretrained_control_gets_the_synthetic_step_count(shape):
    """real_pretrained pre-trains on real dialogues for exactly as many steps per epoch as the
    synthetic pre-training of its cell, cycling the real split when it is the shorter one."""
    from ercsynth.training import real_for_steps

    real = load_split(BENCH, "MELD", "train")[:30]
    r = replace(OPTIM, **shape)
    for synthetic in (load_split(BENCH, "MELD", "dev")[:n] for n in (3, 7, 12, 40)):
        target = steps_per_epoch(synthetic, r)
        chosen = real_for_steps(real, target, r, seed=2)
        assert steps_per_epoch(chosen, r) == target, (shape, target)
        assert {d.dialogue_id for d in chosen} <= {d.dialogue_id for d in real}
    assert real_for_steps(real, 5, r, 2) == real_for_steps(real, 5, r, 2) != real_for_steps(real, 5, r, 3)
