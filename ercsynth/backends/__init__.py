"""LLM backends behind one interface (`base.Backend`): llama.cpp on a GGUF file (`llamacpp`), a local
transformers model (`transformers`), an OpenAI-compatible server (`openai`); `embedded` finds the
models shipped in PyPI packages. `make_backend` builds the configured one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ercsynth.backends.base import (
    COMPLETION_STOPS,
    Backend,
    BackendUnavailable,
    Completion,
    DecodingParams,
    cut_at_stops,
    penalize_repeats,
    render_chat,
)
from ercsynth.backends.openai import OpenAIBackend
from ercsynth.backends.transformers import TransformersBackend

if TYPE_CHECKING:  # generation imports this package: a type only, no import cycle
    from ercsynth.generation import GenerationSettings

__all__ = [
    "COMPLETION_STOPS",
    "Backend",
    "BackendUnavailable",
    "Completion",
    "DecodingParams",
    "OpenAIBackend",
    "TransformersBackend",
    "cut_at_stops",
    "make_backend",
    "penalize_repeats",
    "render_chat",
]


def make_backend(gen: GenerationSettings, model_path: str | None = None, threads: int | None = None) -> Backend:
    """Build the configured backend; `model_path` overrides the model (e.g. a converted checkpoint);
    `threads`: the CPU threads the job was given (llamacpp)."""
    c = gen.engine
    if gen.backend == "llamacpp":
        from ercsynth.backends.embedded import gguf_file
        from ercsynth.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model_path or gguf_file(c["model"]), c["parallel"], threads, c["context"], c["model"])
    if gen.backend == "openai":
        return OpenAIBackend(
            c["base_url"],
            c["model"],
            c["api_key_env"],
            c["concurrency"],
            c["timeout_s"],
            c["retries"],
            guided=c.get("guided", "none"),
        )
    return TransformersBackend(
        model_path or c["model"],
        quantization=c["quantization"],
        dtype=c["dtype"],
        conversation_format=c["conversation_format"],
    )
