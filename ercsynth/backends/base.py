"""What every backend shares: decoding parameters, a completion, the interface, stop strings, the
chat wrapping and the repetition penalty."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ercsynth.constraints import LineFormat
from ercsynth.prompts import HEADER, Prompt

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
    repetition_penalty: float = 1.0  # transformers' semantics over prompt and completion; 1.0 is off


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    error: str | None = None
    forced: bool = False  # the decoder forced the last line's symbol (a balanced target no line chose)


def penalize_repeats(scores, token_ids, penalty: float):
    """transformers' `repetition_penalty` on one row of logits, in place: every token that already
    occurs (`token_ids`, prompt and completion) has a positive logit divided by `penalty` and a
    negative one multiplied by it (CTRL, Keskar et al. 2019)."""
    import torch

    if penalty == 1.0 or not token_ids:
        return scores
    index = torch.as_tensor(list(token_ids), dtype=torch.long, device=scores.device)
    index = index[index < scores.shape[-1]]
    picked = scores[index]
    scores[index] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores


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
