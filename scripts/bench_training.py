"""Training throughput of each classifier: dialogues packed into batches (the workflow's way)
against one dialogue per optimisation step, same model, data and number of utterances.

    python scripts/bench_training.py [--benchmarks-dir ../shared/benchmarks] [--dialogues 24]
        [--batch-utterances 32] [--max-length 64] [--encoder minilm] [--models compm emoberta todkat]

Prints utterances/s for both modes and the speed-up, per model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ercsynth.benchmarks import load_split  # noqa: E402
from ercsynth.training import TrainConfig, Trainer, batches, label_tensor  # noqa: E402


def throughput(trainer: Trainer, data, batch_utterances: int) -> float:
    model, opt = trainer.model, torch.optim.AdamW(trainer.model.parameters(), lr=1e-5)
    model.train()
    seen, start = 0, time.perf_counter()
    for batch in batches(data, batch_utterances, shuffle=False):
        logits, aux = model(batch)
        loss = torch.nn.functional.cross_entropy(logits, label_tensor(batch, trainer.vocab, logits.device)) + aux
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seen += logits.shape[0]
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
    data = load_split(args.benchmarks_dir, args.benchmark, "train")[: args.dialogues]
    n = sum(len(d.utterances) for d in data)
    print(
        f"{args.benchmark} train, first {len(data)} dialogues ({n} utterances), encoder {args.encoder}, "
        f"max length {args.max_length}, {args.threads} threads"
    )
    print(f"{'model':9s} {'batched utt/s':>14s} {'1 dialogue/step':>16s} {'speed-up':>9s}")
    for name in args.models:
        cfg = TrainConfig(
            classifier=name,
            benchmark=args.benchmark,
            seed=1,
            encoder=args.encoder,
            max_length=args.max_length,
            batch_utterances=args.batch_utterances,
        )
        trainer = Trainer(cfg, Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_training_{name}")
        # Warm-up over all the data: tokenization and TODKAT's knowledge vectors are cached per
        # text, so neither timed mode may pay them for the other.
        with torch.no_grad():
            for batch in batches(data, args.batch_utterances, shuffle=False):
                trainer.model(batch)
        batched = throughput(trainer, data, args.batch_utterances)
        single = throughput(trainer, data, 1)  # a batch never splits a dialogue: one dialogue per step
        print(f"{name:9s} {batched:14.1f} {single:16.1f} {batched / single:8.2f}x")


if __name__ == "__main__":
    main()
