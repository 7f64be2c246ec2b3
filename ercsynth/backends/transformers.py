"""A local causal LM through transformers: the GPU path and 4-bit bitsandbytes loading of the paper
config, and the embedded GGUF models converted by `ercsynth.backends.embedded`."""

from __future__ import annotations

import logging
import time

from ercsynth.backends.base import (
    COMPLETION_STOPS,
    BackendUnavailable,
    Completion,
    DecodingParams,
    cut_at_stops,
    render_chat,
)
from ercsynth.constraints import LineFormat
from ercsynth.prompts import Prompt

log = logging.getLogger(__name__)


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
            # generate() applies it before our logits processor, over prompt and completion.
            "repetition_penalty": params.repetition_penalty if params.repetition_penalty != 1.0 else None,
        }
        processor = None
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
                    forced=processor is not None and processor.states[i].forced,
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
