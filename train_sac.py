"""Train one POSAC experiment: CLI → env → loop (act, store, update) → evaluate → log → checkpoint.

    python train_sac.py --env-name HalfCheetah-v5 --num-actors 2 --w2-weights 0.0,0.1

Outputs (file_name derived from env, seed and w2 weights unless --run-name is given):
    {log_dir}/{file_name}/                               TensorBoard events
    {results_dir}/{file_name}/config.json                every setting
    {results_dir}/{file_name}/training/{file_name}_metrics.csv
    {results_dir}/{file_name}/{file_name}_actor_{i}.npy  deterministic eval returns
    {results_dir}/{file_name}/summary.json               written last: the run finished
    {checkpoint_dir}/{env_name}/{file_name}_latest.pt    resume checkpoint (removed at the end)
    {checkpoint_dir}/{env_name}/{file_name}_final.pt     final networks
Torch, Gymnasium and TensorBoard are imported only after the flags are parsed, so --help is instant.
"""

from __future__ import annotations

import argparse
import copy
import csv
import difflib
import io
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from utils import (CaughtSignals, OneLineErrorParser, atomic_write, atomic_write_json,
                   atomic_write_text, non_negative_int, parse_w2_weights, positive_int,
                   run_name, usage_error)

EVAL_SEED_OFFSET = 10_000  # evaluation episode k resets with seed + EVAL_SEED_OFFSET + k
SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME = {"resume"}


class UsageError(Exception):
    """Bad input, reported as one line and exit status 2 before any work starts."""


def fail(message: str) -> NoReturn:
    usage_error("train_sac.py", message)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="train_sac.py",
        description="Train POSAC (SAC with a JKO chain of Gaussian actors) on one Gymnasium task.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    env = parser.add_argument_group("environment and budget")
    env.add_argument("--env-name", default="Humanoid-v5", help="Gymnasium environment id")
    env.add_argument("--seed", type=int, default=123456, help="seed for everything random")
    env.add_argument("--num-steps", type=positive_int, default=1_000_000,
                     help="environment steps to train for")
    env.add_argument("--start-steps", type=non_negative_int, default=10_000,
                     help="uniform random actions before the behaviour actor takes over")
    env.add_argument("--update-after", type=non_negative_int, default=0,
                     help="environment steps collected before the first gradient update "
                          "(updates also wait until the replay memory holds a batch)")
    agent = parser.add_argument_group("agent")
    agent.add_argument("--num-actors", type=int, default=1, help="actors in the JKO chain")
    agent.add_argument("--w2-weights", default="0.1",
                       help="one W2 weight per actor, actor 0's 0.0 (e.g. 0.0,0.1), or a single "
                            "w meaning 0.0,w,w,...")
    agent.add_argument("--behavior-actor", type=int, default=0,
                       help="index of the actor that collects data")
    agent.add_argument("--hidden-size", type=positive_int, default=256,
                       help="units in each of the 2 hidden layers")
    agent.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    agent.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    agent.add_argument("--tau", type=float, default=0.005, help="target smoothing coefficient")
    agent.add_argument("--alpha", type=float, default=0.2, help="(initial) temperature α")
    agent.add_argument("--automatic-entropy-tuning", action=argparse.BooleanOptionalAction,
                       default=False, help="learn α towards entropy −dim(A) using actor 0")
    agent.add_argument("--q-normalize", action=argparse.BooleanOptionalAction, default=True,
                       help="scale actor i≥1's SAC term by λ_i = 1/|E[α·log π_i − min Q]|")
    agent.add_argument("--chain-update", choices=("sequential", "parallel"),
                       default="sequential",
                       help="actor i's W2 reference: actor i-1 after its update in this step "
                            "(sequential) or before it (parallel, one forward pass less)")
    agent.add_argument("--critic-target-policy", choices=("online", "target"), default="online",
                       help="actor 0 copy that draws a' in the TD target")
    agent.add_argument("--target-update-interval", type=positive_int, default=1,
                       help="updates between Polyak target updates")
    agent.add_argument("--batch-size", type=positive_int, default=256, help="minibatch size")
    agent.add_argument("--updates-per-step", type=non_negative_int, default=1,
                       help="gradient updates per environment step")
    agent.add_argument("--replay-size", type=positive_int, default=1_000_000,
                       help="replay memory capacity (transitions)")
    agent.add_argument("--cuda", action=argparse.BooleanOptionalAction, default=False,
                       help="train on the GPU")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--eval-freq", type=positive_int, default=10,
                            help="evaluate every this many training episodes")
    evaluation.add_argument("--eval-episodes", type=positive_int, default=10,
                            help="episodes per actor and mode (deterministic, stochastic)")
    output = parser.add_argument_group("outputs and resume")
    output.add_argument("--results-dir", default="results", help="metrics, returns, config")
    output.add_argument("--log-dir", default="runs", help="TensorBoard root")
    output.add_argument("--checkpoint-dir", default="checkpoints", help="checkpoint root")
    output.add_argument("--run-name", default=None, help="overrides the derived file_name")
    output.add_argument("--log-freq", type=positive_int, default=5000,
                        help="steps between TensorBoard scalars and progress lines")
    output.add_argument("--checkpoint-freq", type=positive_int, default=50_000,
                        help="steps between resume checkpoints (written at episode ends)")
    output.add_argument("--resume", action="store_true",
                        help="continue this run from its latest checkpoint (start it if none)")
    return parser


