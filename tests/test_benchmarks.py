"""The loaders against the real released files in ../shared/benchmarks, and bad inputs."""

import pytest
from conftest import BENCH

from ercsynth.benchmarks import BenchmarkFormatError, BenchmarkMissing, load_emory_json, load_split, load_tsv
from ercsynth.labels import LABELS, Vocabulary

# From ../shared/benchmarks/README.md: (dialogues, utterances) per split.
COUNTS = {
    "MELD": {"train": (1038, 9989), "dev": (114, 1109), "test": (280, 2610)},
    "EmoryNLP": {"train": (713, 9934), "dev": (99, 1344), "test": (85, 1328)},
    "IEMOCAP": {"train": (108, 5163), "dev": (12, 647), "test": (31, 1623)},
}


@pytest.mark.parametrize("bench", list(COUNTS))
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_counts_match_the_release(bench, split, request):
    if bench == "IEMOCAP":
        request.getfixturevalue("iemocap")
    dialogues = load_split(BENCH, bench, split)
    assert (len(dialogues), sum(len(d.utterances) for d in dialogues)) == COUNTS[bench][split]
    assert {u.label for d in dialogues for u in d.utterances} <= set(LABELS[bench])


@pytest.mark.parametrize("split", ["dev", "test"])
def test_emorynlp_json_matches_tsv(split):
    tsv = load_split(BENCH, "EmoryNLP", split, "tsv")
    js = load_split(BENCH, "EmoryNLP", split, "json")
    assert len(js) == len(tsv) == COUNTS["EmoryNLP"][split][0]
    assert [u.label for d in js for u in d.utterances] == [u.label for d in tsv for u in d.utterances]
    multi = [u.speaker for d in js for u in d.utterances if ", " in u.speaker]
    assert multi, "some JSON utterances have several speakers; they are kept"


def test_meld_text_kept_as_is_and_order():
    train = load_split(BENCH, "MELD", "train")
    first = train[0]
    assert first.dialogue_id == "0"
    assert first.utterances[0].speaker == "Chandler"
    assert (
        first.utterances[0].text
        == "also I was the point person on my company\u2019s transition from the KL-5 to GR-6 system."
    )
    texts = [u.text for d in train for u in d.utterances]
    assert any("\u2026" in t or "\u2014" in t or "\u2019" in t for t in texts)
    assert not any(t.endswith("\r") for t in texts)


def test_iemocap_labels_are_canonical(iemocap):
    labels = {u.label for d in load_split(BENCH, "IEMOCAP", "train") for u in d.utterances}
    assert labels == set(LABELS["IEMOCAP"])


