"""Calibrate a laptop recipe: train one baseline (real data only) with the given settings through the
workflow's own trainer, and print its test weighted F1 beside the majority-class floor, and the time.

    python scripts/calibrate_baseline.py --benchmark MELD --classifier emoberta --train 100 \
        --epochs 1 --batch-utterances 8 --lr 1e-4 [--dev 16] [--test 48] [--threads 1]

Settings not given here come from config.yaml. The caps pick the same seeded subsets as the workflow
(`ercsynth.dialogues.cap`). One line of output per run, so a loop of runs prints a table.
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
from ercsynth.dialogues import cap  # noqa: E402
from ercsynth.labels import Vocabulary  # noqa: E402
from ercsynth.metrics import majority_floor  # noqa: E402
from ercsynth.models import ModelSettings  # noqa: E402
from ercsynth.recipe import resolve  # noqa: E402
from ercsynth.training import Trainer, evaluate, seeded_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--benchmarks-dir", default=os.environ.get("ERCSYNTH_BENCHMARKS", str(REPO / "resources" / "benchmarks"))
    )
    ap.add_argument("--benchmark", default="MELD")
    ap.add_argument("--classifier", default="emoberta")
    ap.add_argument("--train", type=int, default=None, help="training dialogues (default: config.yaml's cap)")
    ap.add_argument("--dev", type=int, default=None)
    ap.add_argument("--test", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--head-lr", type=float, default=None)
    ap.add_argument("--warmup-ratio", type=float, default=None)
    ap.add_argument("--max-length", type=int, default=None)
    ap.add_argument("--pooling", default=None, choices=["auto", "first", "mean"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    training = load_config(REPO / "config.yaml")["training"]
    given = {
        "batch_size": args.batch_size,
        "lr": args.lr,
        "head_lr": args.head_lr,
        "warmup_ratio": args.warmup_ratio,
        "max_length": args.max_length,
        "epochs": args.epochs,
    }
    training["recipe"] |= {k: v for k, v in given.items() if v is not None}
    training["pooling"] = args.pooling or training["pooling"]
    recipe = resolve(training, args.classifier, args.benchmark)
    caps = training["max_dialogues"] | {
        k: v for k, v in {"train": args.train, "dev": args.dev, "test": args.test}.items() if v is not None
    }
    splits = {s: cap(load_split(args.benchmarks_dir, args.benchmark, s), caps[s]) for s in ("train", "dev", "test")}
    vocab = Vocabulary.of(args.benchmark)
    start = time.perf_counter()
    model = seeded_model(ModelSettings.from_config(training, recipe, len(vocab)), args.seed)
    with tempfile.TemporaryDirectory() as state:
        trainer = Trainer(model, recipe, vocab, args.seed, state)
        summary = trainer.fit("finetune", splits["train"], recipe.epochs, splits["dev"])
        test, _ = evaluate(trainer.model, splits["test"], vocab, recipe)
    seconds = time.perf_counter() - start
    floor = majority_floor(splits["train"], splits["test"], vocab.labels)
    curve = " ".join(f"{100 * h['dev_weighted_f1']:.1f}" for h in summary["history"])
    sizes = "/".join(str(sum(len(d.utterances) for d in splits[s])) for s in ("train", "dev", "test"))
    print(
        f"{args.benchmark} {args.classifier} train {caps['train']} epochs {recipe.epochs} "
        f"batch {recipe.batch_size} lr {recipe.lr:g}/{recipe.head_lr or recipe.lr:g} "
        f"len {recipe.max_length} pool {training['pooling']} | utterances {sizes} | test wF1 {100 * test['weighted_f1']:.2f} "
        f"floor {100 * floor:.2f} (+{100 * (test['weighted_f1'] - floor):.2f}) | dev {curve} | {seconds:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
