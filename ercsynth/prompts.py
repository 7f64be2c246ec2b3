"""Prompt construction: numeric emotion symbols, natural vs balanced, chat vs few-shot completion.

Templates are plain files with ``str.format`` fields, so users edit them without touching code:
``{legend}`` (``1 = neutral, 2 = joy, ...``), ``{scene}``, ``{topic}``, ``{speakers}``, ``{turns}``,
``{constraint}`` (the balanced sentence, or empty), and ``{examples}`` (completion style only).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ercsynth.dialogues import Dialogue
from ercsynth.labels import Vocabulary
from ercsynth.textfiles import NotUtf8, read_utf8

TEMPLATE_FIELDS = ("legend", "scene", "topic", "speakers", "turns", "constraint", "examples")
HEADER = "### Conversation"


class TemplateError(ValueError):
    """A prompt template with an unknown or malformed field."""


@dataclass(frozen=True)
class Prompt:
    """What a backend receives: raw text (completion) or a user message (chat).

    `prefix` is the start of the answer already written at the end of `text` (completion
    style: the first speaker's name), so parsing reads `prefix + completion`.
    """

    style: str  # "completion" | "chat"
    text: str
    prefix: str = ""


@dataclass(frozen=True)
class AttemptSpec:
    """Everything that determines one generation attempt; fully reproducible from the config."""

    attempt_id: str
    index: int
    seed: int
    target: str | None
    scene: str
    topic: str
    speakers: tuple[str, ...]
    turns: int
    example_ids: tuple[int, ...] = field(default=())
    plan: tuple[str, ...] | None = None  # planned distribution: the label of each line, in order


@dataclass(frozen=True)
class Templates:
    completion: str
    chat: str
    balanced_constraint: str
    planned_constraint: str = " The utterances' emotions, in order: {plan}."

    @classmethod
    def load(
        cls,
        completion: str | Path,
        chat: str | Path,
        balanced_constraint: str | Path,
        planned_constraint: str | Path | None = None,
    ) -> Templates:
        paths = [completion, chat, balanced_constraint] + ([planned_constraint] if planned_constraint else [])
        try:
            loaded = cls(*(read_utf8(p) for p in paths))
        except NotUtf8 as exc:
            raise TemplateError(str(exc)) from None
        for name, path in (("completion", completion), ("chat", chat)):
            _check_fields(getattr(loaded, name), path)
        _check_fields(loaded.balanced_constraint, balanced_constraint, ("target", "target_symbol"))
        if planned_constraint:
            _check_fields(loaded.planned_constraint, planned_constraint, ("plan",))
        return loaded


def _check_fields(template: str, path: str | Path, allowed: tuple[str, ...] = TEMPLATE_FIELDS) -> None:
    import string

    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise TemplateError(f"{path}: malformed template ({exc}); write literal braces as {{{{ and }}}}") from None
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise TemplateError(f"{path}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")


def render_example(dialogue: Dialogue, vocab: Vocabulary, constraint: str = "") -> str:
    speakers = ", ".join(dict.fromkeys(u.speaker for u in dialogue.utterances))
    lines = [f"{HEADER}", f"Setting: a scene from a TV series.{constraint}", f"Speakers: {speakers}."]
    lines += [f"{u.speaker} | {' '.join(u.text.split())} | {vocab.symbol(u.label)}" for u in dialogue.utterances]
    return "\n".join(lines) + "\n\n"


def build_prompt(
    spec: AttemptSpec,
    vocab: Vocabulary,
    templates: Templates,
    style: str,
    examples: list[Dialogue] | None = None,
) -> Prompt:
    constraint = ""
    if spec.target is not None:
        constraint = templates.balanced_constraint.rstrip("\n").format(
            target=spec.target, target_symbol=vocab.symbol(spec.target)
        )
    elif spec.plan:
        constraint = _planned(templates, vocab, spec.plan)
    speakers = ", ".join(spec.speakers)
    fields = {
        "legend": vocab.legend(),
        "scene": spec.scene,
        "topic": spec.topic,
        "speakers": speakers,
        "turns": spec.turns,
        "constraint": constraint,
        # A planned example states its own emotion sequence, as the new conversation will.
        "examples": "".join(
            render_example(
                d, vocab, _planned(templates, vocab, [u.label for u in d.utterances]) if spec.plan else constraint
            )
            for d in (examples or [])
        ),
    }
    if style == "completion":
        # Writing the first speaker's name keeps a base model inside the line format.
        prefix = f"{spec.speakers[0]} |"
        return Prompt(style, templates.completion.format(**fields) + prefix, prefix)
    return Prompt(style, templates.chat.format(**fields))


def _planned(templates: Templates, vocab: Vocabulary, labels) -> str:
    plan = ", ".join(f"{vocab.symbol(label)} ({label})" for label in labels)
    return templates.planned_constraint.rstrip("\n").format(plan=plan)


def pick_examples(
    pool: list[Dialogue],
    rng: random.Random,
    k: int = 2,
    target: str | None = None,
    min_len: int = 4,
    max_len: int = 8,
) -> list[int]:
    """Indices of short real dialogues used as few-shot format examples.

    With a balanced target, examples contain that emotion, so they obey the same constraint
    the prompt states (a base model imitates what it sees more than what it is told).
    """
    short = [i for i, d in enumerate(pool) if min_len <= len(d.utterances) <= max_len] or list(range(len(pool)))
    with_target = [i for i in short if any(u.label == target for u in pool[i].utterances)] if target else []
    candidates = with_target if len(with_target) >= k else short
    return sorted(rng.sample(candidates, min(k, len(candidates))))
