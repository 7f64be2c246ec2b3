"""IEMOCAP from its release layout: a small release made here (the real one is licensed), with the
release's own file names and line forms, converted to the files the workflow reads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ercsynth.benchmarks import load_file
from ercsynth.iemocap import ReleaseError, convert, main

# Per dialogue: (utterance id, start, end, text, label). Lines are written out of time order, and
# with labels the converter leaves out (xxx, fru kept, sur dropped).
UTTERANCES = [
    ("F000", 6.29, 8.23, "Excuse me.", "neu"),
    ("M000", 8.50, 10.10, "Do you have your forms?", "fru"),
    ("F001", 10.90, 12.00, "Yeah.", "xxx"),  # no agreement: left out
    ("M001", 13.00, 15.50, "Let me see them.", "ang"),
    ("F002", 16.00, 17.20, "Is there a problem?", "sur"),  # outside the six: left out
    ("M002", 18.00, 19.00, "Who told you   to get in this line?", "exc"),
]


def write_dialogue(root, session, name):
    folder = root / f"Session{session}" / "dialog"
    (folder / "transcriptions").mkdir(parents=True, exist_ok=True)
    (folder / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
    ids = [(f"{name}_{u}", s, e, t, lab) for u, s, e, t, lab in UTTERANCES]
    order = [3, 0, 2, 1, 5, 4]  # not in time order: the converter sorts by start
    transcript = [f"{ids[i][0]} [{ids[i][1]:08.4f}-{ids[i][2]:08.4f}]: {ids[i][3]}" for i in order]
    transcript.insert(2, f"{name}_MXX0 [020.0000-021.0000]: [LAUGHTER]")  # a noise mark without a label
    (folder / "transcriptions" / f"{name}.txt").write_text("\n".join(transcript) + "\n")
    evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    for uid, s, e, _, lab in ids:
        evaluation += [f"[{s:.4f} - {e:.4f}]\t{uid}\t{lab}\t[2.5000, 2.5000, 2.5000]", "C-E1:\tNeutral;\t()", ""]
    (folder / "EmoEvaluation" / f"{name}.txt").write_text("\n".join(evaluation))


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    for session in range(1, 6):
        for k in range(1, 4 if session < 5 else 3):  # 3 dialogues in Sessions 1-4, 2 in Session 5
            gender = "F" if k % 2 else "M"
            write_dialogue(root, session, f"Ses0{session}{gender}_impro0{k}")
    return root


def read(path):
    return [block.splitlines() for block in path.read_text().split("\n\n")]


def test_the_release_converts_to_the_three_files_with_the_standard_split(release, tmp_path):
    out = tmp_path / "IEMOCAP"
    counts = convert(release, out, dev_ids=["Ses02M_impro02"])
    # Four labelled utterances of the six lines, per dialogue; Session 5 is test; one dev dialogue.
    assert counts == {"train": (11, 44), "dev": (1, 4), "test": (2, 8)}
    test = read(out / "iemocap_test.txt")
    assert len(test) == 2 and test[0] == [
        "F\tExcuse me.\tneu",
        "M\tDo you have your forms?\tfru",
        "M\tLet me see them.\tang",
        "M\tWho told you to get in this line?\texc",
    ]
    assert read(out / "iemocap_dev.txt") == [test[0]]  # the same lines, Session 2's copy
    # The workflow reads them with the built-in definition: labels mapped to their names.
    dialogues = load_file(out / "iemocap_train.txt", "IEMOCAP", "tsv")
    assert len(dialogues) == 11 and [u.label for u in dialogues[0].utterances] == [
        "neutral",
        "frustrated",
        "angry",
        "excited",
    ]


def test_without_dev_ids_a_seeded_tenth_of_sessions_1_to_4_is_dev(release, tmp_path):
    a = convert(release, tmp_path / "a", seed=3)
    b = convert(release, tmp_path / "b", seed=3)
    assert a == b and a["dev"][0] == round(0.1 * 12) == 1 and a["train"][0] == 11 and a["test"][0] == 2
    assert (tmp_path / "a" / "iemocap_dev.txt").read_text() == (tmp_path / "b" / "iemocap_dev.txt").read_text()


def test_errors_name_the_path(release, tmp_path):
    with pytest.raises(ReleaseError, match=r"Session1/dialog/transcriptions: not found"):
        convert(tmp_path / "elsewhere", tmp_path / "out")
    with pytest.raises(ReleaseError, match="not a Session 1-4 dialogue of this release: Ses05F_impro01"):
        convert(release, tmp_path / "out", dev_ids=["Ses05F_impro01"])
    (release / "Session3" / "dialog" / "EmoEvaluation" / "Ses03M_impro02.txt").unlink()
    with pytest.raises(ReleaseError, match=r"Ses03M_impro02.txt: no emotion evaluation"):
        convert(release, tmp_path / "out")


def test_the_command_line(release, tmp_path):
    ids = tmp_path / "dev.txt"
    ids.write_text("Ses01F_impro01\nSes04F_impro03\n")
    assert main([str(release), str(tmp_path / "out"), "--dev-ids", str(ids)]) == 0
    assert len(read(tmp_path / "out" / "iemocap_dev.txt")) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "ercsynth.iemocap", str(tmp_path / "nothing"), str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "ercsynth.iemocap: " in proc.stderr and "IEMOCAP_full_release" in proc.stderr


def test_a_release_file_in_another_encoding_stops_with_its_line(release, tmp_path):
    transcript = release / "Session2" / "dialog" / "transcriptions" / "Ses02F_impro01.txt"
    lines = transcript.read_bytes().split(b"\n")
    lines[1] = lines[1] + " na\u00efve".encode("latin-1")
    transcript.write_bytes(b"\n".join(lines))
    assert main([str(release), str(tmp_path / "out")]) == 2
    proc = subprocess.run(
        [sys.executable, "-m", "ercsynth.iemocap", str(release), str(tmp_path / "o")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and f"{transcript}:2: not UTF-8 (byte 0xef at column" in proc.stderr
    assert "Traceback" not in proc.stderr
