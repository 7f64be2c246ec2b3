"""Pre-training on synthetic dialogues and fine-tuning on the real train split, as separate jobs.

- `Trainer.fit(phase, ...)` runs one phase with its own optimizer and schedule. After every epoch
  the whole state (weights, optimizer, schedule, RNG states, dev curve) goes to
  `<state_dir>/last.pt`, stamped with a fingerprint of the job's settings and inputs; a killed
  job resumes from its next epoch, and a state from other settings is discarded, never resumed.
- How a phase trains is its `Recipe` (`ercsynth.recipe`). A step holds `batch_size` utterances drawn
  from the whole split (CoMPM's and EmoBERTa's releases), whole dialogues packed up to `batch_size`
  utterances, or `batch_size` whole dialogues (TODKAT's release). Every utterance gets the same
  context and memory input whichever way it is drawn: the model reads it from its dialogue.
- A step's utterances ("rows") are sorted by length and cut into forward passes of at most
  `max_tokens_per_step` padded tokens, whose gradients add up before the one optimizer step:
  little padding, repeating shapes, and bounded memory for a 110-utterance dialogue at length 512.
- `predict` needs only a model: no optimizer, no trainer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ercsynth.dialogues import Dialogue, cap  # noqa: F401 - cap is part of this module's API
from ercsynth.labels import Vocabulary, vocabulary
from ercsynth.metrics import classification_metrics  # noqa: F401 - re-exported: metrics of a run
from ercsynth.models import ERCModel, ModelSettings, Row, all_rows, build_model
from ercsynth.recipe import Recipe, RecipeError

log = logging.getLogger(__name__)

# Utterance steps with group_by_length are cut from runs of this many steps' worth of shuffled
# utterances, each sorted by length (the "megabatch" of Hugging Face's length-grouped sampler).
LENGTH_GROUP_STEPS = 50


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def seeded_model(settings: ModelSettings, seed: int, knowledge_files=()) -> ERCModel:
    """The model with its new layers initialised from the seed."""
    set_seed(seed)
    return build_model(settings, knowledge_files)


def configure_device() -> torch.device:
    """The job's device, with the fast paths turned on for it."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # cuDNN's fused attention plans every new shape anew (measured: 2 ms of CPU per call on an
    # H200); flash / memory-efficient SDPA kernels do not.
    torch.backends.cuda.enable_cudnn_sdp(False)
    return torch.device("cuda")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), as torch reports it. Without it,
    bf16 is emulated and slower than fp32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def effective_precision(device: torch.device, precision: str) -> str:
    """The precision that runs: `auto` is bf16 on a CPU with native bf16 and fp32 ("no") on one without,
    bf16 on a GPU that has it; `no`, `bf16` and `fp16` mean themselves on either."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def autocast(device: torch.device, precision: str):
    """Mixed precision in `precision` (already effective: no, bf16 or fp16), on the GPU or the CPU."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


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


@dataclass(frozen=True)
class Step:
    """One optimisation step: the dialogues it reads and the rows it trains on (indices into them)."""

    dialogues: list[Dialogue]
    rows: list[Row]


def _whole(batch: list[Dialogue]) -> Step:
    return Step(batch, all_rows(batch))


def _utterance_step(data: list[Dialogue], picked: list[Row]) -> Step:
    """The picked (dialogue, utterance) pairs with their dialogues, each dialogue once."""
    local: dict[int, int] = {}
    for i, _ in picked:
        local.setdefault(i, len(local))
    return Step([data[i] for i in local], [(local[i], t) for i, t in picked])


