#!/usr/bin/env bash
# halfcheetah medium, seed 0: unbiased + anchored with --q-normalize 150 (TD3+BC's balance at
# w_0 = 10 summed over 6 dimensions), as checks/anchored_qnorm.sh but to 50k updates: does
# actor 0's spread settle near the behaviour's 0.090? Re-run to resume (5000-step checkpoints).
cd /work/sanity
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
/work/main/.venv/bin/python /work/pogo_reference/code_anchored/train_pogo.py \
  --dataset posac/halfcheetah/medium-v0 --normalize-states --normalize-rewards --num-actors 3 \
  --w2-weights 10 --num-steps 50000 --eval-freq 5000 --eval-episodes 5 --seed 0 --threads 1 \
  --distance unbiased --data-term anchored --q-normalize 150 --checkpoint-freq 5000 --resume \
  --run-name POGO_hc-medium_s0_w10_unbiased_anchored_qnorm150_50k
