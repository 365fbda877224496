"""Write a Minari dataset: rollouts of an actor of a finished run (train_sac.py's POSAC or
train_pogo.py's POGO / TD3+BC) or of uniform random actions, or a POSAC run's own training
data.

    # D4RL's "medium": the final actor 0 of a plain-SAC run, stochastic actions
    python make_dataset.py --env-name HalfCheetah-v5 \\
        --policy checkpoints/HalfCheetah-v5/POSAC_HalfCheetah-v5_s1_w0.0_final.pt \\
        --num-steps 200000 --seed 0 --dataset-id posac/halfcheetah/medium-v0
    # D4RL's "medium-replay": every transition that run collected (train_sac.py --save-replay)
    python make_dataset.py --env-name HalfCheetah-v5 \\
        --from-replay checkpoints/HalfCheetah-v5/POSAC_HalfCheetah-v5_s1_w0.0_replay.pt \\
        --dataset-id posac/halfcheetah/medium-replay-v0
    # D4RL's "random"
    python make_dataset.py --env-name HalfCheetah-v5 --policy random --num-steps 200000 \\
        --seed 0 --dataset-id posac/halfcheetah/random-v0

The episodes come from offline/sources.py (its docstring says how rollouts are seeded and a
run's episodes rebuilt); a last one cut off is left out of the return statistics. Reference
scores (ref_min: a random policy's mean return, ref_max: an expert's) come from the flags,
else D4RL's (offline.readers.D4RL_REF_SCORES), else ref_min is measured (see --help). The
metadata holds them, a description and, under "make_dataset", the command, seeds, source
(with its sha256), summary, reference-score sources, versions and the arrays' checksum:
same flags, machine and package versions, same arrays. Bad input is one `make_dataset.py:
error:` line, exit 2, before any work and with nothing written; --help imports no torch.
The dataset is written atomically: whole, metadata included, into a hidden staging folder
in the Minari folder, then renamed into place, so a kill leaves no partial dataset; and by
one writer per id at a time (a second is refused): offline/writing.py.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import re
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable

from training.run_setup import add_threads_flag, imports_held, interruptible, use_threads
from utils import OneLineErrorParser, UsageError, code_version, positive_int, seed_int, usage_error

PROGRAM = "make_dataset.py"
INTERRUPTED = "interrupted; nothing written"
with imports_held(PROGRAM, INTERRUPTED):  # Ctrl-C while these load: that one line, exit 130
    import numpy as np

    from offline.readers import D4RL_REF_SCORES, minari_root
    from offline.sources import (RANDOM, Episode, Plan, behaviour_spread, checkpoint_plan,
                                 random_plan, replay_plan, uniform_actions)
    from offline.writing import write_whole, writer_lock
    from training.evaluation import SPREAD_DEFINITION

REF_SEED = 0  # reference random episode k resets with seed REF_SEED + k
DEFAULT_REF_EPISODES = 100  # as Minari's num_episodes_average_score
CHECKSUM_DEFINITION = (
    "sha256 over the episodes in order; per episode: its length T as little-endian int64, "
    "then observations [T+1, obs_dim] as float64, actions [T, action_dim] as float32, rewards "
    "[T] as float64, terminations [T] and truncations [T] as uint8, each as C-order "
    "little-endian bytes")
REF_KEYS = ("ref_min_score", "ref_max_score")


def build_parser() -> argparse.ArgumentParser:
    """The flags; parsing them imports nothing heavy."""
    parser = OneLineErrorParser(
        prog=PROGRAM,
        description="Write a Minari dataset from a final checkpoint's actor, uniform random "
                    "actions, or a POSAC run's own training data (D4RL's medium, random and "
                    "medium-replay recipes). Prints a summary; the same numbers, the command, "
                    "seeds and a checksum go into the dataset's metadata.")
    parser.add_argument("--env-name", required=True,
                        help="Gymnasium environment id to collect on (for --from-replay: the "
                             "one the run trained on)")
    parser.add_argument("--dataset-id", required=True,
                        help="Minari dataset id, (namespace/)name-vN, e.g. "
                             "posac/halfcheetah/medium-v0; written under $MINARI_DATASETS_PATH "
                             "(else ~/.minari/datasets), never over an existing dataset")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--policy", metavar="random|CHECKPOINT.pt",
                        help="roll out uniform random actions, or an actor of a train_sac.py "
                             "or train_pogo.py final checkpoint "
                             "({checkpoint_dir}/{group}/{file_name}_final.pt)")
    source.add_argument("--from-replay", metavar="REPLAY.pt",
                        help="export every transition a train_sac.py --save-replay run "
                             "collected ({checkpoint_dir}/{env}/{file_name}_replay.pt), in "
                             "episodes (D4RL's medium-replay)")
    rollout = parser.add_argument_group("rollouts (--policy)")
    rollout.add_argument("--num-steps", type=positive_int, default=None,
                         help="environment steps to collect (required with --policy)")
    rollout.add_argument("--seed", type=seed_int, default=None,
                         help="seed of the episode resets, random actions and ε (default 0)")
    rollout.add_argument("--actor", type=int, default=None,
                         help="index of the checkpoint's actor in the chain (default 0)")
    rollout.add_argument("--deterministic", action="store_true",
                         help="the actor's deterministic action (POSAC: tanh(μ)·scale + "
                              "bias, not tanh(μ + σ·ε)·scale + bias; POGO: z = 0, not "
                              "z ~ N(0, I))")
    scores = parser.add_argument_group(
        "reference scores",
        "normalised score = 100·(return - ref_min)/(ref_max - ref_min). Not given: D4RL's "
        "reference returns for " + ", ".join(f"{task} ({low} / {high})" for task, (low, high)
                                             in D4RL_REF_SCORES.items())
        + ", so scores compare with the literature (approximately: D4RL used mujoco-py -v2 "
        "environments); for other tasks ref_min is measured with --ref-episodes "
        "uniform-random episodes (episode k resets with seed k, actions from numpy "
        "default_rng(0)) and ref_max stays unset")
    scores.add_argument("--ref-min-score", type=float, default=None,
                        help="mean return of a random policy")
    scores.add_argument("--ref-max-score", type=float, default=None,
                        help="mean return of an expert policy")
    scores.add_argument("--ref-episodes", type=positive_int, default=DEFAULT_REF_EPISODES,
                        help="random episodes that measure ref_min when it is needed "
                             f"(default {DEFAULT_REF_EPISODES})")
    add_threads_flag(rollout, default=1)
    about = parser.add_argument_group("dataset metadata")
    about.add_argument("--author", default=None, help="author recorded in the dataset")
    about.add_argument("--author-email", default=None, help="contact recorded in the dataset")
    return parser


def episodes_checksum(episodes: Iterable[Any]) -> str:
    """'sha256:…' of the episodes' arrays (CHECKSUM_DEFINITION); takes offline.sources'
    Episodes or Minari's EpisodeData alike, so a loaded dataset can be checked."""
    digest = hashlib.sha256()
    for episode in episodes:
        rewards = np.asarray(episode.rewards)
        digest.update(np.int64(len(rewards)).astype("<i8").tobytes())
        for values, dtype in ((episode.observations, "<f8"), (episode.actions, "<f4"),
                              (rewards, "<f8"), (episode.terminations, "u1"),
                              (episode.truncations, "u1")):
            digest.update(np.ascontiguousarray(np.asarray(values).astype(dtype)).tobytes())
    return f"sha256:{digest.hexdigest()}"


