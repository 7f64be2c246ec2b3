"""Yield and data quality of generators side by side, each through the real workflow.

    python scripts/compare_generators.py [--benchmarks-dir DIR] [--dialogues 32]
        [--workdir FOLDER] [--only gemma3-llamacpp smollm2-llamacpp smollm2-transformers]

Each generator runs `snakemake results/stats/data_quality.csv` in its own work folder (generation,
parsing and the data-quality jobs only; no training), on MELD natural, balanced and planned, with
the default config's constrained decoding and repetition settings, then prints one row per dataset:
valid/attempted, the rejection reasons, balanced targets chosen freely or forced, and the
data-quality figures beside MELD's train split (distinct-n on samples of `--sample` utterances,
the same for every dataset). Finished work folders are reused (Snakemake skips what is done).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

GENERATORS = {
    # The default: Gemma 3 270M base, few-shot completion prompt, llama.cpp.
    "gemma3-llamacpp": {},
    # SmolLM2-135M-Instruct with the chat prompt: llama.cpp on its GGUF, and transformers on the
    # converted checkpoint with the model's own chat template.
    "smollm2-llamacpp": {"prompt_style": "chat", "llamacpp": {"model": "smollm2-135m"}},
    "smollm2-transformers": {
        "backend": "transformers",
        "prompt_style": "chat",
        "batch_size": 8,
        "transformers": {"model": "smollm2-135m", "conversation_format": "chat_template"},
    },
}


def run(name: str, workdir: Path, benchmarks_dir: str, dialogues: int, sample: int) -> Path:
    folder = workdir / name
    folder.mkdir(parents=True, exist_ok=True)
    overlay = {
        "benchmarks": ["MELD"],
        "generation": {"dialogues": dialogues, "shards": 1} | GENERATORS[name],
        # Distinct-n on samples of one size for every dataset: no larger than the smallest one.
        "data_quality": {"sample_utterances": sample},
    }
    (folder / "overlay.json").write_text(json.dumps(overlay), encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(folder),
        "--cores",
        "all",
        "results/stats/data_quality.csv",
        "--configfile",
        str(folder / "overlay.json"),
        "--config",
        f"benchmarks_dir={benchmarks_dir}",
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    with (folder / "snakemake.log").open("w") as log:
        subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return folder / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--benchmarks-dir", default=os.environ.get("ERCSYNTH_BENCHMARKS", str(REPO / "resources" / "benchmarks"))
    )
    ap.add_argument("--dialogues", type=int, default=32)
    ap.add_argument("--sample", type=int, default=150, help="utterances per distinct-n sample (all datasets)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the work folders here (default: a temporary one)")
    ap.add_argument("--only", nargs="+", choices=list(GENERATORS), default=list(GENERATORS))
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="compare-generators-"))
    rows = []
    for name in args.only:
        results = run(name, workdir, args.benchmarks_dir, args.dialogues, args.sample)
        quality = pd.read_csv(results / "stats" / "data_quality.csv").set_index("dataset")
        for dist in ("natural", "balanced", "planned"):
            report = json.loads((results / "generated" / "MELD" / dist / "parse_report.json").read_text())
            targets = report.get("yield_per_target") or {}
            q = quality.loc[dist]
            rows.append(
                {
                    "generator": name,
                    "dataset": dist,
                    "valid": f"{report['valid']}/{report['attempted']}",
                    "rejected": ", ".join(f"{k} {v}" for k, v in report["rejected"].items() if v) or "-",
                    "free/forced": f"{sum(t['free'] for t in targets.values())}/{sum(t['forced'] for t in targets.values())}"
                    if targets
                    else "",
                    "repeated": round(q["repeated_line_share"], 3),
                    "distinct_1": round(q["distinct_1"], 3),
                    "distinct_2": round(q["distinct_2"], 3),
                    "words": round(q["mean_words"], 1),
                    "transitions": round(q["label_transition_share"], 2),
                    "js_to_real": round(q["js_distance_to_real"], 3),
                }
            )
        if name == args.only[0]:
            q = quality.loc["train"]
            real = {"repeated": q["repeated_line_share"], "distinct_1": q["distinct_1"], "distinct_2": q["distinct_2"]}
            real |= {"words": q["mean_words"]}
            real |= {"transitions": q["label_transition_share"], "js_to_real": 0.0}
            rows.append(
                {"generator": "MELD train split", "dataset": "real"} | {k: round(v, 3) for k, v in real.items()}
            )
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(pd.DataFrame(rows).fillna("").to_string(index=False))
    print(f"work folders: {workdir}")


if __name__ == "__main__":
    main()
