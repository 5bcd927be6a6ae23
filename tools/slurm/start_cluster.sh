#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine: munge, slurmctld and slurmd from Debian's packages (installed
# with apt-get if missing), one partition `main` with all the machine's cores and memory. It is for running the
# slurm profile here (make slurm-test); on a real cluster you need none of this.
#
# usage: tools/slurm/start_cluster.sh [STATE_DIR]      (default: $OPHYS_SLURM_DIR or /tmp/ophys-extraction-slurm)
#
# Everything the cluster writes (slurm.conf, daemon logs and pid files, controller state, the job-completion log
# that `sacct -c` reads) stays under STATE_DIR; nothing is written to /etc/slurm. The last line printed is
# SLURM_CONF=STATE_DIR/slurm.conf: export it so sbatch, squeue, sinfo and sacct (and Nextflow) find the cluster.
# Already running: prints that line and does nothing else. Stop with tools/slurm/stop_cluster.sh [STATE_DIR].
# Needs root (apt-get, and the daemons run as root); exits 1 with one line saying why when it cannot start.
set -euo pipefail

state=${1:-${OPHYS_SLURM_DIR:-/tmp/ophys-extraction-slurm}}
conf="$state/slurm.conf"
log() { echo "start_cluster: $*" >&2; }
die() { log "error: $*"; exit 1; }

node_state() { SLURM_CONF="$conf" sinfo --noheader --Node --format=%T 2>/dev/null | head -1; }

if [[ -f "$conf" ]] && [[ "$(node_state)" =~ ^(idle|mixed|allocated) ]]; then
    log "already running ($conf)"
    echo "SLURM_CONF=$conf"
    exit 0
fi

[[ $(id -u) -eq 0 ]] || die "needs root (installs slurm-wlm and munge, runs slurmctld and slurmd as root)"
mkdir -p "$state"
state=$(cd "$state" && pwd -P)
conf="$state/slurm.conf"

# 1. Packages (Debian's slurm-wlm: slurmctld, slurmd, sbatch, sacct; munge for authentication).
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "slurmctld/slurmd/munged are not installed and there is no apt-get"
    log "installing slurm-wlm and munge with apt-get (log: $state/apt.log)"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get install -y -q --no-install-recommends slurm-wlm munge \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge; }; } \
        > "$state/apt.log" 2>&1 || die "apt-get could not install slurm-wlm munge: $(tail -1 "$state/apt.log")"
fi

# 2. munge. munged refuses to run as root ("Logfile is insecure"), so it runs as the munge user.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    [[ -f /etc/munge/munge.key ]] || die "no /etc/munge/munge.key (the munge package creates it)"
    mkdir -p /run/munge
    chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged || die "munged did not start (see /var/log/munge/munged.log)"
    touch "$state/munged.started"   # stop_cluster.sh stops only the munged this script started
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n | unmunge >/dev/null 2>&1 || die "munged started but munge -n | unmunge fails"
fi

# 3. slurm.conf: this node as slurmd measures it (CPUs, sockets, cores, RealMemory), one partition.
host=$(hostname -s)
node=$(slurmd -C | head -1)
[[ "$node" == NodeName=* ]] || die "slurmd -C did not describe this node: $node"
mkdir -p "$state/ctld" "$state/spool"
tmp=$(mktemp "$conf.XXXXXX")
cat > "$tmp" <<CONF
# Written by tools/slurm/start_cluster.sh: a single-node cluster on $host.
ClusterName=ophys
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that gives no --mem takes the whole node and jobs run one at a time.
DefMemPerCPU=1000
MpiDefault=none
# No mailer here; SLURM refuses to start with an invalid MailProg.
MailProg=/bin/true
# No systemd and no usable cgroup hierarchy on these machines: plain process tracking, no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No slurmdbd: finished jobs are logged to a text file, which \`sacct -c\` reads.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$state/jobcomp.log
ReturnToService=2
$node State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
mv -f "$tmp" "$conf"

# 4. Daemons (they fork into the background and write their pid files).
export SLURM_CONF="$conf"
for daemon in slurmctld slurmd; do
    pidfile="$state/$daemon.pid"
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "restarting $daemon for the new slurm.conf"
        kill "$(cat "$pidfile")"
        for _ in $(seq 50); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.2; done
    fi
    "$daemon" -f "$conf" || die "$daemon did not start (log: $state/$daemon.log)"
done

# 5. Ready when the node is idle.
for _ in $(seq 120); do
    [[ "$(node_state)" == idle* ]] && break
    sleep 0.5
done
[[ "$(node_state)" == idle* ]] || die "node $host is '$(node_state)', not idle after 60 s (sinfo -R; logs in $state)"
log "running: partition main on $host ($(sinfo --noheader --format='%c CPUs, %m MB' | head -1))"
echo "SLURM_CONF=$conf"
