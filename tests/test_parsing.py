"""Whatever an LLM writes, parsing never crashes: each attempt is valid or rejected by reason."""

import json

import pytest
from conftest import BENCH

from ercsynth.benchmarks import load_tsv
from ercsynth.dialogues import repeated_lines
from ercsynth.labels import Vocabulary
from ercsynth.parsing import (
    REASONS,
    TooFewValid,
    check_yield,
    parse_completion,
    parse_records,
    read_raw,
    write_compm_tsv,
    write_hf_dataset,
)

V = Vocabulary.of("MELD")
GOOD = "Ann | Hi there! | 2\nBo | Oh no, not you again. | 4\nAnn | Come on. | 1\nBo | Fine. | 1\n"


def parse(text, **kw):
    return parse_completion(text, V, "d0", **kw)


def test_valid_dialogue():
    res = parse(GOOD)
    assert res.reason is None
    assert [(u.speaker, u.label) for u in res.dialogue.utterances] == [
        ("Ann", "joy"),
        ("Bo", "anger"),
        ("Ann", "neutral"),
        ("Bo", "neutral"),
    ]


@pytest.mark.parametrize(
    ("text", "kw", "reason"),
    [
        ("", {}, "empty_output"),
        ("   \n\n", {}, "empty_output"),
        ("x" * 30000, {}, "huge_output"),
        ("Ann | hi | 1\x00\x01\x02", {}, "binary_or_non_utf8"),
        ("Ann | caf\ufffd | 1\nBo | ok | 1", {}, "binary_or_non_utf8"),
        ("Once upon a time there was a dialogue.\nThe end.", {}, "no_parsable_lines"),
        (GOOD + "Ann | What? | 9\n", {}, "label_out_of_vocabulary"),
        # Symbols count from 1: a 0 must not wrap around to the last label, nor a -1 to the one before.
        (GOOD + "Ann | What? | 0\n", {}, "label_out_of_vocabulary"),
        (GOOD + "Ann | What? | -1\n", {}, "label_out_of_vocabulary"),
        (GOOD + "Ann | What? | 8\n", {}, "label_out_of_vocabulary"),
        (GOOD + "Ann | What? | happy\n", {}, "label_out_of_vocabulary"),
        (GOOD + " | What? | 1\n", {}, "missing_speaker_or_text"),
        (GOOD + "Ann |  | 1\n", {}, "missing_speaker_or_text"),
        ("Ann | Hi | 1\nBo | Hey | 1\n", {}, "too_few_utterances"),
        ("Ann | Hi | 1\nAnn | Hey | 1\nAnn | Yo | 2\nANN | So | 1\n", {}, "single_speaker"),
        (GOOD, {"target": "fear"}, "target_emotion_absent"),
        # Two of four lines repeat an earlier one (case and spaces ignored): a share of 0.5, over 0.25.
        (
            "Ann | Hi there | 1\nBo | OK | 2\nAnn | hi  THERE | 3\nBo | ok | 1\n",
            {"max_repeated_share": 0.25},
            "repetitive",
        ),
        ("whatever", {"error": "HTTP 500"}, "backend_error"),
    ],
)
def test_rejections(text, kw, reason):
    assert reason in REASONS
    assert parse(text, **kw).reason == reason


def test_a_dialogue_at_the_repeated_share_limit_is_kept():
    text = "Ann | Hi there | 1\nBo | OK | 2\nAnn | Fine. | 3\nBo | ok | 1\n"  # one repeat in four lines
    assert repeated_lines(parse(text).dialogue.utterances) == 1
    assert parse(text, max_repeated_share=0.25).reason is None
    assert parse(text, max_repeated_share=0.2).reason == "repetitive"


def test_tolerated_variants():
    text = "1. **Ann** | Hi there! | (2)\n2. Bo: Oh no. | 4 = anger\nAnn | Right. | neutral\nBo | Yes | 1.\n"
    res = parse(text)
    assert res.reason is None, res
    assert [u.label for u in res.dialogue.utterances] == ["joy", "anger", "neutral", "neutral"]


def test_truncated_last_line_is_dropped_and_the_rest_kept():
    res = parse(GOOD + "Ann | And then I sai")
    assert res.reason is None and res.dropped_truncated_line
    assert len(res.dialogue.utterances) == 4
    res = parse(GOOD + "Ann | And then I said |")
    assert res.reason is None and res.dropped_truncated_line


def test_target_present():
    assert parse(GOOD, target="anger").reason is None


