#!/usr/bin/env bash
# The redone offline table's runs (issue: POGO's stochastic chain kept stochastic), back to back,
# two runs at a time, one thread each; re-running resumes (finished runs are skipped, unfinished
# ones continue from their 5000-step checkpoints):
#   1. pogo_unbiased.yaml     12 runs: unbiased chain distance + energy actor-0 term
#   2. pogo_exact_rerun.yaml   6 runs: the reference setting on the remade medium-replay data
#   3. td3bc_rerun.yaml        6 runs: TD3+BC on the remade medium-replay data
#   4. pogo_seed_units.yaml    3 runs: the seed's balance of weights (if the budget allows)
# The code is a frozen worktree, code_unbiased/, so that edits in the development checkout never
# reach a run the sweep starts later:
#   git -C /work/main worktree add --detach /work/pogo_reference/code_unbiased <commit>
# (the commit is in README.md here). Start it detached and niced:
#   cd /work/pogo_reference && setsid nohup nice -n 10 ./sweeps_unbiased.sh >> sweeps_unbiased.log 2>&1 < /dev/null &
cd /work/pogo_reference
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
PY=/work/main/.venv/bin/python
sweep() {  # sweep file (in code_unbiased/results_reference/pogo/), summary folder
  $PY code_unbiased/run_sac.py --config "code_unbiased/results_reference/pogo/$1" --jobs 2 \
    --threads-per-job 1 --summary-dir "$2"
}
sweep pogo_unbiased.yaml summary_unbiased &&
  sweep pogo_exact_rerun.yaml summary_exact_rerun &&
  sweep td3bc_rerun.yaml summary_td3bc_rerun &&
  sweep pogo_seed_units.yaml summary_seed_units
