import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.metrics import classification_metrics, cohen_kappa, majority_floor
from ercsynth.stats import (
    _blocks,
    friedman,
    friedman_report,
    label_quality_row,
    nemenyi,
    reference_check,
    results_table,
    smallest_p,
    summary_markdown,
    treatments,
    wilcoxon_holm,
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


def test_too_few_blocks_to_reach_significance_give_no_p_value():
    res = friedman(
        frame({"baseline": [0.5, 0.6], "natural": [0.4, 0.7], "balanced": [0.5, 0.5]}), ["benchmark", "seed"]
    )
    assert res["result"] == "cannot reach significance" and res["n_blocks"] == 2 and "p_value" not in res
    assert res["detail"].startswith("cannot reach p < 0.05 with 2 block(s) of 3 values")
    assert res["smallest_possible_p"] == pytest.approx(np.exp(-2))
    one = friedman(frame({"baseline": [0.5] * 5}), ["benchmark", "seed"])
    assert one["result"] == "one value"
    # Wilcoxon over 5 pairs can never go below 2 / 2^5 = 0.0625; over 6 it can.
    five = friedman(frame({"baseline": [0.5] * 5, "natural": [0.6] * 5}), ["benchmark", "seed"])
    assert five["result"] == "cannot reach significance" and five["smallest_possible_p"] == 0.0625
    six = friedman(frame({"baseline": [0.5] * 6, "natural": [0.6, 0.7, 0.8, 0.9, 0.65, 0.75]}), ["benchmark", "seed"])
    assert six["result"] == "tested" and six["p_value"] == pytest.approx(0.03125)


def test_the_smallest_possible_p_is_what_scipy_gives_when_every_block_agrees():
    for k in (3, 4, 5):
        for n in range(2, 9):
            agreeing = [np.arange(n) * 0 + c for c in range(k)]  # every block ranks the values alike
            assert smallest_p(k, n) == pytest.approx(sps.friedmanchisquare(*agreeing).pvalue)
    for n in range(1, 10):
        assert smallest_p(2, n) == pytest.approx(sps.wilcoxon(np.arange(1, n + 1) * 0.1).pvalue)
    assert smallest_p(3, 3) < 0.05 <= smallest_p(3, 2) and smallest_p(2, 6) < 0.05 <= smallest_p(2, 5)


def test_two_values_get_the_paired_wilcoxon_test():
    """Friedman's test needs three values; an axis with two (a size pair, two generators) is tested
    with the Wilcoxon signed-rank test over the same blocks."""
    base, nat = [0.50, 0.52, 0.61, 0.47, 0.55, 0.58], [0.40, 0.49, 0.66, 0.41, 0.50, 0.52]
    two = friedman(frame({"baseline": base, "natural": nat}), ["benchmark", "seed"])
    assert two["result"] == "tested" and two["test"].startswith("Wilcoxon")
    assert two["p_value"] == pytest.approx(sps.wilcoxon(base, nat).pvalue)
    assert two["mean_difference"] == pytest.approx(np.mean(np.subtract(base, nat)))
    assert two["mean_ranks"] == {"baseline": pytest.approx(7 / 6), "natural": pytest.approx(11 / 6)}


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


def test_macro_f1_averages_labels_in_gold_or_prediction_as_scikit_learn_does():
    # Label 2 is predicted but never gold: it counts (F1 0), so macro F1 is (2/3 + 1 + 0) / 3, not 0.833.
    m = classification_metrics([0, 0, 1, 1], [0, 2, 1, 1], ("a", "b", "c", "d"))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3) == pytest.approx(0.5556, abs=1e-4)
    assert m["weighted_f1"] == pytest.approx((2 / 3 * 2 + 1.0 * 2) / 4)
    # Per-class scores and the confusion matrix cover the whole label list, unseen 'd' included.
    assert m["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert np.array(m["confusion_matrix"]).shape == (4, 4)


def test_weighted_f1_is_the_support_weighted_mean_of_per_class_f1():
    """scikit-learn's weighted F1 is the formula earlier results were computed with: the tables stay."""
    rng = np.random.default_rng(5)
    for _ in range(20):
        gold, pred = rng.integers(0, 7, 60).tolist(), rng.integers(0, 7, 60).tolist()
        m = classification_metrics(gold, pred, tuple("abcdefg"))
        by_hand = sum(c["f1"] * c["support"] for c in m["per_class"].values()) / len(gold)
        assert m["weighted_f1"] == pytest.approx(by_hand)


def test_kappa_is_scikit_learns_and_undefined_where_both_raters_are_constant():
    from sklearn.metrics import cohen_kappa_score

    assert np.isnan(cohen_kappa(["a", "a", "a"], ["a", "a", "a"]))
    assert np.isnan(cohen_kappa([], []))
    rng = np.random.default_rng(1)
    a, b = rng.choice(list("xyz"), 40).tolist(), rng.choice(list("xyz"), 40).tolist()
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


# --------------------------------------------------------------------------- post-hoc tests, pinned
def test_holm_adjusted_p_values_and_flags_are_exact():
    """Six blocks: the smallest two-sided Wilcoxon p is 2/64, significant raw but not after Holm (x3)."""
    six = pd.DataFrame(
        {
            "baseline": [0.50, 0.51, 0.49, 0.52, 0.50, 0.48],
            "natural": [0.55, 0.56, 0.54, 0.57, 0.55, 0.53],
            "balanced": [0.52, 0.50, 0.51, 0.53, 0.49, 0.50],
        }
    )
    assert wilcoxon_holm(six) == [
        {"a": "baseline", "b": "natural", "p_value": 0.03125, "p_holm": 0.09375, "significant": False},
        {"a": "baseline", "b": "balanced", "p_value": 0.21875, "p_holm": 0.21875, "significant": False},
        {"a": "natural", "b": "balanced", "p_value": 0.03125, "p_holm": 0.09375, "significant": False},
    ]
    ten = pd.DataFrame(
        {
            "baseline": [0.50, 0.51, 0.49, 0.52, 0.50, 0.48, 0.47, 0.53, 0.50, 0.49],
            "natural": [0.55, 0.56, 0.54, 0.57, 0.55, 0.53, 0.52, 0.58, 0.56, 0.54],
            "balanced": [0.52, 0.50, 0.51, 0.53, 0.49, 0.50, 0.49, 0.55, 0.52, 0.47],
        }
    )
    p_min = 2 / 2**10  # all ten differences of one sign
    assert [(r["p_value"], r["p_holm"], r["significant"]) for r in wilcoxon_holm(ten)] == [
        (pytest.approx(p_min), pytest.approx(3 * p_min), True),
        (pytest.approx(0.111328125), pytest.approx(0.111328125), False),
        (pytest.approx(p_min), pytest.approx(3 * p_min), True),
    ]


def test_holm_and_nemenyi_equal_statsmodels_and_scikit_posthocs_on_random_blocks():
    import scikit_posthocs as sp
    from statsmodels.stats.multitest import multipletests

    from ercsynth.stats import nemenyi

    rng = np.random.default_rng(0)
    for n_blocks, k in ((8, 4), (12, 3), (20, 5)):
        data = rng.random((n_blocks, k))
        wide = pd.DataFrame(data, columns=[f"c{i}" for i in range(k)])
        ours = wilcoxon_holm(wide)
        expected = multipletests([r["p_value"] for r in ours], alpha=0.05, method="holm")
        assert [r["p_holm"] for r in ours] == pytest.approx(list(expected[1]))
        assert [r["significant"] for r in ours] == list(expected[0])
        ranks = wide.rank(axis=1, ascending=False).mean()
        theirs = sp.posthoc_nemenyi_friedman(data)
        for row in nemenyi({c: float(ranks[c]) for c in wide.columns}, n_blocks):
            i, j = int(row["a"][1:]), int(row["b"][1:])
            assert row["p_value"] == pytest.approx(theirs.iloc[i, j], abs=1e-9)


def test_blocks_drop_an_incomplete_block_and_average_repeats():
    rows = [
        ("MELD", 1, "baseline", 0.5),
        ("MELD", 1, "natural", 0.6),
        ("MELD", 2, "baseline", 0.4),
        ("MELD", 2, "natural", 0.45),
        ("MELD", 2, "natural", 0.55),  # a repeated run: averaged
        ("MELD", 3, "baseline", 0.3),  # no natural run: the block is left out
    ]
    df = pd.DataFrame(rows, columns=["benchmark", "seed", "condition", "weighted_f1"])
    wide = _blocks(df, ["benchmark", "seed"], ["baseline", "natural"])
    assert wide.index.tolist() == [("MELD", 1), ("MELD", 2)]
    assert wide.to_numpy().tolist() == [[0.5, 0.6], [0.4, pytest.approx(0.5)]]


def test_friedman_report_overall_values():
    """Four blocks (2 benchmarks x 2 classifiers; two seeds each, averaged), natural always first and
    baseline always last: R = (12, 4, 8) for baseline, natural, balanced;
    chi2 = 12 / (n k (k + 1)) * sum(R^2) - 3 n (k + 1) = 56 - 48 = 8, p = exp(-4)."""
    rows = []
    for bench in ("MELD", "EmoryNLP"):
        for clf in ("compm", "todkat"):
            for seed in (1, 2):
                for cond, f1 in (("baseline", 0.40), ("natural", 0.50 + seed / 100), ("balanced", 0.45)):
                    rows.append(
                        {"benchmark": bench, "classifier": clf, "seed": seed, "condition": cond, "weighted_f1": f1}
                    )
    report = friedman_report(pd.DataFrame(rows))
    overall = report["overall"]
    assert overall["result"] == "tested" and overall["n_blocks"] == 4
    assert overall["statistic"] == pytest.approx(8.0) and overall["p_value"] == pytest.approx(np.exp(-4))
    assert overall["mean_ranks"] == {"baseline": 3.0, "natural": 1.0, "balanced": 2.0}
    # the only test of the family that can reach significance: Holm leaves it as it is
    assert overall["p_holm"] == overall["p_value"] and overall["significant"] is True
    assert {r["result"] for r in report["per_classifier"].values()} == {"cannot reach significance"}
    # Nemenyi: |R_i - R_j| / sqrt(k (k + 1) / 6n) with q's studentized-range tail; Wilcoxon on 4 blocks: 2/16 x 3.
    nem = {(r["a"], r["b"]): r["p_value"] for r in overall["posthoc"]["nemenyi"]}
    assert nem[("baseline", "natural")] == pytest.approx(sps.studentized_range.sf(4.0, 3, np.inf))
    assert [(r["p_value"], r["p_holm"], r["significant"]) for r in overall["posthoc"]["wilcoxon_holm"]] == [
        (0.125, 0.375, False)
    ] * 3
    assert "cannot reach p < 0.05 after Holm with 4 blocks" in overall["posthoc"]["wilcoxon_note"]


def seeded_frame(seeds, classifiers, benchmarks=("MELD",), values=None, jitter=0.0) -> pd.DataFrame:
    """benchmark x classifier x seed x (baseline, natural, balanced)."""
    rng = np.random.default_rng(0)
    values = values or {"baseline": 0.40, "natural": 0.45, "balanced": 0.43}
    rows = [
        {
            "benchmark": b,
            "classifier": c,
            "seed": s,
            "condition": cond,
            "weighted_f1": v + i / 100 * (cond == "natural") + jitter * rng.standard_normal(),
        }
        for b in benchmarks
        for i, c in enumerate(classifiers)
        for s in seeds
        for cond, v in values.items()
    ]
    return pd.DataFrame(rows)


def test_the_overall_test_ranks_seed_averaged_benchmark_classifier_blocks():
    df = seeded_frame((1, 2, 3), ("compm", "emoberta", "todkat"), jitter=0.02)
    overall = friedman_report(df)["overall"]
    wide = df.groupby(["classifier", "condition"])["weighted_f1"].mean().unstack()
    stat, p = sps.friedmanchisquare(wide["baseline"], wide["natural"], wide["balanced"])
    assert overall["n_blocks"] == 3 and overall["statistic"] == pytest.approx(stat)
    assert overall["p_value"] == pytest.approx(p)


def test_identical_seeds_are_one_problem_not_five():
    """Five identical seeds of two classifiers on one benchmark: blocks with seeds (the old design)
    make natural > balanced > baseline 'significant' from 10 blocks that say the same thing twice over;
    there are two independent problems, and two blocks cannot reach p < 0.05."""
    df = seeded_frame((1, 2, 3, 4, 5), ("compm", "todkat"))
    old = friedman(df, ["benchmark", "classifier", "seed"])
    assert old["n_blocks"] == 10 and old["significant"] is True and old["p_value"] < 0.001
    report = friedman_report(df)
    assert report["overall"]["n_blocks"] == 2 and report["overall"]["result"] == "cannot reach significance"
    assert "p_value" not in report["overall"]


def test_holm_adjusts_across_the_tests_of_the_report():
    """Three benchmarks x two classifiers: the overall test (6 blocks) and each classifier's (3 blocks,
    p = exp(-3) = 0.0498 raw) form one family; after Holm only the overall test is significant."""
    df = seeded_frame((1, 2), ("compm", "todkat"), benchmarks=("MELD", "EmoryNLP", "IEMOCAP"))
    report = friedman_report(df)
    family = [report["overall"], report["per_classifier"]["compm"], report["per_classifier"]["todkat"]]
    raw = [r["p_value"] for r in family]
    assert raw[1] == pytest.approx(np.exp(-3)) and raw[1] < 0.05
    assert [r["p_holm"] for r in family] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    assert [r["significant"] for r in family] == [True, False, False]
    assert "posthoc" in family[0] and "posthoc" not in family[1]


def test_a_baseline_enters_each_block_once():
    """Two generators: each is a column of the block, beside the one baseline of its benchmark,
    classifier and fraction (copying the baseline per generator counted it twice)."""
    df = design_frame()
    overall = friedman_report(df)["overall"]
    assert overall["conditions"] == [
        "baseline",
        "gemma/balanced/n128",
        "gemma/balanced/n32",
        "smol/balanced/n128",
        "smol/balanced/n32",
    ]
    assert overall["n_blocks"] == 2  # benchmark x classifier x real fraction
    wide = _blocks(
        df.assign(treatment=treatments(df)),
        ["benchmark", "classifier", "real_fraction"],
        overall["conditions"],
        "treatment",
    )
    base = df[df["condition"] == "baseline"].groupby("real_fraction")["weighted_f1"].mean()
    assert wide["baseline"].tolist() == pytest.approx(base.tolist())


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
                "majority_floor_f1": 0.5,
                "data": {"train": 3},
                "generator": "",
                "synthetic_size": "" if cond == "baseline" else "all",
                "real_fraction": 1.0,
                "run": cond,
            }
            p = tmp_path / f"{cond}{seed}.json"
            p.write_text(json.dumps(m))
            paths.append(p)
    df = results_table(paths)
    assert list(df["condition"].astype(str)[:3]) == ["baseline", "baseline", "natural"]
    assert list(df["majority_floor_f1"]) == [0.5] * 6
    md = summary_markdown(df)
    assert "| MELD | compm | 2 | 50.00 | 51.50 ± 0.71 | **61.50 ± 0.71 (+10.00)** | 56.50 ± 0.71 (+5.00) |" in md
    # A baseline within 2 points of its floor is named before the table; 2.5 points above it is not.
    first = md.splitlines()[2]
    assert first.startswith("**Warning: the MELD compm baseline (51.50) is within 2 points of the majority-class floor")
    far = summary_markdown(df.assign(majority_floor_f1=0.49))
    assert "Warning" not in far and "| 49.00 |" in far
    rep = friedman_report(df)
    assert rep["per_classifier"]["compm"]["result"] == "cannot reach significance"


