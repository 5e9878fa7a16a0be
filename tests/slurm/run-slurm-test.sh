#!/usr/bin/env bash
# End-to-end test of profiles/slurm against a real SLURM (tests/slurm/start-cluster.sh):
#
#  1. a local run of tests/slurm/config.yaml (the reference);
#  2. the same config through `snakemake --profile profiles/slurm`, every job via sbatch;
#     while it runs, one training job is cancelled with scancel and another is requeued by
#     SLURM (`scontrol requeue`, what preemption with --requeue does);
#  3. a rerun, which resubmits the cancelled job;
#  4. checks: every submitted job id is in SLURM's own job record (jobcomp) with this
#     working directory; the requeued job kept its id, restarted once and resumed from its
#     checkpoint; the cancelled job resumed from its checkpoint after the rerun; every
#     metrics.json and predictions.csv equals the local run's (timings aside).
#
# Run as root on a Debian/Ubuntu machine (it installs and starts SLURM when needed), from
# an environment where `python` has scgraphbench's dependencies (or set PYTHON=...).
# Environment: SCGB_SLURM_WORKDIR (default: a new /tmp dir, removed after success unless
# SCGB_SLURM_KEEP=1), SCGB_SLURM_NO_START=1 (use an already running cluster),
# SCGB_SLURM_TARGETS (default: the runs and graphs tables), SCGB_SLURM_TIMEOUT (s per run).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CHECK=$REPO/tests/slurm/check_runs.py
read -r -a TARGETS <<<"${SCGB_SLURM_TARGETS:-results/tables/runs.csv results/tables/graphs.csv}"
WORK=${SCGB_SLURM_WORKDIR:-$(mktemp -d /tmp/scgb-slurm-test.XXXXXX)}
TIMEOUT=${SCGB_SLURM_TIMEOUT:-1800}
PYTHON=${PYTHON:-$(command -v python || command -v python3)}
JOBCOMP=/var/log/slurm/jobcomp.log
CANCEL_MODEL=genohoption_ppr  # scancel'ed mid-way, then rerun
REQUEUE_MODEL=gnn_gcn         # requeued by SLURM mid-way, same job id
# a frozen copy of the workflow and the package: edits to the checkout while the test
# runs cannot make the local and the SLURM runs use different code
CODE=$WORK/code
# rules run `python -m scgraphbench`: this interpreter and the frozen package, in the
# jobs too (sbatch gets --export=ALL)
export PATH="$(dirname "$PYTHON"):$PATH"
export PYTHONPATH="$CODE/src${PYTHONPATH:+:$PYTHONPATH}"

START=$(date +%s)
log() { echo "[slurm-test +$(($(date +%s) - START))s] $*"; }
fail() {
  echo "[slurm-test +$(($(date +%s) - START))s] FAIL: $*" >&2
  echo "[slurm-test] logs kept in $WORK" >&2
  stop_background_run
  exit 1
}

# a failure while run 1 is in the background must not leave Snakemake running: interrupt
# it (the `timeout` wrapper forwards SIGINT; Snakemake then cancels its SLURM jobs)
smk_pid=""
stop_background_run() {
  [[ -n $smk_pid ]] && kill -0 "$smk_pid" 2>/dev/null || return 0
  pkill -INT -P "$smk_pid" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$smk_pid" 2>/dev/null || return 0; sleep 0.5; done
  local child
  for child in $(pgrep -P "$smk_pid"); do  # the timeout wrapper, then its snakemake
    pkill -KILL -P "$child" 2>/dev/null || true
    kill -KILL "$child" 2>/dev/null || true
  done
}

smk() {  # dir, snakemake args...
  local dir=$1
  shift
  mkdir -p "$dir"
  (cd "$dir" && timeout -s INT -k 60 "$TIMEOUT" "$PYTHON" -m snakemake -s "$CODE/Snakefile" \
    --configfile "$CFG" "$@" "${TARGETS[@]}")
}

