"""Compare two behaviour_check.sh folders: every metrics CSV column but wall_time_s (metric
names of earlier versions read as today's, utils.renamed_metric) and every .npy file, byte
for byte. Prints one line per file and ALL IDENTICAL or MISMATCH (exit status 1).

    python benchmarks/compare_runs.py /tmp/check/before /tmp/check/after
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import renamed_metric  # noqa: E402


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return [{renamed_metric(key): value for key, value in row.items()
                 if key != "wall_time_s"} for row in csv.DictReader(handle)]


def main() -> None:
    before, after = (Path(arg) for arg in sys.argv[1:3])
    same_everywhere = True
    for path in sorted(before.rglob("*_metrics.csv")) + sorted(before.rglob("*.npy")):
        other = after / path.relative_to(before)
        if path.suffix == ".csv":
            same = other.exists() and rows(path) == rows(other)
        else:
            same = other.exists() and path.read_bytes() == other.read_bytes()
        same_everywhere &= same
        print(("same      " if same else "DIFFERENT ") + str(path.relative_to(before)))
    print("ALL IDENTICAL" if same_everywhere else "MISMATCH")
    raise SystemExit(0 if same_everywhere else 1)


if __name__ == "__main__":
    main()
