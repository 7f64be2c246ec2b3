"""Training throughput of each classifier on this machine: dialogues packed into steps (the
workflow's way) against one dialogue per optimisation step, same model, data and utterances,
through the trainer's own step (passes, gradient accumulation, clipping, AdamW).

    python scripts/bench_training.py [--benchmarks-dir ../shared/benchmarks] [--dialogues 24]
        [--batch-utterances 32] [--max-length 64] [--encoder minilm] [--models compm emoberta todkat]

Settings not given here come from config.yaml. Prints utterances/s for both modes and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ercsynth.benchmarks import load_split  # noqa: E402
from ercsynth.config import load_config  # noqa: E402
from ercsynth.labels import Vocabulary  # noqa: E402
from ercsynth.models import ModelSettings  # noqa: E402
from ercsynth.training import OptimSettings, Trainer, batches, seeded_model  # noqa: E402


def throughput(trainer: Trainer, data, batch_utterances: int) -> float:
    opt, sched = trainer._optimizer(1000)
    trainer.model.train()
    seen, start = 0, time.perf_counter()
    for batch in batches(data, batch_utterances, shuffle=False):
        loss, n = trainer.step(batch, opt, sched)
        seen += n
    float(loss)  # wait for the device
    return seen / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks-dir", default=str(REPO.parent / "shared" / "benchmarks"))
    ap.add_argument("--benchmark", default="MELD")
    ap.add_argument("--dialogues", type=int, default=24)
    ap.add_argument("--batch-utterances", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--encoder", default="minilm")
    ap.add_argument("--models", nargs="+", default=["compm", "emoberta", "todkat"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    training = load_config(REPO / "config.yaml")["training"]
    training |= {"encoder": args.encoder, "max_length": args.max_length, "batch_utterances": args.batch_utterances}
    data = load_split(args.benchmarks_dir, args.benchmark, "train")[: args.dialogues]
    vocab = Vocabulary.of(args.benchmark)
    n = sum(len(d.utterances) for d in data)
    print(
        f"{args.benchmark} train, first {len(data)} dialogues ({n} utterances), encoder {args.encoder}, "
        f"max length {args.max_length}, {args.threads} threads"
    )
    print(f"{'model':9s} {'batched utt/s':>14s} {'1 dialogue/step':>16s} {'speed-up':>9s}")
    for name in args.models:
        model = seeded_model(ModelSettings.from_config(training, name, len(vocab)), seed=1)
        with tempfile.TemporaryDirectory() as state:
            trainer = Trainer(model, OptimSettings.from_config(training), vocab, 1, state)
            # Warm-up over all the data: tokenization is cached per text, so neither timed mode pays it.
            with torch.no_grad():
                for batch in batches(data, args.batch_utterances, shuffle=False):
                    model(batch)
            batched = throughput(trainer, data, args.batch_utterances)
            single = throughput(trainer, data, 1)  # a batch never splits a dialogue: one dialogue per step
        print(f"{name:9s} {batched:14.1f} {single:16.1f} {batched / single:8.2f}x")


if __name__ == "__main__":
    main()
