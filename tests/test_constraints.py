"""Constrained decoding: the automaton, the server grammars, and a random model forced into the format."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import pytest
from conftest import generation_settings
from test_backends import server  # noqa: F401 - the OpenAI test server fixture

from ercsynth.backends import DecodingParams, OpenAIBackend, TransformersBackend
from ercsynth.constraints import LineFormat, LineFormatProcessor, LineState, TokenTable
from ercsynth.dialogues import repeated_lines
from ercsynth.generation import line_format, plan_shard, planned_labels
from ercsynth.labels import Vocabulary
from ercsynth.parsing import parse_completion
from ercsynth.prompts import Prompt

V = Vocabulary.of("MELD")
SYMBOLS = tuple(str(i) for i in range(1, 8))
FREE = LineFormat(("Ann", "Bo"), SYMBOLS, 3)
PLANNED = LineFormat(("Ann", "Bo", "Cy"), SYMBOLS, 3, plan=("2", "7", "5"))
GOOD = "Ann | Hi there! | 2\nBo | Oh no. | 7\nAnn | Fine, fine. | 5\n"


@pytest.mark.parametrize(
    ("fmt", "text", "ok"),
    [
        (FREE, GOOD, True),
        (PLANNED, GOOD, True),
        (PLANNED, GOOD.replace("| 7", "| 6"), False),  # not the planned symbol
        (FREE, GOOD.replace("| 7", "| 8"), False),  # outside the vocabulary
        (FREE, GOOD.replace("Bo |", "Dan |"), False),  # not one of the attempt's speakers
        (FREE, GOOD.replace("Bo |", "Ann |"), False),  # the same speaker twice in a row
        (FREE, GOOD.replace("Hi there!", ""), False),  # no text
        (FREE, GOOD.replace("Hi there!", "Hi\nthere"), False),  # a line break inside the text
        (FREE, GOOD + "Bo | More. | 1\n", False),  # a line more than asked for
        (FREE, GOOD.replace("| 2", "2"), False),  # no separator before the symbol
    ],
)
def test_the_automaton_accepts_exactly_the_format(fmt, text, ok):
    state = LineState(fmt)
    assert state.feed(text) is ok
    assert (state.done and not state.failed) is ok
    if "Bo |" in text:  # the server grammars do not know who spoke last; otherwise the same language
        assert (re.fullmatch(fmt.regex(), text) is not None) is ok


def test_the_decoder_refuses_a_copy_of_an_earlier_line():
    distinct = LineFormat(("Ann", "Bo"), SYMBOLS, 3, distinct_lines=True)
    copy = "Ann | Hi there! | 2\nBo | hi  THERE! | 7\n"  # the first line again, other case and spacing
    assert LineState(FREE).feed(copy)
    state = LineState(distinct)
    assert not state.feed(copy) and state.failed
    assert LineState(distinct).feed(GOOD)
    # In the mask: after the copied text, no "|" may end the line; text that makes it new may follow.
    strings = ["", " |", "|", " Hi", " there", "!", " hi", " again", " 2\n", "Bo |"]
    proc = LineFormatProcessor(TokenTable(strings, eos=0), [distinct], ["Ann |"], 120, 1.0, 1.0)
    for token in (" Hi", " there", "!", " |", " 2\n", "Bo |", " hi", " there", "!"):
        proc.observe(0, strings.index(token))
    allowed = proc._allowed(proc.states[0], 0)
    assert not allowed[strings.index(" |")] and not allowed[strings.index("|")]
    assert allowed[strings.index(" again")]
    proc.observe(0, strings.index(" again"))
    assert proc._allowed(proc.states[0], 0)[strings.index(" |")]


def test_a_balanced_attempt_without_its_target_gets_it_on_its_last_line():
    balanced = LineFormat(("Ann", "Bo"), SYMBOLS, 3, required="5")
    state = LineState(balanced)
    assert state.feed("Ann | Hi there! | 2\nBo | Oh no. | 7\nAnn | Fine. |")
    assert state.choices == (" 5\n", "5\n") and state.forced
    assert not LineState(balanced).feed("Ann | Hi there! | 2\nBo | Oh no. | 7\nAnn | Fine. | 1\n")
    # Chosen freely on an earlier line: the last line is free, nothing is forced.
    free = LineState(balanced)
    assert free.feed("Ann | Hi there! | 5\nBo | Oh no. | 7\nAnn | Fine. | 1\n") and free.done and not free.forced


def test_the_response_prefix_starts_the_first_line():
    state = LineState(FREE)
    assert state.feed("Ann |") and state.mode == "text"
    assert state.feed(GOOD[len("Ann |") :]) and state.done
    assert re.fullmatch(FREE.regex(prefixed=True), GOOD[len("Ann |") :])
    grammar = PLANNED.gbnf(prefixed=True)
    assert 'line0 ::= text "|" " "? ("2") "\\n"' in grammar and 'line1 ::= name " |" text' in grammar


def test_planned_labels_follow_the_asked_distribution():
    turns = [5, 7, 4, 6, 8, 5, 6, 7]  # 48 utterances
    plans = planned_labels(turns, V.labels, generation_settings(seed=13), "MELD")
    assert [len(p) for p in plans] == turns
    counts = Counter(label for p in plans for label in p)
    assert max(counts.values()) - min(counts.values()) <= 1 and set(counts) == set(V.labels)
    weighted = planned_labels(
        turns, V.labels, generation_settings(seed=13, planned={"target_distribution": {"neutral": 3, "joy": 1}}), "MELD"
    )
    counts = Counter(label for p in weighted for label in p)
    assert set(counts) == {"neutral", "joy"} and counts["neutral"] == 3 * counts["joy"]
    with pytest.raises(ValueError, match="generation.planned.target_distribution': happy not in MELD"):
        planned_labels(
            turns, V.labels, generation_settings(seed=1, planned={"target_distribution": {"happy": 1}}), "MELD"
        )


def test_the_plan_of_a_seed_is_pinned_and_mixes_labels_within_each_attempt():
    """The dataset-wide pool is shuffled: each attempt gets a mix, not a block of one label. The
    exact plan of seed 13 is pinned, so a change to the shuffle is a deliberate one."""
    plans = planned_labels([4, 5, 4], V.labels, generation_settings(seed=13), "MELD")
    assert plans == [
        ("surprise", "anger", "sadness", "disgust"),
        ("neutral", "disgust", "surprise", "joy", "sadness"),
        ("neutral", "joy", "anger", "fear"),
    ]
    assert all(len(set(p)) > 1 for p in plans)


def test_every_shard_takes_its_slice_of_one_plan():
    gen = generation_settings(
        dialogues=9,
        shards=2,
        seed=3,
        speakers=[2, 3],
        turns=[4, 8],
        names=["A", "B", "C", "D"],
        scenes=["s"],
        topics=["t"],
    )
    whole = plan_shard("MELD", "planned", 0, replace(gen, shards=1)).attempts
    shards = [a for s in range(2) for a in plan_shard("MELD", "planned", s, gen).attempts]
    assert sorted((a.index, a.plan) for a in shards) == [(a.index, a.plan) for a in whole]
    assert line_format(whole[0], V).plan == tuple(str(V.symbol(x)) for x in whole[0].plan)


def test_a_random_model_writes_only_the_format(tiny_llama):
    """A randomly initialised Llama writes noise; under the constraints every completion parses,
    with the asked number of lines, alternating speakers and, when planned, the planned labels."""
    backend = TransformersBackend(str(tiny_llama))
    formats = [
        LineFormat(("Ann", "Bo"), SYMBOLS, 4),
        LineFormat(("Ann", "Bo", "Cy"), SYMBOLS, 5, plan=("3", "3", "1", "7", "2")),
        LineFormat(("Dee", "Eve"), SYMBOLS, 4, plan=("6", "5", "4", "1")),
        LineFormat(("Fay", "Gil"), SYMBOLS, 4, required="6", distinct_lines=True),  # balanced, target 6
    ]
    prompts = [Prompt("completion", "### Conversation\nAnn |", "Ann |"), Prompt("chat", "Write a dialogue.")]
    prompts.append(Prompt("completion", "### Conversation\nDee |", "Dee |"))
    prompts.append(Prompt("completion", "### Conversation\nFay |", "Fay |"))
    out = backend.generate(prompts, DecodingParams(120, 1.0, 0.95, repetition_penalty=1.3), [1, 2, 3, 4], formats)
    for prompt, fmt, comp in zip(prompts, formats, out, strict=True):
        res = parse_completion(prompt.prefix + comp.text, V, "d", min_utterances=1)
        assert res.reason is None and res.skipped_lines == 0, (prompt.prefix + comp.text, res)
        utts = res.dialogue.utterances
        assert len(utts) == fmt.lines
        assert {u.speaker for u in utts} <= set(fmt.speakers)
        assert all(a.speaker != b.speaker for a, b in zip(utts, utts[1:], strict=False))
        if fmt.plan:
            assert [str(V.symbol(u.label)) for u in utts] == list(fmt.plan)
        if fmt.required:
            assert fmt.required in [str(V.symbol(u.label)) for u in utts]
            assert comp.forced == (
                str(V.symbol(utts[-1].label)) == fmt.required
                and fmt.required not in [str(V.symbol(u.label)) for u in utts[:-1]]
            )
        if fmt.distinct_lines:
            assert repeated_lines(utts) == 0
    free = backend.generate(prompts[:1], DecodingParams(40, 1.0, 0.95), [1])  # the same model, unconstrained
    assert parse_completion("Ann |" + free[0].text, V, "d", min_utterances=1).reason is not None


@pytest.mark.workflow
@pytest.mark.parametrize(("guided", "field"), [("vllm", "guided_regex"), ("llamacpp", "grammar"), ("none", None)])
def test_the_openai_backend_sends_the_servers_guided_decoding_field(server, guided, field):  # noqa: F811
    backend = OpenAIBackend(server.url, "m", guided=guided)
    params = DecodingParams(64, repetition_penalty=1.2)
    backend.generate([Prompt("completion", "### Conversation\nAnn |", "Ann |")], params, [1], [PLANNED])
    (request,) = server.requests
    if field is None:  # a server of unknown kind: the OpenAI API's fields only
        assert not {"guided_regex", "grammar", "repetition_penalty", "repeat_penalty"} & set(request)
    else:
        expected = PLANNED.regex(prefixed=True) if guided == "vllm" else PLANNED.gbnf(prefixed=True)
        assert request[field] == expected
        penalty = "repetition_penalty" if guided == "vllm" else "repeat_penalty"
        assert request[penalty] == 1.2
