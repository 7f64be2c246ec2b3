"""Text and label figures of a dialogue dataset, synthetic or real, so that synthetic datasets can be
set beside their benchmark's train split (results/stats/data_quality.csv).

- repeated_line_share: lines that repeat an earlier line of their dialogue (case and spaces ignored);
- distinct_1 / distinct_2: distinct word unigrams / bigrams over all of them (Li et al. 2016), on
  samples of the same number of utterances for every dataset, since the ratio falls as a sample
  grows; averaged over a few seeded samples;
- mean_words, speakers_per_dialogue, utterances_per_dialogue;
- label_transition_share: consecutive lines whose labels differ;
- js_distance_to_real: Jensen-Shannon distance (base 2) of the label distribution to the train split's;
- cut_off_share: utterances that do not end like a sentence (`.`, `!`, `?`, `…`, a closing quote or
  bracket): text a token budget cut mid-phrase;
- test_overlap_exact: utterances whose normalised text (lower case, punctuation and spaces collapsed,
  at least 4 words) is a line of the real dev or test split, which a generator that read the
  benchmark's source may reproduce, leaking the test set into pre-training;
- test_overlap_8gram: utterances sharing an 8-word sequence with a line of those splits.
"""

from __future__ import annotations

import random
import re
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
    "cut_off_share",
    "test_overlap_exact",
    "test_overlap_8gram",
)
SENTENCE_END = tuple(".!?…\"'”’)]»")
MIN_OVERLAP_WORDS = 4
OVERLAP_NGRAM = 8


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


def cut_off_share(texts: Sequence[str]) -> float:
    """The share of texts that do not end like a sentence."""
    return sum(not t.rstrip().endswith(SENTENCE_END) for t in texts) / len(texts) if texts else 0.0


def normalised(text: str) -> str:
    """Lower case, every run of punctuation and spaces one space: the form two copies of a line share."""
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def ngrams(words_: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words_[i : i + n]) for i in range(len(words_) - n + 1)}


def test_overlap(texts: Sequence[str], held_out: Sequence[str]) -> dict:
    """test_overlap_exact and test_overlap_8gram of `texts` against the real dev and test lines."""
    lines = {line for line in map(normalised, held_out) if len(line.split()) >= MIN_OVERLAP_WORDS}
    grams = set().union(*(ngrams(line.split(), OVERLAP_NGRAM) for line in map(normalised, held_out)))
    exact = gram = 0
    for text in map(normalised, texts):
        exact += len(text.split()) >= MIN_OVERLAP_WORDS and text in lines
        gram += bool(ngrams(text.split(), OVERLAP_NGRAM) & grams)
    n = len(texts)
    return {"test_overlap_exact": exact / n if n else 0.0, "test_overlap_8gram": gram / n if n else 0.0}


def dataset_quality(
    dialogues: Sequence[Dialogue],
    real: Sequence[Dialogue],
    labels: Sequence[str],
    settings: QualitySettings,
    held_out: Sequence[Dialogue] = (),
) -> dict:
    """The COLUMNS of one dataset, with `real` (the benchmark's train split) as the label reference and
    `held_out` (its dev and test splits) as the overlap reference; `sample_utterances` says how many
    utterances each distinct-n sample held."""
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
        "cut_off_share": cut_off_share(texts),
    } | test_overlap(texts, [u.text for d in held_out for u in d.utterances])
