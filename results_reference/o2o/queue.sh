#!/usr/bin/env bash
# The offline-to-online evidence runs (docs/offline_to_online.md), one queue per core, one
# thread per run; runs held by the other queue are skipped (their logs are flock-ed) and
# re-running a queue resumes. The datasets are results_reference/pogo's medium-replay-v1 ones
# (their README, section 0, says how to remake them; checksums there). Code: a frozen worktree
#   git -C /work/main worktree add --detach /work/o2o/code <commit>
# Start both queues from /work/o2o:
#   setsid nohup nice -n 10 ./queue.sh >> queue_a.log 2>&1 < /dev/null &
#   setsid nohup nice -n 10 ./queue.sh >> queue_b.log 2>&1 < /dev/null &
# Order: the offline runs, the from-scratch baselines, then the online runs from the offline
# ones (by then every offline run has finished; run_sac.py refuses an online sweep whose
# init_from runs do not exist yet, so re-running the queue picks them up later).
cd /work/o2o
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
PY=/work/main/.venv/bin/python
sweep() {  # sweep file (in code/results_reference/o2o/), summary folder
  $PY code/run_sac.py --config "code/results_reference/o2o/$1" --jobs 1 --threads-per-job 1 \
    --summary-dir "$2"
}
sweep offline.yaml summary_offline
sweep scratch.yaml summary_scratch
sweep scratch_with_data.yaml summary_scratch_with_data
sweep online.yaml summary_online
