"""Train one POSAC experiment: CLI → env → loop (act, store, update) → evaluate → log → checkpoint.

    python train_sac.py --env-name HalfCheetah-v5 --num-actors 2 --w2-weights 0.0,0.1

Outputs: training/run_setup.py's layout, under the file_name POSAC_{env}_s{seed}_w{weights}.
Torch, Gymnasium and TensorBoard are imported only after the flags are parsed, so --help is instant.
"""

from __future__ import annotations

import argparse
import functools
import math
from typing import Any

from training import trainer
from training.run_setup import (OPTIMIZER_RANGES, POSITIVE, RunPaths, add_network_flags,
                                add_output_flags, add_threads_flag, check_ranges,
                                interruptible)
from training.tracking import add_tracking_flags, check_tracking
from training.trainer import MEMORY_OVERHEAD_BYTES, Task, Trainer, train_to_end
from utils import (OneLineErrorParser, UsageError, atomic_write, config_from_flags,
                   non_negative_int, parse_w2_weights, positive_int, run_name, stream_seed,
                   with_finite)

PROGRAM = "train_sac.py"
with interruptible(PROGRAM):  # Ctrl-C while these load: one line and exit 130, as later
    import numpy as np

    from training.evaluation import MODES, gaussian_policies, make_env
    from video.recording import add_video_flags

SWEEP_AXIS = "env_name"  # a sweep file's per-task entries are environments
SWEEP_SECTION = "environments"  # a sweep file's per-task section, and enabled_environments
ACTOR0_WEIGHT_ZERO = True  # actor 0 is plain SAC: one number w means 0.0,w,w,…


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
    add_network_flags(agent)
    agent.add_argument("--alpha", type=float, default=0.2, help="(initial) temperature α")
    agent.add_argument("--automatic-entropy-tuning", action=argparse.BooleanOptionalAction,
                       default=False, help="learn α towards entropy −dim(A) using actor 0")
    agent.add_argument("--q-normalize", action=argparse.BooleanOptionalAction, default=True,
                       help="scale actor i≥1's SAC term by λ_i (see --q-normalize-form)")
    agent.add_argument("--q-normalize-form", choices=("abs-mean", "mean-abs"), default="abs-mean",
                       help="λ_i = 1/|E[α·log π_i − min Q]| (abs-mean, the design's) or "
                            "1/E|α·log π_i − min Q| (mean-abs: bounded when the mean crosses 0)")
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
    agent.add_argument("--save-replay", action=argparse.BooleanOptionalAction, default=False,
                       help="at the end, keep every collected transition in "
                            "{checkpoint_dir}/{env}/{file_name}_replay.pt (for make_dataset.py)")
    agent.add_argument("--cuda", action=argparse.BooleanOptionalAction, default=False,
                       help="train on the GPU")
    add_threads_flag(agent)
    agent.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=False,
                       help="with --cuda: record the update, the acting step and the replay "
                            "writes as CUDA graphs and replay them (same results, several "
                            "times the speed; see cuda_graphs.py)")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--eval-freq", type=positive_int, default=10,
                            help="evaluate every this many training episodes")
    evaluation.add_argument("--eval-episodes", type=positive_int, default=10,
                            help="episodes per actor and mode (deterministic, stochastic)")
    add_video_flags(parser)
    add_output_flags(parser, "environment steps")
    add_tracking_flags(parser)
    return parser


def validate_args(args: argparse.Namespace) -> None:
    """Checks that need no environment; raises UsageError naming the problem and the fix."""
    check_tracking(args)
    if args.num_actors < 1:
        raise UsageError(f"--num-actors must be at least 1 (got {args.num_actors})")
    try:
        args.w2_weights = parse_w2_weights(args.w2_weights, args.num_actors, ACTOR0_WEIGHT_ZERO)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not 0 <= args.behavior_actor < args.num_actors:
        raise UsageError(f"--behavior-actor must be in 0..{args.num_actors - 1} "
                         f"(got {args.behavior_actor})")
    if args.batch_size > args.replay_size:
        raise UsageError(f"--batch-size {args.batch_size} exceeds --replay-size "
                         f"{args.replay_size}; lower the batch or enlarge the replay memory")
    check_ranges(args, {**OPTIMIZER_RANGES, "alpha": POSITIVE})
    if args.cuda_graphs and not args.cuda:
        raise UsageError("--cuda-graphs needs --cuda: add --cuda, or drop --cuda-graphs")




