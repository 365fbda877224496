"""Fault trials for train_sac.py: SIGKILL at random moments, then --resume.

Two kinds of trial, each counted in a table:
  run    a small real run (InvertedPendulum-v5, a checkpoint at every episode end) is killed
         with SIGKILL at a uniformly random moment of its wall time; `--resume` must start
         (from the latest checkpoint, the previous one, or from scratch) and end with the
         same metrics CSV and .npy files as an uninterrupted run;
  write  a process that does nothing but write checkpoints (a 40 MB replay memory each, the
         experiment's own save path) is killed at a random moment; the newest checkpoint
         that loads must exist, and the checkpoint a resume would pick must load.

    OMP_NUM_THREADS=1 python benchmarks/fault_trials.py --run-trials 20 --write-trials 100
"""

from __future__ import annotations

import argparse
import csv
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RUN = ["--env-name", "InvertedPendulum-v5", "--seed", "5", "--num-steps", "800",
       "--start-steps", "200", "--batch-size", "32", "--hidden-size", "32",
       "--num-actors", "2", "--w2-weights", "0.2", "--eval-freq", "20", "--eval-episodes", "2",
       "--log-freq", "500", "--checkpoint-freq", "1"]
NAME = "POSAC_InvertedPendulum-v5_s5_w0.0-0.2"

WRITER = """
import sys, time, argparse, torch
sys.path.insert(0, {repo!r})
from training.experiment import Experiment
from training.run_setup import RunPaths
args = argparse.Namespace(resume=False, num_steps=1, log_dir={root!r} + "/runs", track=False)
paths = RunPaths.of(argparse.Namespace(run_name=None, results_dir={root!r} + "/results",
                    checkpoint_dir={root!r} + "/checkpoints", log_dir={root!r} + "/runs"),
                    "writer", "group")
experiment = Experiment("writer", args, paths, 1)
experiment.open_writer()
memory = torch.randn(10_000_000)  # 40 MB, like a replay memory
print("ready", flush=True)
step = 0
while True:
    step += 1
    experiment.state.total_steps = step
    experiment.save_checkpoint({{"memory": memory + step}})
"""


def outputs(root: Path) -> list[str]:
    return ["--results-dir", str(root / "results"), "--log-dir", str(root / "runs"),
            "--checkpoint-dir", str(root / "checkpoints")]


def train(root: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "train_sac.py"), *RUN, *outputs(root),
                           *extra], capture_output=True, text=True, cwd=root)


def results_of(root: Path) -> tuple[list[dict[str, str]], list[bytes]]:
    folder = root / "results" / NAME
    with open(folder / "training" / f"{NAME}_metrics.csv") as handle:
        rows = [{k: v for k, v in row.items() if k != "wall_time_s"}
                for row in csv.DictReader(handle)]
    return rows, [(folder / f"{NAME}_actor_{i}.npy").read_bytes() for i in range(2)]


def run_trial(reference: tuple, duration: float, rng: random.Random) -> str:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        process = subprocess.Popen([sys.executable, str(REPO / "train_sac.py"), *RUN,
                                    *outputs(root)], cwd=root, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, duration))
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.returncode == 0:
            return "finished before the kill"
        resumed = train(root, "--resume")
        if resumed.returncode != 0:
            return f"resume failed: {resumed.stderr.strip().splitlines()[-1]}"
        return "resumed, results equal" if results_of(root) == reference else "results differ"


def write_trial(rng: random.Random) -> str:
    import torch

    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO),
                                                                        root=folder)],
                                   stdout=subprocess.PIPE, text=True)
        process.stdout.readline()  # "ready": torch imported, the state built
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        group = Path(folder) / "checkpoints" / "group"
        candidates = [group / "writer_latest.pt", group / "writer_previous.pt"]
        present = [path for path in candidates if path.exists()]
        if not present:
            return "killed before the first checkpoint"
        try:  # what a resume loads: the newest that exists, falling back to the previous
            torch.load(present[0], weights_only=True)
            return "latest loads" if present[0] == candidates[0] else "previous loads"
        except Exception:
            if len(present) > 1:
                torch.load(present[1], weights_only=True)
                return "latest unreadable, previous loads"
            return "no loadable checkpoint"


def tally(outcomes: list[str]) -> str:
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{outcome}: {n}" for outcome, n in sorted(counts.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-trials", type=int, default=20)
    parser.add_argument("--write-trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        start = time.time()
        finished = train(Path(folder))
        duration = time.time() - start
        assert finished.returncode == 0, finished.stderr
        reference = results_of(Path(folder))
    print(f"uninterrupted run: {duration:.1f} s", flush=True)
    runs = [run_trial(reference, duration, rng) for _ in range(args.run_trials)]
    print(f"| SIGKILL of a training run at a random moment, then --resume | "
          f"{args.run_trials} | {tally(runs)} |", flush=True)
    writes = [write_trial(rng) for _ in range(args.write_trials)]
    print(f"| SIGKILL of a process writing 40 MB checkpoints back to back | "
          f"{args.write_trials} | {tally(writes)} |", flush=True)


if __name__ == "__main__":
    main()