def records(texts, **extra):
    return [
        {
            "attempt_id": f"a{i}",
            "index": i,
            "completion": t,
            "completion_tokens": 10,
            "seconds": 0.5,
            "backend": "transformers",
            "model": "m",
            **extra,
        }
        for i, t in enumerate(texts)
    ]


def test_report_counts_duplicates_and_prefix():
    recs = records([GOOD, GOOD, "garbage", ""])
    recs.append(
        {
            "attempt_id": "p",
            "index": 9,
            "response_prefix": "Ann |",
            "completion": GOOD[len("Ann |") :].replace("Hi there", "Hello"),
            "completion_tokens": 10,
            "seconds": 0.5,
            "backend": "transformers",
            "model": "m",
        }
    )
    dialogues, report = parse_records(recs, "MELD", "natural")
    r = report.to_json()
    assert r["attempted"] == 5 and r["valid"] == 2 and r["duplicates"] == 1
    assert (
        r["rejected"]["duplicate"] == 1
        and r["rejected"]["no_parsable_lines"] == 1
        and r["rejected"]["empty_output"] == 1
    )
    assert r["label_counts"]["neutral"] == 4 and set(r["label_counts"]) == set(V.labels)
    assert r["tokens_per_second"] == pytest.approx(20.0)
    assert dialogues[1].utterances[0].text == "Hello!"


def test_corrupt_and_non_utf8_raw_files_never_crash(tmp_path):
    raw = tmp_path / "shard0.jsonl"
    with raw.open("wb") as fh:
        fh.write(json.dumps(records([GOOD])[0]).encode() + b"\n")
        fh.write(b'{"attempt_id": "b", "completion": "Ann | caf\xff\xfe | 1"}\n')
        fh.write(b"\x00\x01 not json at all\n")
        fh.write(b"[1, 2, 3]\n")
        fh.write(json.dumps({"attempt_id": "c", "completion": {"nested": 1}}).encode() + b"\n")
    recs = read_raw([raw])
    dialogues, report = parse_records(recs, "MELD", "natural")
    assert report.attempted == 5 and report.valid == 1
    assert sum(report.rejected.values()) == 4


def test_compm_export_round_trips(tmp_path):
    dialogues, _ = parse_records(records([GOOD, GOOD.replace("Fine", "Great")]), "MELD", "natural")
    out = tmp_path / "compm.tsv"
    write_compm_tsv(out, dialogues)
    back = load_tsv(out, V)
    assert [[(u.speaker, u.text, u.label) for u in d.utterances] for d in back] == [
        [(u.speaker, u.text, u.label) for u in d.utterances] for d in dialogues
    ]
    assert out.read_text().splitlines()[0] == "Ann\tHi there!\tJoy"


def test_hf_export_loads_with_datasets(tmp_path):
    import datasets

    dialogues, report = parse_records(records([GOOD]), "MELD", "balanced")
    write_hf_dataset(tmp_path / "hf", dialogues, report, "PROMPT TEXT", "transformers:gemma")
    ds = datasets.load_dataset(str(tmp_path / "hf"), split="train")
    assert ds[0]["utterances"][1] == {"speaker": "Bo", "text": "Oh no, not you again.", "label": "anger"}
    card = (tmp_path / "hf" / "README.md").read_text()
    for needle in ("transformers:gemma", "PROMPT TEXT", "1 = neutral", "balanced", "Licence", "| anger | 4 | 1 |"):
        assert needle in card


def test_benchmark_text_parses_back(tmp_path):
    """Real MELD dialogues rendered in the prompt's line format parse back to themselves."""
    from ercsynth.benchmarks import load_split

    checked = 0
    for d in load_split(BENCH, "MELD", "dev")[:40]:
        if len({u.speaker for u in d.utterances}) < 2 or any("|" in u.text for u in d.utterances):
            continue
        text = "\n".join(f"{u.speaker} | {' '.join(u.text.split())} | {V.symbol(u.label)}" for u in d.utterances)
        res = parse(text, min_utterances=1)
        assert res.reason is None, (d.dialogue_id, res.reason)
        got = [(u.speaker, u.text, u.label) for u in res.dialogue.utterances]
        assert got == [(u.speaker, " ".join(u.text.split()), u.label) for u in d.utterances], d.dialogue_id
        checked += 1
    assert checked >= 20


