"""Where a dataset's episodes come from, each source checked against the environment first
(bad input: UsageError): uniform random actions, an actor of either training script's final
checkpoint, or the episodes a train_sac.py --save-replay file holds.

Rollouts take exactly M environment steps, every generator seeded by utils.stream_seed(S, …):
episode resets draw their seeds (stored as Minari's episode seeds) from numpy
default_rng(stream_seed(S, "dataset_resets")); random actions are uniform on the action box
from default_rng(stream_seed(S, "dataset_actions")); an actor's action is
tanh(μ(s) + σ(s)·ε)·scale + bias, in float64 from the checkpoint's float32 weights, with ε the
next float64 torch.randn(action_dim) from torch.Generator().manual_seed(stream_seed(S,
"dataset_noise")) (ε = 0 for deterministic actions). The replay export rebuilds the run's
episodes in play order (ReplayMemory.episodes) and refuses a memory whose ring wrapped.
The last episode, if cut off (by the step budget or the run's end), is stored with
truncations[-1] = True and marked incomplete. `behaviour_spread` measures a stochastic
source policy's spread at the collected states, for the dataset's metadata.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from utils import UsageError, stream_seed

if TYPE_CHECKING:  # replay_memory imports torch; make_dataset.py --help must not
    from replay_memory import StoredEpisode

RANDOM = "random"
PROGRESS_MIN_STEPS = 10_000  # rollouts at least this long print a line every 10%


@dataclass
class Episode:
    """One episode as Minari stores it: T + 1 observations, T actions, rewards and flags.
    `complete` is False for the episode the step budget (or the run's end) cut off."""
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    complete: bool = True
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.rewards)


def file_sha256(path: Path) -> str:
    """'sha256:…' of a file's bytes, recorded so the source can be identified later."""
    with open(path, "rb") as handle:
        return f"sha256:{hashlib.file_digest(handle, 'sha256').hexdigest()}"


@dataclass
class Plan:
    """Everything the checks established; `collect()` makes the episodes."""
    kind: str  # "random", "checkpoint" or "replay"
    env: Any
    collect: Callable[[], list[Episode]]
    provenance: dict[str, Any] = field(default_factory=dict)
    algorithm: str = ""
    # the behaviour policy as (obs, noise) → action in float64, when the data come from one
    # actor (training/evaluation.Policy): make_dataset.py measures its spread
    policy: Callable[[Any, Any], Any] | None = None