# the SLURM job id of the running training job of a model (the plugin puts the rule and
# wildcards in the job's comment)
running_train_job() {
  squeue --noheader --states=RUNNING --format='%i|%k' |
    awk -F'|' -v m="_$1_" 'index($2, "rule_train_wildcards_") && index($2, m) {print $1; exit}' || true
}

# SLURM holds a requeued job for ~2 min (BeginTime = requeue + 121 s); release it as soon
# as it is pending again so that the test stays short (a real preemption just waits)
release_requeued() {
  local state reason
  for _ in $(seq 120); do
    state=$(squeue --noheader --jobs="$1" --format=%T 2>/dev/null || true)
    reason=$(squeue --noheader --jobs="$1" --format=%r 2>/dev/null || true)
    case $state in
      PENDING) [[ $reason != BeginTime ]] || scontrol update JobId="$1" StartTime=now || true ;;
      COMPLETING | REQUEUE* | "") ;;
      *) return 0 ;;
    esac
    sleep 0.5
  done
}

run_file() {  # dir model name: the file of that model's (only) run
  find "$1/results/runs" -path "*/$2/*" -name "$3" 2>/dev/null | head -1 || true
}

[[ ${SCGB_SLURM_NO_START:-0} == 1 ]] || bash "$REPO/tests/slurm/start-cluster.sh"
mkdir -p "$WORK" "$CODE"
for path in Snakefile workflow profiles envs src benchmarks; do
  [[ ! -e $REPO/$path ]] || cp -r "$REPO/$path" "$CODE/"
done
CFG=$CODE/slurm-test-config.yaml
cp "$REPO/tests/slurm/config.yaml" "$CFG"
log "working directory $WORK; python $PYTHON; code frozen from $REPO into $CODE"

# -- 1. local reference ----------------------------------------------------------------
log "local run"
smk "$WORK/local" --cores 2 >"$WORK/local.log" 2>&1 || fail "local run failed: $WORK/local.log"
log "local run done"

# -- 2. SLURM run, with one job cancelled and one requeued -----------------------------
SLURM_ARGS=(--profile "$CODE/profiles/slurm" --slurm-init-seconds-before-status-checks 5
  --slurm-keep-successful-logs)
log "SLURM run 1 (--retries 0: the cancelled job stays failed until the rerun)"
smk "$WORK/slurm" "${SLURM_ARGS[@]}" --retries 0 >"$WORK/slurm-run1.log" 2>&1 &
smk_pid=$!
cancel_id="" requeue_id="" release_pid=""
while kill -0 "$smk_pid" 2>/dev/null; do
  for model in "$CANCEL_MODEL" "$REQUEUE_MODEL"; do
    [[ $model == "$CANCEL_MODEL" && -n $cancel_id ]] && continue
    [[ $model == "$REQUEUE_MODEL" && -n $requeue_id ]] && continue
    ckpt=$(run_file "$WORK/slurm" "$model" checkpoint.pt)
    [[ -n $ckpt ]] || continue
    [[ -e $(dirname "$ckpt")/metrics.json ]] &&
      fail "$model finished before it could be interrupted; raise its epochs in tests/slurm/config.yaml"
    id=$(running_train_job "$model")
    [[ -n $id ]] || continue
    if [[ $model == "$CANCEL_MODEL" ]]; then
      log "checkpoint of $model written: scancel $id"
      scancel "$id"
      cancel_id=$id
    else
      log "checkpoint of $model written: scontrol requeue $id"
      scontrol requeue "$id"
      requeue_id=$id
      # in the background: the loop must keep watching for the other job's checkpoint
      release_requeued "$id" &
      release_pid=$!
    fi
  done
  sleep 0.5
done
rc=0
wait "$smk_pid" || rc=$?
[[ -z ${release_pid:-} ]] || wait "$release_pid" || true
log "SLURM run 1 exited with $rc"
[[ -n $cancel_id && -n $requeue_id ]] ||
  fail "could not interrupt both training jobs (cancel '$cancel_id', requeue '$requeue_id')"
((rc != 0)) || fail "run 1 succeeded although job $cancel_id was cancelled"
grep -q "SLURM-job '$cancel_id' failed, SLURM status is: 'CANCELLED'" "$WORK/slurm-run1.log" ||
  fail "run 1 did not report job $cancel_id as cancelled: $WORK/slurm-run1.log"

