"""How each classifier is trained: one typed `Recipe` per classifier x benchmark x phase.

The config holds the shared values in `training.recipe`; `training.recipes.<classifier>` overrides
any of them for one classifier, and its `per_benchmark.<BENCHMARK>` for one benchmark. Pre-training
uses the fine-tuning recipe with the `pretrain` blocks laid over it (the shared one, then the
classifier's). `resolve` is the one function that turns a config into a recipe: the workflow passes
its result to every training job through `params:` (so a changed setting reruns exactly the jobs of
that classifier and benchmark), and

    python -m ercsynth.recipe --configfile configs/paper.yaml

prints it, one JSON line per classifier x benchmark, from config.yaml with the given files merged
over it as Snakemake merges them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

BATCH_UNITS = ("utterances", "dialogues")
SELECT_ON = ("weighted_f1", "accuracy")
PHASES = ("finetune", "pretrain")


class RecipeError(ValueError):
    """A recipe the trainer cannot run; the message names the config key."""


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how one classifier is optimised on one benchmark in one phase."""

    classifier: str
    benchmark: str
    phase: str
    encoder: str
    max_length: int  # tokens per encoder input
    batch_size: int  # items per optimisation step, in `batch_unit`
    batch_unit: str  # utterances | dialogues
    shuffle: str  # what is shuffled and drawn: utterances (from the whole split) or dialogues (whole)
    group_by_length: bool  # utterance steps drawn among neighbours in length (fewer padded tokens)
    lr: float
    head_lr: float | None  # the new layers' rate; None: one group at `lr`
    adam_eps: float
    weight_decay: float
    decay_bias_and_norm: bool  # False: biases and LayerNorm parameters get no weight decay
    warmup_ratio: float  # share of the steps with a linear warm-up (then linear decay to zero)
    epochs: int
    max_grad_norm: float
    precision: str  # auto | no | bf16 | fp16 (training.effective_precision)
    select_on: str  # the dev metric that picks the kept epoch: weighted_f1 | accuracy
    max_tokens_per_step: int  # padded tokens per forward pass (memory, not optimisation)

    def __post_init__(self) -> None:
        where = f"training.recipes.{self.classifier}"
        if self.batch_unit == "dialogues" and self.shuffle == "utterances":
            raise RecipeError(
                f"{where}: a step of whole dialogues ('batch_unit: dialogues') needs 'shuffle: dialogues'"
            )

    @property
    def utterance_steps(self) -> bool:
        """Whether a step draws single utterances from the whole split (the originals' CoMPM and EmoBERTa)."""
        return self.shuffle == "utterances"

    def params(self) -> dict[str, Any]:
        """The rule's `params:` value, and one JSON line of `python -m ercsynth.recipe`."""
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Recipe:
        return cls(**{f.name: params[f.name] for f in fields(cls)})


# Recipe fields that are not a recipe block's keys: who and what is trained, and two training-wide settings.
NOT_KEYS = ("classifier", "benchmark", "phase", "encoder", "max_tokens_per_step")
# The keys of a recipe block in the config: the Recipe's other fields, and a warm-up given in epochs
# (which becomes warmup_ratio). The schema checks their types and values; __post_init__ what crosses keys.
CONFIG_KEYS = tuple(f.name for f in fields(Recipe) if f.name not in NOT_KEYS) + ("warmup_epochs",)


def resolve(training: dict, classifier: str, benchmark: str, phase: str = "finetune") -> Recipe:
    """The recipe of one classifier on one benchmark from the config's `training` section."""
    if phase not in PHASES:
        raise RecipeError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    shared = training["recipe"]
    own = (training.get("recipes") or {}).get(classifier) or {}
    values = {k: shared[k] for k in CONFIG_KEYS}
    values |= {k: v for k, v in own.items() if k in CONFIG_KEYS}
    values |= {k: v for k, v in ((own.get("per_benchmark") or {}).get(benchmark) or {}).items() if k in CONFIG_KEYS}
    if phase == "pretrain":
        values |= shared.get("pretrain") or {}
        values |= own.get("pretrain") or {}
    epochs = int(values["epochs"])
    # A warm-up given in epochs (CoMPM's one epoch) is that share of the steps.
    warmup_epochs = values.pop("warmup_epochs")
    if warmup_epochs is not None:
        values["warmup_ratio"] = min(1.0, warmup_epochs / epochs) if epochs else 0.0
    return Recipe(
        classifier=classifier,
        benchmark=benchmark,
        phase=phase,
        encoder=training["encoder"],
        max_tokens_per_step=training["max_tokens_per_step"],
        **values,
    )


def recipes(config: dict, phase: str = "finetune") -> list[Recipe]:
    """Every classifier x benchmark of a merged, validated config."""
    return [resolve(config["training"], c, b, phase) for b in config["benchmarks"] for c in config["classifiers"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ercsynth.recipe", description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--configfile", action="append", default=[], help="config overlay (repeatable)")
    parser.add_argument("--base", default=str(root / "config.yaml"), help="the default config")
    parser.add_argument("--phase", choices=PHASES, default="finetune")
    args = parser.parse_args(argv)
    from ercsynth.config import ConfigError, check_config, load_config

    try:
        config = check_config(load_config(args.base, *args.configfile), root / "rules/schemas/config.schema.yaml")
        lines = [json.dumps(r.params()) for r in recipes(config, args.phase)]
    except (ConfigError, RecipeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