# --------------------------------------------------------------------------- checks

def check_dataset_id(dataset_id: str) -> Path:
    """Minari's (namespace/)name-vN form (its parse_dataset_id, which also wants a namespace
    of two or more characters), with the version Minari leaves optional; not yet stored.
    Returns the dataset's folder."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        well_formed = parse_dataset_id(dataset_id)[2] is not None
    except (ValueError, TypeError):
        well_formed = False
    if not well_formed:
        raise UsageError(f"--dataset-id {dataset_id!r} is not a Minari dataset id; use "
                         f"(namespace/)name-vN of letters, digits, - and _, with a namespace "
                         f"of two or more characters, e.g. posac/halfcheetah/medium-v0")
    folder = minari_root() / dataset_id
    if folder.exists():
        raise UsageError(f"Minari dataset {dataset_id} already exists in {folder}; choose "
                         f"another id (e.g. a higher -vN) or remove it with: minari delete "
                         f"{dataset_id}")
    return folder


def check_source_flags(args: argparse.Namespace) -> None:
    """Each source's own flags, and only those; fills in the rollout defaults."""
    deterministic = ["--deterministic"] if args.deterministic else []
    if args.from_replay is not None:
        given = [flag for flag, value in (("--num-steps", args.num_steps),
                                          ("--seed", args.seed), ("--actor", args.actor))
                 if value is not None] + deterministic
        if given:
            raise UsageError(f"{', '.join(given)} do(es) not apply to --from-replay, which "
                             f"exports every transition the run collected; leave them out")
        return
    if args.num_steps is None:
        raise UsageError("--policy needs --num-steps (the environment steps to collect)")
    given = (["--actor"] if args.actor is not None else []) + deterministic
    if args.policy == RANDOM and given:
        raise UsageError(f"{', '.join(given)} need(s) a checkpoint: --policy random "
                         f"takes uniform random actions")
    args.seed = 0 if args.seed is None else args.seed
    args.actor = 0 if args.actor is None else args.actor


