"""The data-quality figures, pinned on a crafted dataset whose every value is worked out by hand."""

import math

import pytest

from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.quality import COLUMNS, QualitySettings, dataset_quality, distinct_n

LABELS = ("neutral", "joy", "anger")
SYNTHETIC = [
    Dialogue(
        "d1",
        [
            Utterance("A", "hi there", "neutral"),
            Utterance("B", "Hi  THERE", "joy"),  # repeats line 1 (case and spaces ignored)
            Utterance("A", "good day", "joy"),
        ],
    ),
    Dialogue("d2", [Utterance("A", "ok", "anger"), Utterance("C", "fine then", "neutral")]),
]
REAL = [Dialogue("r1", [Utterance("X", "hello", "neutral"), Utterance("Y", "bye", "neutral")])]


def test_every_column_on_a_crafted_dataset():
    q = dataset_quality(SYNTHETIC, REAL, LABELS, QualitySettings(sample_utterances=50, samples=3, seed=1))
    assert set(COLUMNS) <= set(q)
    assert q["dialogues"] == 2 and q["utterances"] == 5 and q["sample_utterances"] == 5
    assert q["repeated_line_share"] == pytest.approx(1 / 5)
    # Words: hi there hi there good day ok fine then: 7 distinct of 9; bigrams: 3 distinct of 4.
    assert q["distinct_1"] == pytest.approx(7 / 9)
    assert q["distinct_2"] == pytest.approx(3 / 4)
    assert q["mean_words"] == pytest.approx(9 / 5)
    assert q["speakers_per_dialogue"] == 2.0 and q["utterances_per_dialogue"] == 2.5
    # Consecutive pairs: neutral>joy (change), joy>joy, anger>neutral (change).
    assert q["label_transition_share"] == pytest.approx(2 / 3)
    # Labels 0.4 / 0.4 / 0.2 against the real split's 1 / 0 / 0: Jensen-Shannon distance by hand.
    p, r = (0.4, 0.4, 0.2), (1.0, 0.0, 0.0)
    m = [(a + b) / 2 for a, b in zip(p, r, strict=True)]

    def kl(x):
        return sum(a * math.log2(a / b) for a, b in zip(x, m, strict=True) if a)

    assert q["js_distance_to_real"] == pytest.approx(math.sqrt((kl(p) + kl(r)) / 2))
    real = dataset_quality(REAL, REAL, LABELS, QualitySettings(50, 1, 1))
    assert real["js_distance_to_real"] == 0.0 and real["label_transition_share"] == 0.0


def test_distinct_n_is_measured_on_samples_of_the_same_size():
    texts = [f"word{i} common" for i in range(40)]
    # The ratio falls as the sample grows, which is why every dataset is sampled to the same size.
    assert distinct_n(texts[:4], 1) > distinct_n(texts, 1)
    many = [Dialogue(f"d{i}", [Utterance("A", t, "joy"), Utterance("B", t + "!", "joy")]) for i, t in enumerate(texts)]
    q = dataset_quality(many, REAL, LABELS, QualitySettings(sample_utterances=10, samples=2, seed=3))
    assert q["sample_utterances"] == 10


def test_cut_off_share_counts_utterances_that_stop_mid_phrase():
    from ercsynth.quality import cut_off_share

    texts = ["It's pretty good of", "Fine.", "Really?!", "Wow…", 'He said "no"', "(laughs)", "That's the kind of"]
    assert cut_off_share(texts) == pytest.approx(2 / 7)
    assert cut_off_share(["Done.  "]) == 0.0 and cut_off_share([]) == 0.0


def test_planted_test_lines_are_found_and_only_they():
    """Three real test lines planted among invented ones (one re-cased and re-punctuated, one inside a
    longer utterance): exact finds the two whole copies of four words or more, 8-gram all three."""
    from conftest import BENCH

    from ercsynth.benchmarks import load_split

    test = load_split(BENCH, "MELD", "test")
    long = [u.text for d in test for u in d.utterances if len(u.text.split()) >= 10]
    a, b, c = long[0], long[1], long[2]
    invented = [
        "We should repaint the kitchen before the weekend, shouldn't we?",
        "The bus timetable changed again on Monday morning.",
        "I never liked that museum much, to be honest with you.",
        "Yeah.",  # short lines are everyone's: never counted as a copy
    ]
    planted = [a, b.upper().replace(",", " ,  "), "So, as I was saying: " + c + " Anyway."]
    texts = invented + planted
    synthetic = [Dialogue("s", [Utterance("A" if i % 2 else "B", t, "neutral") for i, t in enumerate(texts)])]
    q = dataset_quality(synthetic, REAL, ("neutral",), QualitySettings(50, 1, 1), held_out=test)
    assert q["test_overlap_exact"] == pytest.approx(2 / len(texts))
    assert q["test_overlap_8gram"] == pytest.approx(3 / len(texts))
    clean = dataset_quality(
        synthetic[:0] + [Dialogue("s", [Utterance("A", t, "neutral") for t in invented])],
        REAL,
        ("neutral",),
        QualitySettings(50, 1, 1),
        held_out=test,
    )
    assert clean["test_overlap_exact"] == 0.0 and clean["test_overlap_8gram"] == 0.0


def test_a_set_that_copies_test_lines_is_warned_about_first_in_the_summary():
    from ercsynth.stats import overlap_warnings

    rows = [
        {"benchmark": "MELD", "dataset": "train", "test_overlap_exact": 0.05, "test_overlap_8gram": 0.05},
        {"benchmark": "MELD", "dataset": "natural", "test_overlap_exact": 0.0, "test_overlap_8gram": 0.02},
        {"benchmark": "MELD", "dataset": "balanced", "test_overlap_exact": 0.01, "test_overlap_8gram": 0.01},
    ]
    warned = overlap_warnings(rows)
    assert len(warned) == 1 and "MELD natural: test_overlap_8gram 2.0%" in warned[0]
