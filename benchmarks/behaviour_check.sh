#!/usr/bin/env bash
# Behaviour check for refactors: a short POSAC run (HalfCheetah-v5, 2 actors, learned α) and a
# short POGO run (3 actors, exact W2, on a random HalfCheetah dataset made here) from the code
# in CODE into OUT. Compare two such folders with benchmarks/compare_runs.py.
#
#   git worktree add /tmp/before <old commit>
#   benchmarks/behaviour_check.sh /tmp/before /tmp/check/before
#   benchmarks/behaviour_check.sh "$PWD" /tmp/check/after
#   python benchmarks/compare_runs.py /tmp/check/before /tmp/check/after
#
# MODE "interrupt" stops each run (SIGINT) after its first resume checkpoint; MODE "resume"
# then continues such a folder (copied, with its config.json paths rewritten) with --resume.
# The dataset goes to $MINARI_DATASETS_PATH (default: OUT/../minari), made once with CODE.
set -euo pipefail
code=$(cd "$1" && pwd); mkdir -p "$2"; out=$(cd "$2" && pwd); mode=${3:-full}
py=${PYTHON:-python}
export OMP_NUM_THREADS=1 MINARI_DATASETS_PATH=${MINARI_DATASETS_PATH:-$(dirname "$out")/minari}
if [ ! -d "$MINARI_DATASETS_PATH/check/halfcheetah/random-v0" ]; then
  (cd "$code" && $py make_dataset.py --env-name HalfCheetah-v5 --dataset-id check/halfcheetah/random-v0 \
     --policy random --num-steps 5000 --seed 0)
fi
cd "$code"
common=(--results-dir "$out/results" --log-dir "$out/runs" --checkpoint-dir "$out/checkpoints")
sac=(train_sac.py --env-name HalfCheetah-v5 --num-actors 2 --w2-weights 0.0,0.1 --automatic-entropy-tuning
     --num-steps 4000 --start-steps 1000 --eval-freq 1 --eval-episodes 1 --log-freq 500
     --checkpoint-freq 1000 --seed 1 "${common[@]}")
pogo=(train_pogo.py --dataset check/halfcheetah/random-v0 --num-actors 3 --w2-weights 10 --distance exact
      --num-steps 3000 --eval-freq 1000 --eval-episodes 1 --log-freq 500 --checkpoint-freq 500
      --seed 1 --normalize-rewards "${common[@]}")
run() {  # prefix of the run's file name, then the command
  local tag=$1; shift
  if [ "$mode" = interrupt ]; then
    $py "$@" > "$out/$tag.log" 2>&1 & local pid=$!
    until ls "$out"/checkpoints/*/"${tag}"_*_latest.pt >/dev/null 2>&1; do sleep 0.5; done
    sleep 1; kill -INT "$pid"; wait "$pid" || true
  elif [ "$mode" = resume ]; then
    $py "$@" --resume > "$out/${tag}_resume.log" 2>&1
  else
    $py "$@" > "$out/$tag.log" 2>&1
  fi
}
run POSAC "${sac[@]}"
run POGO "${pogo[@]}"
