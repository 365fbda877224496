#!/usr/bin/env bash
# halfcheetah medium, seed 0: unbiased + anchored with TD3+BC's balance (--q-normalize 150:
# α = 2.5 against w_0 = 10 summed over 6 dimensions), 20k updates, evaluations every 2.5k.
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
/work/main/.venv/bin/python /work/pogo_reference/code_anchored/train_pogo.py \
  --dataset posac/halfcheetah/medium-v0 --normalize-states --normalize-rewards --num-actors 3 \
  --w2-weights 10 --num-steps 20000 --eval-freq 2500 --eval-episodes 5 --seed 0 --threads 1 \
  --distance unbiased --data-term anchored --q-normalize 150 --checkpoint-freq 2500 --resume \
  --run-name POGO_hc-medium_s0_w10_unbiased_anchored_qnorm150
