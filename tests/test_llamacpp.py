"""The llama.cpp engine (the offline default) on the real embedded Gemma 3 270M GGUF."""

from __future__ import annotations

import pytest
from conftest import generation_settings

from ercsynth.backends import COMPLETION_STOPS, DecodingParams, make_backend
from ercsynth.backends.embedded import embedded_gguf
from ercsynth.backends.llamacpp import LlamaCppBackend, _common_prefix
from ercsynth.constraints import LineFormat
from ercsynth.labels import Vocabulary
from ercsynth.parsing import parse_completion
from ercsynth.prompts import HEADER, Prompt

V = Vocabulary.of("MELD")
LEGEND = ", ".join(f"{i} = {label}" for i, label in enumerate(V.labels, start=1))
INTRO = (
    "The following are everyday conversations. Each line is one utterance, written as: "
    f"speaker name | utterance | emotion symbol.\nEmotion symbols: {LEGEND}.\n\n"
    f"{HEADER}\nSetting: a kitchen.\nSpeakers: Ann, Bob.\n"
    "Ann | Did you see the news? | 1\nBob | No, what happened? | 3\nAnn | They closed the bakery. | 4\n"
    "Bob | Oh no, I loved that place! | 4\n\n"
)


def prompt(scene: str, first: str, second: str) -> Prompt:
    text = f"{INTRO}{HEADER}\nSetting: {scene}.\nSpeakers: {first}, {second}.\n{first} |"
    return Prompt("completion", text, f"{first} |")


PROMPTS = [
    prompt("a train station", "Alex", "Sam"),
    prompt("an office", "Jordan", "Casey"),
    prompt("a library", "Riley", "Dana"),
]


@pytest.fixture(scope="module")
def engine() -> LlamaCppBackend:
    backend = LlamaCppBackend(embedded_gguf("gemma3-270m"), parallel=2, threads=2, context=1024)
    yield backend
    backend.close()


def test_constrained_attempts_write_exactly_their_lines_and_planned_symbols(engine):
    """Three attempts on two slots (the third takes a freed slot): each writes its own line count,
    its own two speakers in turn, and the planned symbols, so every one parses whole."""
    plans = [("1", "4", "5", "2", "7"), ("3", "3", "6", "1"), ("2", "1", "5", "4", "6", "7")]
    formats = [
        LineFormat((p.prefix[:-2], other), tuple(str(i) for i in range(1, 8)), len(plan), plan)
        for p, other, plan in zip(PROMPTS, ("Sam", "Casey", "Dana"), plans, strict=True)
    ]
    out = engine.generate(PROMPTS, DecodingParams(120, 0.8, 0.95), [11, 12, 13], formats)
    assert len(out) == 3
    for p, fmt, plan, comp in zip(PROMPTS, formats, plans, out, strict=True):
        assert comp.error is None and comp.completion_tokens <= 120
        result = parse_completion(p.prefix + comp.text, V, "x", error=comp.error)
        assert result.dialogue is not None, (result.reason, comp.text)
        utterances = result.dialogue.utterances
        assert [str(V.symbol(u.label)) for u in utterances] == list(plan)
        speakers = [u.speaker for u in utterances]
        assert set(speakers) == set(fmt.speakers)
        assert all(a != b for a, b in zip(speakers, speakers[1:], strict=False))


def test_free_text_stops_at_the_next_conversation_and_keeps_the_budget(engine):
    out = engine.generate(PROMPTS, DecodingParams(48, 0.8, 0.95), [1, 2, 3])
    for comp in out:
        assert comp.error is None and 0 < comp.completion_tokens <= 48
        assert not any(stop in comp.text for stop in COMPLETION_STOPS)


def test_the_same_call_gives_the_same_text_and_each_attempt_follows_its_own_seed(engine):
    """Each attempt samples from its own seeded generator: a rerun of a shard gives the same dataset,
    and another seed another text. (Beside other attempts, llama.cpp's batched kernels change the
    logits in the last bits, so an attempt alone can differ: README, Generation.)"""
    params = DecodingParams(40, 0.8, 0.95)
    together = engine.generate(PROMPTS, params, [5, 6, 7])
    assert [c.text for c in engine.generate(PROMPTS, params, [5, 6, 7])] == [c.text for c in together]
    other_seed = engine.generate(PROMPTS, params, [5, 99, 7])
    assert other_seed[1].text != together[1].text


def test_a_prompt_longer_than_the_context_is_a_counted_error_not_a_crash(engine):
    too_long = Prompt("completion", INTRO * 20 + "Ann |", "Ann |")
    out = engine.generate([PROMPTS[0], too_long, PROMPTS[2]], DecodingParams(24, 0.8, 0.95), [1, 2, 3])
    assert out[1].error is not None and "generation.llamacpp.context" in out[1].error
    assert out[1].text == "" and out[1].prompt_tokens > 1024
    assert parse_completion(out[1].text, V, "x", error=out[1].error).reason == "backend_error"
    assert out[0].error is None and out[2].error is None and out[0].completion_tokens > 0


def test_the_shared_prompt_start_is_found():
    assert _common_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert _common_prefix([[7, 8], [7, 8]]) == 2
    assert _common_prefix([[1], [2]]) == 0


def test_make_backend_builds_the_embedded_engine_from_the_config():
    gen = generation_settings(backend="llamacpp", llamacpp={"model": "gemma3-270m", "parallel": 3, "context": 512})
    backend = make_backend(gen, threads=1)
    try:
        assert backend.name == "llamacpp" and backend.model == "gemma3-270m" and backend.parallel == 3
        assert backend.auto_batch_size(PROMPTS, 64) == 6
    finally:
        backend.close()
