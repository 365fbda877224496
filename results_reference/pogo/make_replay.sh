#!/usr/bin/env bash
# The medium-replay-v1 datasets: every transition the new collecting runs stored (their
# --save-replay files), with the code of the frozen worktree the runs used.
cd /work/pogo_reference
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
for task in HalfCheetah-v5:halfcheetah Hopper-v5:hopper; do
  env=${task%%:*}; name=${task##*:}
  /work/main/.venv/bin/python code_collect/make_dataset.py --env-name $env \
    --from-replay checkpoints/$env/POSAC_${env}_s2_w0.0_replay.pt \
    --dataset-id posac/$name/medium-replay-v1 > make_${name}_medium_replay.log 2>&1
done
