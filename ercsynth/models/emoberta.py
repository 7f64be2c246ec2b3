"""EmoOne-RoBERTa, a speaker-aware RoBERTa in the EmoBERTa style (Kim & Vossen 2021), after the
released code (tae898/erc).

One encoder input per utterance: past turns, the current turn and future turns, each written
`SPEAKER: text` (speaker names upper-cased, the release's best `speaker_mode`). Turns are added
nearest first, alternating one past and one future, for as long as the token count stays within
`max_length` (each turn counted with its two special tokens, as the release counts them); the
first turn that does not fit ends the filling on both sides. Segments are separated by `</s></s>`:

    <s> past ... </s></s> current </s></s> future ... </s>

`past` / `future` cap the turns on each side (null: as many as fit, the release's 1000). The
classifier is RoBERTa's sequence-classification head on the first token.
"""

from __future__ import annotations

import torch
from torch import nn

from ercsynth.dialogues import Dialogue
from ercsynth.models.base import ERCModel, ModelSettings, Row, all_rows

UNLIMITED = 1_000_000


class EmoBERTa(ERCModel):
    def __init__(self, settings: ModelSettings) -> None:
        super().__init__(settings)
        opts = settings.options
        self.past = UNLIMITED if opts["past"] is None else int(opts["past"])
        self.future = UNLIMITED if opts["future"] is None else int(opts["future"])
        self.head = nn.Sequential(
            nn.Dropout(0.1),
            nn.Linear(self.hidden, self.hidden),
            nn.Tanh(),
            nn.Dropout(0.1),
            nn.Linear(self.hidden, settings.num_labels),
        )

    def turn(self, dialogue: Dialogue, j: int) -> list[int]:
        u = dialogue.utterances[j]
        return self.tokens(f"{u.speaker.upper()}: {u.text}")

    def window(self, dialogue: Dialogue, t: int) -> tuple[list[int], list[int]]:
        """(past turn indices, future turn indices) that fit, in dialogue order."""
        n = len(dialogue.utterances)
        cost = len(self.turn(dialogue, t)) + 2
        past: list[int] = []
        future: list[int] = []
        for step in range(1, max(min(self.past, t), min(self.future, n - 1 - t)) + 1):
            if step <= self.past and t - step >= 0:
                c = len(self.turn(dialogue, t - step)) + 2
                if cost + c > self.max_length:
                    break
                past.insert(0, t - step)
                cost += c
            if step <= self.future and t + step < n:
                c = len(self.turn(dialogue, t + step)) + 2
                if cost + c > self.max_length:
                    break
                future.append(t + step)
                cost += c
        return past, future

    def sequence(self, dialogue: Dialogue, t: int) -> list[int]:
        past, future = self.window(dialogue, t)
        past_tokens = [tok for j in past for tok in self.turn(dialogue, j)]
        future_tokens = [tok for j in future for tok in self.turn(dialogue, j)]
        current = self.turn(dialogue, t)
        sep2 = [self.sep_id, self.sep_id]
        uses_past, uses_future = self.past > 0, self.future > 0
        # The separators are there whenever the side is configured, even if no turn fits (as released).
        head = [self.cls_id, *past_tokens, *sep2] if uses_past else [self.cls_id]
        tail = [*sep2, *future_tokens, self.sep_id] if uses_future else [self.sep_id]
        room = self.max_length - len(head) - len(tail)
        return [*head, *current[: max(room, 1)], *tail]

    def row_length(self, dialogue: Dialogue, t: int) -> int:
        return len(self.sequence(dialogue, t))

    def sequences(self, dialogues: list[Dialogue], rows: list[Row]) -> list[list[int]]:
        return [self.sequence(dialogues[i], t) for i, t in rows]

    def forward(self, dialogues: list[Dialogue], rows: list[Row] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = rows if rows is not None else all_rows(dialogues)
        first = self.encode_first(self.sequences(dialogues, rows))
        return self.head(first), first.new_zeros(())