def steps(
    data: list[Dialogue],
    recipe: Recipe,
    shuffle: bool,
    rng: random.Random | None = None,
    length=None,
) -> Iterator[Step]:
    """An epoch's steps under the recipe's batch unit and shuffling (`length(dialogue, t)` is the
    row's token count, needed for group_by_length)."""
    b = recipe.batch_size
    if recipe.batch_unit == "dialogues":
        order = list(range(len(data)))
        if shuffle:
            (rng or random).shuffle(order)
        for k in range(0, len(order), b):
            yield _whole([data[i] for i in order[k : k + b]])
        return
    if not recipe.utterance_steps:
        yield from map(_whole, batches(data, b, shuffle, rng))
        return
    rows = all_rows(data)
    if shuffle:
        (rng or random).shuffle(rows)
    chunks = [rows[k : k + b] for k in range(0, len(rows), b)]
    if shuffle and recipe.group_by_length and length is not None:
        span = b * LENGTH_GROUP_STEPS
        chunks = []
        for k in range(0, len(rows), span):
            run = sorted(rows[k : k + span], key=lambda r: length(data[r[0]], r[1]))
            chunks += [run[j : j + b] for j in range(0, len(run), b)]
        (rng or random).shuffle(chunks)  # neighbours in length share a step; the order of steps stays random
    for chunk in chunks:
        yield _utterance_step(data, chunk)


def steps_per_epoch(data: list[Dialogue], recipe: Recipe) -> int:
    return sum(1 for _ in steps(data, recipe, False))


def real_for_steps(real: list[Dialogue], target: int, recipe: Recipe, seed: int) -> list[Dialogue]:
    """The real_pretrained control's pre-training data: real dialogues in a seeded order (cycled when
    the split is short) whose epoch has `target` steps under `recipe`, the synthetic pre-training's
    count, so that both phases schedule the same optimisation steps. A dialogue that would overshoot
    is skipped for a shorter one; only when none fits is the count exceeded by the least possible."""
    order = list(real)
    random.Random(f"real_pretrained:{seed}").shuffle(order)
    chosen: list[Dialogue] = []
    count, misses, i = 0, 0, 0
    while count < target and order:
        candidate = order[i % len(order)]
        i += 1
        more = steps_per_epoch([*chosen, candidate], recipe)
        if more > target and misses < len(order):
            misses += 1
            continue
        chosen.append(candidate)
        count, misses = more, 0
    return chosen


def passes(model: ERCModel, batch: list[Dialogue], max_tokens: int, rows: list[Row] | None = None) -> list[list[Row]]:
    """The rows (all of the batch's by default) cut into forward passes of at most `max_tokens`
    padded tokens.

    Rows are sorted by length so each pass pads little. A model whose rows must stay together
    (TODKAT's dialogue transformer) gets whole dialogues per pass instead; a single row or
    dialogue over the budget still gets a pass of its own.
    """
    rows = all_rows(batch) if rows is None else rows
    if model.splittable:
        units = [[r] for r in sorted(rows, key=lambda r: model.row_length(batch[r[0]], r[1]))]
    else:
        units = [[(i, t) for t in range(len(d.utterances))] for i, d in enumerate(batch)]
        if sorted(rows) != all_rows(batch):
            raise RecipeError(
                f"training.recipes.{model.settings.classifier}: this classifier reads whole dialogues "
                "(its dialogue transformer needs every utterance): set 'shuffle: dialogues'"
            )
    out: list[list[Row]] = []
    current: list[Row] = []
    longest = 0
    for unit in units:
        width = max(model.padded_length(model.row_length(batch[i], t)) for i, t in unit)
        if current and max(longest, width) * (len(current) + len(unit)) > max_tokens:
            out.append(current)
            current, longest = [], 0
        current.extend(unit)
        longest = max(longest, width)
    if current:
        out.append(current)
    return out


