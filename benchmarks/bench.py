"""Speed benchmark: update alone, the full training loop, evaluation and memory, for N actors.

    python benchmarks/bench.py                       # CPU, N = 1, 2, 4, 8, HalfCheetah-v5
    python benchmarks/bench.py --cuda --actors 1,2   # GPU

Each N runs in a fresh subprocess (clean peak-memory reading, no warm caches shared), and
every rate is the median of several timed blocks after a warm-up block.
Printed per N: updates/s of POSAC.update alone on a filled replay memory; learning-phase
environment steps/s of train_sac.py's real loop (act, env.step, store, update); seconds
for one default evaluation (every actor, 10 deterministic + 10 stochastic episodes) and its
share of wall time when it runs every 10 training episodes; peak resident memory; and the
marginal cost of each actor beyond the first as a fraction of a 1-actor update or step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def measure(args: argparse.Namespace, num_actors: int) -> dict[str, float]:
    sys.path.insert(0, str(REPO_ROOT))
    import numpy as np
    import torch

    import train_sac

    with tempfile.TemporaryDirectory() as root:
        flags = ["--env-name", args.env_name, "--num-actors", str(num_actors),
                 "--w2-weights", "0.1", "--batch-size", str(args.batch_size),
                 "--hidden-size", str(args.hidden_size), "--start-steps", "0",
                 "--replay-size", "100000", "--eval-episodes", "10", "--log-freq", "1000000",
                 "--results-dir", f"{root}/results", "--log-dir", f"{root}/runs",
                 "--checkpoint-dir", f"{root}/checkpoints", *(["--cuda"] if args.cuda else [])]
        cli, paths, env = train_sac.parse_and_check(flags)
        trainer = train_sac.Trainer(cli, paths, env)
        agent, memory = trainer.agent, trainer.memory
        rng = np.random.default_rng(0)
        obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
        for _ in range(10 * args.batch_size):  # random transitions so updates run at once
            memory.push(rng.normal(size=obs_dim), rng.uniform(-1, 1, action_dim),
                        float(rng.normal()), rng.normal(size=obs_dim), False, False)

        def synchronize() -> None:
            if args.cuda:
                torch.cuda.synchronize()

        def updates() -> None:
            for _ in range(args.updates):
                agent.update(memory.sample(args.batch_size))

        def loop_steps() -> None:
            cli.num_steps = trainer.state.total_steps + args.loop_steps
            while trainer.state.total_steps < cli.num_steps:
                trainer.run_episode([time.time()], float("nan"))

        def median_rate(work, count: int) -> float:
            """Median over --repeats timed blocks, after one untimed warm-up block."""
            rates = []
            for _ in range(args.repeats + 1):
                synchronize()
                start = time.perf_counter()
                work()
                synchronize()
                rates.append(count / (time.perf_counter() - start))
            return float(np.median(rates[1:]))

        updates_per_s = median_rate(updates, args.updates)
        steps_per_s = median_rate(loop_steps, args.loop_steps)

        start = time.perf_counter()
        trainer.evaluator.run(agent)
        eval_s = time.perf_counter() - start
        trainer.writer.close()
    episode_steps = env.spec.max_episode_steps or 1000
    train_s_per_eval = 10 * episode_steps / steps_per_s  # default --eval-freq 10 episodes
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if args.cuda
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"actors": num_actors, "updates_per_s": updates_per_s, "steps_per_s": steps_per_s,
            "eval_s": eval_s, "eval_share": eval_s / (eval_s + train_s_per_eval),
            "peak_mb": peak_mb}


def print_table(rows: list[dict[str, float]], device: str) -> None:
    base = rows[0]
    print(f"\n{device}: batch, hidden as given; marginal = extra cost per actor beyond the "
          f"first, as a fraction of the {base['actors']}-actor time")
    print("| actors | updates/s | marginal (update) | env steps/s | marginal (loop) "
          "| eval s | eval share | peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['actors']} | {row['updates_per_s']:.1f} "
              f"| {marginal(base, row, 'updates_per_s')} | {row['steps_per_s']:.1f} "
              f"| {marginal(base, row, 'steps_per_s')} | {row['eval_s']:.1f} "
              f"| {100 * row['eval_share']:.1f}% | {row['peak_mb']:.0f} |")


def marginal(base: dict[str, float], row: dict[str, float], rate: str) -> str:
    """Extra time per actor beyond the base chain length, as a fraction of the base time."""
    extra = row["actors"] - base["actors"]
    return f"{(base[rate] / row[rate] - 1.0) / extra:.2f}" if extra else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-name", default="HalfCheetah-v5")
    parser.add_argument("--actors", default="1,2,4,8", help="comma list of chain lengths")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--updates", type=int, default=100, help="updates per timed block")
    parser.add_argument("--loop-steps", type=int, default=250, help="loop steps per timed block")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed blocks; the median is reported (after one warm-up block)")
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--single", type=int, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.single is not None:
        print(json.dumps(measure(args, args.single)))
        return
    rows = []
    for num_actors in (int(n) for n in args.actors.split(",")):
        child = [sys.executable, __file__, "--single", str(num_actors)] + [
            arg for arg in sys.argv[1:]]
        output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(f"N={num_actors}: {rows[-1]}", file=sys.stderr, flush=True)
    print_table(rows, "CUDA" if args.cuda else "CPU")


if __name__ == "__main__":
    main()
