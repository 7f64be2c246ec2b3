"""Training throughput of each classifier on this machine, through the trainer's own step (passes,
gradient accumulation, clipping, AdamW), same model, data and utterances, in three step shapes:
whole dialogues packed up to --batch-size utterances (config.yaml's default), one dialogue a step,
and --batch-size utterances drawn from the whole split (the CoMPM and EmoBERTa releases' shape;
TODKAT reads whole dialogues only, so it has no such column). Each precision (--precisions, fp32
is "no") is measured in turn, and each shape's rate is set beside a bare encoder step (forward,
backward, AdamW, nothing else) on the same utterances in the same precision: the ratio is what the
classifier's own machinery costs.

    python scripts/bench_training.py [--benchmarks-dir DIR] [--dialogues 24] [--precisions no bf16]
        [--batch-size 32] [--max-length 64] [--encoder minilm] [--models compm emoberta todkat]

Settings not given here come from config.yaml. Prints utterances/s per shape and precision.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ercsynth.benchmarks import load_split  # noqa: E402
from ercsynth.config import load_config  # noqa: E402
from ercsynth.labels import Vocabulary  # noqa: E402
from ercsynth.models import ModelSettings  # noqa: E402
from ercsynth.recipe import resolve  # noqa: E402
from ercsynth.training import Trainer, autocast, cpu_has_native_bf16, seeded_model, steps  # noqa: E402


def throughput(trainer: Trainer, data, **shape) -> float:
    recipe = trainer.recipe = replace(trainer.recipe, **shape)
    opt, sched = trainer._optimizer(1000)
    trainer.model.train()
    seen, start = 0, time.perf_counter()
    for step in steps(data, recipe, True, random.Random(1)):
        loss, n = trainer.step(step, opt, sched)
        seen += n
    float(loss)  # wait for the device
    return seen / (time.perf_counter() - start)


def bare_encoder(model, data, batch_size: int, precision: str) -> float:
    """Utterances/s of the plain encoder trained on the same utterances, batch_size at a time."""
    encoder = model.encoder
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-5)
    seqs = [model.tokens(u.text)[: model.max_length] or [model.pad_id] for d in data for u in d.utterances]
    seen, start = 0, time.perf_counter()
    for i in range(0, len(seqs), batch_size):
        ids, mask = model.pad(seqs[i : i + batch_size])
        with autocast(model.device, precision):
            hidden = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden.float().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seen += len(ids)
    return seen / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--benchmarks-dir", default=os.environ.get("ERCSYNTH_BENCHMARKS", str(REPO / "resources" / "benchmarks"))
    )
    ap.add_argument("--benchmark", default="MELD")
    ap.add_argument("--dialogues", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--models", nargs="+", default=["compm", "emoberta", "todkat"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--precisions", nargs="+", default=["no", "bf16"], choices=["no", "bf16", "fp16"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    training = load_config(REPO / "config.yaml")["training"]
    training["encoder"] = args.encoder
    training["recipe"] |= {"max_length": args.max_length, "batch_size": args.batch_size}
    data = load_split(args.benchmarks_dir, args.benchmark, "train")[: args.dialogues]
    vocab = Vocabulary.of(args.benchmark)
    n = sum(len(d.utterances) for d in data)
    print(
        f"{args.benchmark} train, first {len(data)} dialogues ({n} utterances), encoder {args.encoder}, "
        f"max length {args.max_length}, {args.threads} threads, native bf16: {cpu_has_native_bf16()}"
    )
    b = args.batch_size
    print(
        f"utterances/s: {'model':9s} {'precision':9s} {f'packed {b}':>10s} {'1 dialogue':>11s} {f'{b} drawn':>9s}"
        f" {'bare encoder':>12s}  (ratio packed / bare)"
    )
    for name in args.models:
        recipe = resolve(training, name, args.benchmark)
        for precision in args.precisions:
            row = measure(training, recipe, vocab, data, name, precision, b)
            shown = " ".join(f"{v:10.1f}" if v is not None else f"{'-':>10s}" for v in row)
            print(
                f"              {name:9s} {'fp32' if precision == 'no' else precision:9s} {shown}  ({row[0] / row[3]:.2f})"
            )


def measure(training, recipe, vocab, data, name: str, precision: str, b: int) -> list[float | None]:
    """packed, one dialogue, drawn (None for TODKAT) and bare-encoder utterances/s in one precision."""
    model = seeded_model(ModelSettings.from_config(training, recipe, len(vocab)), seed=1)
    with tempfile.TemporaryDirectory() as state:
        trainer = Trainer(model, replace(recipe, precision=precision), vocab, 1, state)
        # Warm-up over all the data: tokenization is cached per text, so no timed shape pays it.
        with torch.no_grad():
            for d in data:
                model([d])
        packed = throughput(trainer, data, batch_unit="utterances", shuffle="dialogues")
        single = throughput(trainer, data, batch_size=1, batch_unit="dialogues", shuffle="dialogues")
        drawn = throughput(trainer, data, batch_unit="utterances", shuffle="utterances") if model.splittable else None
    return [packed, single, drawn, bare_encoder(model, data, b, precision)]


if __name__ == "__main__":
    main()
