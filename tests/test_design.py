"""The experimental design: run path tokens, generator blocks, the seeded subsets of the size and
fraction axes."""

import re

import pytest
from conftest import BENCH, REPO

from ercsynth.config import load_config, load_schema
from ercsynth.design import (
    DesignError,
    Run,
    generator_blocks,
    nested_subset,
    real_subset,
    reference_baseline,
    run_pattern,
    runs,
    synthetic_subset,
)

SCHEMA = load_schema(REPO / "rules" / "schemas" / "config.schema.yaml")


def design(**keys) -> dict:
    return load_config(REPO / "config.yaml", keys)


@pytest.mark.parametrize(
    ("run", "token"),
    [
        (Run("natural"), "natural"),
        (Run("baseline"), "baseline"),
        (Run("baseline", fraction=0.1), "baseline/real0.1"),
        (Run("balanced", "gemma", 32, 0.25), "gemma/balanced/n32/real0.25"),
        (Run("planned", "smollm2-chat", None, 0.5), "smollm2-chat/planned/real0.5"),
        (Run("natural", size=128), "natural/n128"),
    ],
)
def test_a_run_token_reads_back_as_the_same_run(run, token):
    """Default values leave no part in the path (the default design keeps today's paths); every
    other value has one, and the token reads back as the same cell of the design."""
    assert run.token == token
    assert Run.parse(token) == run


def test_pre_training_depends_on_generator_distribution_and_size_only():
    a, b = Run("balanced", "gemma", 32, 0.1), Run("balanced", "gemma", 32, 1.0)
    assert a.pretrained == b.pretrained == "gemma/balanced/n32" and a.token != b.token
    assert a.dataset == Run("balanced", "gemma", 128).dataset == "gemma/balanced"


def test_the_design_enumerates_every_cell_with_one_baseline_per_fraction():
    cfg = design(
        generators={"gemma": {}, "smol": {"prompt_style": "chat"}}, synthetic_sizes=[32, 128], real_fractions=[0.1, 1.0]
    )
    cells = runs(cfg, ["balanced"])
    assert [r.token for r in cells if r.baseline] == ["baseline/real0.1", "baseline"]
    assert len(cells) == 2 + 2 * 2 * 2 and len({r.token for r in cells}) == len(cells)
    assert all(re.fullmatch(run_pattern(["gemma", "smol"]), r.token) for r in cells)
    assert reference_baseline(cfg) == Run("baseline")
    default = design()
    assert [r.token for r in runs(default, ["natural", "balanced"])] == ["baseline", "natural", "balanced"]


def test_a_generator_is_its_partial_block_over_the_shared_one():
    cfg = design(generators={"gemma": {}, "smol": {"prompt_style": "chat", "llamacpp": {"model": "smollm2-135m"}}})
    blocks = generator_blocks(cfg, SCHEMA)
    assert blocks["gemma"] == cfg["generation"]
    assert blocks["smol"]["llamacpp"] == cfg["generation"]["llamacpp"] | {"model": "smollm2-135m"}
    assert blocks["smol"]["prompt_style"] == "chat" and cfg["generation"]["prompt_style"] == "completion"
    assert generator_blocks(design()) == {"": design()["generation"]}  # no generators: one, unnamed


def test_a_bad_generator_names_its_key():
    with pytest.raises(DesignError, match=r"generators\.smol\.temperature': bad value -1"):
        generator_blocks(design(generators={"smol": {"temperature": -1}}), SCHEMA)
    for reserved in ("natural", "planned", "baseline", "n32", "real0.5", "seed1", "verified"):
        with pytest.raises(DesignError, match=rf"generators\.{reserved}': a generator name"):
            generator_blocks(design(generators={reserved: {}}), SCHEMA)


def test_smaller_sizes_and_fractions_are_nested_seeded_subsets():
    items = list(range(100))
    small, large = synthetic_subset(items, 32, seed=1), synthetic_subset(items, 64, seed=1)
    assert len(small) == 32 and set(small) < set(large) and small == sorted(small)
    assert synthetic_subset(items, 32, seed=1) == small  # seeded
    assert synthetic_subset(items, 32, seed=2) != small  # a seed draws its own
    assert synthetic_subset(items, None, seed=1) == items
    assert set(real_subset(items, 0.1, seed=3)) < set(real_subset(items, 0.5, seed=3))
    assert len(real_subset(items, 0.1, seed=3)) == 10 and real_subset(items, 1.0, seed=3) == items
    assert len(real_subset(items[:4], 0.1, seed=3)) == 1  # never nothing
    # The two axes draw independently: the same seed does not pick the same items for both.
    assert nested_subset(items, 10, 1, "real") != nested_subset(items, 10, 1, "synthetic")


def test_a_size_above_what_there_is_is_an_error_not_a_smaller_run():
    with pytest.raises(DesignError, match="synthetic size 50 .*synthetic_sizes.* more than the 20"):
        synthetic_subset(list(range(20)), 50, seed=1)


def test_the_shuffled_control_keeps_texts_and_label_counts_and_breaks_their_link():
    from collections import Counter

    from ercsynth.benchmarks import load_split
    from ercsynth.design import shuffled_labels

    source = load_split(BENCH, "MELD", "dev")[:40]
    shuffled = shuffled_labels(source, 13)
    pairs = [
        (a, b) for d, e in zip(source, shuffled, strict=True) for a, b in zip(d.utterances, e.utterances, strict=True)
    ]
    assert all(a.text == b.text and a.speaker == b.speaker for a, b in pairs)
    assert [d.dialogue_id for d in shuffled] == [d.dialogue_id for d in source]
    assert Counter(a.label for a, _ in pairs) == Counter(b.label for _, b in pairs)
    assert sum(a.label != b.label for a, b in pairs) / len(pairs) >= 0.3
    # The permutation is pinned for a seed (a rerun pre-trains on the same set) and differs with it.
    assert [b.label for _, b in pairs[:8]] == PINNED_SHUFFLE
    assert shuffled_labels(source, 13) == shuffled and shuffled_labels(source, 14) != shuffled


PINNED_SHUFFLE = ["neutral", "neutral", "surprise", "joy", "anger", "sadness", "neutral", "neutral"]
