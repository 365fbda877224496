"""Evaluate (and film) the actors of a finished train_sac.py or train_pogo.py run.

    python evaluate.py results/POSAC_HalfCheetah-v5_s1_w0.0-0.1
    python evaluate.py checkpoints/HalfCheetah-v5/POSAC_HalfCheetah-v5_s1_w0.0-0.1_final.pt \\
        --actors 0,1 --episodes 20 --capture-video
    python evaluate.py results/POSAC_Hopper-v4_s1_w0.0 --env-name Hopper-v5

Reads the run's self-contained final checkpoint (training/final_checkpoint.py): no flags,
dataset or config of the run are needed. Every chosen actor plays --episodes deterministic
episodes and, where the actors draw noise, as many stochastic ones, with the training
evaluation's fixed seeds (episode k resets with the seed's evaluation stream k; actor i's
noise is its own stream), so with the run's seed and episode count the numbers are its final
evaluation's. Prints the training scripts' evaluation table and writes, into --out-dir
(default {run results}/evaluations/{env}_s{seed}_e{episodes}, never over an existing one):

    evaluation.json   the checkpoint, settings, per-episode returns and means (and scores)
    evaluation.csv    one row per actor, mode and episode: return (and normalised score)
    videos/           with --capture-video: each actor's first deterministic episode
                      (step_{steps}_actor_{i}.mp4, i its index in the chain) and the chain
                      video, its tiles labelled with the same indices

Bad input is one `evaluate.py: error:` line and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.run_setup import (add_threads_flag, check_cuda, imports_held, interruptible,
                                use_threads)
from utils import (OneLineErrorParser, UsageError, atomic_write_json, atomic_write_text,
                   positive_int, seed_int, usage_error)

PROGRAM = "evaluate.py"
INTERRUPTED = "interrupted; run the same command again"
with imports_held(PROGRAM, INTERRUPTED):  # Ctrl-C while these load: one line, exit 130
    import numpy as np

    from training.final_checkpoint import (check_spaces, evaluation_policies, normalized_score,
                                           num_actors, read_final_checkpoint, resolve_run,
                                           stochastic_actors)
    from video.recording import add_video_flags, check_capture, prefer_headless


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROGRAM, description="Evaluate and film the actors of a finished run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("run", type=Path,
                        help="a run's results directory (results/{file_name}) or its final "
                             "checkpoint ({file_name}_final.pt)")
    parser.add_argument("--actors", default=None,
                        help="comma-separated actor indices, e.g. 0,2 (default: all)")
    parser.add_argument("--episodes", type=positive_int, default=10,
                        help="episodes per actor and mode")
    parser.add_argument("--seed", type=seed_int, default=None,
                        help="evaluation seed (default: the run's, as its own evaluations)")
    parser.add_argument("--env-name", default=None,
                        help="another Gymnasium id with the same spaces (e.g. a v4 → v5 "
                             "variant; default: the run's)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the results go (default: {run results}/evaluations/"
                             "{env}_s{seed}_e{episodes})")
    parser.add_argument("--cuda", action="store_true", help="run the actors on the GPU")
    add_threads_flag(parser)
    add_video_flags(parser, training=False)
    return parser


# --------------------------------------------------------------------------- checks
def actor_indices(text: str | None, num_actors: int) -> list[int]:
    if text is None:
        return list(range(num_actors))
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"--actors {text!r} is not a comma-separated list of indices") from None
    bad = [i for i in indices if not 0 <= i < num_actors]
    if bad or len(set(indices)) != len(indices):
        raise UsageError(f"--actors {text}: the run has actors 0..{num_actors - 1}, each once")
    return indices


def environment(checkpoint: dict[str, Any], env_name: str | None) -> tuple[str, dict]:
    """The environment to play in (id, keyword arguments), checked against the spaces the
    actors were trained on."""
    from training.evaluation import make_env

    env_id = env_name or checkpoint["env_id"]
    kwargs = checkpoint["env_kwargs"] if env_id == checkpoint["env_id"] else {}
    env = make_env(env_id, **kwargs)
    check_spaces(checkpoint, env, env_id)
    env.close()
    return env_id, kwargs


def out_directory(args: argparse.Namespace, results: Path | None, checkpoint_file: Path,
                  env_id: str, seed: int) -> Path:
    base = results if results is not None else checkpoint_file.parent
    out = args.out_dir or (base / "evaluations" / f"{env_id}_s{seed}_e{args.episodes}")
    if out.exists():
        raise UsageError(f"{out} exists already; pass --out-dir to write somewhere new")
    return out


# --------------------------------------------------------------------------- outputs
def write_results(out: Path, record: dict[str, Any], returns: np.ndarray, ids: list[int],
                  modes: tuple[str, ...], score: Any) -> None:
    """evaluation.json and evaluation.csv (one row per actor, mode and episode)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["actor", "mode", "episode", "return", *(["score"] if score else [])])
    for position, i in enumerate(ids):
        for m, mode in enumerate(modes):
            for k, value in enumerate(returns[position, m]):
                writer.writerow([i, mode, k, repr(float(value)),
                                 *([repr(score(float(value)))] if score else [])])
    atomic_write_text(out / "evaluation.csv", buffer.getvalue())
    atomic_write_json(out / "evaluation.json", {
        **record, "returns": {f"actor_{i}": {mode: returns[p, m].tolist()
                                             for m, mode in enumerate(modes)}
                              for p, i in enumerate(ids)}})


