"""Is our batched CPU recipe a valid substitute for each classifier's original one? Both train the
three baselines on MELD through the workflow itself, and this prints test weighted F1 (mean +- sd
over the seeds) and the time per run.

    python scripts/compare_recipes.py [--benchmarks-dir DIR] [--train 300]
        [--seeds 1 2] [--epochs 2] [--cores 2] [--workdir results/recipe-comparison] [--table-only]

- `original`: each classifier's recipe from configs/paper.yaml (batch, what is shuffled, schedule,
  learning rate, Adam eps, weight decay, clipping, selection metric), at config.yaml's encoder and
  input length, for --epochs epochs;
- `batched`: config.yaml's recipe (whole dialogues packed up to 4 utterances, 1e-4 / 1e-3).

Each recipe is one Snakemake run in its own folder under --workdir (`<recipe>/config.yaml` is its
overlay), so finished runs survive an interruption: running the script again resumes. The verdict
column says `equivalent` where the batched mean lies within the original's sd + 0.5 points.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ercsynth.config import load_config  # noqa: E402
from ercsynth.design import CLASSIFIERS  # noqa: E402

RECIPES = ("original", "batched")
MARGIN = 0.5  # points of weighted F1 allowed beyond the original's sd


def overlays(args) -> dict[str, dict]:
    """The config overlay of each recipe."""
    common = {
        "benchmarks": ["MELD"],
        "add_iemocap_if_present": False,
        "benchmarks_dir": str(Path(args.benchmarks_dir).resolve()),
        "classifiers": list(CLASSIFIERS),
        "seeds": list(args.seeds),
        "distributions": [],  # baselines only: the recipes are compared on real data
        "training": {
            "recipe": {"epochs": args.epochs},
            "max_dialogues": {"train": args.train, "dev": None, "test": None, "synthetic": None},
        },
    }
    paper = load_config(REPO / "config.yaml", REPO / "configs" / "paper.yaml")["training"]["recipes"]
    original = copy.deepcopy(common)
    original["training"]["recipes"] = {}
    for name in CLASSIFIERS:
        own = copy.deepcopy(paper[name])
        # The comparison is about optimisation: the CPU encoder's input length, fp32, the same epochs.
        for key in ("max_length", "precision", "per_benchmark"):
            own.pop(key, None)
        original["training"]["recipes"][name] = own | {"epochs": args.epochs}
    return {"original": original, "batched": common}


def run(args, name: str, overlay: dict) -> None:
    folder = Path(args.workdir) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False), encoding="utf-8")
    targets = [f"results/models/MELD/{c}/baseline/seed{s}/metrics.json" for c in CLASSIFIERS for s in args.seeds]
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(folder), *targets]
    cmd += [
        "--cores",
        str(args.cores),
        "--keep-going",
        "--configfile",
        str(folder / "config.yaml"),
    ]  # it takes all words after it
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    if subprocess.run(cmd, check=False).returncode:  # the other recipe's runs still go ahead
        print(f"== {name}: some jobs failed (their logs: {folder}/results/logs/)", flush=True)


def job_seconds(folder: Path, classifier: str, seed: int) -> float:
    """The fine-tuning job's wall time, from Snakemake's benchmark file."""
    path = folder / "results" / "timing" / "finetune" / f"MELD_{classifier}_baseline_seed{seed}.tsv"
    with path.open() as fh:
        return float(next(csv.DictReader(fh, delimiter="\t"))["s"])


def table(args) -> list[str]:
    lines = [
        "| classifier | recipe | test weighted F1 (mean ± sd) | runs | minutes per run | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in CLASSIFIERS:
        scores: dict[str, list[float]] = {}
        for name in RECIPES:
            folder = Path(args.workdir) / name
            runs = []
            for s in args.seeds:
                path = folder / f"results/models/MELD/{c}/baseline/seed{s}/metrics.json"
                if path.exists():
                    runs.append((100 * json.loads(path.read_text())["weighted_f1"], job_seconds(folder, c, s)))
            scores[name] = [f for f, _ in runs]
            if not runs:
                lines.append(f"| {c} | {name} | (not run) | 0 | | |")
                continue
            mean = statistics.fmean(scores[name])
            sd = f"{statistics.stdev(scores[name]):.2f}" if len(runs) > 1 else "-"
            minutes = statistics.fmean(t for _, t in runs) / 60
            verdict = ""
            orig = scores.get("original", [])
            if name == "batched" and len(orig) < 2:
                verdict = "needs 2 original runs"  # no standard deviation to compare against yet
            elif name == "batched":
                gap = abs(mean - statistics.fmean(orig))
                verdict = (
                    f"{'equivalent' if gap <= statistics.stdev(orig) + MARGIN else 'not equivalent'} (gap {gap:.2f})"
                )
            lines.append(f"| {c} | {name} | {mean:.2f} ± {sd} | {len(runs)} | {minutes:.1f} | {verdict} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--benchmarks-dir", default=os.environ.get("ERCSYNTH_BENCHMARKS", str(REPO / "resources" / "benchmarks"))
    )
    ap.add_argument("--train", type=int, default=300, help="MELD training dialogues (dev and test: all)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", default=str(REPO / "results" / "recipe-comparison"))
    ap.add_argument("--table-only", action="store_true", help="print the table of the runs that finished")
    args = ap.parse_args()
    if not args.table_only:
        for name, overlay in overlays(args).items():
            run(args, name, overlay)
    print(f"MELD, {args.train} training dialogues, full dev and test, {args.epochs} epochs, seeds {args.seeds}")
    print("\n".join(table(args)))


if __name__ == "__main__":
    main()
