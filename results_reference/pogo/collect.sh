#!/usr/bin/env bash
# The two data-collecting runs (plain SAC, 100k steps, learned alpha, --save-replay), one thread
# each, from the frozen worktree code_collect/ (2ffbb00). Re-running resumes from the last
# 5000-step checkpoint.
cd /work/pogo_reference
for env in HalfCheetah-v5 Hopper-v5; do
  setsid nohup nice -n 10 /work/main/.venv/bin/python code_collect/train_sac.py --env-name $env --seed 2 \
    --num-actors 1 --w2-weights 0.0 --num-steps 100000 --automatic-entropy-tuning \
    --checkpoint-freq 5000 --save-replay --threads 1 --resume >> collect_$env.log 2>&1 < /dev/null &
done
