#!/usr/bin/env bash
# Copy every finished train_pogo.py run's small outputs (config, summary, metrics CSV,
# returns .npy, run log; about 30 KB a run) from /work/pogo_reference into runs/ here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd /work/pogo_reference/results
for run in TD3BC_* POGO_*; do
  [ -f "$run/summary.json" ] || continue
  mkdir -p "$here/runs/$run/training"
  cp "$run/config.json" "$run/summary.json" "$run"/*.npy "$here/runs/$run/"
  cp "$run/training/${run}_metrics.csv" "$here/runs/$run/training/"
  cp "logs/$run.log" "$here/runs/$run/"
done
ls "$here/runs"
