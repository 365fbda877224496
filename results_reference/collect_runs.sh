#!/usr/bin/env bash
# Copy every finished run's small outputs (config, summary, metrics CSV, returns .npy, run log;
# about 30-50 KB a run) from a results folder outside the repository into a runs/ folder here,
# for the runs whose names match the patterns (default: all):
#   results_reference/collect_runs.sh /work/pogo_reference/results results_reference/pogo/runs \
#       'POGO_*' 'TD3BC_*'
#   results_reference/collect_runs.sh /work/o2o/results results_reference/o2o/runs
# Unfinished runs (no summary.json) are skipped; finished ones are copied again (same files).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RESULTS_DIR RUNS_DIR [PATTERN ...] (the sweep's results folder, the" \
       "repository's copy, run-name patterns)" >&2
  exit 2
fi
dest="$(mkdir -p "$2" && cd "$2" && pwd)"
cd "$1"
shift 2
for run in ${@:-*}; do
  [ -f "$run/summary.json" ] || continue
  mkdir -p "$dest/$run/training"
  cp "$run/config.json" "$run/summary.json" "$run"/*.npy "$dest/$run/"
  cp "$run/training/${run}_metrics.csv" "$dest/$run/training/"
  cp "logs/$run.log" "$dest/$run/"
done
ls "$dest"
