#!/usr/bin/env bash
# The inverse of collect_runs.sh: copy the committed runs' small outputs back into a sweep's
# results folder outside the repository, for the runs whose names match the patterns (default:
# all), so that a sweep started again on a new machine skips them as finished (summary.json)
# instead of running them again:
#   results_reference/restore_runs.sh results_reference/pogo/runs /work/pogo_reference/results \
#       'POGO_*' 'TD3BC_*'
# A run that already has a results folder there is left alone.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 RUNS_DIR RESULTS_DIR [PATTERN ...] (the repository's copy, the sweep's" \
       "results folder, run-name patterns)" >&2
  exit 2
fi
dest="$(mkdir -p "$2/logs" && cd "$2" && pwd)"
cd "$1"
shift 2
for run in ${@:-*}; do
  [ -f "$run/summary.json" ] || continue
  [ -e "$dest/$run" ] && continue
  cp -r "$run" "$dest/"  # what collect_runs.sh copied, the log back to where the sweep keeps it
  mv "$dest/$run/$run.log" "$dest/logs/"
  echo "restored $run"
done
