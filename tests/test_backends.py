"""Backends through their real code paths: bitsandbytes 4-bit on a tiny Llama, and the
OpenAI-compatible client against a real HTTP server started here."""

from __future__ import annotations

import socket
import threading

import pytest
from openai_server import Server

from ercsynth.backends import (
    BackendUnavailable,
    DecodingParams,
    OpenAIBackend,
    TransformersBackend,
    cut_at_stops,
    penalize_repeats,
    render_chat,
)
from ercsynth.labels import Vocabulary
from ercsynth.parsing import parse_completion
from ercsynth.prompts import Prompt


def test_four_bit_llama_loads_as_linear4bit_and_generates(tiny_llama):
    import bitsandbytes as bnb

    backend = TransformersBackend(str(tiny_llama), quantization="4bit", conversation_format="vicuna")
    layers = [m for m in backend.lm.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) >= 2 * 7  # q, k, v, o, gate, up, down per layer
    assert layers[0].weight.quant_type == "nf4"
    prompts = [
        Prompt("chat", "Write a short dialogue."),
        Prompt("chat", "Write a much longer dialogue about a party, please."),
    ]
    out = backend.generate(prompts, DecodingParams(max_new_tokens=12, temperature=0.9, top_p=0.9), [3, 4])
    assert len(out) == 2
    assert all(o.completion_tokens > 0 and o.prompt_tokens > 0 for o in out)
    assert out[0].prompt_tokens < out[1].prompt_tokens  # left padding is not counted as prompt
    assert backend.tokenizer.padding_side == "left"


def test_vicuna_format():
    text = render_chat("Write a dialogue.", "vicuna")
    assert text.startswith("A chat between a curious user and an artificial intelligence assistant.")
    assert text.endswith("USER: Write a dialogue. ASSISTANT:")


def test_completion_cut_at_stops():
    assert (
        cut_at_stops("A | hi | 1\nB | yo | 2\n\n### Conversation\nC | x | 1", "completion") == "A | hi | 1\nB | yo | 2"
    )
    assert cut_at_stops("a\n\nb", "chat") == "a\n\nb"


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.mark.workflow
def test_openai_chat_and_completion(server, monkeypatch):
    monkeypatch.setenv("ERC_KEY", "sekrit")
    backend = OpenAIBackend(server.url, "test-model", api_key_env="ERC_KEY", concurrency=3)
    prompts = [Prompt("chat", "hello"), Prompt("completion", "### Conversation\nAnn |", "Ann |")] * 3
    seeds = [101, 7, 5003, 42, 9, 77]  # each attempt's own seed, in no particular order
    out = backend.generate(prompts, DecodingParams(64, 0.7, 0.9), seeds)
    assert [o.completion_tokens for o in out] == [22] * 6 and all(o.error is None for o in out)
    assert parse_completion(out[0].text, Vocabulary.of("MELD"), "x").reason is None
    chat = next(r for r in server.requests if "messages" in r)
    comp = next(r for r in server.requests if "prompt" in r)
    assert chat["model"] == "test-model" and chat["max_tokens"] == 64 and chat["temperature"] == 0.7
    assert comp["stop"] == ["### Conversation", "\n\n"]
    assert {r["auth"] for r in server.requests} == {"Bearer sekrit"} and not server.rejected
    sent = {(r.get("prompt") or r["messages"][0]["content"], r["seed"]) for r in server.requests}
    assert sent == {
        (p.text, s) for p, s in zip(prompts, seeds, strict=True)
    }  # every request carries its attempt's seed


@pytest.mark.workflow
def test_openai_retries_with_backoff(server):
    server.failures_left = 2
    backend = OpenAIBackend(server.url, "m", retries=3, backoff_s=0.05)
    (out,) = backend.generate([Prompt("chat", "hi")], DecodingParams(), [1])
    assert out.error is None and len(server.requests) == 3


@pytest.mark.workflow
def test_openai_gives_up_after_retries_and_records_the_error(server):
    server.failures_left = 10
    backend = OpenAIBackend(server.url, "m", retries=2, backoff_s=0.01)
    (out,) = backend.generate([Prompt("chat", "hi")], DecodingParams(), [1])
    assert out.error == "HTTP 500" and out.text == ""
    assert parse_completion(out.text, Vocabulary.of("MELD"), "x", error=out.error).reason == "backend_error"


