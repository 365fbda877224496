"""Speed benchmark: update alone, the full training loop, evaluation and memory, for N actors.

    python benchmarks/bench.py                       # CPU, N = 1, 2, 4, 8, HalfCheetah-v5
    python benchmarks/bench.py --cuda --actors 1,2   # GPU
    python benchmarks/bench.py --cuda --cuda-graphs  # GPU, the update, acting and replay
                                                     # writes replayed as CUDA graphs

Rates: one process builds a trainer per N and times blocks round-robin (N = 1, 2, 4, 8,
1, 2, ...), so a slow spell of a shared machine hits every N alike; each rate is the median
of --repeats blocks after one warm-up round. Printed per N: updates/s of the training loop's
update alone (minibatch sampling included) on a filled replay memory; learning-phase
environment steps/s of train_sac.py's real loop (act, env.step, store, update); the marginal
cost of each actor beyond the first as a fraction of the 1-actor time, measured, and as
counted in floating-point operations of one update ("FLOP ratio": the marginal an update
with no fixed per-update overhead would show on a device whose time goes into arithmetic, as
a CPU's does; fixed overhead - Python, dispatch, the environment - pulls the measured
marginal below it).
Footprint: each N in a fresh process, for a clean peak-memory reading: seconds for one
default evaluation (every actor, 10 deterministic + 10 stochastic episodes), its share of
wall time when it runs every 10 training episodes, and peak memory.
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
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def build_trainer(args: argparse.Namespace, num_actors: int, root: str) -> Any:
    """A train_sac.py Trainer with a replay memory already holding random transitions."""
    import numpy as np

    import train_sac

    flags = ["--env-name", args.env_name, "--num-actors", str(num_actors),
             "--w2-weights", "0.1", "--batch-size", str(args.batch_size),
             "--hidden-size", str(args.hidden_size), "--start-steps", "0",
             "--replay-size", "100000", "--eval-episodes", "10", "--log-freq", "1000000",
             "--automatic-entropy-tuning", "--results-dir", f"{root}/results",
             "--log-dir", f"{root}/runs", "--checkpoint-dir", f"{root}/checkpoints",
             *(["--cuda"] if args.cuda else []),
             *(["--cuda-graphs"] if args.cuda_graphs else [])]
    cli, paths, env = train_sac.parse_and_check(flags)
    trainer = train_sac.SACTrainer(cli, paths, env)
    rng = np.random.default_rng(0)
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    for _ in range(10 * args.batch_size):  # random transitions, so that updates run at once
        trainer.memory.push(rng.normal(size=obs_dim), rng.uniform(-1, 1, action_dim),
                            float(rng.normal()), rng.normal(size=obs_dim), False, False)
    return trainer


def update_flops(trainer: Any, batch_size: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        trainer.agent.update(trainer.memory.sample(batch_size))
    return counter.get_total_flops()


def measure_rates(args: argparse.Namespace, chain_lengths: list[int]) -> dict[int, dict]:
    import numpy as np
    import torch

    def synchronize() -> None:
        if args.cuda:
            torch.cuda.synchronize()

    def updates(trainer: Any) -> None:
        for _ in range(args.updates):
            trainer.update()

    def loop_steps(trainer: Any) -> None:
        trainer.args.num_steps = trainer.state.total_steps + args.loop_steps
        while trainer.state.total_steps < trainer.args.num_steps:
            trainer.run_episode([time.time()], float("nan"))

    def round_robin_rates(work: Callable[[Any], None], count: int) -> dict[int, float]:
        rates: dict[int, list[float]] = {n: [] for n in chain_lengths}
        for _ in range(args.repeats + 1):
            for n, trainer in trainers.items():
                synchronize()
                start = time.perf_counter()
                work(trainer)
                synchronize()
                rates[n].append(count / (time.perf_counter() - start))
        return {n: float(np.median(r[1:])) for n, r in rates.items()}  # r[0]: warm-up

    with tempfile.TemporaryDirectory() as root:
        trainers = {n: build_trainer(args, n, f"{root}/{n}") for n in chain_lengths}
        flops = {n: update_flops(trainer, args.batch_size) for n, trainer in trainers.items()}
        updates_per_s = round_robin_rates(updates, args.updates)
        steps_per_s = round_robin_rates(loop_steps, args.loop_steps)
        for trainer in trainers.values():
            trainer.experiment.writer.close()
    return {n: {"actors": n, "updates_per_s": updates_per_s[n], "steps_per_s": steps_per_s[n],
                "update_mflop": flops[n] / 1e6} for n in chain_lengths}


def measure_footprint(args: argparse.Namespace, num_actors: int) -> dict[str, float]:
    """Evaluation time and peak memory of one N, in this (fresh) process."""
    import torch

    import train_sac

    with tempfile.TemporaryDirectory() as root:
        trainer = build_trainer(args, num_actors, root)
        for _ in range(20):
            trainer.update()
        start = time.perf_counter()
        trainer.evaluator.run(train_sac.evaluation_policies(trainer.agent), trainer.device)
        eval_s = time.perf_counter() - start
        trainer.experiment.writer.close()
    peak_mb = (torch.cuda.max_memory_allocated() / 2**20 if args.cuda
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"eval_s": eval_s, "peak_mb": peak_mb}


def child(args: argparse.Namespace, mode: str, chain_lengths: list[int]) -> Any:
    """Run this script in a fresh process in `mode`; returns its JSON answer."""
    command = [sys.executable, __file__, *sys.argv[1:], "--child", mode,
               "--actors", ",".join(map(str, chain_lengths))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"bench.py: the {mode} child failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_table(rows: list[dict[str, float]], device: str, episode_steps: int) -> None:
    base = rows[0]
    print(f"\n{device}: marginal = extra time per actor beyond the first, as a fraction of "
          f"the {base['actors']}-actor time; FLOP ratio = the same from operation counts")
    print("| actors | updates/s | marginal (update) | FLOP ratio | env steps/s "
          "| marginal (loop) | eval s | eval share | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        train_s_per_eval = 10 * episode_steps / row["steps_per_s"]  # --eval-freq 10 episodes
        share = row["eval_s"] / (row["eval_s"] + train_s_per_eval)
        print(f"| {row['actors']} | {row['updates_per_s']:.1f} "
              f"| {marginal(base, row, 'updates_per_s')} "
              f"| {marginal(base, row, 'update_mflop', cost=True)} "
              f"| {row['steps_per_s']:.1f} | {marginal(base, row, 'steps_per_s')} "
              f"| {row['eval_s']:.1f} | {100 * share:.1f}% | {row['peak_mb']:.0f} |")


def marginal(base: dict[str, float], row: dict[str, float], key: str, cost: bool = False) -> str:
    """Extra cost per actor beyond the base chain length, as a fraction of the base cost;
    `key` is a rate (time = 1/rate) unless `cost`."""
    extra = row["actors"] - base["actors"]
    if not extra:
        return "–"
    ratio = row[key] / base[key] if cost else base[key] / row[key]
    return f"{(ratio - 1.0) / extra:.2f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-name", default="HalfCheetah-v5")
    parser.add_argument("--actors", default="1,2,4,8", help="comma list of chain lengths")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=256)
    # many short blocks: a shared machine's speed drifts within seconds
    parser.add_argument("--updates", type=int, default=20, help="updates per timed block")
    parser.add_argument("--loop-steps", type=int, default=40, help="loop steps per timed block")
    parser.add_argument("--repeats", type=int, default=21,
                        help="timed blocks per N; the median is reported (after a warm-up)")
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--cuda-graphs", action="store_true", help="with --cuda")
    parser.add_argument("--child", choices=["rates", "footprint"], help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    chain_lengths = [int(n) for n in args.actors.split(",")]
    if args.child == "rates":
        print(json.dumps(measure_rates(args, chain_lengths)))
        return
    if args.child == "footprint":
        print(json.dumps(measure_footprint(args, chain_lengths[0])))
        return
    rates = child(args, "rates", chain_lengths)
    rows = []
    for n in chain_lengths:
        rows.append({**rates[str(n)], **child(args, "footprint", [n])})
        print(f"N={n}: {rows[-1]}", file=sys.stderr, flush=True)
    import gymnasium as gym

    episode_steps = gym.spec(args.env_name).max_episode_steps or 1000
    device = ("CUDA, CUDA graphs" if args.cuda_graphs else "CUDA") if args.cuda else "CPU"
    print_table(rows, device, episode_steps)


if __name__ == "__main__":
    main()
