#!/usr/bin/env bash
# Actor 0's data term alone (the Q term scaled away: --q-normalize 1e-6, λ ≈ 1e-8 against
# w_0 = 10), halfcheetah medium, seed 0, 1 actor, 10k updates: does the term itself keep the
# behaviour policy's spread (0.090)? The seed's point-wise term against the anchored one.
# Re-run to resume; the metrics CSVs land in results/ under the run names below.
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
for term in pointwise anchored; do
  /work/main/.venv/bin/python /work/pogo_reference/code_anchored/train_pogo.py \
    --dataset posac/halfcheetah/medium-v0 --normalize-states --normalize-rewards --num-actors 1 \
    --w2-weights 10 --num-steps 10000 --eval-freq 2500 --eval-episodes 2 --seed 0 --threads 1 \
    --distance unbiased --data-term "$term" --q-normalize 1e-6 --checkpoint-freq 2500 --resume \
    --run-name "POGO_hc-medium_s0_w10_${term}_data_term_only"
done
