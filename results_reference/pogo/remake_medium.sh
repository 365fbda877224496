#!/usr/bin/env bash
# The two medium datasets again, with the code that records the behaviour policy's spread
# (same arrays: the checksums must match the ones in results_reference/pogo/README.md).
cd /work/pogo_reference
export MINARI_DATASETS_PATH=/work/pogo_reference/minari
C=/work/main/results_reference/pogo/collect
PY=/work/main/.venv/bin/python
for task in HalfCheetah-v5:halfcheetah Hopper-v5:hopper; do
  env=${task%%:*}; name=${task##*:}
  rm -rf minari/posac/$name/medium-v0
  $PY /work/main/make_dataset.py --env-name $env --policy $C/$env/POSAC_${env}_s2_w0.0_final.pt \
    --num-steps 200000 --seed 0 --dataset-id posac/$name/medium-v0 > make_${name}_medium.log 2>&1
done