@dataclass
class Plan:
    """What to evaluate, as the checks found it."""
    checkpoint: dict[str, Any]
    path: Path
    actors: list[int]
    env_id: str
    env_kwargs: dict[str, Any]
    seed: int
    out: Path


def check(args: argparse.Namespace) -> Plan:
    """Every check that can reject the input, before any work; raises UsageError."""
    check_cuda(args)
    path, results = resolve_run(args.run)
    checkpoint = read_final_checkpoint(path)
    actors = actor_indices(args.actors, num_actors(checkpoint))
    prefer_headless(args)  # MUJOCO_GL before MuJoCo renders anything
    env_id, env_kwargs = environment(checkpoint, args.env_name)
    check_capture(args, env_id, env_kwargs)
    seed = checkpoint["seed"] if args.seed is None else args.seed
    return Plan(checkpoint, path, actors, env_id, env_kwargs, seed,
                out_directory(args, results, path, env_id, seed))


def evaluate(args: argparse.Namespace, plan: Plan) -> None:
    """Play, print, write (and film)."""
    from training.evaluation import MODES, Evaluator, evaluation_table
    from video.recording import RunVideos

    checkpoint, ids = plan.checkpoint, plan.actors
    modes = MODES if stochastic_actors(checkpoint) else ("deterministic",)
    videos = (RunVideos(args.video_size, plan.out, len(ids), plan.env_id, plan.env_kwargs, ids)
              if args.capture_video else None)
    evaluator = Evaluator(plan.env_id, len(ids), args.episodes, plan.seed, modes,
                          plan.env_kwargs, make_recorded_env=videos.make_env if videos else None,
                          actor_ids=ids)
    recorder = videos.start(0, checkpoint["steps"]) if videos else None
    device = "cuda" if args.cuda else "cpu"
    returns = evaluator.run(evaluation_policies(checkpoint, ids, device), device,
                            recorder=recorder)
    if recorder is not None:  # the recorded episodes: deterministic episode 0
        recorder.finish(returns[:, 0, 0])
    score = normalized_score(checkpoint)
    columns, lines = evaluation_table(returns, modes, checkpoint["steps"], ids, score)
    print(f"{checkpoint['algorithm']} from {plan.path} on {plan.env_id}, seed {plan.seed}:")
    print("\n".join(lines), flush=True)
    plan.out.mkdir(parents=True, exist_ok=True)
    write_results(plan.out, {"checkpoint": str(plan.path), "algorithm": checkpoint["algorithm"],
                             "trained_on": checkpoint["env_id"], "env_id": plan.env_id,
                             "seed": plan.seed, "episodes": args.episodes,
                             "steps": checkpoint["steps"], "modes": list(modes),
                             "means": columns}, returns, ids, modes, score)
    print(f"Wrote {plan.out / 'evaluation.json'} and evaluation.csv"
          + (f", videos in {plan.out / 'videos'}" if videos else ""))


@interruptible(PROGRAM, INTERRUPTED)
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    use_threads(args.threads)  # before torch loads
    try:
        plan = check(args)
    except UsageError as error:
        usage_error(PROGRAM, str(error))
    evaluate(args, plan)


if __name__ == "__main__":
    main()
