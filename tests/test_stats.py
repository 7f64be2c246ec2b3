import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ercsynth.metrics import classification_metrics
from ercsynth.stats import (
    cohen_kappa,
    friedman,
    friedman_report,
    label_quality_row,
    nemenyi,
    reference_check,
    results_table,
    summary_markdown,
)


def frame(values: dict[str, list[float]], benchmarks=("MELD",), classifiers=("compm",)) -> pd.DataFrame:
    rows = []
    n = len(next(iter(values.values())))
    for i in range(n):
        for cond, vals in values.items():
            rows.append(
                {
                    "benchmark": benchmarks[i % len(benchmarks)],
                    "classifier": classifiers[i % len(classifiers)],
                    "seed": i,
                    "condition": cond,
                    "weighted_f1": vals[i],
                }
            )
    return pd.DataFrame(rows)


def test_friedman_matches_scipy_and_ranks():
    base = [0.50, 0.52, 0.49, 0.51, 0.50, 0.53]
    nat = [0.55, 0.56, 0.54, 0.57, 0.55, 0.56]
    bal = [0.53, 0.54, 0.50, 0.55, 0.52, 0.54]
    res = friedman(frame({"baseline": base, "natural": nat, "balanced": bal}), ["benchmark", "seed"])
    stat, p = sps.friedmanchisquare(base, nat, bal)
    assert res["result"] == "tested" and res["n_blocks"] == 6
    assert res["statistic"] == pytest.approx(stat) and res["p_value"] == pytest.approx(p)
    assert res["mean_ranks"] == {"natural": 1.0, "balanced": 2.0, "baseline": 3.0}  # rank 1 = best
    assert res["significant"] and "nemenyi" in res["posthoc"] and "wilcoxon_holm" in res["posthoc"]


def test_not_significant_has_no_posthoc():
    # Ranks per block (1 = best): baseline 3 3 2 1 2 3, natural 1 2 3 2 1 1, balanced 2 1 1 3 3 2:
    # rank sums 14, 10, 12 -> chi2 = 440 / 6 - 72 = 1.33, p = 0.51.
    vals = {
        "baseline": [0.50, 0.50, 0.52, 0.55, 0.52, 0.50],
        "natural": [0.54, 0.52, 0.50, 0.53, 0.55, 0.54],
        "balanced": [0.52, 0.54, 0.54, 0.51, 0.50, 0.52],
    }
    res = friedman(frame(vals), ["benchmark", "seed"])
    stat, p = sps.friedmanchisquare(*vals.values())
    assert res["result"] == "tested" and res["statistic"] == pytest.approx(4 / 3) == pytest.approx(stat)
    assert res["p_value"] == pytest.approx(p) and 0.4 < res["p_value"] < 0.6
    assert res["mean_ranks"] == pytest.approx({"baseline": 14 / 6, "natural": 10 / 6, "balanced": 12 / 6})
    assert res["significant"] is False and "posthoc" not in res


def test_too_few_blocks_is_reported_not_raised():
    res = friedman(
        frame({"baseline": [0.5, 0.6], "natural": [0.4, 0.7], "balanced": [0.5, 0.5]}), ["benchmark", "seed"]
    )
    assert res["result"] == "not enough blocks" and res["n_blocks"] == 2
    two = friedman(frame({"baseline": [0.5] * 5, "natural": [0.4] * 5}), ["benchmark", "seed"])
    assert two["result"] == "not enough conditions"


def test_all_tied():
    res = friedman(frame({c: [0.5] * 4 for c in ("baseline", "natural", "balanced")}), ["benchmark", "seed"])
    assert res["result"] == "all conditions tied" and res["p_value"] == 1.0


def test_nemenyi_known_critical_difference():
    # k=3, alpha=0.05: q = 2.343 (Demsar 2006); CD = q * sqrt(k(k+1)/6N). A gap of exactly CD has p = 0.05.
    n = 10
    cd = 2.343 * np.sqrt(3 * 4 / (6 * n))
    (pair, *_rest) = nemenyi({"a": 1.0, "b": 1.0 + cd, "c": 2.0}, n)
    assert pair["p_value"] == pytest.approx(0.05, abs=0.002)


