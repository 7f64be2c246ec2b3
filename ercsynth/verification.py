"""Label verification (beyond the paper): the generator re-labels each synthetic utterance.

The model reads the legend, a few real example dialogues, and the synthetic dialogue up to the
utterance, whose earlier lines show "?" instead of their generated labels (so the check does not
simply copy them), and the utterance's symbol is the one it ranks highest among the vocabulary's.
One forward pass per utterance, batched; no sampling.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ercsynth.dialogues import Dialogue, Utterance
from ercsynth.labels import Vocabulary
from ercsynth.metrics import cohen_kappa
from ercsynth.prompts import HEADER, render_example

INTRO = (
    "The following are everyday conversations. Each line is one utterance, written as: "
    "speaker name | utterance | emotion symbol.\nEmotion symbols: {legend}.\n\n"
)


@dataclass(frozen=True)
class VerifyItem:
    dialogue: int
    utterance: int
    prompt: str


def verify_prompts(
    dialogues: list[Dialogue], vocab: Vocabulary, examples: list[Dialogue], end: str = "| "
) -> Iterator[VerifyItem]:
    """One prompt per utterance, ending with `end` right where its symbol comes."""
    head = INTRO.format(legend=vocab.legend()) + "".join(render_example(d, vocab) for d in examples)
    for di, d in enumerate(dialogues):
        speakers = ", ".join(dict.fromkeys(u.speaker for u in d.utterances))
        lines = [f"{HEADER}\nSetting: a scene from a TV series.\nSpeakers: {speakers}.\n"]
        for ui, u in enumerate(d.utterances):
            text = " ".join(u.text.split())
            yield VerifyItem(di, ui, head + "".join(lines) + f"{u.speaker} | {text} {end}")
            lines.append(f"{u.speaker} | {text} | ?\n")


def symbol_tokens(tokenizer, vocab: Vocabulary) -> tuple[list[int], str]:
    """The token that comes first for each symbol after the prompt's end, and that end.

    SentencePiece vocabularies (Gemma) write "| 3" as "|", " ", "3": the prompt ends with "| " and
    the digit follows; byte-level BPE writes " 3" as one token: the prompt ends with "|". The end
    is the one under which every symbol's first token continues the prompt's tokens unchanged.
    Symbols of 10 and more share their first digit's token with that digit.
    """
    for end, gap in (("| ", ""), ("|", " ")):
        prefix = tokenizer("A " + end, add_special_tokens=False)["input_ids"]
        ids = []
        for i in range(1, len(vocab) + 1):
            full = tokenizer("A " + end + gap + str(i), add_special_tokens=False)["input_ids"]
            if full[: len(prefix)] != prefix or len(full) == len(prefix):
                break
            ids.append(full[len(prefix)])
        if len(ids) == len(vocab) and len(set(ids[:9])) == min(9, len(vocab)):
            return ids, end
    raise ValueError("this tokenizer splits the symbols in a way verification cannot score")


def relabel(backend, dialogues: list[Dialogue], vocab: Vocabulary, examples: list[Dialogue], batch_size: int = 8):
    """The verifier's label for every utterance: a list per dialogue, in order."""
    import torch

    tok, lm = backend.tokenizer, backend.lm
    ids, end = symbol_tokens(tok, vocab)
    symbols = torch.tensor(ids)
    items = list(verify_prompts(dialogues, vocab, examples, end))
    out = [[""] * len(d.utterances) for d in dialogues]
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        enc = tok([b.prompt for b in batch], return_tensors="pt", padding=True).to(lm.device)
        with torch.inference_mode():
            # Only the last position: all positions x 262k vocabulary would be gigabytes of logits.
            logits = lm(**enc, logits_to_keep=1).logits[:, -1, :]  # left padding: every prompt ends there
        best = logits[:, symbols.to(logits.device)].argmax(dim=-1).tolist()
        for item, b in zip(batch, best, strict=True):
            out[item.dialogue][item.utterance] = vocab.labels[b]
    return out


def agreement(dialogues: list[Dialogue], verified: list[list[str]], labels: tuple[str, ...]) -> dict:
    """Cohen's kappa between generated and verified labels, overall and per label (one label
    against the rest), with the counts behind them."""
    gen = [u.label for d in dialogues for u in d.utterances]
    ver = [x for row in verified for x in row]
    per_label = {}
    for label in labels:
        a = ["yes" if x == label else "no" for x in gen]
        b = ["yes" if x == label else "no" for x in ver]
        per_label[label] = {
            "generated": a.count("yes"),
            "verified": b.count("yes"),
            "both": sum(x == y == "yes" for x, y in zip(a, b, strict=True)),
            "kappa": cohen_kappa(a, b) if gen else float("nan"),
        }
    agree = sum(x == y for x, y in zip(gen, ver, strict=True))
    return {
        "utterances": len(gen),
        "agreeing": agree,
        "accuracy": agree / len(gen) if gen else float("nan"),
        "kappa": cohen_kappa(gen, ver),
        "per_label": per_label,
    }


def keep(dialogues: list[Dialogue], verified: list[list[str]], mode: str, min_utterances: int) -> list[Dialogue]:
    """`all`: every dialogue as generated. `agree`: only the utterances whose labels agree, and
    only the dialogues that keep at least `min_utterances` of them and two speakers."""
    if mode == "all":
        return list(dialogues)
    kept = []
    for d, labels in zip(dialogues, verified, strict=True):
        utts = [
            Utterance(u.speaker, u.text, u.label) for u, v in zip(d.utterances, labels, strict=True) if u.label == v
        ]
        if len(utts) >= min_utterances and len({u.speaker.lower() for u in utts}) >= 2:
            kept.append(Dialogue(d.dialogue_id, utts))
    return kept
