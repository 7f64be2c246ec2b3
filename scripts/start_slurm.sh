#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (Debian slurm-wlm + munge, no systemd).
# Idempotent: running it again leaves a healthy cluster alone. Needs root.
# Usage: scripts/start_slurm.sh            (then: sinfo, squeue, snakemake --profile slurm ...)
#        scripts/start_slurm.sh --stop
set -euo pipefail

host=$(hostname -s)
conf=/etc/slurm/slurm.conf

stop() {
  scancel --user=root 2>/dev/null || true  # stopping slurmd leaves running jobs' processes alive
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

if [ "${1:-}" = "--stop" ]; then
  stop
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

cpus=$(nproc)
# A fixed share of MemTotal (not free memory): the same file at every start, so no needless restart.
mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm 2>/dev/null || true
new=$(mktemp)
cat >"$new" <<CONF
ClusterName=localcluster
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
changed=0
if ! cmp -s "$new" "$conf"; then
  mv "$new" "$conf"
  chmod 644 "$conf"
  changed=1
else
  rm -f "$new"
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! pgrep -x munged >/dev/null; then
  mkdir -p /run/munge
  chown munge:munge /run/munge
  runuser -u munge -- /usr/sbin/munged
fi
if [ "$changed" = 1 ]; then
  stop
fi
alive /run/slurmctld.pid || slurmctld
alive /run/slurmd.pid || slurmd

# sinfo can say idle from saved state before slurmd has re-registered: a real job proves it.
for _ in $(seq 1 30); do
  if timeout 20 srun --quiet -N1 -t 1 hostname >/dev/null 2>&1; then
    sinfo --noheader -o "%P %a %D %t %c CPUs %m MB" >&2
    exit 0
  fi
  sleep 1
done
echo "SLURM did not come up; see /var/log/slurm/*.log" >&2
exit 1
