from dataclasses import replace

import pytest
from conftest import BENCH, REPO, generation_settings

from ercsynth.benchmarks import load_split
from ercsynth.generation import plan_shard
from ercsynth.labels import Vocabulary
from ercsynth.prompts import TemplateError, Templates, build_prompt

GEN = generation_settings(
    dialogues=21,
    shards=3,
    seed=5,
    speakers=[2, 3],
    turns=[5, 9],
    scenes=["a kitchen", "a bus"],
    topics=["rent", "a party"],
    names=["Ann", "Bo", "Cy", "Di"],
)
TEMPLATES = Templates.load(*(REPO / "prompts" / f for f in ("completion.txt", "chat.txt", "balanced_constraint.txt")))


def test_balanced_targets_cycle_through_every_label():
    targets = [a.target for s in range(3) for a in plan_shard("EmoryNLP", "balanced", s, GEN).attempts]
    assert sorted(targets) == sorted(list(Vocabulary.of("EmoryNLP").labels) * 3)
    assert all(a.target is None for a in plan_shard("EmoryNLP", "natural", 0, GEN).attempts)


def test_plans_are_seeded_and_shards_partition_the_attempts():
    a = plan_shard("MELD", "natural", 1, GEN)
    assert a == plan_shard("MELD", "natural", 1, GEN)
    ids = [x.index for s in range(3) for x in plan_shard("MELD", "natural", s, GEN).attempts]
    assert sorted(ids) == list(range(21))
    assert len({x.seed for x in a.attempts}) == len(a.attempts)
    assert plan_shard("MELD", "natural", 1, replace(GEN, seed=6)).attempts[0].seed != a.attempts[0].seed


def test_chat_prompt_has_symbols_and_constraint():
    spec = plan_shard("MELD", "balanced", 0, GEN).attempts[3]  # index 9 -> label 9 % 7 = 2 -> surprise
    assert spec.target == "surprise"
    p = build_prompt(spec, Vocabulary.of("MELD"), TEMPLATES, "chat")
    assert "1 = neutral, 2 = joy, 3 = surprise, 4 = anger, 5 = sadness, 6 = disgust, 7 = fear" in p.text
    assert "At least one utterance must express surprise (symbol 3)" in p.text
    assert p.prefix == ""


def test_completion_prompt_has_real_examples_with_the_target_and_a_prefix():
    pool = load_split(BENCH, "MELD", "dev")
    spec = plan_shard("MELD", "balanced", 0, GEN, pool).attempts[1]
    p = build_prompt(spec, Vocabulary.of("MELD"), TEMPLATES, "completion", [pool[i] for i in spec.example_ids])
    assert p.text.count("### Conversation") == 3
    assert p.text.endswith(f"{spec.speakers[0]} |") and p.prefix == f"{spec.speakers[0]} |"
    sym = Vocabulary.of("MELD").symbol(spec.target)
    for i in spec.example_ids:
        assert any(u.label == spec.target for u in pool[i].utterances)
    assert f"| {sym}\n" in p.text


def test_bad_template_names_the_file(tmp_path):
    bad = tmp_path / "chat.txt"
    bad.write_text("Write about {place} with {legend}")
    good = REPO / "prompts"
    with pytest.raises(TemplateError, match=r"chat.txt: unknown field\(s\) place"):
        Templates.load(good / "completion.txt", bad, good / "balanced_constraint.txt")


def test_a_torn_last_record_is_cut_from_a_partial_shard(tmp_path):
    """A kill mid-write leaves half a line: resuming keeps the whole records and cuts the rest."""
    import json

    from ercsynth.generation import read_finished

    partial = tmp_path / "shard0.jsonl.partial"
    whole = [json.dumps({"attempt_id": f"a{i}", "completion": "Ann | hi | 1"}) + "\n" for i in range(2)]
    partial.write_text("".join(whole) + '{"attempt_id": "a2", "compl')
    assert list(read_finished(partial)) == ["a0", "a1"]
    assert partial.read_text() == "".join(whole)  # the torn bytes are gone, so appending stays valid JSONL
    assert list(read_finished(partial)) == ["a0", "a1"]


def test_a_template_in_another_encoding_names_file_and_line(tmp_path):
    bad = tmp_path / "chat.txt"
    bad.write_bytes("Write a dialogue.\nIn a caf\u00e9 with {legend}\n".encode("latin-1"))
    good = REPO / "prompts"
    with pytest.raises(TemplateError, match=r"chat.txt:2: not UTF-8 \(byte 0xe9 at column 9\)"):
        Templates.load(good / "completion.txt", bad, good / "balanced_constraint.txt")
    bad.write_bytes(b"\xef\xbb\xbf" + good.joinpath("chat.txt").read_bytes())  # a byte-order mark is fine
    assert Templates.load(good / "completion.txt", bad, good / "balanced_constraint.txt").chat.startswith(
        good.joinpath("chat.txt").read_text(encoding="utf-8")[:10]
    )