def validate_args(args: argparse.Namespace) -> None:
    """Checks that need no environment; raises UsageError naming the problem and the fix."""
    if args.num_actors < 1:
        raise UsageError(f"--num-actors must be at least 1 (got {args.num_actors})")
    try:
        args.w2_weights = parse_w2_weights(args.w2_weights, args.num_actors)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not 0 <= args.behavior_actor < args.num_actors:
        raise UsageError(f"--behavior-actor must be in 0..{args.num_actors - 1} "
                         f"(got {args.behavior_actor})")
    if args.batch_size > args.replay_size:
        raise UsageError(f"--batch-size {args.batch_size} exceeds --replay-size "
                         f"{args.replay_size}; lower the batch or enlarge the replay memory")
    for name, in_range, expected in (("lr", lambda v: v > 0, "a positive number"),
                                     ("alpha", lambda v: v > 0, "a positive number"),
                                     ("tau", lambda v: 0 < v <= 1, "in (0, 1]"),
                                     ("gamma", lambda v: 0 <= v <= 1, "in [0, 1]")):
        value = getattr(args, name)
        if not (math.isfinite(value) and in_range(value)):
            raise UsageError(f"--{name} must be {expected} (got {value})")


def suggest_env(name: str) -> str:
    import gymnasium as gym

    close = difflib.get_close_matches(name, list(gym.envs.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.envs.registry"
    return f"unknown environment id {name!r}{hint}"


GYMNASIUM_XML_DEPRECATION = "compiler attribute 'settotalmass' is deprecated"


def forward_mujoco_warning(message: str) -> None:
    """MuJoCo's warning handler, minus one message: Gymnasium 1.4's HalfCheetah model uses
    `settotalmass`, which MuJoCo 4 reports at every model compile (one line per environment
    built: 41 per run with 2 actors and 10 evaluation episodes), and no user setting fixes."""
    if GYMNASIUM_XML_DEPRECATION not in message:
        print(f"WARNING: {message}", file=sys.stderr, flush=True)


def make_env(name: str) -> Any:
    """The environment, or UsageError if the id is unknown or its actions are not a Box."""
    import gymnasium as gym

    try:
        import mujoco
        mujoco.set_mju_user_warning(forward_mujoco_warning)
    except ImportError:
        pass  # environments without MuJoCo still work
    if name not in gym.envs.registry:
        raise UsageError(suggest_env(name))
    try:
        env = gym.make(name)
    except (ImportError, gym.error.Error) as error:  # e.g. mujoco-py v2/v3 ids, missing Box2D
        raise UsageError(f"{name} is registered but cannot be built here ({error}); "
                         f"use a Gymnasium v5 MuJoCo id such as HalfCheetah-v5") from None
    if not isinstance(env.action_space, gym.spaces.Box):
        raise UsageError(f"{name} has a {type(env.action_space).__name__} action space; "
                         f"POSAC's Gaussian actors need a continuous Box action space")
    return env


@dataclass
class RunPaths:
    results: Path
    metrics_csv: Path
    config_json: Path
    summary_json: Path
    tensorboard: Path
    latest_checkpoint: Path
    final_checkpoint: Path
    file_name: str

    @classmethod
    def of(cls, args: argparse.Namespace) -> RunPaths:
        file_name = args.run_name or run_name(args.env_name, args.seed, args.w2_weights)
        results = Path(args.results_dir) / file_name
        checkpoints = Path(args.checkpoint_dir) / args.env_name
        return cls(results=results,
                   metrics_csv=results / "training" / f"{file_name}_metrics.csv",
                   config_json=results / "config.json",
                   summary_json=results / "summary.json",
                   tensorboard=Path(args.log_dir) / file_name,
                   latest_checkpoint=checkpoints / f"{file_name}_latest.pt",
                   final_checkpoint=checkpoints / f"{file_name}_final.pt",
                   file_name=file_name)

    def actor_returns(self, actor_index: int) -> Path:
        return self.results / f"{self.file_name}_actor_{actor_index}.npy"


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {key: value for key, value in sorted(vars(args).items())}


def check_resume(args: argparse.Namespace, paths: RunPaths) -> None:
    """Never overwrite a finished run; on --resume, the saved settings must match the flags."""
    if not paths.results.exists():
        return
    if not args.resume:
        raise UsageError(f"results for this run already exist in {paths.results}; pass --resume "
                         f"to continue it, or --run-name to start a separate run")
    if paths.config_json.exists():
        # a flag added after the run started counts as saved with its default value
        defaults = vars(build_parser().parse_args([]))
        saved = {**defaults, **json.loads(paths.config_json.read_text())}
        current = settings_of(args)
        conflicts = [f"{key} (saved {saved.get(key)!r}, now {current.get(key)!r})"
                     for key in sorted(set(saved) | set(current))
                     if key not in SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME
                     and saved.get(key) != current.get(key)]
        if conflicts:
            raise UsageError(f"--resume with settings that differ from the saved run in "
                             f"{paths.config_json}: {'; '.join(conflicts)}")


def parse_and_check(argv: list[str] | None) -> tuple[argparse.Namespace, RunPaths, Any]:
    """Every check that can reject the input, before any output is written."""
    args = build_parser().parse_args(argv)
    try:
        validate_args(args)
        if args.cuda:
            import torch
            if not torch.cuda.is_available():
                raise UsageError("--cuda was given but no CUDA GPU is available; drop --cuda")
        env = make_env(args.env_name)
        paths = RunPaths.of(args)
        check_resume(args, paths)
    except UsageError as error:
        fail(str(error))
    return args, paths, env


# --------------------------------------------------------------------------- stopping
class StopRequest(CaughtSignals):
    """While entered, SIGINT only sets a flag that the loops honour at their next safe point
    (`check`, between environment steps). A KeyboardInterrupt raised at an arbitrary point
    can land inside a library that holds a lock (TensorBoard's writer), and the exit then
    deadlocks on that lock. A second SIGINT interrupts at once."""

    def __init__(self) -> None:
        super().__init__(signal.SIGINT)

    def handle(self, signum: int, frame: Any) -> None:
        super().handle(signum, frame)
        if self.count > 1:
            raise KeyboardInterrupt

    def check(self) -> None:
        if self.count:
            raise KeyboardInterrupt


# --------------------------------------------------------------------------- evaluation
class Evaluator:
    """Runs every actor deterministically and stochastically on fixed-seed episodes.

    All 2·N·E episodes step together, one batched forward per actor per step. Episode k
    (of every actor and mode) resets with seed + EVAL_SEED_OFFSET + k, and stochastic
    episode k of actor i draws its noise from a fixed stream of its own, so every
    evaluation sees the same start states and the same ε, and the result does not
    depend on how many episodes run at once."""

    def __init__(self, env_name: str, num_actors: int, episodes: int, seed: int):
        import gymnasium as gym

        self.num_actors, self.episodes, self.seed = num_actors, episodes, seed + EVAL_SEED_OFFSET
        self.envs = [gym.make(env_name) for _ in range(num_actors * 2 * episodes)]
        self.max_steps = self.envs[0].spec.max_episode_steps or 1000
        self.noise = self.evaluation_noise(self.envs[0].action_space.shape[0])

    def evaluation_noise(self, action_dim: int) -> Any:
        """ε for [actor, mode, episode, step]: zero in the deterministic mode, so that
        tanh(μ + σ·0) is exactly the deterministic action tanh(μ)."""
        import torch

        noise = torch.zeros(self.num_actors, 2, self.episodes, self.max_steps, action_dim,
                            dtype=torch.float64)
        for actor in range(self.num_actors):
            for episode in range(self.episodes):
                stream = torch.Generator().manual_seed(self.seed + 7919 * actor + episode)
                noise[actor, 1, episode] = torch.randn(self.max_steps, action_dim,
                                                       generator=stream, dtype=torch.float64)
        return noise

    @staticmethod
    def act(actor: Any, obs: np.ndarray, noise: Any) -> np.ndarray:
        """tanh(μ + σ·ε)·scale + bias for a batch of observations, computed in float64.

        float32 matrix products can differ in the last bit with the number of rows, and
        MuJoCo amplifies such a difference into a different episode; in float64 the
        float32 action no longer depends on how many episodes share the forward pass."""
        import torch

        with torch.no_grad():
            mean, log_std = actor(torch.as_tensor(obs, dtype=torch.float64, device=noise.device))
            return actor.sample(mean, log_std, noise)[0].float().cpu().numpy()

    def run(self, agent: Any, stop: StopRequest | None = None) -> np.ndarray:
        """Undiscounted returns, shape [num_actors, 2 (deterministic, stochastic), episodes].
        A requested `stop` ends the evaluation between steps with KeyboardInterrupt."""
        shape = (self.num_actors, 2, self.episodes)
        obs = np.stack([env.reset(seed=self.seed + k)[0]
                        for env, (_, _, k) in zip(self.envs, np.ndindex(*shape))])
        actors = [copy.deepcopy(actor).double() for actor in agent.actors]
        noise = self.noise.to(agent.device)
        returns = np.zeros(len(self.envs))
        running = np.ones(len(self.envs), dtype=bool)
        per_actor = 2 * self.episodes
        for t in range(self.max_steps):
            if stop is not None:
                stop.check()
            actions = np.concatenate([
                self.act(actor, obs[i * per_actor:(i + 1) * per_actor],
                         noise[i, :, :, t].flatten(0, 1))
                for i, actor in enumerate(actors)])
            for j in np.flatnonzero(running):
                obs[j], reward, terminated, truncated, _ = self.envs[j].step(actions[j])
                returns[j] += reward
                running[j] = not (terminated or truncated)
            if not running.any():
                break
        return returns.reshape(shape)


# --------------------------------------------------------------------------- run state
@dataclass
class RunState:
    """Counters, history and the run's own random generator: everything the loop needs
    beyond the agent and the replay memory to continue exactly where it stopped."""
    seed: int
    total_steps: int = 0
    episodes: int = 0
    last_checkpoint_step: int = 0
    elapsed_before: float = 0.0  # wall seconds spent in earlier sessions of this run
    history: list[dict[str, float]] = field(default_factory=list)
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def state_dict(self, elapsed: float) -> dict[str, Any]:
        state = {key: value for key, value in asdict(self).items() if key != "rng"}
        state.update(rng=self.rng.bit_generator.state, elapsed_before=elapsed)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            if key != "rng":
                setattr(self, key, value)
        self.rng.bit_generator.state = state["rng"]


def metrics_to_floats(metrics: dict[str, Any]) -> dict[str, float]:
    """Flatten the agent's metric tensors into named host floats (one sync)."""
    flat: dict[str, float] = {}
    for name, value in metrics.items():
        values = value.detach().cpu().reshape(-1).tolist()
        if value.dim() == 0:
            flat[name] = values[0]
        else:
            flat.update({f"{name}_{i}": v for i, v in enumerate(values)})
    return flat


def write_outputs(paths: RunPaths, history: list[dict[str, float]], num_actors: int) -> None:
    """Rewrite the metrics CSV and the per-actor .npy files from the evaluation history."""
    columns = list(dict.fromkeys(key for row in history for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(paths.metrics_csv, buffer.getvalue())
    for i in range(num_actors):
        returns = np.array([row[f"actor_{i}_deterministic"] for row in history], dtype=np.float64)
        atomic_write(paths.actor_returns(i), lambda tmp, r=returns: save_npy(tmp, r))


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:  # a file object: np.save would append .npy to a path
        np.save(handle, array)


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------- training
class Trainer:
    def __init__(self, args: argparse.Namespace, paths: RunPaths, env: Any):
        import torch
        from torch.utils.tensorboard import SummaryWriter

        from replay_memory import ReplayMemory
        from sac import POSAC, SACConfig

        self.args, self.paths, self.env = args, paths, env
        self.device = torch.device("cuda" if args.cuda else "cpu")
        obs_dim = env.observation_space.shape[0]
        low = torch.as_tensor(env.action_space.low, dtype=torch.float32)
        high = torch.as_tensor(env.action_space.high, dtype=torch.float32)
        config = SACConfig(
            num_actors=args.num_actors, w2_weights=tuple(args.w2_weights),
            hidden_size=args.hidden_size, lr=args.lr, gamma=args.gamma, tau=args.tau,
            alpha=args.alpha, automatic_entropy_tuning=args.automatic_entropy_tuning,
            target_update_interval=args.target_update_interval,
            critic_target_policy=args.critic_target_policy, q_normalize=args.q_normalize,
            chain_update=args.chain_update)
        self.agent = POSAC(obs_dim, low, high, config, seed=args.seed, device=self.device)
        self.memory = ReplayMemory(args.replay_size, obs_dim, low.numel(), seed=args.seed + 2,
                                   device=self.device)
        self.evaluator = Evaluator(args.env_name, args.num_actors, args.eval_episodes, args.seed)
        self.state = RunState(seed=args.seed + 3)
        self.metrics: dict[str, Any] = {}  # the latest update's metrics, still on the device
        self.stop = StopRequest()  # main() enters it around the loop
        self.resumed = args.resume and paths.latest_checkpoint.exists()
        if self.resumed:
            self.load_checkpoint()
        self.session_start = time.time()
        self.writer = SummaryWriter(str(paths.tensorboard), purge_step=self.state.total_steps)

    # -- time and checkpoints
    def elapsed(self) -> float:
        return self.state.elapsed_before + time.time() - self.session_start

    def save_checkpoint(self) -> None:
        import torch

        self.state.last_checkpoint_step = self.state.total_steps
        checkpoint = {"agent": self.agent.state_dict(), "memory": self.memory.state_dict(),
                      "run": self.state.state_dict(self.elapsed())}
        atomic_write(self.paths.latest_checkpoint, lambda tmp: torch.save(checkpoint, tmp))

    def load_checkpoint(self) -> None:
        import torch

        # on the CPU: generator states must stay CPU tensors; modules copy to their device
        checkpoint = torch.load(self.paths.latest_checkpoint, map_location="cpu",
                                weights_only=True)
        self.agent.load_state_dict(checkpoint["agent"])
        self.memory.load_state_dict(checkpoint["memory"])
        self.state.load_state_dict(checkpoint["run"])

    # -- logging
    def stop_if_not_finite(self, metrics: dict[str, float]) -> None:
        bad = {name: value for name, value in metrics.items() if not math.isfinite(value)}
        if bad:
            kept = (self.paths.latest_checkpoint if self.paths.latest_checkpoint.exists()
                    else "none written yet")
            print(f"train_sac.py: error: non-finite training values at step "
                  f"{self.state.total_steps}: {bad}; stopping. Last good checkpoint: {kept}",
                  file=sys.stderr)
            self.writer.close()
            raise SystemExit(1)

    def latest_metrics(self) -> dict[str, float]:
        """The latest update's metrics on the host; stops the run if any is not finite."""
        metrics = metrics_to_floats(self.metrics)
        self.stop_if_not_finite(metrics)
        return metrics

    def log_training(self, last_return: float, steps_per_second: float) -> None:
        state, args = self.state, self.args
        for name, value in self.latest_metrics().items():
            self.writer.add_scalar(f"train/{name}", value, state.total_steps)
        remaining = (args.num_steps - state.total_steps) / max(steps_per_second, 1e-9)
        print(f"step {state.total_steps}/{args.num_steps} "
              f"({100.0 * state.total_steps / args.num_steps:.1f}%) | episode {state.episodes} "
              f"| last return {last_return:.1f} | {steps_per_second:.1f} steps/s "
              f"| ETA {format_duration(remaining)}", flush=True)

    def evaluate(self) -> None:
        returns = self.evaluator.run(self.agent, self.stop)
        state = self.state
        row: dict[str, float] = {"step": state.total_steps, "episode": state.episodes,
                                 "wall_time_s": round(self.elapsed(), 3)}
        print(f"Evaluation over {self.args.eval_episodes} episodes at step {state.total_steps}:")
        for i in range(self.args.num_actors):
            for mode_index, mode in enumerate(("deterministic", "stochastic")):
                mean_return = float(returns[i, mode_index].mean())
                row[f"actor_{i}_{mode}"] = mean_return
                row[f"actor_{i}_{mode}_std"] = float(returns[i, mode_index].std())
                self.writer.add_scalar(f"eval/actor_{i}_{mode}", mean_return, state.total_steps)
                print(f"  Actor {i} - {mode.capitalize()}: {mean_return:.2f}", flush=True)
        row.update(self.latest_metrics())
        state.history.append(row)
        write_outputs(self.paths, state.history, self.args.num_actors)
        self.writer.flush()

    # -- the loop
    def random_action(self) -> np.ndarray:
        space = self.env.action_space
        return self.state.rng.uniform(space.low, space.high).astype(np.float32)

    def policy_action(self, obs: np.ndarray) -> np.ndarray:
        import torch

        obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(0)
        return self.agent.act(obs_tensor, self.args.behavior_actor)[0].cpu().numpy()

    def run_episode(self, log_clock: list[float], last_return: float) -> tuple[float, bool]:
        """Play one training episode (or until the step budget runs out), updating as it goes.
        Returns the episode's return and whether it ended by termination or truncation."""
        args, state, memory = self.args, self.state, self.memory
        obs, _ = self.env.reset(seed=int(state.rng.integers(2**31)))
        episode_return, done = 0.0, False
        while not done and state.total_steps < args.num_steps:
            self.stop.check()
            action = (self.random_action() if state.total_steps < args.start_steps
                      else self.policy_action(obs))
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            done = terminated or truncated
            memory.push(obs, action, float(reward), next_obs, terminated, done)
            obs = next_obs
            episode_return += float(reward)
            state.total_steps += 1
            if len(memory) >= args.batch_size and state.total_steps >= args.update_after:
                for _ in range(args.updates_per_step):
                    self.metrics = self.agent.update(memory.sample(args.batch_size))
            if state.total_steps % args.log_freq == 0:
                now = time.time()
                self.log_training(last_return, args.log_freq / (now - log_clock[0]))
                log_clock[0] = now
        return episode_return, done

    def train(self) -> None:
        args, state = self.args, self.state
        log_clock = [time.time()]
        last_return = float("nan")
        while state.total_steps < args.num_steps:
            episode_return, completed = self.run_episode(log_clock, last_return)
            if not completed:
                break
            state.episodes += 1
            last_return = episode_return
            self.writer.add_scalar("train/episode_return", episode_return, state.total_steps)
            if state.episodes % args.eval_freq == 0:
                self.evaluate()
            if state.total_steps - state.last_checkpoint_step >= args.checkpoint_freq:
                self.latest_metrics()  # never checkpoint a diverged agent
                self.save_checkpoint()
        if not state.history or state.history[-1]["step"] != state.total_steps:
            self.evaluate()

    def finish(self) -> None:
        """Final networks, summary marker, and a one-screen report of where everything went."""
        import torch

        atomic_write(self.paths.final_checkpoint,
                     lambda tmp: torch.save({"agent": self.agent.state_dict()}, tmp))
        self.paths.latest_checkpoint.unlink(missing_ok=True)  # holds the replay memory
        final = self.state.history[-1]
        summary = {"file_name": self.paths.file_name, "steps": self.state.total_steps,
                   "episodes": self.state.episodes, "wall_time_s": round(self.elapsed(), 3),
                   "final_eval": final}
        atomic_write_json(self.paths.summary_json, summary)
        self.writer.close()
        n = self.args.num_actors
        lines = [
            "",
            f"Finished {self.paths.file_name}: {self.state.total_steps} steps, "
            f"{self.state.episodes} episodes, {format_duration(self.elapsed())} wall time",
            *(f"  Actor {i}: deterministic {final[f'actor_{i}_deterministic']:.2f}, "
              f"stochastic {final[f'actor_{i}_stochastic']:.2f}" for i in range(n)),
            f"  TensorBoard:   {self.paths.tensorboard}  (tensorboard --logdir {self.args.log_dir})",
            f"  Metrics CSV:   {self.paths.metrics_csv}",
            f"  Eval returns:  {self.paths.actor_returns(0)} … actor_{n - 1}.npy",
            f"  Config:        {self.paths.config_json}",
            f"  Summary:       {self.paths.summary_json}",
            f"  Final weights: {self.paths.final_checkpoint}",
        ]
        print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    args, paths, env = parse_and_check(argv)
    if paths.summary_json.exists():
        print(f"{paths.file_name} already finished ({paths.summary_json}); nothing to do.")
        return
    trainer = Trainer(args, paths, env)
    atomic_write_json(paths.config_json, settings_of(args))
    print(("Resuming" if trainer.resumed else "Starting") + f" {paths.file_name} at step "
          f"{trainer.state.total_steps} on {trainer.device}", flush=True)
    try:
        with trainer.stop:
            trainer.train()
    except KeyboardInterrupt:
        trainer.writer.close()
        saved = trainer.paths.latest_checkpoint
        where = (f"--resume continues from {saved}" if saved.exists()
                 else "no checkpoint yet: --resume starts over")
        print(f"train_sac.py: interrupted at step {trainer.state.total_steps}; {where}",
              file=sys.stderr)
        raise SystemExit(130) from None
    trainer.finish()


if __name__ == "__main__":
    main()