def reference_scores(args: argparse.Namespace, env: Any) -> dict[str, Any]:
    """The reference scores and where they come from; ref_min 'measure' is left for later."""
    task = re.sub(r"-v\d+$", "", args.env_name).lower()
    d4rl = D4RL_REF_SCORES.get(task)
    refs: dict[str, Any] = {}
    for index, name in enumerate(REF_KEYS):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{name.replace('_', '-')} must be finite (got {value})")
        if value is not None:
            refs[name], refs[f"{name}_source"] = value, "given"
        elif d4rl is not None:
            refs[name], refs[f"{name}_source"] = d4rl[index], f"D4RL's reference return for {task}"
        else:
            refs[name], refs[f"{name}_source"] = None, None
    if refs["ref_min_score"] is None:
        if env.spec is None or env.spec.max_episode_steps is None:
            raise UsageError(f"{args.env_name} has no time limit, so random episodes need not "
                             f"end; give --ref-min-score")
        refs["ref_min_score_source"] = "measure"
    elif refs["ref_max_score"] is not None and refs["ref_max_score"] <= refs["ref_min_score"]:
        raise UsageError(f"ref_max_score {refs['ref_max_score']} must exceed ref_min_score "
                         f"{refs['ref_min_score']} (--ref-min-score, --ref-max-score)")
    return refs


def check(args: argparse.Namespace) -> tuple[Plan, Path, dict[str, Any]]:
    """Every check that can reject the input, before any work; raises UsageError."""
    from training.evaluation import make_env

    check_source_flags(args)
    folder = check_dataset_id(args.dataset_id)
    env = make_env(args.env_name)
    if len(env.observation_space.shape) != 1:
        raise UsageError(f"{args.env_name} has a {env.observation_space} observation space; "
                         f"only flat Box observations are supported")
    refs = reference_scores(args, env)
    make_plan = (replay_plan if args.from_replay is not None
                 else random_plan if args.policy == RANDOM else checkpoint_plan)
    return make_plan(args, env), folder, refs


# --------------------------------------------------------------------------- work

def random_policy_return(env_name: str, episodes: int, seed: int = REF_SEED) -> float:
    """Mean return of `episodes` uniform-random episodes: episode k resets with seed
    `seed` + k; actions come from numpy's default_rng(seed)."""
    from training.evaluation import make_env

    env = make_env(env_name)
    act = uniform_actions(env.action_space, np.random.default_rng(seed))
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def measure_ref_min(args: argparse.Namespace, refs: dict[str, Any]) -> None:
    """Fill in a ref_min_score left to be measured, warning if it reaches ref_max."""
    refs["ref_min_score"] = random_policy_return(args.env_name, args.ref_episodes)
    refs["ref_min_score_source"] = (
        f"measured: mean return of {args.ref_episodes} uniform-random episodes (reset "
        f"seeds {REF_SEED}..{REF_SEED + args.ref_episodes - 1}, actions from numpy "
        f"default_rng({REF_SEED}))")
    if refs["ref_max_score"] is not None and refs["ref_max_score"] <= refs["ref_min_score"]:
        print(f"{PROGRAM}: warning: the measured ref_min_score {refs['ref_min_score']:.4f} "
              f"is not below --ref-max-score {refs['ref_max_score']}; normalised scores "
              f"will be meaningless", file=sys.stderr)


