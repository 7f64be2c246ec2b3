"""Text and label figures of a dialogue dataset, synthetic or real, so that synthetic datasets can be
set beside their benchmark's train split (results/stats/data_quality.csv).

- repeated_line_share: lines that repeat an earlier line of their dialogue (case and spaces ignored);
- distinct_1 / distinct_2: distinct word unigrams / bigrams over all of them (Li et al. 2016), on
  samples of the same number of utterances for every dataset, since the ratio falls as a sample
  grows; averaged over a few seeded samples;
- mean_words, speakers_per_dialogue, utterances_per_dialogue;
- label_transition_share: consecutive lines whose labels differ;
- js_distance_to_real: Jensen-Shannon distance (base 2) of the label distribution to the train split's.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon

from ercsynth.dialogues import Dialogue, repeated_lines
from ercsynth.labels import label_distribution

COLUMNS = (
    "repeated_line_share",
    "distinct_1",
    "distinct_2",
    "mean_words",
    "speakers_per_dialogue",
    "utterances_per_dialogue",
    "label_transition_share",
    "js_distance_to_real",
)


@dataclass(frozen=True)
class QualitySettings:
    sample_utterances: int  # utterances per distinct-n sample (all of them if a dataset has fewer)
    samples: int  # seeded samples averaged
    seed: int

    @classmethod
    def from_config(cls, section: dict) -> QualitySettings:
        return cls(**{name: section[name] for name in cls.__dataclass_fields__})


def words(text: str) -> list[str]:
    return text.lower().split()


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (n-grams stay within an utterance)."""
    grams = [tuple(w[i : i + n]) for w in map(words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def dataset_quality(
    dialogues: Sequence[Dialogue], real: Sequence[Dialogue], labels: Sequence[str], settings: QualitySettings
) -> dict:
    """The COLUMNS of one dataset, with `real` (the benchmark's train split) as the label reference;
    `sample_utterances` says how many utterances each distinct-n sample held."""
    texts = [u.text for d in dialogues for u in d.utterances]
    lines = len(texts)
    pairs = [(a.label, b.label) for d in dialogues for a, b in zip(d.utterances, d.utterances[1:], strict=False)]
    size = min(settings.sample_utterances, lines)
    rng = random.Random(settings.seed)
    samples = [rng.sample(texts, size) for _ in range(settings.samples)] if size else []
    mine = label_distribution((u.label for d in dialogues for u in d.utterances), labels)
    theirs = label_distribution((u.label for d in real for u in d.utterances), labels)
    n = max(len(dialogues), 1)
    return {
        "dialogues": len(dialogues),
        "utterances": lines,
        "repeated_line_share": sum(repeated_lines(d.utterances) for d in dialogues) / lines if lines else 0.0,
        "distinct_1": float(np.mean([distinct_n(s, 1) for s in samples])) if samples else 0.0,
        "distinct_2": float(np.mean([distinct_n(s, 2) for s in samples])) if samples else 0.0,
        "sample_utterances": size,
        "mean_words": sum(len(words(t)) for t in texts) / lines if lines else 0.0,
        "speakers_per_dialogue": sum(len({u.speaker.lower() for u in d.utterances}) for d in dialogues) / n,
        "utterances_per_dialogue": lines / n,
        "label_transition_share": sum(a != b for a, b in pairs) / len(pairs) if pairs else 0.0,
        "js_distance_to_real": float(jensenshannon(mine, theirs, base=2)) if mine.sum() and theirs.sum() else None,
    }
