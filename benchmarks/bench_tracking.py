"""What --track costs: train_sac.py's real training loop with and without W&B tracking.

    OMP_NUM_THREADS=1 python benchmarks/bench_tracking.py     # HalfCheetah-v5, offline W&B

Two trainers of the same run (one with `--track --wandb-mode offline`, W&B's files in a
temporary folder) take turns on blocks of --loop-steps learning-phase environment steps
(act, env.step, store, update, and the log line every --log-freq steps, far more often than
the default 5000 so that tracking's share shows); each rate is the median of --repeats
blocks after a warm-up round. Printed: steps/s of each, their ratio, and the cost of one
logged row (tracking's extra time per block over the rows it sent). On a busy machine the
loop's own noise can exceed tracking's cost, so the cost of one row is also timed alone:
Tracker.flush() of a row of the run's real training scalars, --rows times. W&B's start-up (a
few seconds, once per session) is outside both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def build_trainer(args: argparse.Namespace, root: str, track: bool) -> Any:
    import train_sac

    flags = ["--env-name", args.env_name, "--num-actors", "2", "--w2-weights", "0.1",
             "--start-steps", "0", "--update-after", "256", "--num-steps", "10000000",
             "--log-freq", str(args.log_freq), "--eval-freq", "1000000",
             "--results-dir", f"{root}/results", "--log-dir", f"{root}/runs",
             "--checkpoint-dir", f"{root}/checkpoints", "--checkpoint-freq", "100000000",
             *(["--track", "--wandb-mode", "offline"] if track else [])]
    cli, paths, task = train_sac.parse_and_check(flags)
    trainer = train_sac.SACTrainer(cli, paths, task)
    while trainer.state.total_steps < 300:  # past update-after: every step updates
        trainer.run_episode(float("nan"))
    return trainer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-name", default="HalfCheetah-v5")
    parser.add_argument("--loop-steps", type=int, default=1000, help="steps per timed block")
    parser.add_argument("--log-freq", type=int, default=100, help="steps between log lines")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2000, help="rows for the row timing")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    import numpy as np

    with tempfile.TemporaryDirectory() as root:
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            os.environ.setdefault(name, f"{root}/wandb_home")
        trainers = {"plain": build_trainer(args, f"{root}/plain", False),
                    "--track": build_trainer(args, f"{root}/track", True)}
        rates: dict[str, list[float]] = {name: [] for name in trainers}
        for _ in range(args.repeats + 1):
            for name, trainer in trainers.items():
                trainer.args.num_steps = trainer.state.total_steps + args.loop_steps
                start = time.perf_counter()
                while trainer.state.total_steps < trainer.args.num_steps:
                    trainer.run_episode(float("nan"))
                rates[name].append(args.loop_steps / (time.perf_counter() - start))
        tracker = trainers["--track"].experiment.tracker
        row = {f"train/{name}": value for name, value in
               trainers["--track"].experiment.host_metrics(trainers["--track"].metrics).items()}
        start = time.perf_counter()
        for i in range(args.rows):
            for tag, value in row.items():
                tracker.scalar(tag, value, 10**8 + i)
            tracker.flush()
        row_ms = 1e3 * (time.perf_counter() - start) / args.rows
        for trainer in trainers.values():
            trainer.experiment.close_writers(exit_code=0)
    median = {name: float(np.median(r[1:])) for name, r in rates.items()}  # r[0]: warm-up
    rows = args.loop_steps / args.log_freq
    extra_ms = 1e3 * (args.loop_steps / median["--track"] - args.loop_steps / median["plain"])
    print(f"{args.env_name}, 2 actors, --log-freq {args.log_freq}, blocks of "
          f"{args.loop_steps} steps, median of {args.repeats}")
    print("| run | steps/s |\n|---|---|")
    for name, rate in median.items():
        print(f"| {name} | {rate:.1f} |")
    print(f"plain / --track time ratio: {median['plain'] / median['--track']:.3f}; "
          f"tracking's extra time per logged row: {extra_ms / rows:.2f} ms "
          f"({rows:.0f} rows per block)")
    print(f"one row of {len(row)} training scalars, timed alone: {row_ms:.3f} ms "
          f"(median loop step: {1e3 / median['plain']:.1f} ms)")


if __name__ == "__main__":
    main()