def load_torch_file(path: Path, what: str, hint: str) -> dict[str, Any]:
    """The dict a torch file holds (no pickled objects), or UsageError saying why not."""
    import torch

    if not path.exists():
        raise UsageError(f"{what} {path} does not exist; {hint}")
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise UsageError(f"{what} {path} is {kind}, not a torch file; {hint}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not its own
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise UsageError(f"{what} {path} cannot be read as a torch file ({reason}); {hint}"
                         ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path} does not hold a dict; {hint}")
    return data


def check_env_folder(path: Path, env_name: str, what: str) -> None:
    """train_sac.py keeps a run's files under {checkpoint_dir}/{env}/: a file in a folder
    named after another registered environment was trained there (observation and action
    sizes alone do not tell HalfCheetah-v5 from Walker2d-v5)."""
    import gymnasium as gym

    folder = path.resolve().parent.name
    if folder != env_name and folder in gym.envs.registry:
        raise UsageError(f"{what} {path} lies in the folder of {folder}, the environment "
                         f"train_sac.py trained it on, but --env-name is {env_name}; pass "
                         f"--env-name {folder}")


def uniform_actions(space: Any, rng: np.random.Generator) -> Callable[[Any], np.ndarray]:
    """A policy of float32 actions drawn uniformly on the Box `space` by `rng`."""
    low, high = space.low.astype(np.float64), space.high.astype(np.float64)
    return lambda obs: rng.uniform(low, high).astype(np.float32)


def random_plan(args: argparse.Namespace, env: Any) -> Plan:
    """Uniform random actions (D4RL's "random")."""
    space = env.action_space
    if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
        raise UsageError(f"{args.env_name}'s action space {space} is unbounded; uniform "
                         f"random actions need finite bounds")
    act = uniform_actions(space, np.random.default_rng(stream_seed(args.seed, "dataset_actions")))
    return Plan(kind="random", env=env,
                collect=lambda: rollout(env, act, args.num_steps, args.seed),
                algorithm="uniform random actions",
                provenance={"policy": RANDOM, "seed": args.seed, "num_steps": args.num_steps,
                            "actions": "uniform on the action box, from numpy default_rng("
                                       "stream_seed(seed, 'dataset_actions'))"})


def actor_state(path: Path, data: dict[str, Any], actor: int) -> tuple[dict[str, Any], int]:
    """Actor `actor`'s state_dict from a train_sac.py checkpoint's contents `data` (read from
    `path`), and the chain's length."""
    hint = "give a train_sac.py checkpoint ({checkpoint_dir}/{env}/{file_name}_final.pt)"
    agent = data.get("agent")
    actors = agent.get("actors") if isinstance(agent, dict) else None
    if not isinstance(actors, list) or not actors:
        found = ", ".join(sorted(map(str, data))) or "nothing"
        raise UsageError(f"{path} is not a POSAC checkpoint (it holds {found}, not "
                         f"agent.actors); {hint}")
    if not 0 <= actor < len(actors):
        raise UsageError(f"--actor {actor} is out of range: {path} holds {len(actors)} "
                         f"actor(s), 0..{len(actors) - 1}")
    state = actors[actor]
    keys = ("net.0.weight", "net.2.weight", "net.4.weight", "action_scale", "action_bias")
    missing = [key for key in keys if key not in state] if isinstance(state, dict) else keys
    if missing:
        raise UsageError(f"{path}: actor {actor} is not a GaussianPolicy state (it lacks "
                         f"{', '.join(missing)}); {hint}")
    return state, len(actors)


def checkpoint_plan(args: argparse.Namespace, env: Any) -> Plan:
    """Actor `--actor` of a final checkpoint: a self-contained one of either training script,
    or a train_sac.py one from before them (networks only)."""
    from training.final_checkpoint import FORMAT, check_final_checkpoint

    path = Path(args.policy)
    hint = "give a final checkpoint ({checkpoint_dir}/{group}/{file_name}_final.pt)"
    data = load_torch_file(path, "checkpoint", hint)
    if "run" in data or data.get("format") == FORMAT:  # (a resume checkpoint is refused)
        return final_checkpoint_plan(args, env, path, check_final_checkpoint(path, data))
    return networks_only_plan(args, env, path, data)


def final_checkpoint_plan(args: argparse.Namespace, env: Any, path: Path,
                          checkpoint: dict[str, Any]) -> Plan:
    """Actor `--actor` of a self-contained final checkpoint as its run evaluated it, in
    float64 from the float32 weights: POSAC's a = tanh(μ + σ·ε)·scale + bias, POGO's
    a = tanh(MLP([(s − μ)/σ, z]))·max_action with the run's observation statistics; ε (or
    z) ~ N(0, I) per step from the dataset_noise stream, or 0 with --deterministic."""
    import torch

    from training.final_checkpoint import (check_spaces, evaluation_policies, num_actors,
                                           stochastic_actors)

    count = num_actors(checkpoint)
    if not 0 <= args.actor < count:
        raise UsageError(f"--actor {args.actor} is out of range: {path} holds {count} "
                         f"actor(s), 0..{count - 1}")
    check_spaces(checkpoint, env, args.env_name)
    action_shape = env.action_space.shape
    (policy,) = evaluation_policies(checkpoint, [args.actor])
    noise = torch.Generator().manual_seed(stream_seed(args.seed, "dataset_noise"))
    stochastic = stochastic_actors(checkpoint) and not args.deterministic

    @torch.inference_mode()
    def act(obs: np.ndarray) -> np.ndarray:
        epsilon = (torch.randn(action_shape, generator=noise, dtype=torch.float64)
                   if stochastic else torch.zeros(action_shape, dtype=torch.float64))
        return policy(torch.as_tensor(obs, dtype=torch.float64), epsilon).float().numpy()

    algorithm = checkpoint["algorithm"]
    draw = "ε" if algorithm == "POSAC" else "z"
    mode = (f"stochastic actions, {draw} ~ N(0, I)" if stochastic
            else f"deterministic actions, {draw} = 0")
    return Plan(
        kind="checkpoint", env=env, collect=lambda: rollout(env, act, args.num_steps, args.seed),
        algorithm=f"{algorithm} actor {args.actor} ({mode})",
        policy=policy if stochastic else None,
        provenance={
            "policy": str(path), "policy_sha256": file_sha256(path), "actor": args.actor,
            "algorithm": algorithm, "num_actors_in_checkpoint": count,
            "trained_on": checkpoint["env_id"], "code_version": checkpoint["code_version"],
            "deterministic": not stochastic, "seed": args.seed, "num_steps": args.num_steps,
            "actions": (f"{mode}: training/final_checkpoint.evaluation_policies in float64 "
                        f"from the float32 weights, {draw} per step from torch.Generator()"
                        f".manual_seed(stream_seed(seed, 'dataset_noise')), stored as "
                        f"float32")})


def networks_only_actor(args: argparse.Namespace, env: Any, path: Path,
                        data: dict[str, Any]) -> tuple[Any, int]:
    """Actor `--actor` of a train_sac.py final checkpoint from before self-contained ones
    (networks only), checked against the --env-name environment's spaces and bounds
    (UsageError), and the checkpoint's actor count."""
    import torch

    from model import GaussianPolicy

    state, num_actors = actor_state(path, data, args.actor)
    check_env_folder(path, args.env_name, "checkpoint")
    hidden_size, obs_dim = state["net.0.weight"].shape
    action_dim = state["net.4.weight"].shape[0] // 2
    env_obs, env_action = env.observation_space.shape[0], env.action_space.shape[0]
    if (obs_dim, action_dim) != (env_obs, env_action):
        raise UsageError(f"{path}: actor {args.actor} takes {obs_dim}-dim observations and "
                         f"gives {action_dim}-dim actions but {args.env_name} has {env_obs} "
                         f"and {env_action}; give the environment it was trained on")
    low, high = (torch.as_tensor(b, dtype=torch.float32)
                 for b in (env.action_space.low, env.action_space.high))
    actor = GaussianPolicy(obs_dim, action_dim, hidden_size, low, high)
    if not (torch.allclose(state["action_scale"].float(), actor.action_scale)
            and torch.allclose(state["action_bias"].float(), actor.action_bias)):
        raise UsageError(f"{path}: actor {args.actor} maps actions onto other bounds than "
                         f"{args.env_name}'s [{env.action_space.low}, "
                         f"{env.action_space.high}]; give the environment it was trained on")
    try:
        actor.load_state_dict(state)
    except RuntimeError as error:
        raise UsageError(f"{path}: actor {args.actor} does not fit a GaussianPolicy "
                         f"({' '.join(str(error).split())[:200]})") from None
    return actor, num_actors


def networks_only_plan(args: argparse.Namespace, env: Any, path: Path,
                       data: dict[str, Any]) -> Plan:
    """Actor `--actor` of a train_sac.py final checkpoint from before self-contained ones
    (networks only: the environment comes from --env-name), in float64."""
    import torch

    from training.evaluation import float64_copy

    actor, num_actors = networks_only_actor(args, env, path, data)
    actor64 = float64_copy(actor).eval()
    noise = torch.Generator().manual_seed(stream_seed(args.seed, "dataset_noise"))

    @torch.inference_mode()
    def act(obs: np.ndarray) -> np.ndarray:
        # GaussianPolicy.sample's action, tanh(μ + σ·ε)·scale + bias, without its log π
        mean, log_std = actor64(torch.as_tensor(obs, dtype=torch.float64))
        epsilon = (torch.zeros_like(mean) if args.deterministic
                   else torch.randn(mean.shape, generator=noise, dtype=torch.float64))
        return actor64.squash(mean + log_std.exp() * epsilon).float().numpy()

    def policy(obs: Any, epsilon: Any) -> Any:
        mean, log_std = actor64(obs)
        return actor64.squash(mean + log_std.exp() * epsilon)

    mode = "deterministic" if args.deterministic else "stochastic"
    return Plan(
        kind="checkpoint", env=env, collect=lambda: rollout(env, act, args.num_steps, args.seed),
        algorithm=f"POSAC actor {args.actor} ({mode} actions)",
        policy=None if args.deterministic else policy,
        provenance={
            "policy": str(path), "policy_sha256": file_sha256(path), "actor": args.actor,
            "num_actors_in_checkpoint": num_actors, "hidden_size": actor.net[0].out_features,
            "deterministic": args.deterministic, "seed": args.seed,
            "num_steps": args.num_steps,
            "actions": ("tanh(mu)*scale + bias" if args.deterministic else
                        "tanh(mu + sigma*eps)*scale + bias, eps = float64 torch.randn(action_dim) "
                        "per step from torch.Generator().manual_seed(stream_seed(seed, "
                        "'dataset_noise'))")
                       + ", in float64 from the float32 weights, stored as float32"})


def rollout(env: Any, act: Callable[[np.ndarray], np.ndarray], num_steps: int,
            seed: int) -> list[Episode]:
    """Exactly `num_steps` steps of `act` in `env`, in episodes; episode resets draw their
    seeds from default_rng(stream_seed(seed, "dataset_resets"))."""
    reset_rng = np.random.default_rng(stream_seed(seed, "dataset_resets"))
    episodes: list[Episode] = []
    steps = 0
    report_every = num_steps // 10 if num_steps >= PROGRESS_MIN_STEPS else 0
    while steps < num_steps:
        reset_seed = int(reset_rng.integers(2**31))
        obs, _ = env.reset(seed=reset_seed)
        observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
        done = False
        while not done and steps < num_steps:
            action = act(obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(bool(terminated))
            truncations.append(bool(truncated))
            done = terminated or truncated
            steps += 1
            if report_every and steps % report_every == 0:
                print(f"step {steps}/{num_steps} ({len(episodes)} episodes done)", flush=True)
        if not done:
            truncations[-1] = True  # cut by the step budget
        episodes.append(Episode(
            np.asarray(observations, dtype=env.observation_space.dtype),
            np.asarray(actions, dtype=np.float32), np.asarray(rewards, dtype=np.float64),
            np.asarray(terminations, dtype=bool), np.asarray(truncations, dtype=bool),
            complete=done, seed=reset_seed))
    return episodes


def replay_plan(args: argparse.Namespace, env: Any) -> Plan:
    """Every transition of a train_sac.py --save-replay file, in the run's episodes."""
    from replay_memory import ReplayMemory, RingWrappedError

    path = Path(args.from_replay)
    hint = "give the {file_name}_replay.pt that train_sac.py --save-replay writes"
    data = load_torch_file(path, "replay file", hint)
    memory = data.get("memory")
    keys = ("obs", "action", "reward", "mask", "sampled_slots", "capacity", "position",
            "filled")
    if not isinstance(memory, dict) or any(key not in memory for key in keys):
        found = ", ".join(sorted(map(str, data))) or "nothing"
        raise UsageError(f"{path} is not a saved replay memory (it holds {found}); {hint}")
    check_env_folder(path, args.env_name, "replay file")
    obs_dim, action_dim = memory["obs"].shape[1], memory["action"].shape[1]
    env_obs, env_action = env.observation_space.shape[0], env.action_space.shape[0]
    if (obs_dim, action_dim) != (env_obs, env_action):
        raise UsageError(f"{path} holds {obs_dim}-dim observations and {action_dim}-dim "
                         f"actions but {args.env_name} has {env_obs} and {env_action}; give "
                         f"the environment the run trained on")
    try:
        stored = ReplayMemory.episodes(memory)
    except RingWrappedError as error:
        raise UsageError(f"{path}: {error}; re-run train_sac.py with a --replay-size larger "
                         f"than its steps plus episodes (e.g. twice --num-steps)") from None
    except ValueError as error:
        raise UsageError(f"{path}: {error}; give an unmodified --save-replay file") from None
    episodes = [replayed_episode(e, env.observation_space.dtype) for e in stored]
    return Plan(kind="replay", env=env, collect=lambda: episodes,
                algorithm="POSAC training data (every transition the run collected)",
                provenance={"replay": str(path), "replay_sha256": file_sha256(path),
                            "replay_capacity": int(memory["capacity"])})


def replayed_episode(stored: StoredEpisode, obs_dtype: Any) -> Episode:
    """A ReplayMemory.episodes entry as an Episode: it ends by termination, else it is stored
    as truncated (the one still running when the run stopped, too: it is not complete)."""
    last = np.arange(len(stored.reward)) == len(stored.reward) - 1
    return Episode(stored.obs.astype(obs_dtype), stored.action.astype(np.float32),
                   stored.reward.astype(np.float64), last & stored.terminated,
                   last & (not stored.terminated), complete=not stored.running)


def behaviour_spread(policy: Any, episodes: list[Episode], seed: int) -> float:
    """The stochastic behaviour policy's spread (training/evaluation.action_spread) at
    SPREAD_STATES of the dataset's states, drawn, like the noise, from the `spread` stream:
    the scale for the spread_i that train_pogo.py logs for its actors. (The data's own
    actions, one per state, cannot show a per-state spread.)"""
    import torch

    from training.evaluation import SPREAD_DRAWS, action_spread, spread_rows

    obs = np.concatenate([episode.observations[:-1] for episode in episodes])
    rows = spread_rows(len(obs), seed)
    generator = torch.Generator().manual_seed(stream_seed(seed, "spread"))
    action_dim = episodes[0].actions.shape[-1]
    return action_spread(policy, torch.as_tensor(obs[rows]), action_dim, SPREAD_DRAWS,
                         generator)
