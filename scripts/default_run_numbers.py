"""Print the numbers the README quotes about a finished default run, from its files alone.

Usage: python scripts/default_run_numbers.py [WORKDIR]   (the folder that holds results/)

Wall time per stage comes from Snakemake's `benchmark:` records (results/timing/); yields from
parse_report.json; F1 from results/stats/summary.md, the per-cell effects from effects.csv, each baseline's margin over the majority-class
floor from results.csv; the Friedman test from friedman.json; label quality from label_quality.csv,
with the rows whose reference classifier cannot judge counted apart; data quality from data_quality.csv.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", nargs="?", default=".", type=Path)
    results = ap.parse_args().workdir / "results"

    print("== job time per rule (sum of the jobs' wall time, results/timing/)")
    for rule_dir in sorted((results / "timing").iterdir()):
        records = [pd.read_csv(f, sep="\t") for f in rule_dir.glob("*.tsv")]
        total = sum(float(r["s"].iloc[0]) for r in records)
        print(f"{rule_dir.name:18s} {len(records):3d} jobs  {minutes(total)}")

    print("\n== generation yields (parse_report.json)")
    for report_path in sorted((results / "generated").glob("*/*/parse_report.json")):
        r = json.loads(report_path.read_text())
        rejected = {k: v for k, v in r["rejected"].items() if v}
        bench, dist = report_path.parts[-3], report_path.parts[-2]
        js = r.get("js_distance_asked_achieved")
        asked = f"  JS(asked, achieved) {js}" if js is not None else ""
        asked += f"  JS(achieved, uniform) {r.get('js_distance_to_uniform')}"
        print(f"{bench:9s} {dist:9s} {r['valid']}/{r['attempted']} valid  rejected {rejected}{asked}")
        print(f"{'':19s} achieved label shares {r.get('achieved')}")
        if r.get("yield_per_target"):
            per = {
                t: f"{v['valid']}/{v['attempted']} (free {v.get('free', '?')}, forced {v.get('forced', '?')})"
                for t, v in r["yield_per_target"].items()
            }
            print(f"{'':19s} yield per target {per}")

    print("\n== test weighted F1 (results/stats/summary.md)")
    print((results / "stats" / "summary.md").read_text().strip())

    df = pd.read_csv(results / "stats" / "results.csv")
    print("\n== baselines against the majority-class floor (results.csv, F1 points)")
    for _, row in df[df["condition"] == "baseline"].iterrows():
        f1, floor = 100 * row["weighted_f1"], 100 * row["majority_floor_f1"]
        print(f"{row['benchmark']:9s} {row['classifier']:9s} {f1:6.2f}  floor {floor:6.2f}  margin {f1 - floor:+6.2f}")

    effects = pd.read_csv(results / "stats" / "effects.csv")
    print("\n== per-cell effects against the baseline (effects.csv, F1 points)")
    for _, e in effects.iterrows():
        print(
            f"{e['benchmark']:9s} {e['classifier']:9s} {e['run']:10s} {e['delta']:+6.2f} "
            f"[{e['ci_low']:+6.2f}, {e['ci_high']:+6.2f}]  p {e['p_value']:.3f}  p_holm {e['p_holm']:.3f}  "
            f"smallest detectable {e['min_detectable_delta']:.2f}  ({e['seeds']} seed(s), {e['interval_covers']})"
        )

    report = json.loads((results / "stats" / "friedman.json").read_text())
    print("\n== Friedman tests (friedman.json)")
    for name, fr in [("overall", report["overall"])] + [
        (f"per classifier {c}", r) for c, r in report["per_classifier"].items()
    ]:
        print(f"{name}: {fr['result']}, {fr['n_blocks']} blocks", end="")
        if "statistic" in fr:
            ranks = ", ".join(f"{c} {r:.2f}" for c, r in sorted(fr["mean_ranks"].items(), key=lambda x: x[1]))
            print(
                f", chi2 = {fr['statistic']:.2f}, p = {fr['p_value']:.3f}, p_holm = {fr.get('p_holm', fr['p_value']):.3f}, mean ranks {ranks}"
            )
        else:
            print(f" ({fr.get('detail', '')})")

    q = pd.read_csv(results / "stats" / "label_quality.csv")
    ok = q[q["reference_ok"]]
    print("\n== label quality (label_quality.csv)")
    print(f"{len(q)} rows; {len(q) - len(ok)} with a reference that cannot judge (reference_ok false)")
    if len(ok):
        print(f"kappa where the reference can judge: {ok['kappa'].min():.2f} to {ok['kappa'].max():.2f}")
    print(f"Jensen-Shannon distance to the real labels: {q['js_distance'].min():.2f} to {q['js_distance'].max():.2f}")
    for _, row in q[~q["reference_ok"]].iterrows():
        print(f"  {row['benchmark']} {row['distribution']} {row['classifier']}: {row['reference_note']}")

    quality = results / "stats" / "data_quality.csv"
    if quality.exists():
        print("\n== data quality (data_quality.csv)")
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(pd.read_csv(quality).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