def summarize(episodes: list[Episode], refs: dict[str, Any]) -> dict[str, Any]:
    """Size, episode counts, return statistics over the complete episodes, normalised score."""
    returns = np.array([episode.rewards.sum() for episode in episodes if episode.complete])
    stats = ({f"{name}_return": float(getattr(returns, name)())
              for name in ("mean", "std", "min", "max")} if len(returns)
             else dict.fromkeys(("mean_return", "std_return", "min_return", "max_return")))
    mean, low, high = stats["mean_return"], refs["ref_min_score"], refs["ref_max_score"]
    return {
        "transitions": int(sum(len(episode) for episode in episodes)),
        "episodes": len(episodes),
        "complete_episodes": len(returns),
        "terminated_episodes": sum(bool(e.terminations[-1]) for e in episodes),
        "truncated_episodes": sum(bool(e.truncations[-1]) and e.complete for e in episodes),
        "final_episode_cut": not episodes[-1].complete,
        **stats,
        "normalized_score": (100.0 * (mean - low) / (high - low)
                             if None not in (mean, low, high) and high != low else None),
        "return_statistics_over": "complete episodes (not the one cut off at the end)",
    }


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape the arrays (those installed)."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0]}
    for name in ("numpy", "torch", "gymnasium", "mujoco", "minari", "h5py"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_lines(plan: Plan, record: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs: what the dataset holds and how it was made, for the printed
    summary and the dataset's description alike."""
    summary, refs = record["summary"], record["reference_scores"]
    cut = "; the last one cut off" if summary["final_episode_cut"] else ""
    seed = f", seed {record['seed']}" if "seed" in record else ""
    return [
        ("source", f"{plan.algorithm} on {record['env_name']}{seed}"),
        ("transitions", (f"{summary['transitions']} in {summary['episodes']} episodes "
                         f"({summary['terminated_episodes']} terminated, "
                         f"{summary['truncated_episodes']} truncated{cut})")),
        ("mean return", (f"{fmt(summary['mean_return'])} ± {fmt(summary['std_return'])} "
                         f"over {summary['complete_episodes']} complete episodes")),
        ("ref min score", f"{fmt(refs['ref_min_score'], 4)} ({refs['ref_min_score_source']})"),
        ("ref max score", (f"{fmt(refs['ref_max_score'], 4)} "
                           f"({refs['ref_max_score_source'] or 'not given: --ref-max-score'})")),
        ("normalised score", fmt(summary["normalized_score"], 1)),
        *([("behaviour spread", f"{summary['behaviour_spread']:.4f} ({SPREAD_DEFINITION})")]
          if "behaviour_spread" in summary else []),
        ("checksum", record["checksum"]),
        ("command", record["command"]),
        ("code", record["code_version"]),
    ]


def create_dataset(args: argparse.Namespace, plan: Plan, episodes: list[Episode],
                   record: dict[str, Any]) -> None:
    """Minari's dataset of the episodes under $MINARI_DATASETS_PATH, with our metadata
    (Minari writes the data and its own metadata first, ours after: write_whole makes the
    dataset appear only with both)."""
    import minari
    from minari.data_collector import EpisodeBuffer

    buffers = [EpisodeBuffer(id=i, seed=episode.seed, observations=episode.observations,
                             actions=episode.actions, rewards=episode.rewards,
                             terminations=episode.terminations,
                             truncations=episode.truncations, infos={})
               for i, episode in enumerate(episodes)]
    extra = {key: value for key, value in (("author", args.author),
                                           ("author_email", args.author_email))
             if value is not None}
    scores = {name: record["reference_scores"][name] for name in REF_KEYS
              if record["reference_scores"][name] is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Minari's advice on optional fields
        dataset = minari.create_dataset_from_buffers(
            args.dataset_id, buffers, env=plan.env, eval_env=plan.env.spec,
            algorithm_name=plan.algorithm,
            code_permalink=f"make_dataset.py, git {record['code_version']}",
            description="; ".join(f"{label}: {text}"
                                  for label, text in summary_lines(plan, record)) + ".",
            **extra)
    dataset.storage.update_metadata({**scores, "make_dataset": record})


def collect_and_write(args: argparse.Namespace, argv: list[str], plan: Plan, folder: Path,
                      refs: dict[str, Any]) -> dict[str, Any]:
    """The episodes, the measured reference score if needed, the dataset; returns the record
    stored in its metadata."""
    episodes = plan.collect()
    if refs["ref_min_score_source"] == "measure":
        measure_ref_min(args, refs)
    summary = summarize(episodes, refs)
    if plan.policy is not None:
        summary["behaviour_spread"] = behaviour_spread(plan.policy, episodes, args.seed)
        summary["behaviour_spread_definition"] = SPREAD_DEFINITION
    record = {
        "command": "python make_dataset.py " + shlex.join(argv),
        "env_name": args.env_name,
        "source": plan.kind,
        **plan.provenance,
        "summary": summary,
        "reference_scores": refs,
        "checksum": episodes_checksum(episodes),
        "checksum_definition": CHECKSUM_DEFINITION,
        "code_version": code_version(),
        "package_versions": package_versions(),
    }
    write_whole(args.dataset_id, folder,
                lambda: create_dataset(args, plan, episodes, record))
    return record


@interruptible(PROGRAM, INTERRUPTED)  # Ctrl-C at any point: the staging folder is removed
def main(argv: list[str] | None = None) -> None:
    """Parse, check everything, then collect and write; prints the summary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    use_threads(args.threads, default=1)  # one state at a time: more threads only add overhead
    with contextlib.ExitStack() as held:
        try:
            plan, folder, refs = check(args)
            held.enter_context(writer_lock(args.dataset_id))
            check_dataset_id(args.dataset_id)  # again: a writer that finished since check
        except UsageError as error:
            usage_error(PROGRAM, str(error))
        record = collect_and_write(args, argv, plan, folder, refs)
    lines = [f"  {label + ':':<18}{text}" for label, text in summary_lines(plan, record)]
    print("\n".join([f"Wrote Minari dataset {args.dataset_id} to {folder}", *lines]),
          flush=True)


if __name__ == "__main__":
    main()
