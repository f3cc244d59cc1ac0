#!/usr/bin/env bash
# Stop the test cluster started by start_slurm.sh STATE_DIR: cancel its jobs, stop slurmd and
# slurmctld (and munged when start_slurm.sh started it) by the PIDs in their pid files, and remove
# the /etc/slurm/slurm.conf link. Safe to run twice, or after a partial start.
set -uo pipefail

[[ $# -eq 1 ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
STATE_DIR=$(cd "$1" 2>/dev/null && pwd) || { echo "stop_slurm: no $1" >&2; exit 0; }
RUN=$STATE_DIR/run

# Stop the process whose PID is in pid file $1 if it is still the program $2; wait up to 10 s.
stop_pid() {
  local pidfile=$1 name=$2 pid
  [[ -s $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stop_slurm: $name ($pid) ignored SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
  fi
  rm -f "$pidfile"
}

if [[ -s $RUN/slurmctld.pid ]] && command -v scancel >/dev/null; then
  scancel --full --quiet --partition=debug 2>/dev/null
  for _ in $(seq 50); do [[ -z $(squeue -h -t running,pending,completing -o %i 2>/dev/null) ]] && break; sleep 0.2; done
fi
stop_pid "$RUN/slurmd.pid" slurmd
stop_pid "$RUN/slurmctld.pid" slurmctld
stop_pid "$RUN/munged.pid" munged

if [[ -s $RUN/conf_link ]]; then
  link=$(<"$RUN/conf_link")
  [[ -L $link && $(readlink "$link") == "$STATE_DIR/slurm.conf" ]] && rm -f "$link"
  rm -f "$RUN/conf_link"
fi
exit 0
