# ercsynth: synthesize ERC datasets with an LLM, then measure with real classifiers and
# real statistics whether pre-training on them helps.
#   snakemake --cores all                                                 (embedded default)
#   snakemake --profile slurm                                             (cluster, paper scale)
import os


# The embedded default; --configfile FILE overlays it, --config KEY=VALUE overrides single keys.
configfile: os.path.join(workflow.basedir, "config.yaml")


report: "rules/report/workflow.rst"


# Downloads run where Snakemake runs (on a cluster, the login node: compute nodes are often offline);
# so does the hard stop on synthetic datasets, a second's read of one report.
localrules:
    download_benchmark,
    fetch_model,
    accept_synthetic,


include: "rules/common.smk"
include: "rules/models.smk"
include: "rules/data.smk"
include: "rules/generation.smk"
include: "rules/parsing.smk"
include: "rules/training.smk"
include: "rules/statistics.smk"


rule all:
    default_target: True
    input:
        PLAN.final_targets(),
