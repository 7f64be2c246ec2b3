"""Rescore a finished run with the current metric code and compare with what it recorded.

    python scripts/rescore_run.py results     # a workdir's results/ folder

For every results/models/.../metrics.json, the run's own test_predictions.jsonl is scored again by
ercsynth.metrics (scikit-learn) and each score is compared with the recorded one. Prints one line
per run and the largest difference per score: a way to check that a change of metric code leaves
a published table as it was (or to see by how much it moves).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ercsynth.metrics import classification_metrics

SCORES = ("weighted_f1", "macro_f1", "accuracy")


def rescore(metrics_file: Path) -> tuple[dict, dict]:
    recorded = json.loads(metrics_file.read_text(encoding="utf-8"))
    labels = tuple(recorded["labels"])
    rows = [json.loads(line) for line in (metrics_file.parent / "test_predictions.jsonl").read_text().splitlines()]
    gold = [labels.index(r["gold"]) for r in rows]
    pred = [labels.index(r["pred"]) for r in rows]
    return recorded, classification_metrics(gold, pred, labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a results/ folder of a finished run")
    args = parser.parse_args()
    files = sorted((args.results / "models").rglob("metrics.json"))
    if not files:
        print(f"no metrics.json under {args.results / 'models'}", file=sys.stderr)
        return 1
    worst = dict.fromkeys(SCORES, 0.0)
    print("run".ljust(48) + "".join(f"{s:>24s}" for s in SCORES))
    for path in files:
        recorded, now = rescore(path)
        cells = []
        for score in SCORES:
            diff = abs(recorded[score] - now[score])
            worst[score] = max(worst[score], diff)
            cells.append(f"{recorded[score]:.4f} -> {now[score]:.4f}".rjust(24))
        print(str(path.parent.relative_to(args.results / "models")).ljust(48) + "".join(cells))
    print("largest difference: " + ", ".join(f"{s} {worst[s]:.2e}" for s in SCORES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
