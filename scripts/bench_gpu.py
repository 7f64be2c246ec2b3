"""How well the classifiers and the 4-bit generator use one GPU, with no download.

    python scripts/bench_gpu.py [--benchmarks-dir DIR] [--json out.json]
    python scripts/bench_gpu.py --smoke     # the same code at tiny shapes on a CPU (a test runs it)

Random weights of the paper's shapes (roberta-large; Llama-13B for Vicuna) and a byte-level BPE
tokenizer trained here on MELD. In one process it prints, per classifier:
- training utterances/s through the trainer's own step (paper config's encoder and lengths, in
  one step shape for all three: whole dialogues packed up to 32 utterances, bf16, passes of at most
  8192 tokens, lengths padded to multiples of 64; the measured shape, not the originals' recipes);
- a bare encoder step (forward, backward, fused AdamW) fed exactly the token tensors the
  classifier encoded in that step (its memory and knowledge sequences included), and the ratio;
- the share of wall time the GPU was busy (profiler: kernel time / wall time), peak memory, and
  evaluation utterances/s;
- the peak memory of one training step on the longest dialogue of each benchmark at max length 512;
and 4-bit NF4 generation tokens/s at batch 16, at the paper config's automatic batch, and at the
largest batch that fits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
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

from ercsynth.benchmarks import load_split  # noqa: E402
from ercsynth.config import load_config  # noqa: E402
from ercsynth.dialogues import Dialogue, Utterance  # noqa: E402
from ercsynth.labels import Vocabulary  # noqa: E402
from ercsynth.models import ModelSettings  # noqa: E402
from ercsynth.recipe import resolve  # noqa: E402
from ercsynth.tiny import LLAMA_13B, ROBERTA_LARGE, save_llama, save_roberta, train_tokenizer  # noqa: E402
from ercsynth.training import Step, Trainer, autocast, predict, seeded_model, steps  # noqa: E402

GiB = 1024**3


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / GiB if torch.cuda.is_available() else float("nan")


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


# --------------------------------------------------------------------------- shapes
TINY_ROBERTA = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128}
TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


# --------------------------------------------------------------------------- classifiers
class Recorder:
    """Every (encoder, input_ids, attention_mask, grad) a classifier step feeds its encoders."""

    def __init__(self, modules: dict[str, torch.nn.Module]) -> None:
        self.calls: list[tuple[str, torch.Tensor, torch.Tensor, bool]] = []
        self.on = False
        self.handles = [m.register_forward_pre_hook(self._hook(name), with_kwargs=True) for name, m in modules.items()]

    def _hook(self, name: str):
        def hook(module, args, kwargs):
            if self.on:
                self.calls.append((name, kwargs["input_ids"], kwargs["attention_mask"], torch.is_grad_enabled()))

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def bare_steps(encoder_dir: str, steps: list[list[tuple]], names: set[str], precision: str, device) -> float:
    """Seconds for bare encoder steps over the recorded tensors: forward, backward, fused AdamW."""
    from transformers import AutoModel

    encoders = {n: AutoModel.from_pretrained(encoder_dir, attn_implementation="sdpa") for n in names}
    vocab = 1 + max(int(ids.max()) for step in steps for _, ids, _, _ in step)
    for name, enc in encoders.items():
        if enc.get_input_embeddings().num_embeddings < vocab:  # CoMPM's added speaker tokens
            enc.resize_token_embeddings(vocab, mean_resizing=False)
        encoders[name] = enc.to(device)
    params = [p for e in encoders.values() for p in e.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")

    def run(step):
        for name, ids, mask, grad in step:
            with torch.set_grad_enabled(grad), autocast(device, precision):
                first = encoders[name](input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
            if grad:
                first.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    run(steps[0])  # warm-up
    sync()
    start = time.perf_counter()
    for step in steps:
        run(step)
    sync()
    seconds = time.perf_counter() - start
    return seconds


# The one step shape measured for every classifier (the originals' recipes differ: docs/recipes.md).
BENCH_SHAPE = {"batch_size": 32, "batch_unit": "utterances", "shuffle": "dialogues", "precision": "bf16"}


def busy_share(trainer: Trainer, batches_: list[Step], opt, sched) -> float:
    """Kernel time / wall time over some steps (CUDA only)."""
    if not torch.cuda.is_available():
        return float("nan")
    from torch.profiler import ProfilerActivity, profile

    sync()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for batch in batches_:
            trainer.step(batch, opt, sched)
        sync()
        wall = time.perf_counter() - start
    kernel_us = sum(
        e.self_device_time_total
        for e in prof.key_averages()
        if getattr(e, "device_type", None) is not None and str(e.device_type).endswith("CUDA")
    )
    return kernel_us / 1e6 / wall


def bench_classifier(name: str, training: dict, data: list[Dialogue], longest: dict, args, device) -> dict:
    vocab = Vocabulary.of("MELD")
    recipe = replace(resolve(training, name, "MELD"), **(BENCH_SHAPE | args.shape))
    model = seeded_model(ModelSettings.from_config(training, recipe, len(vocab)), seed=1)
    with tempfile.TemporaryDirectory() as state:
        trainer = Trainer(model, recipe, vocab, 1, state)
        opt, sched = trainer._optimizer(10_000)
        model.train()
        all_batches = list(steps(data, recipe, shuffle=False))
        warm, timed = all_batches[: args.warmup], all_batches[args.warmup :]
        for batch in warm:  # shapes, plans, token caches
            trainer.step(batch, opt, sched)
        encoders = {"encoder": model.encoder} | ({"memory": model.memory} if name == "compm" else {})
        recorder = Recorder(encoders)
        reset_peak()
        sync()
        start = time.perf_counter()
        recorded: list[list[tuple]] = []
        utterances = 0
        for batch in timed:
            recorder.calls = []
            recorder.on = True
            _, n = trainer.step(batch, opt, sched)
            recorder.on = False
            recorded.append(list(recorder.calls))
            utterances += n
        sync()
        seconds = time.perf_counter() - start
        peak = peak_gib()
        recorder.close()
        busy = busy_share(trainer, timed[: args.profile_steps], opt, sched)
        sync()
        start = time.perf_counter()
        predict(model, timed_dialogues(timed), recipe.max_tokens_per_step, recipe.precision)
        sync()
        eval_rate = utterances / (time.perf_counter() - start)
        # The longest dialogue of each benchmark, one training step at the configured length.
        model.train()
        longest_peak = {}
        for bench, dialogue in longest.items():
            reset_peak()
            trainer.step(Step([dialogue], [(0, t) for t in range(len(dialogue.utterances))]), opt, sched)
            sync()
            longest_peak[bench] = {"utterances": len(dialogue.utterances), "peak_gib": round(peak_gib(), 2)}
        del opt, sched, trainer
    del model
    reset_peak()
    bare = bare_steps(training["encoder"], recorded, set(encoders), recipe.precision, device)
    tokens = sum(int(mask.sum()) for step in recorded for _, _, mask, _ in step)
    padded = sum(mask.numel() for step in recorded for _, _, mask, _ in step)
    return {
        "classifier": name,
        "train_utt_s": round(utterances / seconds, 1),
        "bare_utt_s": round(utterances / bare, 1),
        "ratio": round(bare / seconds, 3),
        "gpu_busy": round(busy, 3),
        "peak_gib": round(peak, 2),
        "eval_utt_s": round(eval_rate, 1),
        "padding_share": round(1 - tokens / max(padded, 1), 3),
        "encoder_calls_per_step": round(sum(map(len, recorded)) / max(len(recorded), 1), 1),
        "longest_dialogue": longest_peak,
    }


def timed_dialogues(timed: list[Step]) -> list[Dialogue]:
    return [d for step in timed for d in step.dialogues]


# --------------------------------------------------------------------------- generation
def bench_generation(llama_dir: Path, args, device) -> list[dict]:
    from ercsynth.backends import DecodingParams, TransformersBackend
    from ercsynth.generation import GenerationSettings, plan_shard
    from ercsynth.labels import Vocabulary
    from ercsynth.prompts import Templates, build_prompt

    gen = load_config(REPO / "config.yaml", REPO / "configs" / "paper.yaml")["generation"]
    templates = Templates.load(
        *(REPO / gen["prompts"][k] for k in ("completion", "chat", "balanced_constraint", "planned_constraint"))
    )
    vocab = Vocabulary.of("MELD")
    plan = plan_shard("MELD", "balanced", 0, GenerationSettings.from_params(gen | {"dialogues": 512, "shards": 1}))
    prompts = [build_prompt(a, vocab, templates, "chat") for a in plan.attempts]
    t0 = time.perf_counter()
    backend = TransformersBackend(str(llama_dir), quantization="4bit", conversation_format="vicuna")
    load_s = time.perf_counter() - t0
    params = DecodingParams(args.new_tokens, temperature=0.8, top_p=0.95)
    auto = backend.auto_batch_size(prompts, gen["max_new_tokens"])
    sizes = sorted({args.gen_batch, auto} | ({4} if args.smoke else {64, 128, 256}))
    rows = []
    for size in sizes:
        reset_peak()
        try:
            backend.generate(prompts[:size], DecodingParams(4, 0.8, 0.95), [1] * size)  # warm-up
            sync()
            start = time.perf_counter()
            out = backend.generate(prompts[:size], params, [2] * size)
            sync()
            seconds = time.perf_counter() - start
        except torch.OutOfMemoryError:
            rows.append({"batch": size, "result": "out of memory"})
            break
        tokens = sum(o.completion_tokens for o in out)
        rows.append(
            {
                "batch": size,
                "auto": size == auto,
                "tokens_s": round(tokens / seconds, 1),
                "peak_gib": round(peak_gib(), 2),
                "load_s": round(load_s, 1),
            }
        )
        if time.perf_counter() - t0 > args.gen_budget_s:
            break
    return rows


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--benchmarks-dir", default=os.environ.get("ERCSYNTH_BENCHMARKS", str(REPO / "resources" / "benchmarks"))
    )
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, runs on a CPU in under 2 minutes")
    ap.add_argument("--dialogues", type=int, default=None, help="MELD training dialogues timed (after warm-up)")
    ap.add_argument("--warmup", type=int, default=3, help="steps before timing")
    ap.add_argument("--profile-steps", type=int, default=5)
    ap.add_argument("--models", nargs="+", default=["compm", "emoberta", "todkat"])
    ap.add_argument("--gen-batch", type=int, default=16, help="the previous paper-config batch, for comparison")
    ap.add_argument("--new-tokens", type=int, default=None)
    ap.add_argument("--gen-budget-s", type=float, default=150)
    ap.add_argument("--skip-generation", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not args.smoke:
        sys.exit("no GPU here: run with --smoke for the CPU check at tiny shapes")
    args.dialogues = args.dialogues or (12 if args.smoke else 80)
    args.new_tokens = args.new_tokens or (8 if args.smoke else 128)
    t_start = time.perf_counter()

    training = load_config(REPO / "config.yaml", REPO / "configs" / "paper.yaml")["training"]
    training["todkat"] |= {"knowledge": "relation_views"}  # no COMET model to download: same shapes
    if args.smoke:
        training |= {"max_tokens_per_step": 1024, "pad_to_multiple_of": 8}
        training["todkat"] |= {"topic_layer": 2, "topics": 8}
    args.shape = {"max_length": 64, "precision": "no"} if args.smoke else {}
    train = load_split(args.benchmarks_dir, "MELD", "train")
    data = train[: args.dialogues + args.warmup * 4]
    longest = {}
    for bench in ("MELD", "EmoryNLP", "IEMOCAP"):
        with contextlib.suppress(FileNotFoundError):
            dialogues = load_split(args.benchmarks_dir, bench, "train")
            d = max(dialogues, key=lambda d: len(d.utterances))
            # Memory does not depend on the labels: MELD's head, every utterance 'neutral'.
            utterances = [Utterance(u.speaker, u.text, "neutral") for u in d.utterances]
            longest[bench] = Dialogue(d.dialogue_id, utterances[:12] if args.smoke else utterances)
    vocab_size = 600 if args.smoke else 11000

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = [u.text for d in (train[:300] if args.smoke else train) for u in d.utterances]
        tok_dir = train_tokenizer(texts, vocab_size, tmp / "tokenizer")
        t0 = time.perf_counter()
        shape = TINY_ROBERTA if args.smoke else ROBERTA_LARGE
        training["encoder"] = str(save_roberta(tok_dir, tmp / "encoder", **shape))
        print(
            f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}; "
            f"random roberta{'-tiny' if args.smoke else '-large'} saved in {time.perf_counter() - t0:.1f} s; "
            f"encoder max length {args.shape.get('max_length', 'per recipe')}, {BENCH_SHAPE['batch_size']} utterances "
            f"a step (whole dialogues), passes of <= {training['max_tokens_per_step']} tokens, padded to "
            f"x{training['pad_to_multiple_of']}, precision {args.shape.get('precision', BENCH_SHAPE['precision'])}",
            flush=True,
        )
        results = []
        for name in args.models:
            r = bench_classifier(name, training, data, longest, args, device)
            results.append(r)
            print(json.dumps(r), flush=True)
        print(
            f"\n{'model':9s} {'train utt/s':>11s} {'bare utt/s':>10s} {'ratio':>6s} {'GPU busy':>8s} "
            f"{'peak GiB':>8s} {'eval utt/s':>10s} {'padding':>7s}"
        )
        for r in results:
            print(
                f"{r['classifier']:9s} {r['train_utt_s']:11.1f} {r['bare_utt_s']:10.1f} {r['ratio']:6.3f} "
                f"{r['gpu_busy']:8.2f} {r['peak_gib']:8.2f} {r['eval_utt_s']:10.1f} {r['padding_share']:7.2f}"
            )
        print("\nlongest dialogue, one training step, peak GiB:")
        for r in results:
            print(
                f"  {r['classifier']:9s} "
                + ", ".join(f"{b} ({v['utterances']} utt.) {v['peak_gib']}" for b, v in r["longest_dialogue"].items())
            )
        gen_rows = []
        if not args.skip_generation:
            t0 = time.perf_counter()
            llama = (
                save_llama(tok_dir, tmp / "llama", **TINY_LLAMA)
                if args.smoke
                else save_llama(tok_dir, tmp / "llama", vocab_size=32000, **LLAMA_13B)
            )
            print(
                f"\nrandom Llama-{'tiny' if args.smoke else '13B'} saved in {time.perf_counter() - t0:.1f} s; "
                f"4-bit NF4 generation, {args.new_tokens} new tokens:",
                flush=True,
            )
            gen_rows = bench_generation(llama, args, device)
            for row in gen_rows:
                print("  " + json.dumps(row), flush=True)
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"classifiers": results, "generation": gen_rows}, indent=2))


if __name__ == "__main__":
    main()