# the requeued job: same id, restarted once by SLURM, finished within run 1, resumed
requeue_metrics=$(run_file "$WORK/slurm" "$REQUEUE_MODEL" metrics.json)
[[ -n $requeue_metrics ]] || fail "requeued job $requeue_id left no metrics.json"
restarts=$(scontrol show job -o "$requeue_id" | grep -o 'Restarts=[0-9]*' || true)
state=$(scontrol show job -o "$requeue_id" | grep -o 'JobState=[A-Z_]*' || true)
log "requeued job $requeue_id: $state $restarts"
[[ $restarts == Restarts=1 && $state == JobState=COMPLETED ]] ||
  fail "job $requeue_id: expected JobState=COMPLETED Restarts=1, got '$state $restarts'"
n_sub=$(grep -c "SLURM jobid $requeue_id " "$WORK/slurm-run1.log" || true)
[[ $n_sub == 1 ]] || fail "job $requeue_id was submitted $n_sub times; SLURM should requeue it"
"$PYTHON" "$CHECK" resumed "$requeue_metrics" || fail "requeued job did not resume"

# -- 3. rerun: the cancelled job is resubmitted and resumes ----------------------------
log "SLURM run 2 (rerun)"
smk "$WORK/slurm" "${SLURM_ARGS[@]}" >"$WORK/slurm-run2.log" 2>&1 ||
  fail "SLURM rerun failed: $WORK/slurm-run2.log"
log "SLURM run 2 done"
cancel_metrics=$(run_file "$WORK/slurm" "$CANCEL_MODEL" metrics.json)
[[ -n $cancel_metrics ]] || fail "no metrics.json for $CANCEL_MODEL after the rerun"
"$PYTHON" "$CHECK" resumed "$cancel_metrics" || fail "the rerun of $CANCEL_MODEL did not resume"

# -- 4. every job went through SLURM ---------------------------------------------------
log "SLURM jobs submitted by Snakemake (id, rule or group):"
"$PYTHON" "$CHECK" submitted "$WORK/slurm-run1.log" "$WORK/slurm-run2.log" |
  tee "$WORK/submitted.txt" || fail "no job was submitted to SLURM"
log "what ran inside each SLURM job (plugin logs), against the local run's job plan:"
"$PYTHON" "$CHECK" executed "$WORK/local.log" "$WORK/slurm/.snakemake/slurm_logs" ||
  fail "some planned jobs did not run inside SLURM jobs"
mapfile -t ids < <(cut -d' ' -f1 "$WORK/submitted.txt")
log "their records in SLURM's job completion log ($JOBCOMP):"
"$PYTHON" "$CHECK" jobcomp "$JOBCOMP" "$WORK/slurm" "${ids[@]}" ||
  fail "some submitted jobs are missing from SLURM's record"
log "squeue --states=all (finished jobs stay listed for MinJobAge):"
squeue --states=all --format='%.6i %.10T %.9M %.40k' --jobs="$(IFS=,; echo "${ids[*]}")" || true
for label in "$cancel_id CANCELLED" "$requeue_id COMPLETED"; do
  set -- $label
  grep -q "^JobId=$1 .*JobState=$2 " "$JOBCOMP" || fail "job $1 is not recorded as $2"
done

# -- 5. same results as the local run --------------------------------------------------
log "metrics.json and predictions.csv, local vs SLURM:"
"$PYTHON" "$CHECK" compare "$WORK/local" "$WORK/slurm" || fail "SLURM results differ from local"
for t in "${TARGETS[@]}"; do
  [[ -s $WORK/slurm/$t ]] || fail "missing $t"
done

log "PASS in $(($(date +%s) - START)) s (${#ids[@]} SLURM jobs; cancelled $cancel_id," \
  "requeued $requeue_id)"
if [[ ${SCGB_SLURM_KEEP:-0} != 1 && -z ${SCGB_SLURM_WORKDIR:-} ]]; then
  rm -rf "$WORK"
fi
