"""No test that cannot fail: each realistic bug in scripts/check_mutations.py, applied to a copy of
the code, turns the test that guards it red."""

import os
import subprocess
import sys

import pytest
from conftest import BENCH, REPO


@pytest.mark.slow
def test_every_guarded_mutation_turns_its_test_red():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_mutations.py")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ERCSYNTH_BENCHMARKS": str(BENCH)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) >= 8 and all("caught (red)" in line for line in lines), proc.stdout
