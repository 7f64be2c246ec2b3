"""An OpenAI-compatible HTTP server (vLLM, llama.cpp's server, Ollama, TGI), requests in parallel."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ercsynth.backends.base import COMPLETION_STOPS, BackendUnavailable, Completion, DecodingParams, cut_at_stops
from ercsynth.constraints import LineFormat
from ercsynth.prompts import Prompt

log = logging.getLogger(__name__)
# The repetition penalty's field on servers that take one: vLLM's has transformers' semantics, the
# llama.cpp server's applies it to a window of recent tokens.
PENALTY_FIELD = {"vllm": "repetition_penalty", "llamacpp": "repeat_penalty"}


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
        if params.repetition_penalty != 1.0 and self.guided in PENALTY_FIELD:
            # Not part of OpenAI's API, which rejects unknown fields: sent only to a server known to
            # take it (guided: vllm or llamacpp); a server of unknown kind gets no penalty.
            payload[PENALTY_FIELD[self.guided]] = params.repetition_penalty
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