def run_paths(args: argparse.Namespace) -> RunPaths:
    return RunPaths.of(args, run_name("POSAC", args.env_name, args.seed, args.w2_weights),
                       group=args.env_name)


@functools.lru_cache(maxsize=None)
def environment_dims(env_name: str) -> tuple[int, int]:
    """(observation size, action size) of an environment, built once per process."""
    env = make_env(env_name)
    env.close()
    return env.observation_space.shape[0], env.action_space.shape[0]


def preflight(args: argparse.Namespace) -> int:
    """The start-up check a sweep repeats for each run (the environment builds; UsageError if
    not), and the run's peak resident memory in bytes: the replay memory (twice while a
    checkpoint loads) plus the process itself."""
    obs_dim, action_dim = environment_dims(args.env_name)
    return 2 * (args.replay_size + 1) * (4 * obs_dim + 4 * action_dim + 6) + MEMORY_OVERHEAD_BYTES


def open_task(args: argparse.Namespace) -> Task:
    """The training environment (UsageError if it cannot be built)."""
    return Task(env_id=args.env_name, env=make_env(args.env_name))


def parse_and_check(argv: list[str] | None) -> tuple[argparse.Namespace, RunPaths, Task]:
    """Flags, paths and environment, or one line and exit status 2."""
    return trainer.parse_and_check(PROGRAM, build_parser(), argv, validate_args, open_task,
                                   run_paths)


def evaluation_policies(agent: Any) -> list[Any]:
    """Every actor's evaluation policy (training/evaluation.gaussian_policies)."""
    return gaussian_policies(agent.actors)


def acting_input(obs_dim: int, device: Any) -> tuple[Any, Any]:
    """The behaviour actor's input on the device, which stays in place (a CUDA graph reads
    it), and its host staging tensor (pinned on a GPU, for an asynchronous copy)."""
    import torch

    return (torch.zeros(1, obs_dim, device=device),
            torch.zeros(1, obs_dim, pin_memory=device.type == "cuda"))


