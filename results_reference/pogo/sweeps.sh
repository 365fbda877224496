#!/usr/bin/env bash
# The two reference sweeps back to back, two runs at a time, one thread each; re-running
# resumes (finished runs are skipped, unfinished ones continue from their 5000-step
# checkpoints). The code is a frozen worktree, code/, so that edits in the development
# checkout never reach a run the sweep launches later:
#   git -C /work/main worktree add --detach /work/pogo_reference/code 2a0b6cd
#   ln -s /work/main/.venv /work/pogo_reference/code/.venv
# Start it detached and niced (it survives the shell; `kill -INT -<pgid>` stops it cleanly):
#   cd /work/pogo_reference && setsid nohup nice -n 10 ./sweeps.sh >> sweeps.log 2>&1 < /dev/null &
cd /work/pogo_reference
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
PY=/work/main/.venv/bin/python
$PY code/run_sac.py --config code/results_reference/pogo/td3bc_reference.yaml --jobs 2 --threads-per-job 1 --summary-dir summary_td3bc &&
$PY code/run_sac.py --config code/results_reference/pogo/pogo_reference.yaml --jobs 2 --threads-per-job 1 --summary-dir summary_pogo
