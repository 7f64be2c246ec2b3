"""Generation benchmark on one embedded model, one set of prompts and one length limit.

Engine llamacpp (the offline default), three rows side by side:
- the pipeline: exactly what the generate rule runs (prompt building, batching, parallel sequences,
  records, fsync, progress), with free text and under constrained decoding;
- the same engine bare: LlamaCppBackend.generate over the prompts, nothing else;
- the reference: llama.cpp single-stream (llama-cpp-python's Llama, one prompt at a time) with the
  same sampling settings and stops.
Engine transformers (the GPU and 4-bit path): the pipeline against model.generate on the converted checkpoint.

    python scripts/bench_generation.py [--engine llamacpp] [--dialogues 32] [--parallel 8]
    python scripts/bench_generation.py --engine transformers --dialogues 16 --batch-size 8
    python scripts/bench_generation.py --model smollm2-135m --style chat   # the instruct alternative

Prints tokens/s and dialogues/hour for each, the ratio of the pipeline to the reference, the cost
of the constraints, and the yield by reason. Tokens/s counts generated tokens over the whole wall
time, prompt reading included, for every row alike.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import yaml  # noqa: E402

from ercsynth.backends import COMPLETION_STOPS, DecodingParams, TransformersBackend  # noqa: E402
from ercsynth.backends.embedded import convert_embedded, embedded_model_names, gguf_file  # noqa: E402
from ercsynth.backends.llamacpp import TOP_K, LlamaCppBackend  # noqa: E402
from ercsynth.benchmarks import load_split  # noqa: E402
from ercsynth.generation import GenerationSettings, plan_shard, run_shard  # noqa: E402
from ercsynth.labels import Vocabulary  # noqa: E402
from ercsynth.parsing import parse_records, read_raw  # noqa: E402
from ercsynth.prompts import Templates, build_prompt  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--benchmarks-dir", default=os.environ.get("ERCSYNTH_BENCHMARKS", str(REPO / "resources" / "benchmarks"))
    )
    ap.add_argument("--benchmark", default="MELD")
    ap.add_argument("--distribution", default="natural", choices=["natural", "balanced", "planned"])
    ap.add_argument("--engine", default="llamacpp", choices=["llamacpp", "transformers"])
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--style", default="completion", choices=["completion", "chat"])
    ap.add_argument("--conversation-format", default="none", choices=["none", "vicuna", "chat_template"])
    ap.add_argument("--dialogues", type=int, default=32)
    ap.add_argument("--batch-size", default="auto", help="prompts per generate call (auto: as the config)")
    ap.add_argument("--parallel", type=int, default=None, help="llamacpp: attempts decoded together (config)")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    gen = yaml.safe_load((REPO / "config.yaml").read_text())["generation"]
    batch = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    gen |= {"dialogues": args.dialogues, "shards": 1, "batch_size": batch, "prompt_style": args.style}
    gen["backend"] = args.engine
    if args.parallel:
        gen["llamacpp"] = gen["llamacpp"] | {"parallel": args.parallel}
    if args.max_new_tokens:
        gen["max_new_tokens"] = args.max_new_tokens
    if args.distribution == "natural":
        gen["topics"] = gen["natural_topics"]  # as the generate rule passes them
    templates = Templates.load(
        *(REPO / gen["prompts"][k] for k in ("completion", "chat", "balanced_constraint", "planned_constraint"))
    )
    pool = load_split(args.benchmarks_dir, args.benchmark, "train") if args.style == "completion" else None
    settings = GenerationSettings.from_params(gen)
    plan = plan_shard(args.benchmark, args.distribution, 0, settings, pool)
    vocab = Vocabulary.of(args.benchmark)
    params = settings.decoding()
    prompts = [
        build_prompt(a, vocab, templates, args.style, [pool[i] for i in a.example_ids] if pool else None)
        for a in plan.attempts
    ]
    seeds = [a.seed for a in plan.attempts]
    n = len(prompts)

    rows: dict[str, tuple[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.engine == "llamacpp":
            t0 = time.perf_counter()
            gguf = gguf_file(args.model)
            backend = LlamaCppBackend(gguf, gen["llamacpp"]["parallel"], args.threads, gen["llamacpp"]["context"])
            print(f"loaded {gguf.name} in {time.perf_counter() - t0:.1f} s, {backend.parallel} parallel sequences")
            backend.generate(prompts[:2], DecodingParams(4, params.temperature, params.top_p), seeds[:2])  # warm-up
            rows["reference: llama.cpp single stream"] = reference(gguf, prompts, params, seeds, args.threads)
            size = backend.auto_batch_size(prompts, params.max_new_tokens) if batch == "auto" else batch
            t0, tokens = time.perf_counter(), 0
            for start in range(0, n, size):  # the engine bare: generate() calls, no records, no parsing
                out = backend.generate(prompts[start : start + size], params, seeds[start : start + size])
                tokens += sum(c.completion_tokens for c in out)
            rows["our engine, bare"] = (tokens, time.perf_counter() - t0)
        else:
            model_path = args.model
            if args.model in embedded_model_names():
                t0 = time.perf_counter()
                model_path = str(convert_embedded(args.model, Path(tmp) / "model"))
                print(
                    f"converted {args.model} in {time.perf_counter() - t0:.1f} s (once per workflow, in its own rule)"
                )
            t0 = time.perf_counter()
            backend = TransformersBackend(model_path, conversation_format=args.conversation_format)
            print(f"loaded the checkpoint in {time.perf_counter() - t0:.1f} s")
            size = 8 if batch == "auto" else batch
            settings = replace(settings, batch_size=size)
            backend.generate(prompts[:size], DecodingParams(8, params.temperature, params.top_p), [0] * size)
            rows["bare model.generate"] = bare_transformers(backend, prompts, plan, params, size, args.style)

        # The pipeline: exactly what the generate rule runs, free and constrained (planned: constrained only).
        runs = {}
        for label, constrained in (("pipeline, free text", []), ("pipeline, constrained", [args.distribution])):
            if args.distribution == "planned" and not constrained:
                continue
            raw = Path(tmp) / f"shard0_{len(constrained)}.jsonl"
            t0 = time.perf_counter()
            run_shard(plan, backend, templates, replace(settings, constrained=tuple(constrained)), raw, pool)
            seconds = time.perf_counter() - t0
            records = read_raw([raw])
            tokens = sum(r["completion_tokens"] for r in records)
            _, report = parse_records(records, args.benchmark, args.distribution, gen["min_utterances"])
            runs[label] = (tokens, seconds, report)

    print(
        f"\n{args.engine}, model {args.model} ({args.style}), {args.benchmark}/{args.distribution}, {n} dialogues, "
        f"{args.threads} threads, {gen['max_new_tokens']} max new tokens, temperature {params.temperature}, "
        f"top-p {params.top_p}, top-k {TOP_K}"
    )
    for label, (tokens, seconds) in rows.items():
        print(
            f"{label:36s}: {tokens:6d} tokens in {seconds:7.1f} s = {tokens / seconds:6.1f} tokens/s, "
            f"{3600 * n / seconds:7.0f} dialogues/hour"
        )
    for label, (tokens, seconds, report) in runs.items():
        rejected = {k: v for k, v in report.rejected.items() if v}
        print(
            f"{label:36s}: {tokens:6d} tokens in {seconds:7.1f} s = {tokens / seconds:6.1f} tokens/s, "
            f"{3600 * n / seconds:7.0f} dialogues/hour; valid {report.valid}/{report.attempted}, "
            f"{report.utterances} utterances, {report.skipped_lines} lines skipped, rejected: {rejected or 'none'}, "
            f"{3600 * report.valid / seconds:.0f} valid dialogues/hour"
        )
        if report.js_distance_asked_achieved is not None:
            print(f"{'':36s}  asked vs achieved labels: Jensen-Shannon distance {report.js_distance_asked_achieved}")
    base_label = next(iter(rows))
    base_tps = rows[base_label][0] / rows[base_label][1]
    for label, (tokens, seconds, _) in runs.items():
        print(f"{label} / {base_label}: {tokens / seconds / base_tps:.2f}x tokens/s")
    if len(runs) == 2:
        free_tps = runs["pipeline, free text"][0] / runs["pipeline, free text"][1]
        con_tps = runs["pipeline, constrained"][0] / runs["pipeline, constrained"][1]
        print(
            f"cost of the constraints (tokens/s, constrained vs free pipeline): {100 * (1 - con_tps / free_tps):+.1f} %"
        )


def reference(gguf: Path, prompts, params: DecodingParams, seeds: list[int], threads: int) -> tuple[int, float]:
    """llama.cpp's own single stream: one prompt at a time, its own sampler, the same settings and stops."""
    import llama_cpp

    llm = llama_cpp.Llama(str(gguf), n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    llm("Hello", max_tokens=4)  # warm-up
    stops = list(COMPLETION_STOPS) if prompts[0].style == "completion" else None
    tokens, t0 = 0, time.perf_counter()
    for prompt, seed in zip(prompts, seeds, strict=True):
        llm.set_seed(seed)
        out = llm(
            prompt.text,
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=TOP_K,
            min_p=0.0,  # llama-cpp-python's defaults add min-p 0.05; ours samples top-k, then top-p only
            repeat_penalty=1.0,
            stop=stops,
        )
        tokens += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - t0
    del llm
    return tokens, seconds


def bare_transformers(backend, prompts, plan, params, size: int, style: str) -> tuple[int, float]:
    """Tokenize, model.generate, decode; nothing else."""
    tok, lm = backend.tokenizer, backend.lm
    stops = list(COMPLETION_STOPS) if style == "completion" else None
    tokens, t0 = 0, time.perf_counter()
    for start in range(0, len(prompts), size):
        texts = [backend.prepare(p) for p in prompts[start : start + size]]
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
        tokens += int((new != tok.pad_token_id).sum())
        tok.batch_decode(new, skip_special_tokens=True)
    return tokens, time.perf_counter() - t0


if __name__ == "__main__":
    main()
