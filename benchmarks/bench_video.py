"""What --capture-video adds to one evaluation: train_sac.py's evaluation of N actors (10
deterministic + 10 stochastic episodes each) without and with recording, on the real
Trainer's Evaluator (actors at their initial weights: every HalfCheetah episode runs its full
1000 steps, the most a recorded evaluation can cost).

    python benchmarks/bench_video.py                          # HalfCheetah-v5, 2 actors
    python benchmarks/bench_video.py --env-name Hopper-v5 --actors 4 --repeats 2

Printed: seconds of Evaluator.run without recording; with recording, the seconds of
Evaluator.run (rendering each actor's first deterministic episode, streamed to its MP4) and of
EvaluationVideos.finish (the chain video, and the TensorBoard GIF when small enough); the
ratio of the totals; per rendered frame, the milliseconds recording adds; the files' sizes.
Each as wall time and as CPU time (this process's threads, Mesa's rendering threads among
them, plus the ffmpeg encoders it waited for), which a shared machine inflates less.
Medians over --repeats rounds, each round running both, so a slow spell hits both alike.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


def trainer(env_name: str, actors: int, episodes: int, root: str, capture: bool):
    import train_sac

    flags = ["--env-name", env_name, "--num-actors", str(actors), "--w2-weights", "0.1",
             "--eval-episodes", str(episodes), "--hidden-size", "256",
             "--results-dir", f"{root}/results", "--log-dir", f"{root}/runs",
             "--checkpoint-dir", f"{root}/checkpoints",
             "--run-name", "capture" if capture else "plain",
             *(["--capture-video"] if capture else [])]
    args, paths, env = train_sac.parse_and_check(flags)
    return train_sac.SACTrainer(args, paths, env)


def clocks() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its waited-for children)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time() + children.ru_utime + children.ru_stime


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-name", default="HalfCheetah-v5")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")  # before MuJoCo loads (the script does the same)

    import torch

    import train_sac

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    with tempfile.TemporaryDirectory() as root:
        plain = trainer(args.env_name, args.actors, args.episodes, root, capture=False)
        capture = trainer(args.env_name, args.actors, args.episodes, root, capture=True)
        policies = train_sac.evaluation_policies(plain.agent)
        times: dict[str, list[tuple[float, float]]] = {"plain": [], "run": [], "finish": []}

        def timed(key: str, work: Any) -> Any:
            wall, cpu = clocks()
            result = work()
            end_wall, end_cpu = clocks()
            times[key].append((end_wall - wall, end_cpu - cpu))
            return result

        for round_index in range(args.repeats):
            timed("plain", lambda: plain.evaluator.run(policies))
            recorder = capture.videos.start(0, round_index)
            returns = timed("run", lambda: capture.evaluator.run(policies, recorder=recorder))
            timed("finish", lambda: recorder.finish(returns[:, 0, 0], capture.experiment.writer))
        capture.experiment.writer.close()
        frames = sum(recorder.counts)
        sizes = {path.name: path.stat().st_size for path in sorted(recorder.directory.iterdir())
                 if path.name.startswith(f"step_{args.repeats - 1}_")}
        events = sum(path.stat().st_size for path in Path(root, "runs", "capture").iterdir())
        print(f"{args.env_name}, {args.actors} actors, {args.episodes} deterministic + "
              f"{args.episodes} stochastic episodes each, video {capture.args.video_size}, "
              f"MUJOCO_GL={os.environ['MUJOCO_GL']}, median of {args.repeats}")
        for clock, name in enumerate(("wall", "CPU")):
            median = {key: statistics.median(value[clock] for value in values)
                      for key, values in times.items()}
            recorded = median["run"] + median["finish"]
            print(f"  {name} time: without --capture-video {median['plain']:.1f} s, with "
                  f"{recorded:.1f} s (Evaluator.run {median['run']:.1f} s + chain video "
                  f"{median['finish']:.1f} s) = {recorded / median['plain']:.1f}x; recording "
                  f"adds {1000 * (recorded - median['plain']) / frames:.0f} ms per rendered "
                  f"frame ({frames} frames)")
        print("  files: " + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items())
              + f"; TensorBoard events {events / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
