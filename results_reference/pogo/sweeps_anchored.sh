#!/usr/bin/env bash
# The redone offline table's runs as two queues of one run each (one thread per run, one core per
# queue); runs held by the other queue are skipped (their logs are flock-ed), and re-running a
# queue resumes (finished runs are skipped, unfinished ones continue from their 5000-step
# checkpoints):
#   queue a: pogo_exact_rerun.yaml (6), td3bc_rerun.yaml (6), then pogo_anchored.yaml
#   queue b: pogo_anchored.yaml (12: unbiased chain + anchored actor-0 term, the table's)
#   optional (one queue, after the offline-to-online queue: the table does not need them):
#            pogo_unbiased.yaml (2: the plain energy term, seed 0 on the medium datasets, to
#            finish from 35k and 40k), pogo_seed_units.yaml (3: the seed's balance of weights)
# The code is a frozen worktree, code_anchored/, so that edits in the development checkout never
# reach a run started later:
#   git -C /work/main worktree add --detach /work/pogo_reference/code_anchored <commit>
# (the commit is in README.md here). Start both queues detached and niced:
#   cd /work/pogo_reference
#   setsid nohup nice -n 10 ./sweeps_anchored.sh a >> sweeps_a.log 2>&1 < /dev/null &
#   setsid nohup nice -n 10 ./sweeps_anchored.sh b >> sweeps_b.log 2>&1 < /dev/null &
cd /work/pogo_reference
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
PY=/work/main/.venv/bin/python
sweep() {  # sweep file (in code_anchored/results_reference/pogo/), summary folder
  $PY code_anchored/run_sac.py --config "code_anchored/results_reference/pogo/$1" --jobs 1 \
    --threads-per-job 1 --summary-dir "$2"
}
case "$1" in
  a) sweep pogo_exact_rerun.yaml summary_exact_rerun; sweep td3bc_rerun.yaml summary_td3bc_rerun
     sweep pogo_anchored.yaml summary_anchored ;;
  b) sweep pogo_anchored.yaml summary_anchored ;;
  optional) sweep pogo_unbiased.yaml summary_energy
            sweep pogo_seed_units.yaml summary_seed_units ;;
  *) echo "usage: $0 a|b|optional (the queue)" >&2; exit 2 ;;
esac
