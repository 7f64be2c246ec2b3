"""Generation benchmark: the pipeline (prompt building, batching, records, fsync, progress) against
the bare backend (tokenize + model.generate + decode) on the same model, prompts and batch size;
the pipeline once with free text and once under constrained decoding (the line format), on the
same prompts; and the valid-dialogue yield of each.

    python scripts/bench_generation.py --benchmarks-dir ../shared/benchmarks [--model gemma3-270m]
        [--style completion] [--dialogues 16] [--batch-size 8]
    python scripts/bench_generation.py --model smollm2-135m --style chat   # the instruct alternative

Prints tokens/s and dialogues/hour for each, the pipeline overhead, the cost of the constraints,
and the yield by reason.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import yaml  # noqa: E402

from ercsynth.backends import DecodingParams, TransformersBackend  # noqa: E402
from ercsynth.benchmarks import load_split  # noqa: E402
from ercsynth.embedded import convert_embedded, embedded_model_names  # noqa: E402
from ercsynth.generation import plan_shard, run_shard  # noqa: E402
from ercsynth.labels import Vocabulary  # noqa: E402
from ercsynth.parsing import parse_records, read_raw  # noqa: E402
from ercsynth.prompts import Templates, build_prompt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks-dir", default=str(REPO.parent / "shared" / "benchmarks"))
    ap.add_argument("--benchmark", default="MELD")
    ap.add_argument("--distribution", default="natural", choices=["natural", "balanced", "planned"])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--style", default="completion", choices=["completion", "chat"])
    ap.add_argument("--conversation-format", default="none", choices=["none", "vicuna", "chat_template"])
    ap.add_argument("--dialogues", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    gen = yaml.safe_load((REPO / "config.yaml").read_text())["generation"]
    gen |= {"dialogues": args.dialogues, "shards": 1, "batch_size": args.batch_size, "prompt_style": args.style}
    if args.max_new_tokens:
        gen["max_new_tokens"] = args.max_new_tokens
    templates = Templates.load(
        *(REPO / gen["prompts"][k] for k in ("completion", "chat", "balanced_constraint", "planned_constraint"))
    )
    pool = load_split(args.benchmarks_dir, args.benchmark, "train") if args.style == "completion" else None
    plan = plan_shard(args.benchmark, args.distribution, 0, gen, pool)
    vocab = Vocabulary.of(args.benchmark)
    params = DecodingParams(gen["max_new_tokens"], gen["temperature"], gen["top_p"])

    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if args.model in embedded_model_names():
            t0 = time.perf_counter()
            model_path = str(convert_embedded(args.model, Path(tmp) / "model"))
            print(f"converted {args.model} in {time.perf_counter() - t0:.1f} s (once per workflow, in its own rule)")
        t0 = time.perf_counter()
        backend = TransformersBackend(model_path, conversation_format=args.conversation_format)
        print(f"loaded the checkpoint in {time.perf_counter() - t0:.1f} s")
        prompts = [
            build_prompt(a, vocab, templates, args.style, [pool[i] for i in a.example_ids] if pool else None)
            for a in plan.attempts
        ]

        # Warm-up: the first generate call pays one-off costs in both modes.
        backend.generate(
            prompts[: args.batch_size], DecodingParams(8, params.temperature, params.top_p), [0] * args.batch_size
        )

        # Bare backend: tokenize, model.generate, decode; nothing else.
        tok, lm = backend.tokenizer, backend.lm
        stops = ["### Conversation", "\n\n"] if args.style == "completion" else None
        bare_tokens, t0 = 0, time.perf_counter()
        for start in range(0, len(prompts), args.batch_size):
            texts = [backend.prepare(p) for p in prompts[start : start + args.batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True)
            torch.manual_seed(plan.attempts[start].seed)  # the pipeline's seed: the same tokens come out
            with torch.inference_mode():
                out = lm.generate(
                    **enc,
                    max_new_tokens=params.max_new_tokens,
                    do_sample=True,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    pad_token_id=tok.pad_token_id,
                    stop_strings=stops,
                    tokenizer=tok if stops else None,
                )
            new = out[:, enc["input_ids"].shape[1] :]
            bare_tokens += int((new != tok.pad_token_id).sum())
            tok.batch_decode(new, skip_special_tokens=True)
        bare_s = time.perf_counter() - t0

        # The pipeline: exactly what the generate rule runs, free and constrained (planned: constrained only).
        runs = {}
        for label, constrained in (("pipeline, free text", []), ("pipeline, constrained", [args.distribution])):
            if args.distribution == "planned" and not constrained:
                continue
            raw = Path(tmp) / f"shard0_{len(constrained)}.jsonl"
            t0 = time.perf_counter()
            run_shard(plan, backend, templates, gen | {"constrained": constrained}, raw, pool)
            seconds = time.perf_counter() - t0
            records = read_raw([raw])
            tokens = sum(r["completion_tokens"] for r in records)
            _, report = parse_records(records, args.benchmark, args.distribution, gen["min_utterances"])
            runs[label] = (tokens, seconds, report)

    n = len(prompts)
    bare_tps = bare_tokens / bare_s
    print(
        f"\nmodel {args.model} ({args.style}), {args.benchmark}/{args.distribution}, {n} dialogues, batch {args.batch_size}, "
        f"{args.threads} threads, {gen['max_new_tokens']} max new tokens"
    )
    print(
        f"{'bare backend, free text':24s}: {bare_tokens:6d} tokens in {bare_s:7.1f} s = {bare_tps:6.1f} tokens/s, "
        f"{3600 * n / bare_s:7.0f} dialogues/hour"
    )
    for label, (tokens, seconds, report) in runs.items():
        rejected = {k: v for k, v in report.rejected.items() if v}
        print(
            f"{label:24s}: {tokens:6d} tokens in {seconds:7.1f} s = {tokens / seconds:6.1f} tokens/s, "
            f"{3600 * n / seconds:7.0f} dialogues/hour; valid {report.valid}/{report.attempted}, "
            f"{report.utterances} utterances, {report.skipped_lines} lines skipped, rejected: {rejected or 'none'}, "
            f"{3600 * report.valid / seconds:.0f} valid dialogues/hour"
        )
        if report.js_distance_asked_achieved is not None:
            print(f"{'':24s}  asked vs achieved labels: Jensen-Shannon distance {report.js_distance_asked_achieved}")
    if "pipeline, free text" in runs:
        free_tps = runs["pipeline, free text"][0] / runs["pipeline, free text"][1]
        print(f"pipeline overhead (tokens/s, free text vs bare): {100 * (1 - free_tps / bare_tps):+.1f} %")
    if len(runs) == 2:
        con_tps = runs["pipeline, constrained"][0] / runs["pipeline, constrained"][1]
        print(
            f"cost of the constraints (tokens/s, constrained vs free pipeline): {100 * (1 - con_tps / free_tps):+.1f} %"
        )


if __name__ == "__main__":
    main()