def test_the_majority_floor_predicts_the_train_splits_most_frequent_label_on_test():
    def split(*labels):
        return [Dialogue("d", [Utterance("A", "x", label) for label in labels])]

    labels = ("neutral", "joy", "anger")
    # Train's majority is joy, test's is neutral: the floor predicts joy everywhere (joy: F1 0.4, support 1 of 4).
    floor = majority_floor(split("joy", "joy", "neutral"), split("neutral", "neutral", "neutral", "joy"), labels)
    assert floor == pytest.approx(0.1)
    # A tie goes to the label listed first, whatever order the data come in.
    assert majority_floor(split("anger", "joy"), split("joy"), labels) == 1.0
    with pytest.raises(ValueError, match="non-empty train split"):
        majority_floor([], split("joy"), labels)


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


def design_frame() -> pd.DataFrame:
    """Two generators x two sizes x two real fractions x three seeds, and a baseline per fraction:
    pre-training gains 3 points at fraction 0.1 (more with more data) and loses 1 at 1.0."""
    rows = []
    for seed in (1, 2, 3):
        for frac, base in ((0.1, 0.40), (1.0, 0.55)):
            rows.append(
                {
                    "condition": "baseline",
                    "generator": "",
                    "synthetic_size": "",
                    "real_fraction": frac,
                    "seed": seed,
                    "weighted_f1": base + seed / 1000,
                    "run": f"baseline/real{frac}",
                }
            )
            for gen, g_off in (("gemma", 0.0), ("smol", -0.005)):
                for size, s_off in (("32", 0.0), ("128", 0.01)):
                    gain = (0.02 + s_off if frac == 0.1 else -0.01) + g_off
                    rows.append(
                        {
                            "condition": "balanced",
                            "generator": gen,
                            "synthetic_size": size,
                            "real_fraction": frac,
                            "seed": seed,
                            "weighted_f1": base + gain + seed / 1000,
                            "run": f"{gen}/balanced/n{size}/real{frac}",
                        }
                    )
    df = pd.DataFrame(rows).assign(benchmark="MELD", classifier="emoberta", majority_floor_f1=0.3)
    df["synthetic_dialogues"] = pd.to_numeric(df["synthetic_size"], errors="coerce").fillna(0)
    return df


