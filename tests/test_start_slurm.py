"""The SLURM test cluster's start script keeps its own state right (issue 37): the link from the
default configuration path to the cluster's file survives the restart that a new configuration
causes, and only `--stop` removes it, and only when it is the cluster's own.

The script is sourced in a scratch folder (ERCSYNTH_SLURM_DIR for its files, a scratch path for
/etc/slurm/slurm.conf); the steps that reach the machine (apt, munged, slurmctld/slurmd, the srun
probe) are replaced by shell functions that record that they ran. Everything else is the script's
own code: writing the file, deciding on a restart, stopping daemons by their pid files, the link."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import REPO

SCRIPT = REPO / "scripts" / "start_slurm.sh"


def start(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """`scripts/start_slurm.sh ARGS` with the machine-touching steps recorded in tmp/calls."""
    calls = tmp / "calls"
    shell = f"""
        source {SCRIPT}
        id() {{ echo 0; }}
        install_packages() {{ :; }}
        start_munge() {{ :; }}
        start_daemons() {{ echo start_daemons >>{calls}; }}
        wait_until_up() {{ echo wait_until_up >>{calls}; }}
        main "$@"
    """
    env = {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "ERCSYNTH_SLURM_DIR": str(tmp / "cluster"),
        "ERCSYNTH_SLURM_DEFAULT_CONF": str(tmp / "etc" / "slurm" / "slurm.conf"),
    }
    return subprocess.run(["bash", "-c", shell, "start_slurm.sh", *args], env=env, capture_output=True, text=True)


def stale_pidfile(tmp: Path) -> Path:
    """A pid file of a daemon that no longer runs: a restart removes it, a start without one keeps it."""
    pidfile = tmp / "cluster" / "run" / "slurmd.pid"
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text("999999999\n")
    return pidfile


def test_a_first_start_leaves_the_link_after_its_restart(tmp_path):
    link = tmp_path / "etc" / "slurm" / "slurm.conf"
    pidfile = stale_pidfile(tmp_path)
    proc = start(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not pidfile.exists(), "a new configuration must restart the daemons"
    assert link.is_symlink() and Path(link.readlink()) == tmp_path / "cluster" / "slurm.conf"
    assert (tmp_path / "calls").read_text().split() == ["start_daemons", "wait_until_up"]


def test_a_second_start_keeps_the_link_and_the_daemons(tmp_path):
    link = tmp_path / "etc" / "slurm" / "slurm.conf"
    assert start(tmp_path).returncode == 0
    first = link.lstat().st_ino
    pidfile = stale_pidfile(tmp_path)
    proc = start(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert pidfile.exists(), "an unchanged configuration must not restart the daemons"
    assert link.is_symlink() and link.lstat().st_ino == first


def test_a_changed_configuration_restarts_and_keeps_the_link(tmp_path):
    link = tmp_path / "etc" / "slurm" / "slurm.conf"
    assert start(tmp_path).returncode == 0
    conf = tmp_path / "cluster" / "slurm.conf"
    conf.write_text(conf.read_text() + "# an older version of the file\n")
    pidfile = stale_pidfile(tmp_path)
    assert start(tmp_path).returncode == 0
    assert not pidfile.exists()
    assert link.is_symlink() and Path(link.readlink()) == conf


def test_stop_removes_only_its_own_link(tmp_path):
    link = tmp_path / "etc" / "slurm" / "slurm.conf"
    assert start(tmp_path).returncode == 0
    assert start(tmp_path, "--stop").returncode == 0
    assert not link.exists() and not link.is_symlink()
    # A link to another cluster's file is not ours: --stop leaves it.
    other = tmp_path / "other.conf"
    other.write_text("ClusterName=other\n")
    link.symlink_to(other)
    assert start(tmp_path, "--stop").returncode == 0
    assert link.is_symlink() and Path(link.readlink()) == other


def test_another_installations_configuration_is_never_replaced(tmp_path):
    link = tmp_path / "etc" / "slurm" / "slurm.conf"
    link.parent.mkdir(parents=True)
    link.write_text("ClusterName=site\n")
    proc = start(tmp_path)
    assert proc.returncode == 1
    assert "another SLURM installation's configuration" in proc.stderr
    assert link.read_text() == "ClusterName=site\n" and not link.is_symlink()
    assert not (tmp_path / "calls").exists(), "no daemon may start against another cluster's file"
    assert start(tmp_path, "--stop").returncode == 0
    assert link.read_text() == "ClusterName=site\n"
