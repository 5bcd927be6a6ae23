#!/usr/bin/env bash
# Stop the cluster started by tools/slurm/start_cluster.sh: slurmd, slurmctld, and munged if that script started
# it, each by its pid file. State, logs and the job-completion log stay in STATE_DIR.
#
# usage: tools/slurm/stop_cluster.sh [STATE_DIR]       (default: $OPHYS_SLURM_DIR or /tmp/ophys-extraction-slurm)
set -euo pipefail

state=${1:-${OPHYS_SLURM_DIR:-/tmp/ophys-extraction-slurm}}

stop_pidfile() {
    local pidfile=$1 pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        # Daemons here are children of a PID 1 that does not reap: a stopped one may stay a zombie, so wait on
        # its state rather than on its pid disappearing.
        for _ in $(seq 50); do
            [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" =~ ^(Z|$) ]] && break
            sleep 0.2
        done
    fi
    rm -f "$pidfile"
}

stop_pidfile "$state/slurmd.pid"
stop_pidfile "$state/slurmctld.pid"
if [[ -f "$state/munged.started" ]]; then
    stop_pidfile /run/munge/munged.pid
    rm -f "$state/munged.started"
fi
echo "stop_cluster: stopped ($state)" >&2
