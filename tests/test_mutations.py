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
    names = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_mutations.py"), "--list"], capture_output=True, text=True
    ).stdout.split()
    caught = [line.split()[0] for line in proc.stdout.splitlines() if "caught (red)" in line]
    assert len(names) >= 30 and caught == names, proc.stdout  # one red line for every mutation, none skipped
