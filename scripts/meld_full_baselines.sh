#!/usr/bin/env bash
# Train and test the three baselines (real data only) on the full MELD splits with MiniLM.
# Usage: scripts/meld_full_baselines.sh [WORKDIR] [BENCHMARKS_DIR]   (1-2 hours on 2 CPU cores)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
workdir=${1:-results_meld_full}
bench=$(cd "${2:-${ERCSYNTH_BENCHMARKS:-$repo/resources/benchmarks}}" && pwd)
mkdir -p "$workdir"
start=$SECONDS
snakemake -s "$repo/Snakefile" -d "$workdir" --cores all \
  results/models/MELD/{compm,emoberta,todkat}/baseline/seed1/metrics.json \
  --configfile "$repo/configs/meld_full_baselines.yaml" --config benchmarks_dir="$bench"
python - "$workdir" <<'PY'
import json, sys
for clf in ("compm", "emoberta", "todkat"):
    m = json.load(open(f"{sys.argv[1]}/results/models/MELD/{clf}/baseline/seed1/metrics.json"))
    print(f"{clf:9s} weighted F1 {100 * m['weighted_f1']:.2f}  macro F1 {100 * m['macro_f1']:.2f}  "
          f"{m['train_seconds']:.0f} s training, {m['utterances_per_second']:.1f} utterances/s")
PY
echo "wall time: $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s (including benchmark preparation)"
