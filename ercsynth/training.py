"""Pre-train on synthetic dialogues, fine-tune on the real train split, select on dev, test.

Resumable: after every epoch the full training state goes to ``<run>/checkpoint/last.pt``;
a killed job (or one stopped by a cluster time limit) continues from the next epoch.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ercsynth.dialogues import Dialogue
from ercsynth.labels import Vocabulary
from ercsynth.models import ERCModel, ModelConfig, build_model

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    classifier: str
    benchmark: str
    seed: int
    encoder: str = "minilm"
    max_length: int = 96
    batch_utterances: int = 32
    epochs: int = 2
    pretrain_epochs: int = 1
    lr: float = 5e-5
    head_lr: float = 1e-3
    warmup_ratio: float = 0.1
    precision: str = "no"
    compm: dict = field(default_factory=dict)
    emoberta: dict = field(default_factory=dict)
    todkat: dict = field(default_factory=dict)

    @classmethod
    def from_config(cls, training: dict, classifier: str, benchmark: str, seed: int) -> TrainConfig:
        keys = {k: training[k] for k in cls.__dataclass_fields__ if k in training}
        return cls(classifier=classifier, benchmark=benchmark, seed=seed, **keys)


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def cap(dialogues: list[Dialogue], limit: int | None) -> list[Dialogue]:
    """A fixed subset (independent of the training seed, so every run sees the same data)."""
    if limit is None or limit >= len(dialogues):
        return dialogues
    keep = sorted(random.Random(0).sample(range(len(dialogues)), limit))
    return [dialogues[i] for i in keep]


def batches(
    dialogues: list[Dialogue], batch_utterances: int, shuffle: bool, rng: random.Random | None = None
) -> Iterator[list[Dialogue]]:
    """Whole dialogues packed until the batch holds `batch_utterances` utterances."""
    order = list(range(len(dialogues)))
    if shuffle:
        (rng or random).shuffle(order)
    batch: list[Dialogue] = []
    size = 0
    for i in order:
        d = dialogues[i]
        if batch and size + len(d.utterances) > batch_utterances:
            yield batch
            batch, size = [], 0
        batch.append(d)
        size += len(d.utterances)
    if batch:
        yield batch


def label_tensor(dialogues: list[Dialogue], vocab: Vocabulary, device) -> torch.Tensor:
    return torch.tensor([vocab.index(u.label) for d in dialogues for u in d.utterances], device=device)


# --------------------------------------------------------------------------- metrics
def classification_metrics(gold: list[int], pred: list[int], labels: tuple[str, ...]) -> dict:
    k = len(labels)
    cm = np.zeros((k, k), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        cm[g, p] += 1
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    total = support.sum()
    present = support > 0
    return {
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "labels": list(labels),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
    }


# --------------------------------------------------------------------------- the loop
class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path) -> None:
        from accelerate import Accelerator

        self.cfg = cfg
        self.vocab = Vocabulary.of(cfg.benchmark)
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoint"  # created by run(), the only writer
        self.accelerator = Accelerator(
            mixed_precision=cfg.precision if torch.cuda.is_available() else "no", cpu=not torch.cuda.is_available()
        )
        set_seed(cfg.seed)
        mcfg = ModelConfig(cfg.encoder, len(self.vocab), cfg.max_length, cfg.compm, cfg.emoberta, cfg.todkat)
        self.model: ERCModel = build_model(cfg.classifier, mcfg)
        self.model.to(self.accelerator.device)
        self.utterances_seen = 0
        self.train_seconds = 0.0

    # One optimizer per phase: pre-training and fine-tuning each start with fresh schedules.
    def _optimizer(self, steps: int):
        encoder_params = [p for n, p in self.model.named_parameters() if p.requires_grad and n.startswith("encoder.")]
        head_params = [p for n, p in self.model.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
        opt = torch.optim.AdamW(
            [{"params": encoder_params, "lr": self.cfg.lr}, {"params": head_params, "lr": self.cfg.head_lr}],
            weight_decay=0.01,
        )
        warm = max(1, int(steps * self.cfg.warmup_ratio))

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to zero
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (steps - step) / max(1, steps - warm))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)

    def _epoch(self, data: list[Dialogue], opt, sched, rng: random.Random, desc: str) -> float:
        self.model.train()
        total, count = 0.0, 0
        n_batches = sum(1 for _ in batches(data, self.cfg.batch_utterances, False))
        bar = tqdm(
            batches(data, self.cfg.batch_utterances, True, rng),
            total=n_batches,
            desc=desc,
            unit="batch",
            file=sys.stderr,
            mininterval=10,
            ncols=100,
        )
        for batch in bar:
            start = time.perf_counter()
            with self.accelerator.autocast():
                logits, aux = self.model(batch)
                gold = label_tensor(batch, self.vocab, logits.device)
                loss = torch.nn.functional.cross_entropy(logits.float(), gold) + aux
            self.accelerator.backward(loss)
            self.accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            self.train_seconds += time.perf_counter() - start
            self.utterances_seen += len(gold)
            total += float(loss.detach()) * len(gold)
            count += len(gold)
            bar.set_postfix(
                loss=f"{total / count:.3f}", utt_s=f"{self.utterances_seen / max(self.train_seconds, 1e-9):.1f}"
            )
        return total / max(count, 1)

    @torch.no_grad()
    def predict(self, data: list[Dialogue]) -> list[int]:
        self.model.eval()
        preds: list[int] = []
        for batch in batches(data, self.cfg.batch_utterances * 2, False):
            with self.accelerator.autocast():
                logits, _ = self.model(batch)
            preds.extend(logits.argmax(-1).tolist())
        return preds

    def evaluate(self, data: list[Dialogue]) -> tuple[dict, list[int]]:
        preds = self.predict(data)
        gold = [self.vocab.index(u.label) for d in data for u in d.utterances]
        return classification_metrics(gold, preds, self.vocab.labels), preds

    # ------------------------------------------------------------------ checkpoints
    def _save_state(self, state: dict) -> None:
        tmp = self.ckpt_dir / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.ckpt_dir / "last.pt")

    def _load_state(self) -> dict | None:
        path = self.ckpt_dir / "last.pt"
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a torn checkpoint: start over rather than fail forever
            log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
            return None

    def run(self, train: list[Dialogue], dev: list[Dialogue], synthetic: list[Dialogue] | None = None) -> dict:
        """Both phases with resume. Returns the training summary (epochs, timings, dev curve)."""
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        history: list[dict] = state["history"] if state else []
        best_f1 = state["best_f1"] if state else -1.0
        phases = []
        if synthetic:
            phases.append(("pretrain", synthetic, self.cfg.pretrain_epochs))
        phases.append(("finetune", train, self.cfg.epochs))
        if state:
            self.model.load_state_dict(state["model"])
            self.utterances_seen, self.train_seconds = state["utterances_seen"], state["train_seconds"]
            log.info("resuming after %s epoch %d", state["phase"], state["epoch"])
        for phase, data, epochs in phases:
            if not data or epochs == 0:
                continue
            if state and state["phase"] == "finetune" and phase == "pretrain":
                continue
            steps = epochs * sum(1 for _ in batches(data, self.cfg.batch_utterances, False))
            opt, sched = self._optimizer(steps)
            first = 1
            if state and state["phase"] == phase:
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                first = state["epoch"] + 1
            for epoch in range(first, epochs + 1):
                rng = random.Random(self.cfg.seed * 1000 + epoch + (0 if phase == "finetune" else 500))
                loss = self._epoch(data, opt, sched, rng, f"{phase} {epoch}/{epochs}")
                entry = {"phase": phase, "epoch": epoch, "loss": loss}
                if phase == "finetune":
                    metrics, _ = self.evaluate(dev)
                    entry["dev_weighted_f1"] = metrics["weighted_f1"]
                    if metrics["weighted_f1"] > best_f1:
                        best_f1 = metrics["weighted_f1"]
                        torch.save(self.model.state_dict(), self.ckpt_dir / "best.pt")
                history.append(entry)
                log.info("%s", json.dumps(entry))
                self._save_state(
                    {
                        "phase": phase,
                        "epoch": epoch,
                        "model": self.model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "history": history,
                        "best_f1": best_f1,
                        "utterances_seen": self.utterances_seen,
                        "train_seconds": self.train_seconds,
                    }
                )
            state = None
        best = self.ckpt_dir / "best.pt"
        if best.exists():
            self.model.load_state_dict(torch.load(best, map_location="cpu"))
        return {
            "history": history,
            "best_dev_weighted_f1": best_f1,
            "epochs": sum(1 for h in history if h["phase"] == "finetune"),
            "pretrain_epochs": sum(1 for h in history if h["phase"] == "pretrain"),
            "train_seconds": self.train_seconds,
            "utterances_per_second": self.utterances_seen / self.train_seconds if self.train_seconds else 0.0,
        }


def prediction_rows(data: list[Dialogue], preds: list[int], vocab: Vocabulary) -> Iterator[dict]:
    it = iter(preds)
    for d in data:
        for i, u in enumerate(d.utterances):
            yield {
                "dialogue_id": d.dialogue_id,
                "index": i,
                "speaker": u.speaker,
                "text": u.text,
                "gold": u.label,
                "pred": vocab.labels[next(it)],
            }


def write_jsonl(path: str | Path, rows) -> None:
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
