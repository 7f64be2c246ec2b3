"""CoMPM (Lee & Lee, NAACL 2022), after the released code (rungjoo/CoMPM).

- Context model: the whole dialogue so far, each turn prefixed by its speaker's marker, cut to
  the last `max_length - 1` tokens and led by <s>; the first token's vector.
- Pre-trained memory: a second copy of the pre-trained encoder reads each earlier utterance of
  the current speaker (<s> + the utterance's last tokens); a 2-layer GRU (dropout 0.3) tracks
  them, and its last state is added to the context vector. With no earlier utterance the
  memory adds zeros.
- A linear layer on the sum.

The released models train the memory (`no_freeze`); a frozen memory is the CoMPM(f) ablation
(`training.compm.freeze_memory: true`). Speaker markers are added special tokens `[S0]`,
`[S1]`, ... (the release writes `<s1>`, `<s2>` as plain text); `context_turns` caps the
history at a number of turns (an ablation; null keeps the whole history, as released).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ercsynth.dialogues import Dialogue
from ercsynth.models.base import ERCModel, ModelSettings, Row, all_rows, gather_padded, speaker_indices


class CoMPM(ERCModel):
    encoder_lr_prefixes = ("encoder.", "memory.")

    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings, add_speaker_tokens=True)
        opts = settings.options
        self.context_turns: int | None = opts["context_turns"]
        self.freeze_memory = bool(opts["freeze_memory"])
        # The pre-trained memory: its own copy of the pre-trained encoder.
        self.memory = copy.deepcopy(self.encoder)
        if self.freeze_memory:
            self.memory.requires_grad_(False)
        self.gru = nn.GRU(self.hidden, self.hidden, num_layers=2, dropout=0.3, batch_first=True)
        self.classifier = nn.Linear(self.hidden, settings.num_labels)

    def context_sequence(self, dialogue: Dialogue, t: int, spk: list[int] | None = None) -> list[int]:
        """<s> + the last max_length-1 tokens of '[Sa] u_1 [Sb] u_2 ... [Sx] u_t'."""
        spk = spk if spk is not None else speaker_indices(dialogue)
        budget = self.max_length - 1
        first = 0 if self.context_turns is None else max(0, t - self.context_turns)
        pieces: list[list[int]] = []
        size = 0
        for j in range(t, first - 1, -1):  # newest first: stop once the budget is full
            piece = [self.speaker_ids[spk[j]], *self.tokens(dialogue.utterances[j].text)]
            pieces.append(piece)
            size += len(piece)
            if size >= budget:
                break
        flat = [tok for piece in reversed(pieces) for tok in piece]
        return [self.cls_id, *flat[-budget:]]

    def memory_sequence(self, text: str) -> list[int]:
        return [self.cls_id, *self.tokens(text)[-(self.max_length - 1) :]]

    @staticmethod
    def history(spk: list[int], t: int) -> list[int]:
        """Indices of the current speaker's earlier utterances."""
        return [j for j in range(t) if spk[j] == spk[t]]

    def row_length(self, dialogue: Dialogue, t: int) -> int:
        return len(self.context_sequence(dialogue, t))

    def sequences(self, dialogues: list[Dialogue], rows: list[Row]) -> list[list[int]]:
        spks = [speaker_indices(d) for d in dialogues]
        needed = dict.fromkeys((i, j) for i, t in rows for j in self.history(spks[i], t))
        return [self.context_sequence(dialogues[i], t, spks[i]) for i, t in rows] + [
            self.memory_sequence(dialogues[i].utterances[j].text) for i, j in needed
        ]

    def forward(self, dialogues: list[Dialogue], rows: list[Row] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = rows if rows is not None else all_rows(dialogues)
        spks = [speaker_indices(d) for d in dialogues]
        context = self.encode_first([self.context_sequence(dialogues[i], t, spks[i]) for i, t in rows])
        histories = [self.history(spks[i], t) for i, t in rows]
        # Each earlier utterance goes through the memory encoder once per pass, however many rows need it.
        needed: dict[tuple[int, int], int] = {}
        for (i, _), hist in zip(rows, histories, strict=True):
            for j in hist:
                needed.setdefault((i, j), len(needed))
        memory = torch.zeros_like(context)
        if needed:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_memory):
                mem_vecs = self.encode_first(
                    [self.memory_sequence(dialogues[i].utterances[j].text) for i, j in needed], self.memory
                )
            has = [r for r, hist in enumerate(histories) if hist]
            index = [[needed[(rows[r][0], j)] for j in histories[r]] for r in has]
            tracks = gather_padded(mem_vecs.to(context.dtype), index)
            lengths = torch.tensor([len(histories[r]) for r in has])  # stays on the host, as packing wants
            packed = pack_padded_sequence(tracks, lengths, batch_first=True, enforce_sorted=False)
            _, h_n = self.gru(packed)
            where = torch.tensor(has).to(context.device, non_blocking=True)
            memory = memory.index_copy(0, where, h_n[-1].to(memory.dtype))
        return self.classifier(context + memory), context.new_zeros(())
