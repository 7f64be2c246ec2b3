"""The three ERC classifiers, one module each, behind one builder.

- `compm`: CoMPM (Lee & Lee 2022), context model plus a speaker's pre-trained memory.
- `emoberta`: EmoOne-RoBERTa, in the EmoBERTa style (Kim & Vossen 2021).
- `todkat`: TODKAT (Zhu et al. 2021), topic layer, knowledge attention, dialogue transformer.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path

import torch

from ercsynth.models.base import ERCModel, ModelSettings, Row, all_rows, resolve_encoder
from ercsynth.models.compm import CoMPM
from ercsynth.models.emoberta import EmoBERTa
from ercsynth.models.knowledge import KnowledgeTable, RelationViews
from ercsynth.models.todkat import TODKAT

MODELS = {"compm": CoMPM, "emoberta": EmoBERTa, "todkat": TODKAT}

__all__ = [
    "MODELS",
    "CoMPM",
    "EmoBERTa",
    "ERCModel",
    "ModelSettings",
    "Row",
    "TODKAT",
    "UnsafeModelFile",
    "all_rows",
    "build_model",
    "load_weights",
    "resolve_encoder",
    "save_weights",
]


def build_model(settings: ModelSettings, knowledge_files: Iterable[str | Path] = ()) -> ERCModel:
    """A classifier from its settings; TODKAT with COMET knowledge reads the knowledge rule's files."""
    name = settings.classifier
    if name not in MODELS:
        raise KeyError(f"unknown classifier {name!r}; expected one of {', '.join(MODELS)}")
    if name != "todkat":
        return MODELS[name](settings)
    opts = settings.options
    if opts["knowledge"] == "comet":
        knowledge = KnowledgeTable(knowledge_files, opts["relations"])
    else:
        knowledge = RelationViews(opts["relations"])
    return TODKAT(settings, knowledge)


class UnsafeModelFile(ValueError):
    """A model file that would run code when loaded."""


def save_weights(model: ERCModel, path: str | Path, meta: dict) -> None:
    """Weights plus what they were trained as, written atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": meta}, tmp)
    tmp.replace(path)


def load_weights(model: ERCModel, path: str | Path, expect: dict | None = None) -> dict:
    """Load weights saved by `save_weights`; `expect` keys must match the saved meta (else a clear error)."""
    try:
        # weights_only: a model file is data that users share; unpickling may never run its code.
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UnsafeModelFile(
            f"{path}: refused to load: the file holds more than tensors and plain values (a pickled object "
            f"or callable), so loading it could run code; only files written by ercsynth's save_weights load. "
            f"({str(exc).splitlines()[0]})"
        ) from None
    meta = saved.get("meta", {}) if isinstance(saved, dict) else {}
    for key, value in (expect or {}).items():
        if meta.get(key) != value:
            raise ValueError(f"{path}: saved for {key}={meta.get(key)!r}, but this job needs {key}={value!r}")
    model.load_state_dict(saved["state_dict"])
    return meta