def test_kappa_known_values():
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == pytest.approx(1.0)
    # po = 0.5, pe = 0.5 -> 0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)
    # Cohen's textbook example: po=0.7, pe=0.5 -> 0.4
    gold = ["y"] * 50 + ["n"] * 50
    pred = ["y"] * 35 + ["n"] * 15 + ["y"] * 15 + ["n"] * 35
    assert cohen_kappa(gold, pred) == pytest.approx(0.4)


def test_label_quality_row():
    preds = [{"gold": "joy", "pred": "joy"}, {"gold": "anger", "pred": "neutral"}]
    row = label_quality_row("MELD", "natural", "compm", preds, ["joy", "anger"], ["joy", "anger"])
    assert row["accuracy"] == 0.5 and row["js_distance"] == pytest.approx(0.0)
    far = label_quality_row("MELD", "natural", "compm", preds, ["joy"], ["fear"])
    assert far["js_distance"] == pytest.approx(1.0)


def test_classification_metrics_match_hand_computation():
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ("a", "b", "c"))
    # a: p=1/2 r=1/2 f=.5 (n=2); b: p=2/3 r=1 f=.8 (n=2); c: 0 (n=1)
    assert m["weighted_f1"] == pytest.approx((0.5 * 2 + 0.8 * 2) / 5)
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8) / 3)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_results_table_summary_and_report(tmp_path):
    paths = []
    for seed in (1, 2):
        for cond, f1 in (("baseline", 0.5), ("natural", 0.6), ("balanced", 0.55)):
            m = classification_metrics([0, 1], [0, 1], ("x", "y")) | {
                "benchmark": "MELD",
                "classifier": "compm",
                "condition": cond,
                "seed": seed,
                "weighted_f1": f1 + seed / 100,
                "epochs": 1,
                "pretrain_epochs": 1,
                "train_seconds": 1.0,
                "utterances_per_second": 2.0,
                "best_dev_weighted_f1": 0.4,
                "encoder": "minilm",
                "data": {"train": 3},
            }
            p = tmp_path / f"{cond}{seed}.json"
            p.write_text(json.dumps(m))
            paths.append(p)
    df = results_table(paths)
    assert list(df["condition"].astype(str)[:3]) == ["baseline", "baseline", "natural"]
    md = summary_markdown(df)
    assert "| MELD | compm | 2 | 51.50 ± 0.71 | **61.50 ± 0.71 (+10.00)** | 56.50 ± 0.71 (+5.00) |" in md
    rep = friedman_report(df)
    assert rep["per_classifier"]["compm"]["result"] == "not enough blocks"


def test_a_degenerate_reference_is_flagged_not_trusted():
    labels = ("neutral", "joy", "anger")
    test = [{"gold": g, "pred": "neutral"} for g in ["neutral"] * 6 + ["joy"] * 2 + ["anger"] * 2]
    synthetic = [{"gold": g, "pred": "neutral"} for g in ["joy", "anger", "neutral", "joy"]]
    constant = reference_check(test, synthetic, labels)
    assert constant["reference_ok"] is False
    assert constant["reference_top_share"] == 1.0 and constant["reference_test_f1"] == constant["majority_floor_f1"]
    assert "predicts 'neutral' for 100% of the synthetic utterances" in constant["reference_note"]
    assert "at the majority-class floor 0.450" in constant["reference_note"]
    # A reference that tells the labels apart, on a test set and a synthetic set, is trusted.
    good_test = [{"gold": g, "pred": g} for g in ["neutral"] * 6 + ["joy"] * 2 + ["anger"] * 2]
    good = reference_check(good_test, [{"gold": "joy", "pred": p} for p in ("joy", "anger", "neutral")], labels)
    assert good["reference_ok"] is True and good["reference_note"] == "" and good["reference_test_f1"] == 1.0
    # Predicting one label for 80 % of utterances is not yet degenerate; 95 % is.
    mostly = [{"gold": "joy", "pred": "joy"}] * 16 + [{"gold": "joy", "pred": "anger"}] * 4
    assert reference_check(good_test, mostly, labels)["reference_ok"] is True
    assert reference_check(good_test, mostly[:19] + mostly[:1] * 20, labels)["reference_ok"] is False