@torch.no_grad()
def predict(model: ERCModel, data: list[Dialogue], max_tokens_per_step: int, precision: str = "no") -> list[int]:
    """Predicted class per utterance, in dialogue order. Without gradients, passes take twice the
    budget; whole dialogues are packed up to as many utterances as such a pass holds at full length."""
    device = model.device
    was_training, budget = model.training, model.pass_tokens
    model.eval()
    model.pass_tokens = max_tokens_per_step * 2
    per_batch = max(1, max_tokens_per_step * 2 // model.padded_length(model.max_length))
    preds: list[int] = []
    try:
        for batch in batches(data, per_batch, False):
            rows_done: list[Row] = []
            argmaxes = []
            for rows in passes(model, batch, max_tokens_per_step * 2):
                with autocast(device, precision):
                    logits, _ = model(batch, rows)
                rows_done.extend(rows)
                argmaxes.append(logits.argmax(-1))
            values = torch.cat(argmaxes).tolist()  # one transfer per batch
            by_row = dict(zip(rows_done, values, strict=True))
            preds.extend(by_row[r] for r in all_rows(batch))
    finally:
        model.train(was_training)
        model.pass_tokens = budget
    return preds


# --------------------------------------------------------------------------- metrics
def evaluate(model: ERCModel, data: list[Dialogue], vocab: Vocabulary, recipe: Recipe) -> tuple[dict, list[int]]:
    preds = predict(model, data, recipe.max_tokens_per_step, effective_precision(model.device, recipe.precision))
    gold = [vocab.index(u.label) for d in data for u in d.utterances]
    return classification_metrics(gold, preds, vocab.labels), preds


def assemble_metrics(test: dict, finetune: dict, pretrain: dict | None, identity: dict, data: dict) -> dict:
    """metrics.json: test scores, the run's identity, both phases' summaries and the data sizes."""
    return {
        **test,
        **identity,
        "epochs": finetune["epochs"],
        "pretrain_epochs": pretrain["epochs"] if pretrain else 0,
        "train_seconds": round(finetune["train_seconds"] + (pretrain["train_seconds"] if pretrain else 0.0), 2),
        "utterances_per_second": finetune["utterances_per_second"],
        "best_dev_weighted_f1": finetune["best_dev_weighted_f1"],
        "select_on": finetune["select_on"],
        "best_dev_score": finetune["best_dev_score"],
        "history": (pretrain["history"] if pretrain else []) + finetune["history"],
        "data": data,
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
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def run_fingerprint(settings: dict, inputs: list[str | Path]) -> str:
    """Identifies a job's settings and input files, so a resume never mixes two configurations."""
    files = []
    for p in sorted(map(str, inputs)):
        st = Path(p).stat()
        files.append((p, st.st_size, st.st_mtime_ns))
    blob = json.dumps({"settings": settings, "inputs": files}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the loop
def no_decay_names(model: torch.nn.Module) -> set[str]:
    """Parameters that the originals without decay on 'bias and LayerNorm' leave undecayed: every
    bias (any parameter named for one, a GRU's bias_ih_l0 too, as the releases' name match does), and
    the weights of normalisation layers (found by their type, not their name)."""
    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)
    names = set()
    for module_name, module in model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{name}" if module_name else name
            if "bias" in name or isinstance(module, norms):
                names.add(full)
    return names


def optimizer_groups(model: ERCModel, recipe: Recipe) -> list[dict]:
    """AdamW parameter groups: the encoder rate and the head rate (one group when head_lr is null),
    each split into decayed and undecayed parameters unless everything is decayed."""
    slow, fast = model.parameter_groups()
    rates = [(slow, recipe.lr), (fast, recipe.head_lr if recipe.head_lr is not None else recipe.lr)]
    names = set() if recipe.decay_bias_and_norm else no_decay_names(model)  # walked once, not per parameter
    exempt = {id(p) for n, p in model.named_parameters() if n in names}
    groups = []
    for params, lr in rates:
        decayed = [p for p in params if id(p) not in exempt]
        undecayed = [p for p in params if id(p) in exempt]
        groups.append({"params": decayed, "lr": lr, "weight_decay": recipe.weight_decay})
        groups.append({"params": undecayed, "lr": lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def linear_schedule(steps: int, warmup_ratio: float):
    """Linear warm-up over `warmup_ratio` of the steps (at least one), then linear decay to zero."""
    warm = max(1, int(steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (steps - step) / max(1, steps - warm))

    return factor


class Trainer:
    """One training phase at a time on one device, resumable after every epoch."""

    def __init__(
        self,
        model: ERCModel,
        recipe: Recipe,
        vocab: Vocabulary,
        seed: int,
        state_dir: str | Path,
        fingerprint: str = "",
    ) -> None:
        self.recipe = recipe
        self.vocab = vocab
        self.seed = seed
        self.state_dir = Path(state_dir)  # created by fit(), the only writer
        self.fingerprint = fingerprint
        self.device = configure_device()
        self.model = model.to(self.device)
        model.pass_tokens = recipe.max_tokens_per_step
        self.precision = effective_precision(self.device, recipe.precision)  # what runs, in metrics.json
        log.info("precision: %s (recipe: %s)", self.precision, recipe.precision)
        # fp16 needs loss scaling against underflowing gradients; bf16 has fp32's range.
        self.scaler = torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    @classmethod
    def for_job(
        cls,
        phase: str,
        run_dir: str | Path,
        benchmark: str,
        classifier: str,
        seed: int,
        params: dict,
        inputs: list[str],
        knowledge_files=(),
    ) -> Trainer:
        """The trainer of one workflow job: the seeded model from the rule's `model` and `recipe`
        params, its resume state under `<run_dir>/checkpoint/<phase>`, stamped with all the params
        and the job's input files."""
        recipe = Recipe.from_params(params["recipe"])
        if (recipe.classifier, recipe.benchmark, recipe.phase) != (classifier, benchmark, phase):
            raise ValueError(
                f"the {phase} job of {classifier} on {benchmark} got the recipe of {recipe.classifier} "
                f"on {recipe.benchmark} ({recipe.phase})"
            )
        vocab = vocabulary(benchmark, params["model"].get("labels"))
        model = seeded_model(ModelSettings.from_config(params["model"], recipe, len(vocab)), seed, knowledge_files)
        return cls(model, recipe, vocab, seed, Path(run_dir) / "checkpoint" / phase, run_fingerprint(params, inputs))

    def _optimizer(self, steps: int):
        opt = torch.optim.AdamW(
            optimizer_groups(self.model, self.recipe), eps=self.recipe.adam_eps, fused=self.device.type == "cuda"
        )
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(steps, self.recipe.warmup_ratio))

    def step(self, step: Step, opt, sched) -> tuple[torch.Tensor, int]:
        """One optimizer step: forward/backward per pass over the step's rows, gradients summed."""
        batch = step.dialogues
        rows_total = len(step.rows)
        gold_of = {(i, t): self.vocab.index(batch[i].utterances[t].label) for i, t in step.rows}
        total = torch.zeros((), device=self.device)
        for rows in passes(self.model, batch, self.recipe.max_tokens_per_step, step.rows):
            gold = torch.tensor([gold_of[r] for r in rows]).to(self.device, non_blocking=True)
            with autocast(self.device, self.precision):
                logits, aux = self.model(batch, rows)
                ce = torch.nn.functional.cross_entropy(logits.float(), gold, reduction="sum")
                loss = (ce + aux * len(rows)) / rows_total
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            total += loss.detach()
        if self.scaler:
            self.scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.max_grad_norm)
        if self.scaler:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return total, rows_total

    def _epoch(self, data: list[Dialogue], opt, sched, rng: random.Random, desc: str) -> tuple[float, int, float]:
        self.model.train()
        bar = tqdm(
            steps(data, self.recipe, True, rng, self.model.row_length),
            total=steps_per_epoch(data, self.recipe),
            desc=desc,
            unit="step",
            file=sys.stderr,
            mininterval=10,
            ncols=100,
        )
        start = time.perf_counter()
        loss_sum = torch.zeros((), device=self.device)
        seen = 0
        for k, step in enumerate(bar):
            loss, n = self.step(step, opt, sched)
            loss_sum += loss * n
            seen += n
            if k % 20 == 0:  # reading the loss waits for the device: not every step
                bar.set_postfix(
                    loss=f"{float(loss_sum) / max(seen, 1):.3f}", utt_s=f"{seen / (time.perf_counter() - start):.1f}"
                )
        mean_loss = float(loss_sum) / max(seen, 1)  # also waits for the last step to finish
        return mean_loss, seen, time.perf_counter() - start

    # ------------------------------------------------------------------ state
    def _load_state(self) -> dict | None:
        path = self.state_dir / "last.pt"
        if not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a torn checkpoint: start over rather than fail forever
            log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
            return None
        if state.get("fingerprint") != self.fingerprint:
            log.warning("checkpoint %s was written for other settings or inputs: starting over", path)
            return None
        return state

    def _fits(self, state: dict, opt) -> bool:
        """Whether a saved state matches this model and optimizer (the fingerprint covers settings and
        inputs, not the code: an edit between a kill and the resume may regroup the parameters)."""
        saved = [len(g["params"]) for g in state["optimizer"]["param_groups"]]
        return set(state["model"]) == set(self.model.state_dict()) and saved == [
            len(g["params"]) for g in opt.param_groups
        ]

    def _save_state(self, state: dict) -> None:
        tmp = self.state_dir / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.state_dir / "last.pt")

    @staticmethod
    def _rng_state() -> dict:
        return {
            "python": random.getstate(),
            "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    @staticmethod
    def _restore_rng(state: dict) -> None:
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def fit(self, phase: str, data: list[Dialogue], epochs: int, dev: list[Dialogue] | None = None) -> dict:
        """Train `epochs` epochs (resuming if a matching state exists). With `dev`, keep the best epoch."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        history: list[dict] = []
        best, seen, seconds = -1.0, 0, 0.0
        if not data or epochs == 0:
            return self._summary(history, best, seen, seconds)
        opt, sched = self._optimizer(epochs * steps_per_epoch(data, self.recipe))
        first = 1
        state = self._load_state()
        if state and not self._fits(state, opt):
            log.warning(
                "checkpoint in %s was written by other code (model or optimizer groups differ): starting over",
                self.state_dir,
            )
            state = None
        if state:
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            self._restore_rng(state["rng"])
            history, best = state["history"], state["best"]
            seen, seconds = state["utterances_seen"], state["train_seconds"]
            first = state["epoch"] + 1
            log.info("resuming %s from epoch %d (its last complete epoch)", phase, state["epoch"])
        for epoch in range(first, epochs + 1):
            rng = random.Random(self.seed * 1000 + epoch + (500 if phase == "pretrain" else 0))
            loss, n, wall = self._epoch(data, opt, sched, rng, f"{phase} {epoch}/{epochs}")
            seen, seconds = seen + n, seconds + wall
            entry = {"phase": phase, "epoch": epoch, "loss": loss, "utterances_per_second": round(n / wall, 2)}
            if dev is not None:
                metrics, _ = evaluate(self.model, dev, self.vocab, self.recipe)
                entry["dev_weighted_f1"] = metrics["weighted_f1"]
                entry["dev_accuracy"] = metrics["accuracy"]
                if metrics[self.recipe.select_on] > best:  # the recipe's selection metric picks the epoch
                    best = metrics[self.recipe.select_on]
                    torch.save(self.model.state_dict(), self.state_dir / "best.pt")
            history.append(entry)
            log.info("%s", json.dumps(entry))
            self._save_state(
                {
                    "fingerprint": self.fingerprint,
                    "epoch": epoch,
                    "model": self.model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "rng": self._rng_state(),
                    "history": history,
                    "best": best,
                    "utterances_seen": seen,
                    "train_seconds": seconds,
                }
            )
        kept = self.state_dir / "best.pt"
        if dev is not None and kept.exists():
            self.model.load_state_dict(torch.load(kept, map_location="cpu", weights_only=True))
        return self._summary(history, best, seen, seconds)

    def discard_state(self) -> None:
        """The phase is complete: its resume state (and an emptied checkpoint folder) goes."""
        shutil.rmtree(self.state_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.state_dir.parent.rmdir()  # only if no other phase's state is left there

    def _summary(self, history: list[dict], best: float, seen: int, seconds: float) -> dict:
        kept = [h for h in history if h.get(f"dev_{self.recipe.select_on}") == best]
        return {
            "history": history,
            "select_on": self.recipe.select_on,
            "best_dev_score": best,
            "best_dev_weighted_f1": kept[0]["dev_weighted_f1"] if kept else -1.0,
            "epochs": len(history),
            "train_seconds": seconds,
            "utterances_per_second": seen / seconds if seconds else 0.0,
        }
