#!/usr/bin/env bash
# Short checks of the new terms on halfcheetah medium, seed 0 (results_reference/pogo/README.md §0):
# 4,000 updates with unbiased + energy and with the reference setting (spreads at 2k and 4k),
# then 10,000 updates of unbiased + energy with --q-normalize 150. Run from a scratch folder.
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
for extra in "--distance unbiased --data-term energy" "--distance exact"; do
  nice -n 5 /work/main/.venv/bin/python /work/main/train_pogo.py --dataset posac/halfcheetah/medium-v0 \
    --normalize-states --normalize-rewards --num-actors 3 --w2-weights 10 --num-steps 4000 --eval-freq 2000 \
    --eval-episodes 2 --seed 0 --threads 1 $extra
done
/work/main/.venv/bin/python /work/pogo_reference/code_unbiased/train_pogo.py --dataset posac/halfcheetah/medium-v0 \
  --normalize-states --normalize-rewards --num-actors 3 --w2-weights 10 --num-steps 10000 --eval-freq 2500 \
  --eval-episodes 5 --seed 0 --threads 1 --distance unbiased --data-term energy --q-normalize 150 \
  --checkpoint-freq 2500 --resume --run-name POGO_hc-medium_s0_w10_unbiased_energy_qnorm150