def test_meld_wrong_columns(tmp_path):
    bad = tmp_path / "train_sent_emo.csv"
    bad.write_text("Sr No.,Utterance,Speaker,Feeling,Dialogue_ID,Utterance_ID\n1,Hi,Joey,joy,0,0\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=r"train_sent_emo.csv:1: wrong columns: missing Emotion"):
        from ercsynth.benchmarks import load_meld_csv

        load_meld_csv(bad)


def test_meld_unknown_label_names_line(tmp_path):
    from ercsynth.benchmarks import load_meld_csv

    bad = tmp_path / "x.csv"
    bad.write_text(
        "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\r\n"
        '1,"Hi,\r\nthere",Joey,joy,positive,0,0\r\n'
        "2,Oh.,Ross,happiness,positive,0,1\r\n",
        encoding="utf-8",
    )
    with pytest.raises(BenchmarkFormatError, match=r"x.csv:4: unknown MELD label 'happiness'"):
        load_meld_csv(bad)


def test_tsv_line_that_does_not_split(tmp_path):
    bad = tmp_path / "emorynlp_dev.txt"
    bad.write_text("Ross\tHi.\tNeutral\nRachel  Hello there  Joyful\n", encoding="utf-8")
    with pytest.raises(
        BenchmarkFormatError, match=r"emorynlp_dev.txt:2: expected 'speaker<TAB>utterance<TAB>label', found 1 field"
    ):
        load_tsv(bad, Vocabulary.of("EmoryNLP"))


def test_tsv_unknown_label(tmp_path):
    bad = tmp_path / "iemocap_dev.txt"
    bad.write_text("F\tHi.\tneu\n\nM\tNo!\txxx\n", encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match=r"iemocap_dev.txt:3: unknown IEMOCAP label 'xxx'"):
        load_tsv(bad, Vocabulary.of("IEMOCAP"))


def test_tsv_keeps_odd_text_and_handles_trailing_blank_lines(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("A\tSo  \u201cwell\u201d\u2026 caf\u00e9\tneu\nB\tyes\tsad\n\n\n", encoding="utf-8")
    (d,) = load_tsv(f, Vocabulary.of("IEMOCAP"))
    assert d.utterances[0].text == "So  \u201cwell\u201d\u2026 caf\u00e9"


def test_emory_json_not_the_layout(tmp_path):
    bad = tmp_path / "e.json"
    bad.write_text('{"episodes": [{"scenes": [{"utterances": [{"speakers": ["A"]}]}]}]}', encoding="utf-8")
    with pytest.raises(BenchmarkFormatError, match="e.json: not the EmoryNLP JSON layout"):
        load_emory_json(bad)


def test_missing_iemocap_says_how_to_obtain(tmp_path):
    with pytest.raises(BenchmarkMissing, match="never downloaded"):
        load_split(tmp_path, "IEMOCAP", "train")


# --------------------------------------------------------------------------- encodings
MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\r\n"


def test_a_file_in_another_encoding_names_file_line_and_column(tmp_path):
    """A corpus exported from a spreadsheet as Windows-1252: the first byte that is not UTF-8."""
    from ercsynth.benchmarks import load_meld_csv

    bad = tmp_path / "train_sent_emo.csv"
    bad.write_bytes(
        (MELD_HEADER + "1,Hi.,Joey,joy,positive,0,0\r\n2,Caf\u00e9 \u2013 now?,Ross,neutral,neutral,0,1\r\n").encode(
            "cp1252"
        )
    )
    with pytest.raises(
        BenchmarkFormatError,
        match=rf"^{bad}:3: not UTF-8 \(byte 0xe9 at column 6\); re-save the file as UTF-8$",
    ):
        load_meld_csv(bad)
    tsv = tmp_path / "emorynlp_dev.txt"
    tsv.write_bytes("Ross\tHi.\tNeutral\nRachel\tSch\u00f6n.\tJoyful\n".encode("latin-1"))
    with pytest.raises(BenchmarkFormatError, match=r"emorynlp_dev.txt:2: not UTF-8 \(byte 0xf6 at column 11\)"):
        load_tsv(tsv, Vocabulary.of("EmoryNLP"))


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    from ercsynth.benchmarks import load_meld_csv

    bom = tmp_path / "dev_sent_emo.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (MELD_HEADER + "1,Caf\u00e9?,Joey,joy,positive,0,0\r\n").encode("utf-8"))
    (d,) = load_meld_csv(bom)
    assert [(u.speaker, u.text, u.label) for u in d.utterances] == [("Joey", "Caf\u00e9?", "joy")]
    tsv = tmp_path / "emorynlp_dev.txt"
    tsv.write_bytes(b"\xef\xbb\xbfRoss\tHi.\tNeutral\n")
    (d,) = load_tsv(tsv, Vocabulary.of("EmoryNLP"))
    assert d.utterances[0].speaker == "Ross"  # with the mark left in: '\ufeffRoss'


@pytest.mark.workflow
def test_prepare_benchmark_stops_on_a_file_in_another_encoding_without_a_traceback(tmp_path):
    import shutil

    from conftest import snakemake

    bench = tmp_path / "bench"
    shutil.copytree(BENCH / "MELD", bench / "MELD")
    path = bench / "MELD" / "dev_sent_emo.csv"
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b",", b" caf\xe9,", 1)  # one Windows-1252 byte on line 6
    path.write_bytes(b"\n".join(lines))
    column = lines[5].index(b"\xe9") + 1
    target = "results/benchmarks/MELD/dev.jsonl"
    proc = snakemake(tmp_path, target, check=False, bench=bench, extra_config=["benchmarks=[MELD]"])
    message = f"{path}:6: not UTF-8 (byte 0xe9 at column {column}); re-save the file as UTF-8"
    assert proc.returncode != 0 and message in proc.stderr
    log = (tmp_path / "results" / "logs" / "prepare_benchmark" / "MELD_dev.log").read_text()
    assert message in log and "Traceback" not in log + proc.stderr
