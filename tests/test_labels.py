import pytest

from ercsynth.labels import LABELS, UnknownLabel, Vocabulary


def test_vocabularies_are_fixed_and_ordered():
    assert LABELS["MELD"] == ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
    assert LABELS["EmoryNLP"] == ("neutral", "joyful", "peaceful", "powerful", "scared", "mad", "sad")
    assert LABELS["IEMOCAP"] == ("neutral", "frustrated", "angry", "sad", "excited", "happy")


def test_symbols_round_trip_and_legend():
    v = Vocabulary.of("MELD")
    assert [v.symbol(label) for label in v.labels] == list(range(1, 8))
    assert all(v.from_symbol(v.symbol(label)) == label for label in v.labels)
    assert v.legend().startswith("1 = neutral, 2 = joy, 3 = surprise")
    with pytest.raises(UnknownLabel):
        v.from_symbol(8)
    with pytest.raises(UnknownLabel):
        v.from_symbol(0)


@pytest.mark.parametrize(
    ("bench", "raw", "canonical"),
    [
        ("IEMOCAP", "fru", "frustrated"),
        ("IEMOCAP", "exc", "excited"),
        ("IEMOCAP", "neu", "neutral"),
        ("EmoryNLP", "Joyful", "joyful"),
        ("EmoryNLP", "Mad", "mad"),
        ("MELD", "surprise", "surprise"),
    ],
)
def test_raw_labels_map_to_canonical(bench, raw, canonical):
    assert Vocabulary.of(bench).canonical(raw) == canonical


def test_unknown_label_and_benchmark():
    with pytest.raises(UnknownLabel, match="happy"):
        Vocabulary.of("MELD").canonical("happy")
    with pytest.raises(KeyError, match="unknown benchmark"):
        Vocabulary.of("DailyDialog")
