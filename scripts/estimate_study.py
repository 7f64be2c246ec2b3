"""Estimate how long a bigger design takes, from the job times of a finished run on this machine.

    python scripts/estimate_study.py RUN_DIR [--configfile configs/laptop-study.yaml] [--cores 8]

RUN_DIR is a finished run of the default config (scripts/time_default_run.sh leaves one, with the
config.yaml it ran); its `results/timing/` records give each job's wall time. The extrapolation is linear in the work:

- fine-tuning: seconds per utterance pass (training utterances x epochs, plus dev x epochs and
  test, counted alike, which overstates evaluation), per benchmark and classifier; a real fraction
  scales the training utterances;
- pre-training and prediction: seconds per synthetic utterance, per benchmark and classifier;
  the study's synthetic sets are assumed as valid as the run's (utterances scale with attempts,
  or with the synthetic size in dialogues);
- generation: seconds per attempt, times the job's threads.

The study's design axes (generators, synthetic_sizes, real_fractions) multiply the jobs as the
workflow does (ercsynth.design.runs); every generator is assumed as fast as the run's.

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
from ercsynth.design import Run, generator_blocks, runs  # noqa: E402
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

    def passes(bench: str, caps: dict, epochs: int, fraction: float = 1.0) -> float:
        real = {s: utterances(results / "benchmarks" / bench / f"{s}.jsonl", caps[s]) for s in ("train", "dev", "test")}
        return (real["train"] * fraction + real["dev"]) * epochs + real["test"]

    # Rates measured on the run.
    finetune_rate: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in (timing / "finetune").glob("*.tsv"):
        bench, clf = record.stem.split("_")[:2]
        epochs = resolve(run_cfg["training"], clf, bench).epochs
        finetune_rate[(bench, clf)].append(seconds(record) / passes(bench, run_caps, epochs))
    synthetic_utts = {
        (p.parts[-3], p.parts[-2]): utterances(p, None) for p in results.glob("generated/*/*/dialogues.jsonl")
    }
    accepted = {
        (p.parts[-3], p.parts[-2]): len(read_dialogues(p)) for p in results.glob("generated/*/*/dialogues.jsonl")
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

    blocks = generator_blocks(study)

    def synthetic(bench: str, run: Run) -> float:
        """Synthetic utterances a run pre-trains on: the size in dialogues times the run's utterances
        per accepted dialogue, or (all) the run's yield per attempt times the generator's attempts. A
        distribution the run lacks gets the mean of the benchmark's others."""
        known = [k for k in synthetic_utts if k[0] == bench]
        keys = [(bench, run.distribution)] if (bench, run.distribution) in synthetic_utts else known
        utts, dialogues = mean([synthetic_utts[k] for k in keys]), mean([accepted[k] for k in keys])
        if run.size is not None:
            return run.size * utts / dialogues
        return utts * blocks[run.generator]["dialogues"] / attempts_run

    # The study's work, cell by cell of its design (ercsynth.design.runs: every generator, size and
    # real fraction), each generator assumed as fast and as valid as the run's.
    seeds, classifiers = len(study["seeds"]), study["classifiers"]
    by_benchmark = study.get("distributions_by_benchmark") or {}
    core_s: dict[str, float] = defaultdict(float)
    for bench in study["benchmarks"]:
        keep = by_benchmark.get(bench)
        dists = [d for d in study["distributions"] if keep is None or d in keep]
        cells = runs(study, dists)
        for clf in classifiers:
            epochs = resolve(study["training"], clf, bench).epochs
            rate = mean(finetune_rate[(bench, clf)])
            core_s["finetune"] += sum(rate * passes(bench, study_caps, epochs, r.fraction) for r in cells) * seeds
            pretrained = {r.pretrained: r for r in cells if not r.baseline}
            core_s["pretrain"] += (
                sum(mean(per_utterance[("pretrain", bench, clf)]) * synthetic(bench, r) for r in pretrained.values())
                * seeds
            )
            datasets = {r.dataset: Run(r.distribution, r.generator) for r in pretrained.values()}
            core_s["predict_synthetic"] += (
                sum(
                    mean(per_utterance[("predict_synthetic", bench, clf)]) * synthetic(bench, r)
                    for r in datasets.values()
                )
                * seeds
            )
        core_s["generate"] += sum(per_attempt * blocks[g]["dialogues"] for g in blocks) * len(dists)
    total = sum(core_s.values())
    print(f"measured on {args.run} (its results/timing/), extrapolated to {args.configfile.name}:")
    for rule, value in sorted(core_s.items(), key=lambda x: -x[1]):
        print(f"  {rule:18s} {value / 3600:6.1f} core-hours")
    wall_h = total / 3600 / args.cores
    print(
        f"  {'total':18s} {total / 3600:6.1f} core-hours = {wall_h:.1f} h ({wall_h * 60:.0f} min) "
        f"on {args.cores} busy cores"
    )


if __name__ == "__main__":
    main()
