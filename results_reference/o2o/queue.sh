#!/usr/bin/env bash
# The offline-to-online evidence runs (docs/offline_to_online.md), one queue per core, one
# thread per run; runs held by the other queue are skipped (their logs are flock-ed) and
# re-running a queue resumes. The datasets are results_reference/pogo's medium-replay-v1 ones
# (their README, section 0, says how to remake them; checksums there). Code: a frozen worktree
#   git -C /work/main worktree add --detach /work/o2o/code <commit>
# Start both queues from /work/o2o:
#   setsid nohup nice -n 10 ./queue.sh >> queue_a.log 2>&1 < /dev/null &
#   setsid nohup nice -n 10 ./queue.sh >> queue_b.log 2>&1 < /dev/null &
# Order: one environment at a time (HalfCheetah first), so that one environment's comparison is
# complete before the other's starts; within it the offline runs, the from-scratch baseline,
# the online runs from the offline ones, then the baseline with the dataset. (run_sac.py
# refuses an online sweep whose init_from runs have not finished yet; that queue goes on with
# the next sweep, and re-running it picks the online runs up later.) Each sweep file is
# code/results_reference/o2o's with `enabled_environments` cut to the one environment, written
# to sweeps/ here; the run names, and so the results folders, are the same as the full file's.
cd /work/o2o
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
PY=/work/main/.venv/bin/python
sweep() {  # sweep file (in code/results_reference/o2o/), environment
  local name="${1%.yaml}" file="sweeps/${1%.yaml}_$2.yaml"
  mkdir -p sweeps
  sed "s/^  enabled_environments: .*/  enabled_environments: [$2]/" \
    "code/results_reference/o2o/$1" > "$file"
  $PY code/run_sac.py --config "$file" --jobs 1 --threads-per-job 1 \
    --summary-dir "summary_${name}_$2"
}
for env in HalfCheetah-v5 Hopper-v5; do
  sweep offline.yaml "$env"
  sweep scratch.yaml "$env"
  sweep online.yaml "$env"
  sweep scratch_with_data.yaml "$env"
done