def finishes(call, limit_s: float = 60.0):
    """Run `call` in a thread; what it returned or raised, or an AssertionError if it hangs.

    The limit is a safety net against a hang, not a speed requirement."""
    result: dict = {}

    def run():
        try:
            result["value"] = call()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), "the client hung"
    return result


@pytest.mark.workflow
def test_openai_timeout_is_an_error_not_a_hang(server):
    server.mode = "hang"  # the server holds every request until the test releases it
    backend = OpenAIBackend(server.url, "m", timeout_s=0.3, retries=1, backoff_s=0.01)
    result = finishes(lambda: backend.generate([Prompt("chat", "hi")], DecodingParams(), [1]))
    assert isinstance(result.get("error"), BackendUnavailable) and "stopped answering" in str(result["error"])
    assert len(server.requests) == 2  # the first try and one retry, both abandoned


@pytest.mark.workflow
def test_openai_bad_bytes_and_garbage_are_rejected_not_crashes(server):
    v = Vocabulary.of("MELD")
    server.mode = "bytes"
    (out,) = OpenAIBackend(server.url, "m").generate([Prompt("completion", "x")], DecodingParams(), [1])
    assert parse_completion(out.text, v, "x").reason == "binary_or_non_utf8"
    server.mode = "garbage"
    (out,) = OpenAIBackend(server.url, "m", retries=0).generate([Prompt("completion", "x")], DecodingParams(), [1])
    assert out.error.startswith("malformed response")


def test_dead_server_is_a_clear_error():
    # A socket bound but never listening refuses connections, and keeps its port for the whole test.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result = finishes(lambda: OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", timeout_s=2))
    assert isinstance(result.get("error"), BackendUnavailable)
    assert f"no OpenAI-compatible server answers at http://127.0.0.1:{port}/v1" in str(result["error"])


def test_a_tokenizer_without_pad_token_pads_with_eos(tiny_llama, tmp_path):
    """Llama's tokenizer has no pad token: the backend pads the left of a batch with EOS."""
    import shutil

    from transformers import AutoTokenizer

    model = tmp_path / "llama-no-pad"
    shutil.copytree(tiny_llama, model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.pad_token = None
    tok.save_pretrained(model)
    assert AutoTokenizer.from_pretrained(model).pad_token is None
    backend = TransformersBackend(str(model))
    assert backend.tokenizer.pad_token == backend.tokenizer.eos_token
    prompts = [Prompt("chat", "Hi."), Prompt("chat", "Write a much longer dialogue about a party, please.")]
    out = backend.generate(prompts, DecodingParams(max_new_tokens=6, temperature=0.0, top_p=1.0), [1, 2])
    assert [o.prompt_tokens for o in out] == [
        len(backend.tokenizer(backend.prepare(p)).input_ids) for p in prompts
    ]  # the padding is not counted as prompt


@pytest.mark.workflow
def test_the_test_server_speaks_the_protocol(server):
    """Routes by path (404 elsewhere) and answers 400 to payloads a real server rejects."""
    import json
    import urllib.error
    import urllib.request

    def post(path: str, payload: dict) -> int:
        req = urllib.request.Request(server.url.removesuffix("/v1") + path, data=json.dumps(payload).encode())
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    good = {"model": "m", "prompt": "x", "max_tokens": 4, "seed": 1}
    assert post("/v1/completions", good) == 200
    assert post("/v1/chat/WRONG", good) == 404 and post("/nothing", good) == 404
    assert post("/v1/completions", good | {"max_token": 4}) == 400  # a misspelt field
    assert post("/v1/completions", good | {"seed": "1"}) == 400
    assert post("/v1/chat/completions", {"model": "m", "messages": [{"content": "hi"}]}) == 400
    assert len(server.rejected) == 3


def test_the_repetition_penalty_is_transformers_own():
    import torch
    from transformers import RepetitionPenaltyLogitsProcessor

    assert penalize_repeats(torch.tensor([2.0, -2.0, 1.0]), {0, 1}, 2.0).tolist() == [1.0, -4.0, 1.0]
    torch.manual_seed(0)
    scores, seen = torch.randn(50), torch.tensor([[3, 7, 7, 12, 49]])
    theirs = RepetitionPenaltyLogitsProcessor(1.3)(seen, scores.clone().unsqueeze(0))[0]
    assert torch.equal(penalize_repeats(scores.clone(), set(seen[0].tolist()), 1.3), theirs)
    assert torch.equal(penalize_repeats(scores.clone(), {3}, 1.0), scores)  # 1.0 is off
