"""Sharded, resumable generation jobs.

Each shard owns a fixed, seeded list of attempts. Finished attempts are appended one JSON line
at a time to ``<output>.partial`` and flushed, so a killed job loses at most the batch in
flight; the declared output appears (by rename) only when the shard is complete. Snakemake
deletes declared outputs of failed jobs but never this partial file, which is what makes reruns
resume instead of starting over.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from ercsynth.backends import Backend, DecodingParams
from ercsynth.constraints import MAX_TEXT_CHARS, LineFormat
from ercsynth.dialogues import Dialogue
from ercsynth.labels import vocabulary
from ercsynth.prompts import AttemptSpec, Templates, build_prompt, pick_examples

log = logging.getLogger(__name__)


# The generation keys a generate job gets as they are (GenerationSettings.params_for adds the rest).
SETTINGS_KEYS = (
    "backend",
    "dialogues",
    "shards",
    "batch_size",
    "max_new_tokens",
    "temperature",
    "top_p",
    "seed",
    "prompt_style",
    "speakers",
    "turns",
    "names",
    "scenes",
    "topics",
    "repetition",
)


@dataclass(frozen=True)
class GenerationSettings:
    """What a generation job uses, built once from its rule's `settings` param (`params_for`, which
    ercsynth.plan calls) and read as fields."""

    backend: str  # llamacpp, transformers or openai
    engine: dict  # that backend's own section (model, parallel, context, ...)
    dialogues: int
    shards: int
    batch_size: int | str  # or "auto"
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    prompt_style: str
    constrained: tuple[str, ...]  # the distributions decoded under the line format
    speakers: tuple[int, int]
    turns: tuple[int, int]
    names: tuple[str, ...]
    scenes: tuple[str, ...]
    topics: tuple[str, ...]
    distinct_lines: bool
    repetition_penalty: float
    labels: tuple[str, ...] | None = None  # a user benchmark's labels (a built-in's when None)
    target_distribution: dict[str, float] | None = field(default=None)  # planned: weights per label

    @classmethod
    def params_for(cls, gen: dict, distribution: str, labels: list[str]) -> dict:
        """The `settings` param of a generate job: exactly the keys `from_params` reads, from one
        benchmark's generation block. Only the chosen backend's section; natural gets the neutral
        topics (its labels are the model's own); planned gets its plan; parsing keys stay out."""
        params = {key: gen[key] for key in SETTINGS_KEYS}
        params[gen["backend"]] = gen[gen["backend"]]
        if distribution == "natural":
            params["topics"] = gen["natural_topics"]
        if distribution == "planned":
            params["planned"] = gen["planned"]
        params["constrained"] = [distribution] if distribution in gen["constrained"] else []
        return params | {"labels": list(labels)}

    @classmethod
    def from_params(cls, params: dict) -> GenerationSettings:
        """Read what `params_for` gave."""
        return cls(
            backend=params["backend"],
            engine=dict(params[params["backend"]]),
            dialogues=params["dialogues"],
            shards=params["shards"],
            batch_size=params["batch_size"],
            max_new_tokens=params["max_new_tokens"],
            temperature=params["temperature"],
            top_p=params["top_p"],
            seed=params["seed"],
            prompt_style=params["prompt_style"],
            constrained=tuple(params["constrained"]),
            speakers=tuple(params["speakers"]),
            turns=tuple(params["turns"]),
            names=tuple(params["names"]),
            scenes=tuple(params["scenes"]),
            topics=tuple(params["topics"]),
            distinct_lines=params["repetition"]["distinct_lines"],
            repetition_penalty=params["repetition"]["penalty"],
            labels=tuple(params["labels"]) if params.get("labels") else None,
            target_distribution=(params.get("planned") or {}).get("target_distribution"),
        )

    def decoding(self) -> DecodingParams:
        return DecodingParams(self.max_new_tokens, self.temperature, self.top_p, self.repetition_penalty)


@dataclass(frozen=True)
class ShardPlan:
    benchmark: str
    distribution: str
    shard: int
    attempts: list[AttemptSpec]


def attempt_seed(base_seed: int, benchmark: str, distribution: str, index: int) -> int:
    return (base_seed * 1_000_003 + zlib.crc32(f"{benchmark}/{distribution}".encode()) + index * 7919) % (2**31 - 1)


def plan_shard(
    benchmark: str,
    distribution: str,
    shard: int,
    gen: GenerationSettings,
    example_pool: list[Dialogue] | None = None,
) -> ShardPlan:
    """Attempts i with i % shards == shard. Balanced targets cycle through every label by i; planned
    attempts get their slice of the dataset's seeded label plan (`planned_labels`)."""
    vocab = vocabulary(benchmark, gen.labels)
    n, shards = gen.dialogues, gen.shards
    own = range(shard, n, shards)
    if distribution != "planned":  # each attempt stands alone: build only this shard's
        return ShardPlan(
            benchmark,
            distribution,
            shard,
            [_attempt(benchmark, distribution, i, gen, vocab, example_pool) for i in own],
        )
    # The plan spans the dataset: every attempt's length is needed to deal this shard's labels.
    specs = [_attempt(benchmark, distribution, i, gen, vocab, example_pool) for i in range(n)]
    plans = planned_labels([s.turns for s in specs], vocab.labels, gen, benchmark)
    return ShardPlan(benchmark, distribution, shard, [replace(specs[i], plan=plans[i]) for i in own])


def _attempt(
    benchmark: str, distribution: str, i: int, gen: GenerationSettings, vocab, example_pool: list[Dialogue] | None
) -> AttemptSpec:
    lo_s, hi_s = gen.speakers
    lo_t, hi_t = gen.turns
    seed = attempt_seed(gen.seed, benchmark, distribution, i)
    rng = random.Random(seed)
    k = rng.randint(lo_s, max(lo_s, hi_s))
    names = tuple(rng.sample(gen.names, min(k, len(gen.names))))
    target = vocab.labels[i % len(vocab)] if distribution == "balanced" else None
    examples = tuple(pick_examples(example_pool, rng, target=target)) if example_pool else ()
    return AttemptSpec(
        attempt_id=f"{benchmark}-{distribution}-{i:06d}",
        index=i,
        seed=seed,
        target=target,
        scene=rng.choice(gen.scenes),
        topic=rng.choice(gen.topics),
        speakers=names,
        turns=rng.randint(lo_t, max(lo_t, hi_t)),
        example_ids=examples,
    )


def planned_labels(
    turns: list[int], labels: tuple[str, ...], gen: GenerationSettings, benchmark: str
) -> list[tuple[str, ...]]:
    """One label per planned utterance, over the whole dataset in the proportions asked for
    (`generation.planned.target_distribution`, uniform when null), shuffled with the dataset's seed
    and dealt to the attempts in order. Every shard computes the same plan and takes its own slice."""
    weights = gen.target_distribution or {label: 1.0 for label in labels}
    unknown = sorted(set(weights) - set(labels))
    if unknown:
        raise ValueError(
            f"config key 'generation.planned.target_distribution': {', '.join(unknown)} not in {benchmark}'s labels"
        )
    total, mass = sum(turns), sum(weights.values())
    exact = {label: total * weights.get(label, 0.0) / mass for label in labels}
    counts = {label: int(v) for label, v in exact.items()}
    # Largest remainders take the utterances left over, so the counts add up to the total.
    for label in sorted(labels, key=lambda x: exact[x] - counts[x], reverse=True)[: total - sum(counts.values())]:
        counts[label] += 1
    pool = [label for label in labels for _ in range(counts[label])]
    random.Random(attempt_seed(gen.seed, benchmark, "planned-labels", 0)).shuffle(pool)
    plans, start = [], 0
    for t in turns:
        plans.append(tuple(pool[start : start + t]))
        start += t
    return plans


def line_format(
    spec: AttemptSpec, vocab, max_text_chars: int = MAX_TEXT_CHARS, distinct_lines: bool = False
) -> LineFormat:
    """The constrained decoder's format for one attempt: its speakers, its length, its plan, the
    target a balanced attempt must carry, and whether its lines must differ."""
    plan = tuple(str(vocab.symbol(label)) for label in spec.plan) if spec.plan else None
    symbols = tuple(str(i) for i in range(1, len(vocab) + 1))
    required = str(vocab.symbol(spec.target)) if spec.target else None
    return LineFormat(spec.speakers, symbols, spec.turns, plan, max_text_chars, required, distinct_lines)


def read_finished(partial: Path) -> dict[str, dict]:
    """Records already written; a torn last line (a kill mid-write) is cut off the file."""
    done: dict[str, dict] = {}
    if not partial.exists():
        return done
    good_bytes = 0
    with partial.open("rb") as fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            try:
                rec = json.loads(raw)
                done[rec["attempt_id"]] = rec
            except (ValueError, KeyError):
                break
            good_bytes += len(raw)
    if good_bytes != partial.stat().st_size:
        with partial.open("r+b") as fh:
            fh.truncate(good_bytes)
    return done


def attempt_record(
    plan: ShardPlan, spec: AttemptSpec, prompt, comp, constrained: bool, backend, params, batch_seed: int
) -> dict:
    """One line of a raw shard: the attempt, its prompt, what the model wrote and how long it took."""
    return {
        "attempt_id": spec.attempt_id,
        "index": spec.index,
        "benchmark": plan.benchmark,
        "distribution": plan.distribution,
        "shard": plan.shard,
        "target_emotion": spec.target,
        "constrained": constrained,
        "spec": asdict(spec),
        "prompt_style": prompt.style,
        "prompt": prompt.text,
        "response_prefix": prompt.prefix,
        "completion": comp.text,
        "error": comp.error,
        "target_forced": comp.forced,
        "backend": backend.name,
        "model": backend.model,
        "decoding": asdict(params),
        "seed": spec.seed,
        "batch_seed": batch_seed,
        "prompt_tokens": comp.prompt_tokens,
        "completion_tokens": comp.completion_tokens,
        "seconds": comp.seconds,
    }


def run_shard(
    plan: ShardPlan,
    backend: Backend,
    templates: Templates,
    gen: GenerationSettings,
    output: str | Path,
    example_pool: list[Dialogue] | None = None,
    progress: Callable | None = None,
) -> dict:
    """Generate every unfinished attempt of the shard in batches; returns timing totals."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    done = read_finished(partial)
    todo = [a for a in plan.attempts if a.attempt_id not in done]
    log.info(
        "shard %d: %d attempts, %d already finished, %d to generate",
        plan.shard,
        len(plan.attempts),
        len(plan.attempts) - len(todo),
        len(todo),
    )
    vocab = vocabulary(plan.benchmark, gen.labels)
    params = gen.decoding()

    def prompts_of(attempts: list[AttemptSpec]) -> list:
        pool = example_pool
        return [
            build_prompt(a, vocab, templates, gen.prompt_style, [pool[i] for i in a.example_ids] if pool else None)
            for a in attempts
        ]

    batch_size = gen.batch_size
    # Planned attempts are always constrained: the decoder, not the model, writes their symbols.
    constrained = plan.distribution in gen.constrained or plan.distribution == "planned"
    log.info("constrained decoding: %s", "on" if constrained else "off")
    if batch_size == "auto":
        batch_size = backend.auto_batch_size(prompts_of(todo), gen.max_new_tokens) if todo else 1
        log.info("batch size auto: %d prompts per batch", batch_size)
    totals = {"seconds": 0.0, "completion_tokens": 0, "attempts": 0}
    bar = tqdm(
        total=len(plan.attempts),
        initial=len(plan.attempts) - len(todo),
        unit="dialogue",
        desc=f"{plan.benchmark}/{plan.distribution} shard {plan.shard}",
        file=sys.stderr,
        mininterval=5,
        dynamic_ncols=False,
        ncols=100,
    )
    with partial.open("a", encoding="utf-8") as fh:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            prompts = prompts_of(batch)
            formats = [line_format(a, vocab, distinct_lines=gen.distinct_lines) for a in batch] if constrained else None
            t0 = time.perf_counter()
            completions = backend.generate(prompts, params, [a.seed for a in batch], formats)
            wall = time.perf_counter() - t0
            for spec, prompt, comp in zip(batch, prompts, completions, strict=True):
                record = attempt_record(plan, spec, prompt, comp, constrained, backend, params, batch[0].seed)
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                totals["completion_tokens"] += comp.completion_tokens
            fh.flush()
            os.fsync(fh.fileno())  # a killed job keeps every batch it wrote (read_finished resumes from it)
            totals["seconds"] += wall
            totals["attempts"] += len(batch)
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{totals['completion_tokens'] / max(totals['seconds'], 1e-9):.1f}")
            if progress:
                progress(totals)
    bar.close()
    # Publish the complete shard in plan order, atomically.
    finished = read_finished(partial)
    tmp = output.with_name(output.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for a in plan.attempts:
            out.write(json.dumps(finished[a.attempt_id], ensure_ascii=False) + "\n")
    tmp.replace(output)
    partial.unlink()
    return totals