# --------------------------------------------------------------------------- instruction-model line forms
@pytest.mark.parametrize(
    ("form", "line"),
    [
        ("colon, square bracket", "{name}: {text} [{n}]"),
        ("bold name, parenthesis", "**{name}**: {text} ({n})"),
        ("bold name with colon inside", "**{name}:** {text} ({n})"),
        ("dash bullet, named emotion", "- {name}: {text} (emotion: {n})"),
        ("numbered, colon", "{i}. {name}: {text} [{n}]"),
        ("numbered with parenthesis", "{i}) {name}: {text} (label = {n})"),
        ("numbered, pipes", "{i}. {name} | {text} | {n}"),
        ("label name in brackets", "{name}: {text} [{label}]"),
    ],
)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_instruction_model_forms(form, line, newline):
    rows = [("Ann", "Hi there!", 2), ("Bo", "Oh no, not you again.", 4), ("Ann", "Come on, it is fine.", 1)]
    rows += [("Bo", "Fine, fine.", 3)]
    text = newline.join(
        line.format(i=i, name=name, text=t, n=n, label=V.from_symbol(n)) for i, (name, t, n) in enumerate(rows, 1)
    )
    res = parse(text + newline)
    assert res.reason is None, (form, res)
    assert [(u.speaker, u.text, u.label) for u in res.dialogue.utterances] == [
        (name, t, V.from_symbol(n)) for name, t, n in rows
    ]


@pytest.mark.parametrize(
    ("near_miss", "reason"),
    [
        # No label at all: plain script lines are not utterances.
        ("Ann: Hi there!\nBo: Oh no.\nAnn: Come on.\nBo: Fine.\n", "no_parsable_lines"),
        # A stage direction in brackets is not a label.
        (
            "Ann: Hi there! (laughs)\nBo: Oh no. (sighs)\nAnn: Come on. [pause]\nBo: Fine. (smiles)\n",
            "no_parsable_lines",
        ),
        # A symbol outside the vocabulary, in the bracket forms.
        ("Ann: Hi [2]\nBo: Oh no. [4]\nAnn: Come on. [9]\nBo: Fine. [1]\n", "label_out_of_vocabulary"),
        (
            "- Ann: Hi (emotion: 2)\n- Bo: No (emotion: 4)\n- Ann: So (emotion: happy)\n- Bo: Ok (emotion: 1)\n",
            "label_out_of_vocabulary",
        ),
        # The label bracket in the middle of the line, not at its end.
        ("Ann: [2] Hi there\nBo: [4] Oh no\nAnn: [1] Come on\nBo: [1] Fine\n", "no_parsable_lines"),
        # A bracket with nothing before it is no utterance.
        ("Ann: [2]\nBo: [4]\nAnn: [1]\nBo: [1]\n", "missing_speaker_or_text"),
    ],
)
def test_near_misses_are_rejected(near_miss, reason):
    assert parse(near_miss).reason == reason
    assert parse(near_miss.replace("\n", "\r\n")).reason == reason


def test_report_gives_asked_and_achieved_distributions_and_yield_per_target():
    good = "Ann | Hi! | 2\nBo | No. | 4\nAnn | So. | 1\nBo | Ok. | 1\n"  # joy, anger, neutral, neutral
    planned = [
        {"index": 0, "completion": good, "spec": {"plan": ["joy", "anger", "neutral", "neutral"]}},
        {"index": 1, "completion": good.replace("| 1", "| 7"), "spec": {"plan": ["joy", "anger", "fear", "fear"]}},
    ]
    _, report = parse_records(planned, "MELD", "planned", min_utterances=4)
    assert report.asked == report.achieved  # each line carries its planned label
    assert report.asked["neutral"] == report.asked["fear"] == 0.25 and report.js_distance_asked_achieved == 0.0
    assert 0 < report.js_distance_to_uniform < 1
    balanced = [
        {"index": 0, "completion": good, "target_emotion": "anger"},
        {"index": 1, "completion": good, "target_emotion": "fear"},  # fear absent: rejected
        {"index": 2, "completion": good.replace("Hi!", "Hey!"), "target_emotion": "joy", "target_forced": True},
    ]
    _, report = parse_records(balanced, "MELD", "balanced", min_utterances=4)
    # joy was put on its last line by the decoder: valid, but not the model's own choice.
    assert report.yield_per_target["anger"] == {"attempted": 1, "valid": 1, "free": 1, "forced": 0}
    assert report.yield_per_target["joy"] == {"attempted": 1, "valid": 1, "free": 0, "forced": 1}
    assert report.yield_per_target["fear"] == {"attempted": 1, "valid": 0, "free": 0, "forced": 0}
    assert report.yield_per_target["sadness"] == {"attempted": 0, "valid": 0, "free": 0, "forced": 0}
    assert report.asked["anger"] == round(1 / 3, 4) and report.js_distance_asked_achieved > 0.3
    _, report = parse_records([balanced[0] | {"target_emotion": None}], "MELD", "natural", min_utterances=4)
    assert report.asked is None and report.yield_per_target is None and report.achieved["neutral"] == 0.5


