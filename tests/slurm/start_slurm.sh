#!/usr/bin/env bash
# Start a one-node SLURM cluster (slurmctld + slurmd on localhost, munge authentication) for the
# workflow tests, with its configuration, state, logs and pid files in STATE_DIR.
#
#   tests/slurm/start_slurm.sh STATE_DIR      # then: tests/slurm/stop_slurm.sh STATE_DIR
#
# Installs Debian's slurm-wlm and munge first when they are missing (root and apt-get needed).
# Setup that works without systemd or cgroups: proctrack/linuxproc, task/none, no accounting
# database (so `sacct` does not work: drive it with `--slurm-status-command squeue`).
# The config is linked at /etc/slurm/slurm.conf, because the `srun` that runs inside each job
# drops SLURM_CONF from its environment.
#
# Exit status: 0 running; 3 this machine cannot run it (not root, no apt-get, install failed,
# a foreign /etc/slurm/slurm.conf or a SLURM already running), with the reason on stderr;
# anything else: the daemons failed to start (see STATE_DIR/log/).
set -euo pipefail

CANNOT=3
MARKER="# metasplice test cluster (tests/slurm/start_slurm.sh)"

cannot() { echo "start_slurm: cannot start SLURM here: $*" >&2; exit "$CANNOT"; }
fail() { echo "start_slurm: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || fail "usage: $0 STATE_DIR"
mkdir -p "$1"
STATE_DIR=$(cd "$1" && pwd)

# --- install ------------------------------------------------------------------------------------
missing=()
for prog in slurmctld slurmd sbatch squeue scontrol sinfo munged munge; do
  command -v "$prog" >/dev/null 2>&1 || missing+=("$prog")
done
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || cannot "${missing[*]} not installed and not running as root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null 2>&1 || cannot "${missing[*]} not installed and no apt-get on this machine"
  echo "start_slurm: installing slurm-wlm and munge (missing: ${missing[*]})" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$STATE_DIR/apt.log" 2>&1 \
    && apt-get install -y -qq slurm-wlm munge >>"$STATE_DIR/apt.log" 2>&1 \
    || cannot "apt-get install slurm-wlm munge failed (log: $STATE_DIR/apt.log): $(tail -n 3 "$STATE_DIR/apt.log")"
fi
[[ $(id -u) -eq 0 ]] || cannot "the test cluster runs its daemons as root (SlurmUser=root); not root"

# --- refuse to disturb a SLURM that is not ours ---------------------------------------------------
CONF_LINK=/etc/slurm/slurm.conf
if [[ -e $CONF_LINK || -L $CONF_LINK ]]; then
  if [[ -L $CONF_LINK ]] && { [[ ! -e $CONF_LINK ]] || grep -qxF "$MARKER" "$CONF_LINK"; }; then
    :  # a link left by an earlier test run: replaced below
  else
    cannot "$CONF_LINK exists and was not written by this test; refusing to replace a real SLURM configuration"
  fi
fi
if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
  cannot "slurmctld or slurmd is already running on this machine (another cluster or test run)"
fi

# --- configuration --------------------------------------------------------------------------------
mkdir -p "$STATE_DIR"/{state,spool,log,run}
# At least 4 job slots even on a 2-core machine: the test's jobs are short and mostly wait on
# Snakemake's start-up, so running more at once shortens the test (config_overrides lets slurmd
# accept a CPU count above the hardware's).
cpus=$(nproc)
((cpus >= 4)) || cpus=4
mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
real_memory=$((mem_total_mb * 8 / 10))   # below the physical amount, or slurmd drains the node
cat >"$STATE_DIR/slurm.conf" <<EOF
$MARKER
ClusterName=metasplice-test
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=600
KillWait=5
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmdParameters=config_overrides
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
NodeName=localhost CPUs=$cpus RealMemory=$real_memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p /etc/slurm
ln -sfn "$STATE_DIR/slurm.conf" "$CONF_LINK"
echo "$CONF_LINK" >"$STATE_DIR/run/conf_link"

# --- munge ----------------------------------------------------------------------------------------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  echo "start_slurm: using the munged already running" >&2
else
  [[ -f /etc/munge/munge.key ]] || fail "no /etc/munge/munge.key (the munge package creates it; run mungekey as root)"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged --force --pid-file=/run/munge/munged.pid \
    || fail "munged did not start (log: /var/log/munge/munged.log)"
  cp /run/munge/munged.pid "$STATE_DIR/run/munged.pid"   # stop_slurm.sh stops only what this started
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || fail "munge does not answer (log: /var/log/munge/munged.log)"
fi

# --- SLURM daemons --------------------------------------------------------------------------------
slurmctld || fail "slurmctld did not start (log: $STATE_DIR/log/slurmctld.log)"
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
scontrol ping | grep -q UP || fail "slurmctld does not answer (log: $STATE_DIR/log/slurmctld.log)"
slurmd -N localhost || fail "slurmd did not start (log: $STATE_DIR/log/slurmd.log)"
state=""
for _ in $(seq 150); do
  state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
  [[ $state == idle ]] && break
  sleep 0.2
done
[[ $state == idle ]] || fail "node localhost is '${state:-unknown}', not idle (logs: $STATE_DIR/log/)"
echo "start_slurm: one-node SLURM up (CPUs=$cpus RealMemory=$real_memory, partition debug, state $STATE_DIR)" >&2