# --------------------------------------------------------------------------- training
class SACTrainer(Trainer):
    """POSAC online: the agent acts in the environment, stores transitions in the replay
    memory, and updates on its minibatches (training/trainer.py holds the rest)."""
    program = PROGRAM
    modes = MODES

    def build(self, task: Task) -> None:
        import torch

        from replay_memory import ReplayMemory
        from sac import POSAC, SACConfig

        args, self.env = self.args, task.env
        obs_dim = self.env.observation_space.shape[0]
        low = torch.as_tensor(self.env.action_space.low, dtype=torch.float32)
        high = torch.as_tensor(self.env.action_space.high, dtype=torch.float32)
        self.agent = POSAC(obs_dim, low, high, config_from_flags(SACConfig, args),
                           seed=args.seed, device=self.device)
        self.memory = ReplayMemory(args.replay_size, obs_dim, low.numel(),
                                   seed=stream_seed(args.seed, "data"), device=self.device)
        self.obs_input, self.obs_staging = acting_input(obs_dim, self.device)
        self.update_step, self.act = self.device_steps(args.cuda_graphs)
        # random actions and training episodes' reset seeds
        self.rng = np.random.default_rng(stream_seed(args.seed, "environment"))
        self.episodes = 0

    def device_steps(self, cuda_graphs: bool) -> tuple[Any, Any]:
        """The loop's device work as calls without arguments: one update on a fresh
        minibatch (returns the metrics and whether all are finite) and act (the behaviour
        actor's action at `obs_input`). With `cuda_graphs`, each of them and the replay
        memory's write are replayed as CUDA graphs (cuda_graphs.py)."""
        def sample() -> Any:
            return self.memory.sample(self.args.batch_size)

        def act() -> Any:
            return self.agent.act(self.obs_input, self.args.behavior_actor)

        if not cuda_graphs:
            return lambda: with_finite(self.agent.update(sample())), act
        from cuda_graphs import Graphed

        self.memory.write_staged = Graphed(self.memory.write_staged)
        return (self.agent.graphed_update(sample, self.memory.generator),
                Graphed(act, [self.agent.generator]))

    def policies(self) -> list[Any]:
        return evaluation_policies(self.agent)

    def checkpoint_parts(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "memory": self.memory.state_dict(),
                "loop": {"episodes": self.episodes, "rng": self.rng.bit_generator.state}}

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.agent.load_state_dict(checkpoint["agent"])
        self.memory.load_state_dict(checkpoint["memory"])
        self.episodes = checkpoint["loop"]["episodes"]
        self.rng.bit_generator.state = checkpoint["loop"]["rng"]

    def eval_counters(self) -> dict[str, float]:
        return {"episode": self.episodes}

    # -- the loop
    def random_action(self) -> np.ndarray:
        space = self.env.action_space
        return self.rng.uniform(space.low, space.high).astype(np.float32)

    def policy_action(self, obs: np.ndarray) -> np.ndarray:
        # The staging tensor is safe to refill next step: reading the action waits for the copy.
        self.obs_staging.numpy()[0] = obs
        self.obs_input.copy_(self.obs_staging, non_blocking=True)
        return self.act()[0].cpu().numpy()

    def check_transition(self, next_obs: np.ndarray, reward: float) -> None:
        """An environment can emit NaN: stop before it reaches the replay memory."""
        if not math.isfinite(reward):
            self.experiment.diverged({"reward": reward}, "from the environment")
        if not np.isfinite(next_obs).all():
            self.experiment.diverged({"observation": next_obs.tolist()}, "from the environment")

    def run_episode(self, last_return: float) -> tuple[float, bool]:
        """Play one training episode (or until the step budget runs out), updating as it goes.
        Returns the episode's return and whether it ended by termination or truncation."""
        args, state, memory = self.args, self.state, self.memory
        obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        episode_return, done = 0.0, False
        while not done and state.total_steps < args.num_steps:
            self.experiment.stop.check()
            action = (self.random_action() if state.total_steps < args.start_steps
                      else self.policy_action(obs))
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.check_transition(next_obs, reward)
            done = terminated or truncated
            memory.push(obs, action, float(reward), next_obs, terminated, done)
            obs = next_obs
            episode_return += float(reward)
            state.total_steps += 1
            if len(memory) >= args.batch_size and state.total_steps >= args.update_after:
                for _ in range(args.updates_per_step):
                    self.update()
            self.log_if_due(lambda: f"episode {self.episodes} | last return {last_return:.1f}")
        return episode_return, done

    def train(self) -> None:
        last_return = float("nan")
        while self.state.total_steps < self.args.num_steps:
            episode_return, completed = self.run_episode(last_return)
            if not completed:
                break
            self.episodes += 1
            last_return = episode_return
            self.experiment.add_scalar("train/episode_return", episode_return,
                                       self.state.total_steps)
            if self.episodes % self.args.eval_freq == 0:
                self.evaluate()
            self.checkpoint_if_due()
        self.final_evaluation()

    def algorithm(self) -> str:
        return "POSAC"

    def final_extras(self) -> dict[str, Any]:
        from offline.readers import d4rl_reference_scores

        return {"reference_scores": d4rl_reference_scores(self.task.env_id)}

    def summary(self) -> tuple[dict[str, Any], str]:
        return ({"episodes": self.episodes},
                f"{self.state.total_steps} steps, {self.episodes} episodes")

    def finish(self) -> None:
        if self.args.save_replay:
            import torch

            atomic_write(self.experiment.paths.replay_checkpoint,
                         lambda tmp: torch.save({"memory": self.memory.state_dict()}, tmp))
        super().finish()


@interruptible(PROGRAM)
def main(argv: list[str] | None = None) -> None:
    train_to_end(parse_and_check, argv, SACTrainer)


if __name__ == "__main__":
    main()
