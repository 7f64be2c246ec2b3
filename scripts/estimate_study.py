"""Estimate how long a bigger design takes, from the job times of a finished run on this machine.

    python scripts/estimate_study.py RUN_DIR [--configfile configs/laptop-study.yaml] [--cores 8]

RUN_DIR is a finished run of the default config (scripts/time_default_run.sh leaves one, with the
config.yaml it ran); its `results/timing/` records give each job's wall time. The extrapolation is linear in the work:

- fine-tuning: seconds per utterance pass (training utterances x epochs, plus dev x epochs and
  test, counted alike, which overstates evaluation), per benchmark and classifier;
- pre-training and prediction: seconds per synthetic utterance, per benchmark and classifier;
  the study's synthetic sets are assumed as valid as the run's (utterances scale with attempts);
- generation: seconds per attempt, times the job's threads.

It prints the core-seconds per rule and the wall time on `--cores` cores if they stay busy
(Snakemake runs one-thread training jobs side by side), which a laptop's scheduling, thermal limits
and slower or faster cores will move: a number to plan with, not a promise.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ercsynth.config import load_config  # noqa: E402
from ercsynth.dialogues import cap, read_dialogues  # noqa: E402
from ercsynth.recipe import resolve  # noqa: E402

GENERATION_THREADS = 2  # the generate rule's threads


def utterances(path: Path, limit: int | None) -> int:
    return sum(len(d.utterances) for d in cap(read_dialogues(path), limit))


def seconds(record: Path) -> float:
    return float(pd.read_csv(record, sep="\t")["s"].iloc[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished default run (the folder that holds results/)")
    ap.add_argument("--configfile", type=Path, default=REPO / "configs" / "laptop-study.yaml")
    ap.add_argument("--cores", type=int, default=8)
    args = ap.parse_args()
    results = args.run / "results"
    timing = results / "timing"
    # The run's own defaults (a clone made by time_default_run.sh holds its config.yaml), else ours.
    run_cfg = load_config(args.run / "config.yaml" if (args.run / "config.yaml").exists() else REPO / "config.yaml")
    study = load_config(REPO / "config.yaml", args.configfile)
    run_caps, study_caps = run_cfg["training"]["max_dialogues"], study["training"]["max_dialogues"]

    def passes(bench: str, caps: dict, epochs: int) -> int:
        real = {s: utterances(results / "benchmarks" / bench / f"{s}.jsonl", caps[s]) for s in ("train", "dev", "test")}
        return (real["train"] + real["dev"]) * epochs + real["test"]

    # Rates measured on the run.
    finetune_rate: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in (timing / "finetune").glob("*.tsv"):
        bench, clf = record.stem.split("_")[:2]
        epochs = resolve(run_cfg["training"], clf, bench).epochs
        finetune_rate[(bench, clf)].append(seconds(record) / passes(bench, run_caps, epochs))
    synthetic_utts = {
        (p.parts[-3], p.parts[-2]): utterances(p, None) for p in results.glob("generated/*/*/dialogues.jsonl")
    }
    attempts_run = run_cfg["generation"]["dialogues"]
    per_utterance: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for rule in ("pretrain", "predict_synthetic"):
        for record in (timing / rule).glob("*.tsv"):
            parts = record.stem.split("_")
            bench, clf, dist = (parts[0], parts[1], parts[2]) if rule == "pretrain" else (parts[0], parts[2], parts[1])
            per_utterance[(rule, bench, clf)].append(seconds(record) / synthetic_utts[(bench, dist)])
    generation = [seconds(r) * GENERATION_THREADS for r in (timing / "generate").glob("*.tsv")]
    per_attempt = sum(generation) / (attempts_run * len(synthetic_utts))

    def mean(values: list[float]) -> float:
        return sum(values) / len(values)

    # The study's work.
    seeds, classifiers = len(study["seeds"]), study["classifiers"]
    by_benchmark = study.get("distributions_by_benchmark") or {}
    core_s: dict[str, float] = defaultdict(float)
    scale = study["generation"]["dialogues"] / attempts_run
    for bench in study["benchmarks"]:
        keep = by_benchmark.get(bench)
        dists = [d for d in study["distributions"] if keep is None or d in keep]
        for clf in classifiers:
            work = passes(bench, study_caps, resolve(study["training"], clf, bench).epochs)
            core_s["finetune"] += mean(finetune_rate[(bench, clf)]) * work * (1 + len(dists)) * seeds
            for dist in dists:
                synthetic = synthetic_utts.get((bench, dist)) or mean(
                    [n for (b, _), n in synthetic_utts.items() if b == bench]
                )
                core_s["pretrain"] += mean(per_utterance[("pretrain", bench, clf)]) * synthetic * scale * seeds
                core_s["predict_synthetic"] += (
                    mean(per_utterance[("predict_synthetic", bench, clf)]) * synthetic * scale
                )
        core_s["generate"] += per_attempt * study["generation"]["dialogues"] * len(dists)
    total = sum(core_s.values())
    print(f"measured on {args.run} (its results/timing/), extrapolated to {args.configfile.name}:")
    for rule, value in sorted(core_s.items(), key=lambda x: -x[1]):
        print(f"  {rule:18s} {value / 3600:6.1f} core-hours")
    print(
        f"  {'total':18s} {total / 3600:6.1f} core-hours = {total / 3600 / args.cores:.1f} h on {args.cores} busy cores"
    )


if __name__ == "__main__":
    main()
