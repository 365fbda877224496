#!/usr/bin/env bash
# halfcheetah medium, seed 0: unbiased + anchored, w = 10, 10k updates, evaluations every 2.5k
# (run from a scratch folder, e.g. /work/sanity; code: the frozen worktree of sweeps_anchored.sh).
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
/work/main/.venv/bin/python /work/pogo_reference/code_anchored/train_pogo.py --dataset posac/halfcheetah/medium-v0 \
  --normalize-states --normalize-rewards --num-actors 3 --w2-weights 10 --num-steps 10000 --eval-freq 2500 \
  --eval-episodes 5 --seed 0 --threads 1 --distance unbiased --data-term anchored \
  --checkpoint-freq 2500 --resume
