"""TODKAT (Zhu et al., ACL 2021): topic-driven, knowledge-aware transformer.

- Each utterance is encoded with its knowledge concatenated, as the released code does:
  `<s> utterance </s> knowledge_1 </s> ... knowledge_R </s>`, one text per ATOMIC relation
  (`models.knowledge`). So the knowledge is read by the encoder being fine-tuned, in the same
  pass and with gradients: training, dev and test all see the current encoder's vectors.
- A VAE topic layer sits after encoder layer `topic_layer`: a forward hook infers a latent topic
  from that layer's states over the utterance's tokens and adds its embedding back (KL and
  bag-of-words reconstruction of the utterance, weighted by `kl_weight`).
- Each relation's vector is the mean of its span's final states; the utterance (<s>) attends over
  them, and the attended knowledge and the utterance are fused.
- A transformer encoder-decoder over each dialogue (source: fused vectors; target: utterance
  vectors), as in the paper.

Where this departs from the released code (something678/TodKat): the release runs one
transformer encoder layer and a linear layer over the dialogue, pre-trains the topic model with
masked language modelling first, and retrieves its knowledge by sentence similarity; the span
pooling of per-relation vectors is ours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ercsynth.dialogues import Dialogue
from ercsynth.models.base import ERCModel, ModelSettings, Row, gather_padded
from ercsynth.models.knowledge import Knowledge


class TODKAT(ERCModel):
    # The dialogue-level transformer needs every utterance of a dialogue in the same pass.
    splittable = False
    # The release trains everything at one rate (2e-5); at head_lr (1e-3) the dialogue transformer
    # made TODKAT collapse to the majority class on MELD in our runs.
    encoder_lr_prefixes = ("encoder.", "dialogue_tf.")

    def __init__(self, settings: ModelSettings, knowledge: Knowledge) -> None:
        super().__init__(settings)
        opts = settings.options
        self.knowledge = knowledge
        self.n_topics = int(opts["topics"])
        n_layers = len(self._layers())
        self.topic_layer = min(int(opts["topic_layer"]), n_layers - 1)
        self.kl_weight = float(opts["kl_weight"])
        h = self.hidden
        vocab = len(self.tokenizer)
        # VAE topic layer: infer z from the hidden states at `topic_layer`, inject it back.
        self.to_mu = nn.Linear(h, self.n_topics)
        self.to_logvar = nn.Linear(h, self.n_topics)
        self.topic_embed = nn.Linear(self.n_topics, h)
        # Zero-initialised: at step 0 the injection adds nothing, so the encoder computes exactly what
        # the pre-trained encoder computes, and the topic's effect is learned from there. (The release
        # adds a randomly initialised projection, which perturbs every later layer from the start.)
        nn.init.zeros_(self.topic_embed.weight)
        nn.init.zeros_(self.topic_embed.bias)
        self.bow_decoder = nn.Linear(self.n_topics, vocab)
        self.know_query = nn.Linear(h, h)
        self.fuse = nn.Linear(2 * h, h)
        heads = 4 if h % 4 == 0 else 1
        layers = int(opts["layers"])
        self.dialogue_tf = nn.Transformer(
            d_model=h,
            nhead=heads,
            num_encoder_layers=layers,
            num_decoder_layers=layers,
            dim_feedforward=2 * h,
            dropout=0.1,
            batch_first=True,
        )
        # Padding is masked explicitly; PyTorch's nested-tensor fast path would only warn about it.
        self.dialogue_tf.encoder.enable_nested_tensor = False
        self.dialogue_tf.encoder.use_nested_tensor = False
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(h, settings.num_labels))
        # The dialogue transformer's order information: sinusoidal positions (Vaswani et al. 2017) added
        # to its source and target sequences; "none" is the release's, which sees a dialogue as a set.
        self.positions = opts["positions"]
        if self.positions not in ("sinusoidal", "none"):
            raise ValueError(f"training.todkat.positions: {self.positions!r} is not sinusoidal or none")
        self._topic_on = False
        self._mask: torch.Tensor | None = None
        self._vae: tuple[torch.Tensor, torch.Tensor] | None = None
        self._layers()[self.topic_layer - 1].register_forward_hook(self._inject_topic)

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
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)  # per utterance
        self._vae = (kl, z)
        hidden = hidden + self.topic_embed(z).unsqueeze(1).to(hidden.dtype)
        return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden

    def knowledge_room(self) -> int:
        """Tokens each relation's text may take: together at most half of max_length."""
        return max(4, (self.max_length // 2) // len(self.knowledge.relations) - 1)

    def joint_sequence(self, text: str, knowledge: list[str]) -> tuple[list[int], int, list[tuple[int, int]]]:
        """(`<s> utterance </s> k_1 </s> ... k_R </s>`, end of the utterance, each relation's span)."""
        room = self.knowledge_room()
        know = [self.tokens(k)[:room] for k in knowledge]
        budget = self.max_length - 2 - sum(len(k) + 1 for k in know)
        seq = [self.cls_id, *self.tokens(text)[: max(budget, 1)], self.sep_id]
        utterance_end = len(seq)
        spans = []
        for k in know:
            spans.append((len(seq), len(seq) + len(k)))
            seq += [*k, self.sep_id]
        return seq, utterance_end, spans

    def row_length(self, dialogue: Dialogue, t: int) -> int:
        text = dialogue.utterances[t].text
        return len(self.joint_sequence(text, self.knowledge.texts([text])[0])[0])

    def sequences(self, dialogues: list[Dialogue], rows: list[Row]) -> list[list[int]]:
        ds = sorted({i for i, _ in rows})
        texts = [u.text for i in ds for u in dialogues[i].utterances]
        return [self.joint_sequence(t, k)[0] for t, k in zip(texts, self.knowledge.texts(texts), strict=True)]

    def _encode_chunk(self, ids, mask, own, spans):
        """One encoder call: (<s> vectors, relation vectors, per-utterance KL, topic vectors)."""
        self._mask, self._topic_on = own, True
        try:
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        finally:
            self._topic_on = False
        kl, z = self._vae
        return self.pool(hidden, own), torch.einsum("nrl,nlh->nrh", spans.to(hidden.dtype), hidden), kl, z

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(utterance vectors, per-relation knowledge vectors (n, R, h), VAE loss).

        One encoder call, unless the sequences exceed `pass_tokens` (a long dialogue at max
        length 512): then length-sorted chunks whose activations are recomputed in the backward
        pass (checkpointing), so memory stays bounded while the dialogue stays whole.
        """
        joint = [self.joint_sequence(t, k) for t, k in zip(texts, self.knowledge.texts(texts), strict=True)]
        order = sorted(range(len(joint)), key=lambda n: len(joint[n][0]))
        chunks: list[list[int]] = [[]]
        for n in order:
            width = self.padded_length(len(joint[n][0]))
            if chunks[-1] and self.pass_tokens and width * (len(chunks[-1]) + 1) > self.pass_tokens:
                chunks.append([])
            chunks[-1].append(n)
        parts, recon = [], []
        for chunk in chunks:
            ids, mask = self.pad([joint[n][0] for n in chunk])
            # Host-built masks: the utterance's own tokens, and each relation span's averaging weights.
            length, r = ids.shape[1], len(self.knowledge.relations)
            own = torch.zeros((len(chunk), length))
            spans = torch.zeros((len(chunk), r, length))
            for row, n in enumerate(chunk):
                _, end, relation_spans = joint[n]
                own[row, 1 : end - 1] = 1
                for k, (a, b) in enumerate(relation_spans):
                    spans[row, k, a:b] = 1.0 / max(b - a, 1)
            own = own.to(ids.device, non_blocking=True)
            spans = spans.to(ids.device, non_blocking=True)
            if len(chunks) > 1 and torch.is_grad_enabled():
                out = checkpoint(self._encode_chunk, ids, mask, own, spans, use_reentrant=False)
            else:
                out = self._encode_chunk(ids, mask, own, spans)
            parts.append(out)
            # Bag-of-words reconstruction of each utterance from its topic vector (the VAE decoder).
            logp = F.log_softmax(self.bow_decoder(out[3]).float(), dim=-1)
            bow = torch.zeros_like(logp).scatter_add_(1, ids, own)
            recon.append(-(bow * logp).sum(-1))
        position = [0] * len(joint)  # where each utterance landed in the chunk order
        for p, n in enumerate(n for chunk in chunks for n in chunk):
            position[n] = p
        back = torch.tensor(position).to(parts[0][0].device, non_blocking=True)
        utt = torch.cat([p[0] for p in parts])[back]
        know = torch.cat([p[1] for p in parts])[back]
        kl = torch.cat([p[2] for p in parts]).mean()
        rec = torch.cat(recon).mean() / self.max_length
        return utt, know, self.kl_weight * (kl + rec)

    def forward(self, dialogues: list[Dialogue], rows: list[Row] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = sorted({i for i, _ in rows}) if rows is not None else list(range(len(dialogues)))
        dials = [dialogues[i] for i in chosen]
        sizes = [len(d.utterances) for d in dials]
        utt, know, vae_loss = self.encode([u.text for d in dials for u in d.utterances])
        att = torch.softmax(torch.einsum("nh,nrh->nr", self.know_query(utt), know) / self.hidden**0.5, dim=-1)
        k_vec = torch.einsum("nr,nrh->nh", att, know)
        fused = torch.tanh(self.fuse(torch.cat([utt, k_vec], dim=-1)))

        # Transformer encoder-decoder over each dialogue's utterance sequence.
        starts = [sum(sizes[:b]) for b in range(len(sizes))]
        layout = [list(range(s, s + n)) for s, n in zip(starts, sizes, strict=True)]
        src = gather_padded(fused, layout)
        tgt = gather_padded(utt, layout)
        width = src.shape[1]
        if self.positions == "sinusoidal":
            table = sinusoidal_positions(width, self.hidden).to(src.device, src.dtype)
            src, tgt = src + table, tgt + table
        pad_mask = torch.ones((len(sizes), width), dtype=torch.bool)
        for b, n in enumerate(sizes):
            pad_mask[b, :n] = False
        pad_mask = pad_mask.to(src.device, non_blocking=True)
        out = self.dialogue_tf(
            src, tgt, src_key_padding_mask=pad_mask, tgt_key_padding_mask=pad_mask, memory_key_padding_mask=pad_mask
        )
        # Back to one row per utterance (a host-built index: no boolean-mask sync).
        where = {(chosen[b], t): b * width + t for b, n in enumerate(sizes) for t in range(n)}
        order = (
            [where[r] for r in rows]
            if rows is not None
            else [where[(chosen[b], t)] for b, n in enumerate(sizes) for t in range(n)]
        )
        flat = out.reshape(-1, out.shape[-1])[torch.tensor(order).to(out.device, non_blocking=True)]
        return self.classifier(flat), vae_loss


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) fixed position encodings: sin on even, cos on odd dimensions (Vaswani et al. 2017)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return table
