"""Classification metrics of a set of predictions: weighted and macro F1, accuracy, per class, confusion."""

from __future__ import annotations

import numpy as np


def classification_metrics(gold: list[int], pred: list[int], labels: tuple[str, ...]) -> dict:
    k = len(labels)
    cm = np.zeros((k, k), dtype=int)
    for g, p in zip(gold, pred, strict=True):
        cm[g, p] += 1
    support = cm.sum(1)
    predicted = cm.sum(0)
    tp = np.diag(cm)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=(precision + recall) > 0)
    total = support.sum()
    present = support > 0
    return {
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "accuracy": float(tp.sum() / total) if total else 0.0,
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
        "confusion_matrix": cm.tolist(),
    }
