"""LLM backends behind one interface: local transformers models (incl. 4-bit bitsandbytes and
the embedded GGUF models converted by `ercsynth.embedded`) and OpenAI-compatible HTTP servers."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ercsynth.constraints import LineFormat
from ercsynth.prompts import HEADER, Prompt

log = logging.getLogger(__name__)

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
# A completion stops at the next conversation header or an empty line.
COMPLETION_STOPS = (HEADER, "\n\n")


@dataclass(frozen=True)
class DecodingParams:
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_p: float = 0.95


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    error: str | None = None


class Backend(Protocol):
    name: str
    model: str

    def generate(
        self,
        prompts: list[Prompt],
        params: DecodingParams,
        seeds: list[int],
        formats: list[LineFormat] | None = None,
    ) -> list[Completion]:
        """One completion per prompt; `seeds` holds each attempt's own seed, in the same order;
        `formats`, when given, constrains each completion to its line format."""
        ...

    def auto_batch_size(self, prompts: list[Prompt], max_new_tokens: int) -> int: ...


class BackendUnavailable(RuntimeError):
    """The backend cannot be reached or loaded at all (not a bad generation)."""


def cut_at_stops(text: str, style: str) -> str:
    if style != "completion":
        return text
    cut = len(text)
    for stop in COMPLETION_STOPS:
        pos = text.find(stop)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]


# --------------------------------------------------------------------------- transformers
def render_chat(text: str, conversation_format: str, tokenizer=None) -> str:
    if conversation_format == "vicuna":
        return f"{VICUNA_SYSTEM} USER: {text} ASSISTANT:"
    if conversation_format == "chat_template" and tokenizer is not None and tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    return text


class TransformersBackend:
    """Any causal LM by hub id or folder; `quantization='4bit'` loads it with bitsandbytes NF4."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        quantization: str = "none",
        dtype: str = "float32",
        conversation_format: str = "none",
        device: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        self.conversation_format = conversation_format
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kwargs: dict = {}
        if quantization == "4bit":
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16,
            )
            kwargs["device_map"] = {"": 0} if self.device == "cuda" else {"": "cpu"}
        else:
            kwargs["dtype"] = getattr(torch, dtype)
        from ercsynth.hub import loadable

        try:
            folder = loadable(model)  # a fetched hub model: the snapshot its fetch recorded
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.lm = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        except (OSError, ValueError) as exc:
            raise BackendUnavailable(f"cannot load generation model {model!r}: {exc}") from exc
        if quantization != "4bit":
            self.lm.to(self.device)
        self.lm.eval()
        self.quantization = quantization
        # Batches are left-padded so every prompt ends right where generation starts.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def auto_batch_size(self, prompts: list[Prompt], max_new_tokens: int, limit: int = 128) -> int:
        """As many sequences as the GPU's free memory holds in KV cache (prompt + new tokens).

        Measured on an H200 with a 4-bit Vicuna-13B shape: batch 64 made 3.6x the tokens/s of
        batch 16, so the batch should be as large as memory allows; on a CPU, 8.
        """
        import torch

        if self.lm.device.type != "cuda":
            return 8
        cfg = self.lm.config
        layers = cfg.num_hidden_layers
        heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        longest = max((len(self.tokenizer(self.prepare(p))["input_ids"]) for p in prompts), default=0)
        per_token = 2 * layers * heads * head_dim * 2  # keys and values, 2 bytes each
        # Headroom for activations, logits and the allocator: a third on top.
        per_sequence = per_token * (longest + max_new_tokens) * 4 / 3
        free, _ = torch.cuda.mem_get_info(self.lm.device)
        fits = int(0.9 * free // per_sequence)
        return max(1, min(limit, fits - fits % 8 if fits >= 8 else fits))

    def prepare(self, prompt: Prompt) -> str:
        if prompt.style == "chat":
            return render_chat(prompt.text, self.conversation_format, self.tokenizer)
        return prompt.text

    def token_table(self):
        """The vocabulary's strings and masks for constrained decoding, built on first use."""
        from ercsynth.constraints import TokenTable

        if getattr(self, "_table", None) is None:
            self._table = TokenTable.from_tokenizer(self.tokenizer)
        return self._table

    def generate(
        self,
        prompts: list[Prompt],
        params: DecodingParams,
        seeds: list[int],
        formats: list[LineFormat] | None = None,
    ) -> list[Completion]:
        import torch

        # One sampler draws for the whole left-padded batch, so it can take one seed only: the first
        # attempt's. The text of an attempt therefore depends on its batch (docs/generation.md).
        torch.manual_seed(seeds[0])
        texts = [self.prepare(p) for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=True).to(self.lm.device)
        stops = list(COMPLETION_STOPS) if any(p.style == "completion" for p in prompts) else None
        sampling = {
            "do_sample": params.temperature > 0,
            "temperature": params.temperature if params.temperature > 0 else None,
            "top_p": params.top_p if params.temperature > 0 else None,
        }
        if formats is not None:
            from transformers import LogitsProcessorList

            from ercsynth.constraints import LineFormatProcessor

            processor = LineFormatProcessor(
                self.token_table(),
                formats,
                [p.prefix for p in prompts],
                params.max_new_tokens,
                params.temperature,
                params.top_p,
                # generate()'s own top-k (50 unless the model's generation config says otherwise), kept.
                getattr(self.lm.generation_config, "top_k", None) or 0,
            )
            # Temperature and top-p are applied by the processor after its mask; generate()'s own
            # warpers are switched off so that they never drop every allowed token first.
            sampling |= {"logits_processor": LogitsProcessorList([_Processor(processor)]), "top_k": 0}
            if params.temperature > 0:
                sampling |= {"temperature": 1.0, "top_p": 1.0}
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.lm.generate(
                **enc,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=stops,
                tokenizer=self.tokenizer if stops else None,
                **sampling,
            )
        seconds = time.perf_counter() - start
        new = out[:, enc["input_ids"].shape[1] :]
        results = []
        for i, prompt in enumerate(prompts):
            ids = new[i]
            n = int((ids != self.tokenizer.pad_token_id).sum())
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            results.append(
                Completion(
                    text=cut_at_stops(text, prompt.style),
                    prompt_tokens=int(enc["attention_mask"][i].sum()),
                    completion_tokens=n,
                    seconds=seconds / len(prompts),
                )
            )
        return results


def _Processor(fn):
    """A transformers LogitsProcessor around a callable (transformers is imported only when used)."""
    from transformers import LogitsProcessor

    class Wrapped(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return fn(input_ids, scores)

    return Wrapped()


# --------------------------------------------------------------------------- OpenAI-compatible HTTP
class OpenAIBackend:
    """vLLM, the llama.cpp server, Ollama, TGI: /v1/completions and /v1/chat/completions."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout_s: float = 120,
        retries: int = 3,
        backoff_s: float = 0.5,
        guided: str = "none",
    ) -> None:
        self.guided = guided  # none | vllm (guided_regex) | llamacpp (a GBNF grammar)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = os.environ.get(api_key_env, "")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.check_alive()

    def _request(self, path: str, payload: dict | None, timeout: float) -> dict:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method="POST" if data else "GET")
        req.add_header("Content-Type", "application/json")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        # A server may send anything; undecodable bytes become U+FFFD and are rejected by parsing.
        return json.loads(raw.decode("utf-8", errors="replace"))

    def check_alive(self) -> None:
        try:
            self._request("/models", None, timeout=min(10.0, self.timeout_s))
        except urllib.error.HTTPError:
            return  # the server answers; some do not implement /models
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise BackendUnavailable(
                f"no OpenAI-compatible server answers at {self.base_url} ({exc}); start it, or fix "
                "config key 'generation.openai.base_url'"
            ) from None

    def _one(self, prompt: Prompt, params: DecodingParams, seed: int, fmt: LineFormat | None = None) -> Completion:
        if prompt.style == "chat":
            path = "/chat/completions"
            payload: dict = {"model": self.model, "messages": [{"role": "user", "content": prompt.text}]}
        else:
            path = "/completions"
            payload = {"model": self.model, "prompt": prompt.text, "stop": list(COMPLETION_STOPS)}
        payload |= {
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": seed,
        }
        if fmt is not None and self.guided == "vllm":
            payload["guided_regex"] = fmt.regex(prefixed=bool(prompt.prefix))
        elif fmt is not None and self.guided == "llamacpp":
            payload["grammar"] = fmt.gbnf(prefixed=bool(prompt.prefix))
        start = time.perf_counter()
        last_error = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                body = self._request(path, payload, self.timeout_s)
                choice = body["choices"][0]
                text = choice["message"]["content"] if prompt.style == "chat" else choice["text"]
                usage = body.get("usage") or {}
                return Completion(
                    text=cut_at_stops(text or "", prompt.style),
                    prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0)),
                    seconds=time.perf_counter() - start,
                )
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last_error = f"connection: {exc}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                last_error = f"malformed response: {exc!r}"[:300]
        if last_error.startswith("connection"):
            raise BackendUnavailable(f"{self.base_url} stopped answering after {self.retries} retries ({last_error})")
        return Completion("", 0, 0, time.perf_counter() - start, error=last_error)

    def auto_batch_size(self, prompts: list[Prompt], max_new_tokens: int) -> int:
        return 4 * self.concurrency  # keeps every connection busy between batches

    def generate(
        self,
        prompts: list[Prompt],
        params: DecodingParams,
        seeds: list[int],
        formats: list[LineFormat] | None = None,
    ) -> list[Completion]:
        # Each request carries its own attempt's seed: a server that honours seeds returns the same
        # text for an attempt whatever the sharding, batching or concurrency.
        formats = formats if formats is not None else [None] * len(prompts)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(self._one, p, params, s, f) for p, s, f in zip(prompts, seeds, formats, strict=True)]
            return [f.result() for f in futures]


def make_backend(gen_cfg: dict, model_path: str | None = None, threads: int | None = None) -> Backend:
    """Build the configured backend; `model_path` overrides the model (e.g. a converted checkpoint);
    `threads`: the CPU threads the job was given (llamacpp)."""
    if gen_cfg["backend"] == "llamacpp":
        from ercsynth.embedded import gguf_file
        from ercsynth.llamacpp import LlamaCppBackend

        c = gen_cfg["llamacpp"]
        return LlamaCppBackend(model_path or gguf_file(c["model"]), c["parallel"], threads, c["context"], c["model"])
    if gen_cfg["backend"] == "openai":
        o = gen_cfg["openai"]
        return OpenAIBackend(
            o["base_url"],
            o["model"],
            o["api_key_env"],
            o["concurrency"],
            o["timeout_s"],
            o["retries"],
            guided=o.get("guided", "none"),
        )
    t = gen_cfg["transformers"]
    return TransformersBackend(
        model_path or t["model"],
        quantization=t["quantization"],
        dtype=t["dtype"],
        conversation_format=t["conversation_format"],
    )
