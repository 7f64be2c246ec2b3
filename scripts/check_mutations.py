"""Prove that the tests catch realistic bugs: apply each mutation to a copy of the code, run the
tests that guard it, and print whether they went red (they must).

    python scripts/check_mutations.py              # every mutation
    python scripts/check_mutations.py --only holm  # one of them

Each mutation is a one-line edit of the kind a reviewer of a results paper would worry about. The
copy lives in a temporary folder; the repository is never touched. Prints one line per mutation
and exits non-zero if any mutation left its tests green.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = (
    "ercsynth",
    "workflow_scripts",
    "rules",
    "tests",
    "prompts",
    "scripts",
    "Snakefile",
    "config.yaml",
    "pyproject.toml",
)


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    before: str
    after: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "slurm-restart-drops-link",
        "scripts/start_slurm.sh",
        "    stop_daemons\n  fi\n  start_daemons",
        "    stop_daemons\n    remove_link\n  fi\n  start_daemons",
        ("tests/test_start_slurm.py",),
    ),
    Mutation(
        "sizes-drawn-independently",
        "ercsynth/design.py",
        'random.Random(f"{salt}:{seed}").shuffle(order)',
        'random.Random(f"{salt}:{seed}:{keep}").shuffle(order)',
        ("tests/test_design.py",),
    ),
    Mutation(
        "fraction-part-dropped",
        "ercsynth/design.py",
        'return head + ("" if self.fraction == 1.0 else f"/real{fraction_text(self.fraction)}")',
        "return head",
        ("tests/test_design.py",),
    ),
    Mutation(
        "generator-name-unreserved",
        "ercsynth/design.py",
        "if RESERVED.fullmatch(name) or not re.fullmatch(NAME, name):",
        "if not re.fullmatch(NAME, name):",
        ("tests/test_design.py",),
    ),
    Mutation(
        "two-values-untested",
        "ercsynth/stats.py",
        "    if len(conditions) == 2:\n        return result | paired_test(wide, mean_ranks)\n",
        "",
        ("tests/test_stats.py::test_two_values_get_the_paired_wilcoxon_test",),
    ),
    Mutation(
        "utterance-step-global-rows",
        "ercsynth/training.py",
        "return Step([data[i] for i in local], [(local[i], t) for i, t in picked])",
        "return Step([data[i] for i in local], list(picked))",
        ("tests/test_training.py::test_an_utterance_step_holds_b_utterances_encoded_as_in_their_whole_dialogue",),
    ),
    Mutation(
        "layernorm-decayed",
        "ercsynth/training.py",
        'if "bias" in name or isinstance(module, norms):',
        'if "bias" in name:',
        ("tests/test_training.py::test_no_decay_exempts_biases_and_layernorm_only",),
    ),
    Mutation(
        "select-on-ignored",
        "ercsynth/training.py",
        "if metrics[self.recipe.select_on] > best:",
        'if metrics["weighted_f1"] > best:',
        ("tests/test_training.py::test_selection_on_accuracy_keeps_the_most_accurate_dev_epoch",),
    ),
    Mutation(
        "benchmark-override-ignored",
        "ercsynth/recipe.py",
        'values |= {k: v for k, v in ((own.get("per_benchmark") or {}).get(benchmark) or {}).items() if k in CONFIG_KEYS}',
        "pass",
        ("tests/test_recipe.py",),
    ),
    Mutation(
        "holm",
        "ercsynth/stats.py",
        '"significant": adjusted[i] < ALPHA',
        '"significant": raw[i] < ALPHA',
        ("tests/test_stats.py::test_holm_adjusted_p_values_and_flags_are_exact",),
    ),
    Mutation(
        "blocks-with-seeds",
        "ercsynth/stats.py",
        '"overall": friedman(df, ["benchmark", "classifier", "real_fraction"], columns, column="treatment"),',
        '"overall": friedman(df, ["benchmark", "classifier", "real_fraction", "seed"], columns, column="treatment"),',
        ("tests/test_stats.py::test_identical_seeds_are_one_problem_not_five",),
    ),
    Mutation(
        "unreachable-p-reported",
        "ercsynth/stats.py",
        "    if floor >= ALPHA:\n",
        "    if len(wide) < 3:\n",
        ("tests/test_stats.py::test_too_few_blocks_to_reach_significance_give_no_p_value",),
    ),
    Mutation(
        "family-holm-left-out",
        "ercsynth/stats.py",
        'for r, adjusted in zip(tested, holm([r["p_value"] for r in tested]), strict=True):',
        'for r, adjusted in zip(tested, [r["p_value"] for r in tested], strict=True):',
        ("tests/test_stats.py::test_holm_adjusts_across_the_tests_of_the_report",),
    ),
    Mutation(
        "bootstrap-utterances",
        "ercsynth/effects.py",
        'return str(row["dialogue_id"])',
        "return f\"{row['dialogue_id']}/{row['index']}\"",
        ("tests/test_effects.py::test_the_unit_resampled_is_the_dialogue_not_the_utterance",),
    ),
    Mutation(
        "unlabelled-line-accepted",
        "ercsynth/parsing.py",
        '            problems.add("unlabelled_line")',
        "            pass",
        ("tests/test_parsing.py::test_an_unlabelled_line_between_utterances_rejects_the_dialogue",),
    ),
    Mutation(
        "label-conflict-accepted",
        "ercsynth/parsing.py",
        "if word in vocab.labels and word != label:",
        "if False:",
        ("tests/test_parsing.py::test_a_symbol_that_contradicts_its_own_name_is_a_conflict",),
    ),
    Mutation(
        "record-speakers-ignored",
        "ercsynth/parsing.py",
        "            record_speakers(rec),\n",
        "            None,\n",
        ("tests/test_parsing.py::test_records_name_their_speakers_and_parsing_holds_them_to_it",),
    ),
    Mutation(
        "byte-order-mark-kept",
        "ercsynth/textfiles.py",
        "        data = data[len(codecs.BOM_UTF8) :]",
        "        pass",
        ("tests/test_benchmarks.py::test_a_utf8_byte_order_mark_is_accepted",),
    ),
    Mutation(
        "symbol-zero",
        "ercsynth/parsing.py",
        "if not 1 <= n <= len(vocab):",
        "if not 0 <= n <= len(vocab):",
        ("tests/test_parsing.py",),
    ),
    Mutation(
        "plan-unshuffled",
        "ercsynth/generation.py",
        'random.Random(attempt_seed(gen.seed, benchmark, "planned-labels", 0)).shuffle(pool)',
        "pass",
        ("tests/test_constraints.py::test_the_plan_of_a_seed_is_pinned_and_mixes_labels_within_each_attempt",),
    ),
    Mutation(
        "fingerprint-names-only",
        "ercsynth/runtime.py",
        'h.update(str(name).encode() + b"\\0" + path.read_bytes() + b"\\0")',
        'h.update(str(name).encode() + b"\\0")',
        ("tests/test_runtime.py",),
    ),
    Mutation(
        "best-epoch-not-reloaded",
        "ercsynth/training.py",
        'self.model.load_state_dict(torch.load(kept, map_location="cpu", weights_only=True))',
        "pass",
        ("tests/test_training.py::test_the_best_dev_epoch_is_the_model_that_is_returned",),
    ),
    Mutation(
        "relabel-off-by-one",
        "ercsynth/verification.py",
        "out[item.dialogue][item.utterance] = vocab.labels[b]",
        "out[item.dialogue][item.utterance] = vocab.labels[b - 1]",
        ("tests/test_verification.py::test_relabel_gives_each_utterance_the_symbol_the_model_ranks_highest",),
    ),
    Mutation(
        "model-file-unpickled",
        "ercsynth/models/__init__.py",
        'saved = torch.load(path, map_location="cpu", weights_only=True)',
        'saved = torch.load(path, map_location="cpu", weights_only=False)',
        ("tests/test_models.py::test_model_files_round_trip_and_a_file_that_carries_code_is_refused",),
    ),
    Mutation(
        "macro-f1-gold-labels-only",
        "ercsynth/metrics.py",
        '"macro_f1": float(f1_score(gold, pred, average="macro", zero_division=0)),',
        '"macro_f1": float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0)),',
        ("tests/test_stats.py::test_macro_f1_averages_labels_in_gold_or_prediction_as_scikit_learn_does",),
    ),
    Mutation(
        "mean-pool-over-padding",
        "ercsynth/models/base.py",
        "return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)",
        "return hidden.mean(1)",
        ("tests/test_models.py::test_pooling_auto_is_the_encoders_own_and_mean_skips_padding",),
    ),
    Mutation(
        "decoder-allows-copied-lines",
        "ercsynth/constraints.py",
        "if not self.text_chars or self.copies_earlier_line():",
        "if not self.text_chars:",
        ("tests/test_constraints.py::test_the_decoder_refuses_a_copy_of_an_earlier_line",),
    ),
    Mutation(
        "balanced-target-not-forced",
        "ercsynth/constraints.py",
        "if required and self.line == self.fmt.lines - 1 and required not in self.seen and required in symbols:",
        "if required and self.line == self.fmt.lines and required not in self.seen and required in symbols:",
        ("tests/test_constraints.py::test_a_balanced_attempt_without_its_target_gets_it_on_its_last_line",),
    ),
    Mutation(
        "repetitive-never-rejected",
        "ercsynth/parsing.py",
        "if repeated_lines(utterances) / len(utterances) > max_repeated_share:",
        "if repeated_lines(utterances) > max_repeated_share * 100:",
        ("tests/test_parsing.py",),
    ),
    Mutation(
        "todkat-topic-random-init",
        "ercsynth/models/todkat.py",
        "nn.init.zeros_(self.topic_embed.bias)",
        "nn.init.normal_(self.topic_embed.bias)",
        ("tests/test_models.py::test_todkat_at_step_0_computes_what_the_pretrained_encoder_computes",),
    ),
    Mutation(
        "todkat-positions-dropped",
        "ercsynth/models/todkat.py",
        'if self.positions == "sinusoidal":',
        'if self.positions == "none":',
        ("tests/test_models.py::test_reversing_a_dialogue_changes_todkats_predictions_only_with_positions",),
    ),
    Mutation(
        "floor-from-test-labels",
        "ercsynth/metrics.py",
        "counts = Counter(u.label for d in train for u in d.utterances)",
        "counts = Counter(u.label for d in test for u in d.utterances)",
        ("tests/test_stats.py::test_the_majority_floor_predicts_the_train_splits_most_frequent_label_on_test",),
    ),
    # The experiment plan (ercsynth/plan.py) and the one list per fact.
    Mutation(
        "plan-template-fields-unchecked",
        "ercsynth/plan.py",
        "        try:\n            Templates.load(*paths)\n",
        "        try:\n            pass\n",
        ("tests/test_plan.py::test_a_template_with_an_unknown_field_stops_the_plan",),
    ),
    Mutation(
        "plan-per-benchmark-names-unchecked",
        "ercsynth/plan.py",
        '        named += [(setting_key(g, "per_benchmark"), b["per_benchmark"]) for g, b in self.generators.items()]\n',
        "",
        ("tests/test_plan.py::test_bad_configs_stop_the_plan_naming_the_key",),
    ),
    Mutation(
        "plan-iemocap-always-added",
        "ercsynth/plan.py",
        'if present and self.config["add_iemocap_if_present"]:',
        "if present:",
        ("tests/test_plan.py::test_iemocap_joins_the_run_when_present_and_asked",),
    ),
    Mutation(
        "generation-gets-unread-sections",
        "ercsynth/generation.py",
        'params[gen["backend"]] = gen[gen["backend"]]',
        'params.update({k: gen[k] for k in ("llamacpp", "transformers", "openai")})',
        ("tests/test_plan.py::test_a_job_gets_exactly_the_generation_keys_it_reads",),
    ),
    Mutation(
        "per-benchmark-schema-own-minimum",
        "rules/schemas/config.schema.yaml",
        'max_new_tokens: {$ref: "#/properties/generation/properties/max_new_tokens"}',
        "max_new_tokens: {type: integer, minimum: 1}",
        ("tests/test_plan.py::test_bad_configs_stop_the_plan_naming_the_key",),
    ),
    Mutation(
        "rule-without-environment",
        "rules/parsing.smk",
        '        dataset=dataset_pattern(GENERATORS, DISTRIBUTIONS),\n    conda:\n        "../envs/generation.yaml"\n',
        "        dataset=dataset_pattern(GENERATORS, DISTRIBUTIONS),\n",
        ("tests/test_envs.py::test_every_rule_with_a_script_has_an_environment",),
    ),
    Mutation(
        "axis-plot-drops-runs",
        "ercsynth/plots.py",
        'lines = sub[sub["_cond"] != "baseline"] if by_size else sub\n',
        'lines = sub[sub["_cond"] != "baseline"] if by_size else sub[sub["_cond"] == "baseline"]\n',
        ("tests/test_stats.py::test_the_axis_plots_draw_every_condition",),
    ),
    Mutation(
        "cpu-autocast-ignored",
        "ercsynth/training.py",
        '    if precision in ("bf16", "fp16"):\n        return torch.autocast(',
        '    if device.type == "cuda" and precision in ("bf16", "fp16"):\n        return torch.autocast(',
        ("tests/test_training.py::test_mixed_precision_trains_on_the_cpu",),
    ),
    Mutation(
        "auto-precision-always-fp32",
        "ercsynth/training.py",
        'return "bf16" if cpu_has_native_bf16() else "no"',
        'return "no"',
        ("tests/test_training.py::test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16",),
    ),
    Mutation(
        "overlap-not-normalised",
        "ercsynth/quality.py",
        'return " ".join(re.sub(r"[^\\w]+", " ", text.lower()).split())',
        "return text",
        ("tests/test_quality.py::test_planted_test_lines_are_found_and_only_they",),
    ),
    Mutation(
        "cut-off-ignores-closing-brackets",
        "ercsynth/quality.py",
        """SENTENCE_END = tuple(".!?…\\"'”’)]»")""",
        """SENTENCE_END = tuple(".!?…")""",
        ("tests/test_quality.py::test_cut_off_share_counts_utterances_that_stop_mid_phrase",),
    ),
    Mutation(
        "shuffled-labels-kept",
        "ercsynth/design.py",
        'random.Random(f"shuffled:{seed}").shuffle(labels)',
        "pass",
        ("tests/test_design.py::test_the_shuffled_control_keeps_texts_and_label_counts_and_breaks_their_link",),
    ),
    Mutation(
        "control-from-last-distribution",
        "ercsynth/plan.py",
        'source = self.config["control_source"] or self.distributions_of[bench][0]',
        'source = self.config["control_source"] or self.distributions_of[bench][-1]',
        (
            "tests/test_plan.py::test_the_shuffled_control_is_a_condition_of_every_generator_made_from_the_first_distribution",
        ),
    ),
    Mutation(
        "real-pretrained-overshoots",
        "ercsynth/training.py",
        "        if more > target and misses < len(order):\n",
        "        if False:\n",
        ("tests/test_training.py::test_the_real_pretrained_control_gets_the_synthetic_step_count",),
    ),
    Mutation(
        "real-pretrained-any-fraction",
        "ercsynth/plan.py",
        'if REAL_PRETRAINED in self.config["controls"] and [float(f) for f in self.config["real_fractions"]] != [1.0]:',
        "if False:",
        ("tests/test_plan.py::test_a_control_source_a_benchmark_lacks_names_the_key",),
    ),
)


