"""Classification metrics of a set of predictions, computed by scikit-learn.

Weighted F1, macro F1 and accuracy use scikit-learn's defaults (the labels that occur in gold or
prediction), as the CoMPM, EmoBERTa and TODKAT code computes them; per-class scores and the
confusion matrix cover the benchmark's full label list, so tables of different runs line up.
Cohen's kappa is scikit-learn's too: NaN where it is undefined (both raters constant).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sklearn.metrics import (
    accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

if TYPE_CHECKING:
    from ercsynth.dialogues import Dialogue


def classification_metrics(gold: list[int], pred: list[int], labels: tuple[str, ...]) -> dict:
    """Test scores of label indices `gold` and `pred` (0-based positions in `labels`)."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    every = list(range(len(labels)))
    if not gold:
        zeros = {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        return {
            "weighted_f1": 0.0,
            "macro_f1": 0.0,
            "accuracy": 0.0,
            "labels": list(labels),
            "per_class": {name: dict(zeros) for name in labels},
            "confusion_matrix": [[0] * len(labels) for _ in labels],
        }
    precision, recall, f1, support = precision_recall_fscore_support(gold, pred, labels=every, zero_division=0)
    return {
        "weighted_f1": float(f1_score(gold, pred, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),
        "accuracy": float(accuracy_score(gold, pred)),
        "labels": list(labels),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(gold, pred, labels=every).tolist(),
    }


def majority_floor(train: Sequence[Dialogue], test: Sequence[Dialogue], labels: Sequence[str]) -> float:
    """Test weighted F1 of the majority-class predictor: the train split's most frequent label on
    every test utterance. A classifier at this number has learned nothing a count could not."""
    counts = Counter(u.label for d in train for u in d.utterances)
    if not counts:
        raise ValueError("the majority-class floor needs a non-empty train split")
    # Ties go to the label listed first, so the floor never depends on the order of the data.
    majority = max(labels, key=lambda name: (counts[name], -labels.index(name)))
    gold = [u.label for d in test for u in d.utterances]
    return float(f1_score(gold, [majority] * len(gold), average="weighted", zero_division=0)) if gold else 0.0


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """scikit-learn's Cohen's kappa; NaN for no items, or where chance agreement is total."""
    if not a:
        return math.nan
    with warnings.catch_warnings():
        # Both raters constant: 0/0, which scikit-learn returns as NaN, with warnings we do not need.
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(a, b))
