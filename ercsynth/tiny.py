"""Models of the paper's families with random weights, saved like hub models, and a byte-level BPE
tokenizer trained here: what the tests and the GPU benchmark use where a hub model would be needed
(roberta-large, Vicuna / Llama, COMET BART), with no download."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

ROBERTA_LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096}
LLAMA_13B = {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40, "num_attention_heads": 40}


def train_tokenizer(texts: list[str], vocab_size: int, out: str | Path) -> Path:
    """A RoBERTa-style byte-level BPE tokenizer (<s>, <pad>, </s>, <unk>, <mask>) trained on `texts`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
    )
    tok.save_pretrained(out)
    return Path(out)


def _special_ids(tokenizer_dir: str | Path) -> tuple[object, dict]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    return tok, {"pad_token_id": tok.pad_token_id, "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Random weights that depend on `seed` alone, not on what ran before in the process (a test's
    fixture would otherwise change with test order), leaving the caller's random state as it was."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        yield


def save_roberta(tokenizer_dir: str | Path, out: str | Path, max_positions: int = 514, seed: int = 0, **shape) -> Path:
    """A RobertaModel of the given shape (default: roberta-large's), created on the GPU when there is one."""
    from transformers import RobertaConfig, RobertaModel

    tok, ids = _special_ids(tokenizer_dir)
    cfg = RobertaConfig(vocab_size=len(tok), max_position_embeddings=max_positions, **ids, **(shape or ROBERTA_LARGE))
    with torch.device(_device()), _seeded(seed):
        RobertaModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)


def save_llama(
    tokenizer_dir: str | Path,
    out: str | Path,
    vocab_size: int | None = None,
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 0,
    **shape,
) -> Path:
    """A LlamaForCausalLM of the given shape (default: Llama-2 13B's, Vicuna 1.5's)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok, ids = _special_ids(tokenizer_dir)
    shape = shape or LLAMA_13B
    heads = shape["num_attention_heads"]
    cfg = LlamaConfig(
        vocab_size=vocab_size or len(tok), max_position_embeddings=4096, num_key_value_heads=heads, **ids, **shape
    )
    with torch.device(_device()), _seeded(seed):
        LlamaForCausalLM(cfg).to(dtype).save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)


def save_bart(tokenizer_dir: str | Path, out: str | Path, d_model: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """A small BartForConditionalGeneration, standing in for COMET-ATOMIC 2020 BART."""
    from transformers import BartConfig, BartForConditionalGeneration

    tok, ids = _special_ids(tokenizer_dir)
    cfg = BartConfig(
        vocab_size=len(tok),
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=layers,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=128,
        decoder_start_token_id=tok.eos_token_id,
        forced_bos_token_id=None,
        **ids,
    )
    with _seeded(seed):
        BartForConditionalGeneration(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return Path(out)
