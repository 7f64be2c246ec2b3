#!/usr/bin/env bash
# Start a real single-node SLURM test cluster on this machine (Debian slurm-wlm + munge, no systemd),
# for tests/test_slurm.py. Needs root. Everything it writes lives in its own folder ($ERCSYNTH_SLURM_DIR,
# default /var/lib/ercsynth-slurm: slurm.conf, state, spool, logs, pid files), its daemons listen on
# their own ports, and it never replaces an existing SLURM installation's configuration.
# Use the cluster with SLURM_CONF=<that folder>/slurm.conf (the tests set it themselves); where no
# SLURM configuration exists, /etc/slurm/slurm.conf is made a link to it (see below why).
# Idempotent: running it again leaves a healthy cluster alone.
# Usage: scripts/start_slurm.sh            (then: SLURM_CONF=/var/lib/ercsynth-slurm/slurm.conf sinfo)
#        scripts/start_slurm.sh --stop     (stops this cluster's daemons, removes its link; cancels no job)
#        scripts/start_slurm.sh --check    (an srun inside an sbatch job, as Snakemake's jobs run them)
# Sourcing it defines the functions without running main (tests/test_start_slurm.py checks the state
# handling in a scratch folder: ERCSYNTH_SLURM_DIR and ERCSYNTH_SLURM_DEFAULT_CONF).
set -euo pipefail

dir=${ERCSYNTH_SLURM_DIR:-/var/lib/ercsynth-slurm}
conf=$dir/slurm.conf
export SLURM_CONF=$conf
host=$(hostname -s)

# Inside a job, Snakemake's SLURM jobstep executor starts each rule with a nested `srun` whose
# environment has every SLURM_* variable removed, SLURM_CONF included: that srun reads the default
# /etc/slurm/slurm.conf. So the default location points at this cluster's file, as a symbolic link
# made only where no configuration exists (a real installation's file is never replaced).
default_conf=${ERCSYNTH_SLURM_DEFAULT_CONF:-/etc/slurm/slurm.conf}

# Whether the daemon of a pid file (slurmd.pid: slurmd) runs. The name is checked, not just the
# pid: after a machine restart a stale file's pid may belong to another process by now.
alive() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$(basename "$1" .pid)" ]
}

ours() { [ -L "$default_conf" ] && [ "$(readlink "$default_conf")" = "$conf" ]; }

# Stopping the daemons and removing the link are two steps: a restart after a changed configuration
# stops the daemons only, and the link must outlive it (it once did not, so every nested srun of a
# first start failed with "fetch_config: DNS SRV lookup failed").
stop_daemons() {
  # Only the daemons this script started (their pid files are in its folder): never another
  # cluster's, and no scancel of jobs it did not submit.
  for pidfile in "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid"; do
    if alive "$pidfile"; then kill "$(cat "$pidfile")"; fi
    rm -f "$pidfile"
  done
}

remove_link() {
  if ours; then rm -f "$default_conf"; fi
}

install_packages() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "installing slurm-wlm and munge" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  fi
}

# Writes this cluster's slurm.conf; prints 1 if the file changed (the daemons must restart), else 0.
write_conf() {
  local cpus mem new
  cpus=$(nproc)
  # A fixed share of MemTotal (not free memory): the same file at every start, so no needless restart.
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
  chown slurm:slurm "$dir/state" "$dir/log" "$dir/run" 2>/dev/null || true
  new=$(mktemp)
  # Ports 6917/6918, not SLURM's 6817/6818: a system cluster on this machine keeps its own.
  # Two partitions on the one node, named as in the SLURM profile (slurm/config.yaml): cpu and gpu.
  cat >"$new" <<CONF
ClusterName=ercsynthtest
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=6917
SlurmdPort=6918
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=cpu Nodes=${host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=${host} Default=NO MaxTime=INFINITE State=UP
CONF
  if ! cmp -s "$new" "$conf"; then
    mv "$new" "$conf"
    chmod 644 "$conf"
    echo 1
  else
    rm -f "$new"
    echo 0
  fi
}

# Makes the default location a link to this cluster's file; refuses to touch another installation's.
ensure_link() {
  if [ -e "$default_conf" ] && ! ours; then
    echo "$default_conf exists (another SLURM installation's configuration): left alone. Jobs' nested srun" >&2
    echo "reads it, not this test cluster's, so the workflow's SLURM jobs would fail here; run the SLURM" >&2
    echo "tests on a machine without a SLURM configuration, or against that cluster" >&2
    return 1
  fi
  mkdir -p "$(dirname "$default_conf")"
  ours || ln -sfn "$conf" "$default_conf"
}

start_munge() {
  if ! pgrep -x munged >/dev/null; then
    mkdir -p /run/munge
    chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged
  fi
}

start_daemons() {
  alive "$dir/run/slurmctld.pid" || slurmctld -f "$conf"
  alive "$dir/run/slurmd.pid" || slurmd -f "$conf"
}

# sinfo can say idle from saved state before slurmd has re-registered: a real job proves it.
wait_until_up() {
  for _ in $(seq 1 30); do
    if timeout 20 srun --quiet -N1 -t 1 hostname >/dev/null 2>&1; then
      sinfo --noheader -o "%P %a %D %t %c CPUs %m MB" >&2
      echo "SLURM test cluster up: SLURM_CONF=$conf" >&2
      return 0
    fi
    sleep 1
  done
  echo "SLURM did not come up; see $dir/log/*.log" >&2
  return 1
}

# What Snakemake's jobstep executor does inside every job: an srun with each SLURM_* variable
# removed, so it reads the default configuration path. A first start once left that path missing,
# and only such a nested srun showed it (sinfo and a plain srun still worked).
check_nested_srun() {
  local out=$dir/log/nested-srun.out
  rm -f "$out"
  # shellcheck disable=SC2016  # expanded inside the job, not here
  if ! timeout 120 sbatch --wait --quiet -t 2 -o "$out" \
    --wrap 'env $(env | grep -o "^SLURM_[A-Z_]*" | sed "s/^/-u /") srun --quiet -N1 -t 1 echo nested-srun-ok'; then
    echo "an srun inside an sbatch job failed (is $default_conf a link to $conf?):" >&2
    cat "$out" >&2 2>/dev/null || true
    return 1
  fi
  if ! grep -qx nested-srun-ok "$out"; then
    echo "an srun inside an sbatch job printed nothing; its output ($out):" >&2
    cat "$out" >&2
    return 1
  fi
  echo "nested srun inside sbatch: ok" >&2
}

main() {
  if [ "${1:-}" = "--check" ]; then
    check_nested_srun
    return
  fi
  if [ "${1:-}" = "--stop" ]; then
    stop_daemons
    remove_link
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "start_slurm.sh needs root (it starts slurmctld and slurmd); the SLURM tests skip without a cluster" >&2
    return 1
  fi
  install_packages
  local changed
  changed=$(write_conf)
  ensure_link
  start_munge
  if [ "$changed" = 1 ]; then
    stop_daemons
  fi
  start_daemons
  wait_until_up
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
