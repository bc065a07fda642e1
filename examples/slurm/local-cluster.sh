#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, from Debian's packages (slurmctld, slurmd, munge),
# for testing the job scripts of this folder. Everything lives under one state folder; nothing
# in /etc is touched.
#
#   examples/slurm/local-cluster.sh start   # prints `export SLURM_CONF=…` for the shell
#   examples/slurm/local-cluster.sh stop
#
# Variables: STATE (state folder, default /tmp/vggrpo-slurm), SLOTS (CPU slots of the one node,
# default 4: array tasks run side by side even on a 2-core machine), PORT (slurmctld's port,
# default 6817; slurmd uses PORT+1).
set -euo pipefail
STATE=${STATE:-/tmp/vggrpo-slurm}
SLOTS=${SLOTS:-4}
PORT=${PORT:-6817}
CONF=$STATE/slurm.conf

write_conf() {
  cat > "$CONF" <<CONF
ClusterName=vggrpo-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=3600
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$SLOTS State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
  for b in munged slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null || { echo "local-cluster: $b not found (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 1; }
  done
  stop >/dev/null 2>&1 || true
  mkdir -p "$STATE"/{munge,ctld,spool,log}
  chmod 700 "$STATE/munge"
  [ -s "$STATE/munge/munge.key" ] || { dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none; chmod 400 "$STATE/munge/munge.key"; }
  munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munge.seed"
  write_conf
  export SLURM_CONF=$CONF
  slurmctld -f "$CONF"
  slurmd -f "$CONF" -N localhost
  # Ready when the node answers idle.
  for _ in $(seq 1 100); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^idle'; then
      echo "export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 0.2
  done
  echo "local-cluster: the node did not come up; see $STATE/log/" >&2
  tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  exit 1
}

stop() {
  for pid in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munge/munged.pid"; do
    if [ -s "$pid" ]; then kill "$(cat "$pid")" 2>/dev/null || true; fi
  done
  for pid in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munge/munged.pid"; do
    for _ in $(seq 1 50); do
      [ -s "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$pid"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
