"""The training loop in-process on a tiny random RoBERTa: a resumed run equals an uninterrupted
one, a state from other settings is never resumed, and passes respect the token budget."""

import logging

import pytest
import torch
from conftest import BENCH

from ercsynth.benchmarks import load_split
from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.labels import Vocabulary
from ercsynth.models import ModelSettings, all_rows
from ercsynth.training import OptimSettings, Trainer, evaluate, passes, predict, seeded_model

TRAIN = load_split(BENCH, "MELD", "dev")[:10]
VOCAB = Vocabulary.of("MELD")
OPTIM = OptimSettings(
    batch_utterances=24,
    max_tokens_per_step=512,
    lr=1e-4,
    head_lr=1e-3,
    warmup_ratio=0.1,
    weight_decay=0.01,
    max_grad_norm=1.0,
    precision="no",
)


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
    assert "resuming pretrain after epoch 1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        out = Trainer(model_for(tiny_roberta), OPTIM, VOCAB, 3, tmp_path, "settings-b").fit("pretrain", TRAIN, 2)
    assert "written for other settings or inputs: starting over" in caplog.text
    assert [h["epoch"] for h in out["history"]] == [1, 2]


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
    assert predict(model, TRAIN, 24, 64) == predict(model, TRAIN, 24, 4096)


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