def test_the_hard_stop_names_dataset_counts_reasons_and_the_setting():
    report = {"attempted": 64, "valid": 12, "rejected": {r: 0 for r in REASONS}}
    report["rejected"] |= {"target_emotion_absent": 30, "too_short": 15, "no_parsable_lines": 5, "huge_output": 2}
    assert check_yield(report, 0.15, "MELD/balanced") == {
        "dataset": "MELD/balanced",
        "attempted": 64,
        "valid": 12,
        "needed": 10,
        "min_valid": 0.15,
    }
    with pytest.raises(TooFewValid) as err:
        check_yield(report, 0.2, "MELD/balanced")  # needs ceil(12.8) = 13
    message = str(err.value)
    assert message.startswith("synthetic dataset MELD/balanced: 12 of 64 generation attempts are valid dialogues")
    assert "fewer than the 13 that config key 'generation.min_valid' (0.2) asks for" in message
    assert "most frequent rejections: target_emotion_absent 30, too_short 15, no_parsable_lines 5." in message
    # Never nothing: min_valid 0 still needs one dialogue.
    empty = {"attempted": 4, "valid": 0, "rejected": {"too_short": 4}}
    with pytest.raises(TooFewValid, match="0 of 4 .* fewer than the 1 .*rejections: too_short 4"):
        check_yield(empty, 0.0, "X/natural")


# --------------------------------------------------------------------------- what parsing must not trust
def test_an_unlabelled_line_between_utterances_rejects_the_dialogue():
    """A hole in the middle: Anna's reply would answer a line the dialogue no longer has."""
    text = (
        "Ben | How are you? | 1\nBen: what's up with you lately\nAnna | Fine. | 2\nBen | Good. | 1\nAnna | Yes. | 1\n"
    )
    assert parse(text).reason == "unlabelled_line"
    assert parse(text.replace("Ben: what's up with you lately", "Ben | what's up with you lately")).reason == (
        "unlabelled_line"
    )
    assert parse(text.replace("Ben: what's up with you lately", "Ben | what's up with you lately |")).reason == (
        "unlabelled_line"
    )
    # A torn last line keeps today's handling: dropped, the rest kept.
    res = parse(GOOD + "Ann: and then I")
    assert res.reason is None and res.dropped_truncated_line
    # A line that reads as no utterance (a scene note before the dialogue) is skipped.
    assert parse("The scene opens.\n" + GOOD).reason is None


def test_a_symbol_that_contradicts_its_own_name_is_a_conflict():
    for form in ("4 = joy", "2 (anger)", "joy (4)", "4: joy"):
        assert parse(GOOD + f"Ben | I hate this! | {form}\n").reason == "label_conflict", form
    # agreeing symbol and name, and a name that is no label beside a symbol, are accepted
    assert parse(GOOD + "Ben | I hate this! | 4 = anger\n").reason is None
    assert parse(GOOD + "Ben | I hate this! | 4 = furious\n").dialogue.utterances[-1].label == "anger"


def test_a_speaker_the_attempt_did_not_ask_for_is_refused():
    text = "Narrator | The scene opens on a rainy day. | 1\n" + GOOD
    assert parse(text, speakers=("Ann", "Bo")).reason == "unknown_speaker"
    assert parse(GOOD, speakers=("ann", "BO")).reason is None  # case is not a new speaker
    assert parse(text).reason is None  # no speakers on record (imported files): today's behaviour


@pytest.mark.parametrize(
    ("form", "label"),
    [("1 (neutral)", "neutral"), ("neutral (1)", "neutral"), ("1 = neutral", "neutral"), ("[1]", "neutral")],
)
def test_the_forms_instruction_models_write_are_accepted(form, label):
    text = "".join(
        f"{n} | {t} | {form}\n" for n, t in (("Anna", "Hi there."), ("Ben", "Hello."), ("Anna", "So."), ("Ben", "Ok."))
    )
    res = parse(text)
    assert res.reason is None, res
    assert [u.label for u in res.dialogue.utterances] == [label] * 4
    assert [u.text for u in res.dialogue.utterances] == ["Hi there.", "Hello.", "So.", "Ok."]


def test_records_name_their_speakers_and_parsing_holds_them_to_it():
    rec = {"attempt_id": "a", "completion": "Narrator | Rain. | 1\n" + GOOD, "spec": {"speakers": ["Ann", "Bo"]}}
    _, report = parse_records([rec, rec | {"spec": {}}], "MELD", "natural")
    assert report.rejected["unknown_speaker"] == 1 and report.valid == 1
