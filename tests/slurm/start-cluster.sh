#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this machine (Debian/Ubuntu, run as root, no systemd).
#
# Installs Debian's munge + slurmctld + slurmd + slurm-client when missing, writes
# /etc/slurm/slurm.conf for this host, then starts munged, slurmctld and slurmd by hand.
# Idempotent: a second call leaves running daemons alone and only waits for the node.
# No accounting database: job state comes from squeue (MinJobAge keeps finished jobs
# visible for 10 minutes) and every finished job is appended to a jobcomp text file.
#
# The node declares no GPUs: SLURM 22.05's gres/gpu drops GPUs without device files
# ("Removing file-less GPU"), so a CPU-only test machine cannot offer --gpus.
#
# Environment overrides: SCGB_SLURM_CPUS (default: nproc), SCGB_SLURM_MEM_MB (default:
# 80% of MemTotal), SCGB_SLURM_CONF (default /etc/slurm/slurm.conf).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "start-cluster.sh: must run as root (it installs packages and starts daemons)" >&2
  exit 2
fi

SLURM_CONF=${SCGB_SLURM_CONF:-/etc/slurm/slurm.conf}
HOST=$(hostname -s)
# (GNU nproc reports OMP_NUM_THREADS when it is set: a 1-CPU node could not run 2-CPU jobs)
CPUS=${SCGB_SLURM_CPUS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
MEM_MB=${SCGB_SLURM_MEM_MB:-$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)}
JOBCOMP_LOG=/var/log/slurm/jobcomp.log

log() { echo "[start-cluster] $*"; }

# -- packages ----------------------------------------------------------------------
missing=()
for pkg in munge slurmctld slurmd slurm-client; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
fi
[[ -s /etc/munge/munge.key ]] || { log "creating the munge key"; mungekey --create; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key

# -- slurm.conf --------------------------------------------------------------------
install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
install -d "$(dirname "$SLURM_CONF")"
conf_tmp=$(mktemp)
cat >"$conf_tmp" <<CONF
# One-node test cluster written by scgraphbench tests/slurm/start-cluster.sh
ClusterName=scgb
SlurmctldHost=$HOST
AuthType=auth/munge
SlurmUser=slurm
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# no cgroups in containers: track processes by their parent, bind nothing
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# finished jobs stay visible to squeue for 10 min (the plugin's squeue status mode needs
# at least 3x its initial status wait); no slurmdbd, so sacct is not available
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
# allow --requeue (preemption/scontrol requeue) and make cancellation quick
JobRequeue=1
KillWait=5
SlurmdTimeout=60
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
conf_changed=0
if ! cmp -s "$conf_tmp" "$SLURM_CONF"; then
  log "writing $SLURM_CONF (node $HOST, $CPUS CPUs, $MEM_MB MB)"
  install -m 644 "$conf_tmp" "$SLURM_CONF"
  conf_changed=1
fi
rm -f "$conf_tmp"
export SLURM_CONF

# -- daemons -----------------------------------------------------------------------
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

install -d -o munge -g munge -m 0755 /run/munge
if ! alive /run/munge/munged.pid; then
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 30); do munge -n | unmunge >/dev/null 2>&1 && break; sleep 1; done
munge -n | unmunge >/dev/null

if ((conf_changed)); then
  # node definitions (CPUs, memory, GRES) are only read at daemon start
  for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
    if alive "$pidfile"; then
      log "configuration changed: restarting $(basename "$pidfile" .pid)"
      pid=$(cat "$pidfile")
      kill "$pid"
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
  done
fi
if ! alive /run/slurmctld.pid; then
  log "starting slurmctld"
  /usr/sbin/slurmctld -f "$SLURM_CONF"
fi
if ! alive /run/slurmd.pid; then
  log "starting slurmd"
  /usr/sbin/slurmd -f "$SLURM_CONF"
fi

# -- wait for the node -------------------------------------------------------------
for i in $(seq 60); do
  state=$(sinfo --noheader --nodes="$HOST" --format=%T 2>/dev/null | head -1 || true)
  case $state in
    idle* | mixed* | allocated*) log "node $HOST is $state"; sinfo; exit 0 ;;
    down* | drain*) scontrol update NodeName="$HOST" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "start-cluster.sh: node $HOST did not become ready (state '${state:-none}');" \
  "see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
