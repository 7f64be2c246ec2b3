"""Print what a finished factorial run shows, per axis (docs/experiments.md quotes it):

    python scripts/axes_numbers.py RUN_FOLDER

the rows of results.csv per design cell (every generator x size x fraction x seed must be there),
friedman.json's test per axis, and summary.md's table of where pre-training stops helping.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from ercsynth.design import AXES


def main(run: Path) -> None:
    stats = run / "results" / "stats"
    df = pd.read_csv(stats / "results.csv", keep_default_na=False)
    print(f"== results.csv: {len(df)} rows, columns {', '.join(a for a in AXES if a in df)}")
    cells = df.groupby(["condition", *AXES])["seed"].nunique().reset_index(name="seeds")
    print(cells.to_string(index=False))
    print("== friedman.json, per axis")
    for axis, res in json.loads((stats / "friedman.json").read_text())["per_axis"].items():
        p = f"p = {res['p_value']:.3f}" if "p_value" in res else res.get("detail", "")
        test = res.get("test", "Friedman") if res["result"] == "tested" else res["result"]
        print(f"{axis:15s} {len(res['conditions'])} values, {res['n_blocks']} blocks: {test}, {p}")
    summary = (stats / "summary.md").read_text()
    if "## Where pre-training stops helping" in summary:
        print("== summary.md")
        print(summary.split("## Where pre-training stops helping", 1)[1].strip())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", default=Path("."), help="the run's working folder")
    main(parser.parse_args().run)