def test_each_axis_is_tested_with_the_other_factors_as_blocks():
    report = friedman_report(design_frame())["per_axis"]
    gen, size, frac = report["generator"], report["synthetic_size"], report["real_fraction"]
    # generator: pre-trained runs only; blocks size x fraction (x benchmark, classifier, condition), seeds averaged
    assert gen["conditions"] == ["gemma", "smol"] and gen["n_blocks"] == 2 * 2
    assert size["conditions"] == ["32", "128"] and size["n_blocks"] == 2 * 2
    # real fraction: every run, the baseline too, each against itself at the other fraction
    assert frac["conditions"] == ["0.1", "1.0"] and frac["n_blocks"] == 1 + 2 * 2
    # 4 or 5 pairs: the Wilcoxon signed-rank test cannot go below 0.0625, so none is reported as tested
    assert {r["result"] for r in (gen, size, frac)} == {"cannot reach significance"}
    wide = design_frame().query("condition != 'baseline'").groupby(["generator", "synthetic_size", "real_fraction"])
    assert len(wide) == 8


def test_the_summary_says_where_pre_training_stops_helping():
    text = summary_markdown(design_frame())
    table = text.split("## Where pre-training stops helping", 1)[1]
    row = next(line for line in table.splitlines() if line.startswith("| MELD | emoberta"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2].startswith("+3.00 (gemma/balanced/n128/real0.1)")  # best run at 0.1, 3 points over
    assert cells[3].startswith("-1.00") and cells[4] == "real 1"
    # a row per generator x size x fraction, each with the baseline of its fraction
    assert "| MELD | emoberta | smol | 32 | 0.1 | 3 |" in text


def test_the_axis_plots_draw_every_condition(tmp_path):
    from ercsynth.plots import plot_f1_by_axis

    runs = [f"{g} balanced" for g in ("gemma", "smol")]
    expected = {
        # against size: a line per generator x fraction, a dashed baseline per fraction
        "synthetic_size": [f"{r} (real {f})" for r in runs for f in ("0.1", "1")]
        + ["baseline (real 0.1)", "baseline (real 1)"],
        # against the fraction: the baseline and a line per generator x size
        "real_fraction": ["baseline"] + [f"{r} n{n}" for r in runs for n in ("128", "32")],
    }
    for axis, labels in expected.items():
        out = tmp_path / f"{axis}.png"
        drawn = plot_f1_by_axis(design_frame(), axis, out)
        assert drawn and all(sorted(legend) == sorted(labels) for legend in drawn.values()), (axis, drawn)
        assert out.stat().st_size > 10_000


def test_every_plot_takes_the_datasets_of_named_generators(tmp_path):
    """Dataset and run tokens carry a generator (`gemma/balanced`): the plots that color by
    distribution draw them in that distribution's color."""
    from ercsynth.plots import color_of, plot_data_quality, plot_label_distributions, plot_training_curves

    assert color_of("gemma/balanced/n32/real0.1") == color_of("balanced") is not None
    assert color_of("my-own") is None
    names = ["train", "gemma/balanced", "smollm2-chat/balanced"]
    quality = pd.DataFrame({"benchmark": "MELD", "dataset": names, "distinct_1": [0.5, 0.4, 0.3]})
    plot_data_quality(quality, ["distinct_1"], tmp_path / "quality.png")
    shares = np.full(7, 1 / 7)
    plot_label_distributions({"MELD": {"original": shares, "gemma/balanced": shares}}, tmp_path / "labels.png")
    plot_training_curves([("MELD", "emoberta", "gemma/balanced/n32", [0.3, 0.4])], tmp_path / "curves.png")
    assert all((tmp_path / f).stat().st_size > 5_000 for f in ("quality.png", "labels.png", "curves.png"))


def test_a_fraction_whose_baseline_sits_at_the_floor_is_left_out_and_warned_about():
    """With 10 % of the real dialogues a classifier may learn nothing: a gain over a baseline at the
    majority-class floor is no gain, so that fraction is named, warned about and left out."""
    text = summary_markdown(design_frame().assign(majority_floor_f1=0.395))
    assert "**Warning: the MELD emoberta baseline at real fraction 0.1 (40.20)" in text
    row = next(line for line in text.split("stops helping", 1)[1].splitlines() if line.startswith("| MELD"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "baseline at the floor" and cells[4] == "never helps"  # at 1.0 it loses a point


def test_the_summary_puts_its_notes_first():
    text = summary_markdown(design_frame(), notes=["> **Warning:** MELD natural copies test lines"])
    assert text.index("copies test lines") < text.index("| benchmark")
