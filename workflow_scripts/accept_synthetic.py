"""Snakemake adapter: the hard stop between parsing and training (too few valid dialogues fails here)."""

import json
from pathlib import Path

from _job import fail, start

from ercsynth.parsing import TooFewValid, check_yield

sm = snakemake  # noqa: F821 - injected by Snakemake
log = start(sm, torch_threads=False)
report = json.loads(Path(sm.input.report).read_text(encoding="utf-8"))
try:
    accepted = check_yield(report, sm.params.min_valid, f"{sm.wildcards.benchmark}/{sm.wildcards.dataset}")
except TooFewValid as exc:
    fail(log, "accept_synthetic", exc)
Path(sm.output[0]).write_text(json.dumps(accepted, indent=2), encoding="utf-8")
log.info("accepted: %d of %d attempts valid (needed %d)", accepted["valid"], accepted["attempted"], accepted["needed"])
