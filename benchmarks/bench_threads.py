"""Steps/s of a short train_sac.py run for each CPU thread setting, on an idle machine and
beside 1 and 2 busy processes that this script starts and stops itself.

    python benchmarks/bench_threads.py                  # HalfCheetah-v5, 2 actors
    python benchmarks/bench_threads.py --busy 0,1,2 --repeats 2 --num-steps 2000

Each cell runs `train_sac.py` (2 actors, --w2-weights 0.0,0.1) in a fresh process with the
setting's environment, reads the rate of its progress lines once every step updates (past
--start-steps), and stops it there (the final evaluation is not timed). A busy process is
one Python loop that never sleeps: what another single-thread job on the machine looks like.
Prints one row per setting: the median rate over the repeats per load, and the ratio to the
1-thread rate under the same load.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RATE = re.compile(r"^step (\d+)/\d+ .*\| ([\d.]+) steps/s")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
# name → (train_sac.py flags, environment variables). PyTorch's own default is 2 threads whose
# OpenMP (libgomp) spins 300,000 times before it sleeps (libgomp's GOMP_SPINCOUNT when no
# wait variable is set); the project's default row sets nothing (training/run_setup.py).
SETTINGS = {
    "1 thread": (["--threads", "1"], {}),
    "2 threads, PyTorch's default (spin 300k)": (["--threads", "2"], {"GOMP_SPINCOUNT": "300000"}),
    "2 threads, spin 10k": (["--threads", "2"], {"GOMP_SPINCOUNT": "10000"}),
    "2 threads, passive": (["--threads", "2"], {"OMP_WAIT_POLICY": "PASSIVE"}),
    "2 threads, spin 1k (project default)": ([], {}),
}


def run_rate(flags: list[str], env: dict[str, str], args: argparse.Namespace) -> float:
    """Median steps/s of one run's progress lines once it updates every step."""
    with tempfile.TemporaryDirectory() as root:
        command = [sys.executable, str(REPO / "train_sac.py"), "--env-name", args.env_name,
                   "--num-actors", "2", "--w2-weights", "0.0,0.1", "--seed", "1",
                   "--num-steps", str(args.num_steps), "--start-steps", str(args.start_steps),
                   "--log-freq", str(args.log_freq), "--eval-freq", "1000000",
                   "--eval-episodes", "1", "--checkpoint-freq", "100000000",
                   "--results-dir", f"{root}/results", "--log-dir", f"{root}/runs",
                   "--checkpoint-dir", f"{root}/checkpoints", *flags]
        child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        rates = []
        for line in child.stdout:
            match = RATE.match(line)
            if match and int(match.group(1)) > args.start_steps + args.log_freq:
                rates.append(float(match.group(2)))
            if len(rates) == args.rates or (match and int(match.group(1)) >= args.num_steps):
                break
        child.kill()
        child.wait()
    if not rates:
        raise SystemExit(f"bench_threads.py: no progress line from {' '.join(command)}")
    return statistics.median(rates)


def busy_processes(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-name", default="HalfCheetah-v5")
    parser.add_argument("--num-steps", type=int, default=1500)
    parser.add_argument("--start-steps", type=int, default=500)
    parser.add_argument("--log-freq", type=int, default=100)
    parser.add_argument("--rates", type=int, default=3,
                        help="progress lines to read per run (then it is stopped)")
    parser.add_argument("--busy", default="0,1,2", help="busy processes beside the run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--settings", default=";".join(SETTINGS),
                        help="semicolon-separated names of the settings to time")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    loads = [int(n) for n in args.busy.split(",")]
    names = args.settings.split(";")
    base = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    table: dict[str, dict[int, float]] = {name: {} for name in names}
    for load in loads:
        helpers = busy_processes(load)
        try:
            for name in names:
                flags, extra = SETTINGS[name]
                rates = [run_rate(flags, {**base, **extra}, args) for _ in range(args.repeats)]
                table[name][load] = statistics.median(rates)
                print(f"  {name:30s} busy {load}: {[round(r, 1) for r in rates]} steps/s",
                      file=sys.stderr, flush=True)
        finally:
            for helper in helpers:
                helper.kill()
                helper.wait()
    print(f"{args.env_name}, 2 actors, {os.cpu_count()} cores; steps/s while updating "
          f"(median of {args.repeats}), ×: against 1 thread under the same load")
    print("| setting | " + " | ".join(f"{n} busy" for n in loads) + " |")
    print("|---|" + "---|" * len(loads))
    for name in names:
        cells = []
        for load in loads:
            rate = table[name][load]
            one = table.get("1 thread", {}).get(load)
            cells.append(f"{rate:.1f}" + (f" ({rate / one:.2f}×)" if one else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