def run(mutation: Mutation, keep: bool) -> tuple[bool, float, str]:
    """(caught, seconds, the test that went red or pytest's last line) for one mutation in a fresh copy."""
    work = Path(tempfile.mkdtemp(prefix=f"mutation-{mutation.name}-"))
    try:
        for name in COPIED:
            src = REPO / name
            if src.is_dir():
                shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, work / name)
        path = work / mutation.file
        text = path.read_text(encoding="utf-8")
        if text.count(mutation.before) != 1:
            raise SystemExit(f"{mutation.name}: the line to mutate is not (exactly once) in {mutation.file}")
        path.write_text(text.replace(mutation.before, mutation.after), encoding="utf-8")
        env = os.environ | {"PYTHONPATH": str(work), "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-m", "not workflow", "-p", "no:cacheprovider"]
        proc = subprocess.run(
            [*cmd, *mutation.tests], cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        failed = [line.split()[1].split("::")[-1] for line in lines if line.startswith("FAILED ")]
        return proc.returncode == 1, time.perf_counter() - start, ", ".join(failed) or lines[-1]
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=[m.name for m in MUTATIONS], help="run one mutation")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copies (their paths are printed)")
    parser.add_argument("--list", action="store_true", help="print the mutations' names and exit")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutations run at once (default: cores)")
    args = parser.parse_args()
    if args.list:
        print("\n".join(m.name for m in MUTATIONS))
        return 0
    chosen = [m for m in MUTATIONS if not args.only or m.name == args.only]
    survivors = 0
    # Each mutation runs in its own copy with its own pytest: as many at once as there are cores
    # (each test run is mostly one busy thread); printed in the list's order.
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for mutation, (caught, seconds, tail) in zip(
            chosen, pool.map(lambda m: run(m, args.keep), chosen), strict=True
        ):
            survivors += not caught
            verdict = "caught (red)" if caught else "SURVIVED (green)"
            print(f"{mutation.name:28s} {mutation.file:28s} {verdict:16s} {seconds:6.1f} s  {tail}", flush=True)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
