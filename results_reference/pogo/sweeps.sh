#!/usr/bin/env bash
# The three reference sweeps back to back (TD3+BC, POGO at w = 10, the chain-weight sweep),
# two runs at a time, one thread each; re-running resumes (finished runs are skipped,
# unfinished ones continue from their 5000-step checkpoints). The code is a frozen worktree,
# code/, so that edits in the development checkout never reach a run the sweep launches later;
# the sweep files are copied in (pogo_weight_sweep.yaml was split from pogo_reference.yaml
# after the sweeps had started; the split changes only the order of the runs):
#   git -C /work/main worktree add --detach /work/pogo_reference/code 2a0b6cd
#   ln -s /work/main/.venv /work/pogo_reference/code/.venv
#   cp /work/main/results_reference/pogo/*.yaml /work/pogo_reference/code/results_reference/pogo/
# (That code reads a POGO sweep's datasets under `environments:` / `enabled_environments`, the
# name before the section was named for the task: copy the YAMLs as committed at 2a0b6cd, or
# rename the two keys back.)
# Start it detached and niced (it survives the shell; `kill -INT -<pgid>` stops it cleanly):
#   cd /work/pogo_reference && setsid nohup nice -n 10 ./sweeps.sh >> sweeps.log 2>&1 < /dev/null &
cd /work/pogo_reference
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
PY=/work/main/.venv/bin/python
sweep() {  # sweep file (in code/results_reference/pogo/), summary folder
  $PY code/run_sac.py --config "code/results_reference/pogo/$1" --jobs 2 --threads-per-job 1 \
    --summary-dir "$2"
}
sweep td3bc_reference.yaml summary_td3bc &&
  sweep pogo_reference.yaml summary_pogo &&
  sweep pogo_weight_sweep.yaml summary_pogo_weights
