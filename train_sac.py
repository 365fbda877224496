"""Train one POSAC experiment: CLI → env → loop (act, store, update) → evaluate → log → checkpoint.

    python train_sac.py --env-name HalfCheetah-v5 --num-actors 2 --w2-weights 0.0,0.1

Offline, then online (docs/offline_to_online.md):

    python train_sac.py --env-name Hopper-v5 --dataset posac/hopper/medium-replay-v1 \
        --data-weight 1 --num-steps 100000
    python train_sac.py --env-name Hopper-v5 --init-from results/POSAC_posac-hopper-…_data1 \
        --offline-data posac/hopper/medium-replay-v1 --num-steps 100000

Outputs: training/run_setup.py's layout, under the file_name POSAC_{env}_s{seed}_w{weights}
(offline: POSAC_{dataset}_s{seed}_w{weights}_data{w_D}; online, suffixes _from-{the offline
run's name without POSAC_} and _mix{ratio}-{dataset}). The offline flags, their checks and
the task they open are in offline/to_online.py. Torch, Gymnasium and TensorBoard are imported
only after the flags are parsed, so --help is instant.
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path
from typing import Any

from training.run_setup import (NON_NEGATIVE, OPTIMIZER_RANGES, POSITIVE, RunPaths,
                                add_network_flags, add_output_flags, add_threads_flag,
                                check_ranges, imports_held, interruptible)
from training.tracking import add_tracking_flags, check_tracking
from utils import (OneLineErrorParser, UsageError, atomic_write, config_from_flags,
                   dataset_task, flag_fields, non_negative_int, parse_w2_weights, positive_int,
                   run_name, seed_int, stream_seed, with_finite)

PROGRAM = "train_sac.py"
with imports_held(PROGRAM):  # Ctrl-C while these load: one line and exit 130, as later
    import numpy as np

    from offline.to_online import (add_offline_flags, check_offline_flags, init_summary,
                                   open_task, raw_sampler, warn_other_evaluation,
                                   write_init_link)
    from training import trainer
    from training.evaluation import MODES, gaussian_policies, make_env
    from training.trainer import (MEMORY_OVERHEAD_BYTES, OfflineTrainer, Task, Trainer,
                                  train_to_end)
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
    env.add_argument("--seed", type=seed_int, default=123456, help="seed for everything random")
    env.add_argument("--num-steps", type=positive_int, default=1_000_000,
                     help="environment steps to train for")
    env.add_argument("--start-steps", type=non_negative_int, default=None,
                     help="uniform random actions before the behaviour actor takes over "
                          "(default 10000; 0 with --init-from)")
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
    agent.add_argument("--alpha", type=float, default=None,
                       help="(initial) temperature α (default 0.2; with --init-from, the "
                            "run's α, which a given --alpha replaces)")
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
    evaluation.add_argument("--eval-freq", type=positive_int, default=None,
                            help="evaluate every this many training episodes (default 10), or "
                                 "with --dataset gradient steps (default 5000)")
    evaluation.add_argument("--eval-episodes", type=positive_int, default=10,
                            help="episodes per actor and mode (deterministic, stochastic)")
    add_offline_flags(parser)
    add_video_flags(parser)
    add_output_flags(parser, "environment steps (gradient steps with --dataset)")
    add_tracking_flags(parser)
    return parser


def validate_args(args: argparse.Namespace) -> None:
    """Checks that need no environment; raises UsageError naming the problem and the fix."""
    check_tracking(args)
    check_offline_flags(args)
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
    check_ranges(args, {**OPTIMIZER_RANGES, "alpha": POSITIVE, "data_weight": NON_NEGATIVE})
    if args.cuda_graphs and not args.cuda:
        raise UsageError("--cuda-graphs needs --cuda: add --cuda, or drop --cuda-graphs")


def run_paths(args: argparse.Namespace) -> RunPaths:
    """POSAC_{env}_s{seed}_w{weights}; offline POSAC_{dataset}_…_data{w_D}, grouped by the
    dataset; a run started --init-from adds _from-{that run's name without POSAC_}, and one
    with --offline-data _mix{ratio}-{dataset}."""
    if args.dataset is not None:
        task = dataset_task(args.dataset)
        name = run_name("POSAC", task, args.seed, args.w2_weights) + f"_data{args.data_weight:g}"
        return RunPaths.of(args, name, group=task.replace("/", "-"))
    name = run_name("POSAC", args.env_name, args.seed, args.w2_weights)
    if args.init_from is not None:  # results/{file_name} or {file_name}_final.pt
        init_name = Path(args.init_from).name.removesuffix("_final.pt")
        name += "_from-" + init_name.removeprefix("POSAC_")
    if args.offline_data is not None:
        task = dataset_task(args.offline_data).replace("/", "-")
        name += f"_mix{args.offline_ratio:g}-{task}"
    return RunPaths.of(args, name, group=args.env_name)


@functools.lru_cache(maxsize=None)
def environment_dims(env_name: str) -> tuple[int, int]:
    """(observation size, action size) of an environment, built once per process."""
    env = make_env(env_name)
    env.close()
    return env.observation_space.shape[0], env.action_space.shape[0]


def preflight(args: argparse.Namespace) -> int:
    """The start-up check a sweep repeats for each run (the environment builds, and the
    dataset or run it reads fits it; UsageError if not), and the run's peak resident memory
    in bytes: the replay memory (twice while a checkpoint loads) plus the process itself."""
    obs_dim, action_dim = environment_dims(args.env_name)
    if args.dataset or args.init_from or args.offline_data:
        open_task(args, run_paths(args))  # the files it reads, checked against the env
    return 2 * (args.replay_size + 1) * (4 * obs_dim + 4 * action_dim + 6) + MEMORY_OVERHEAD_BYTES


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

    def __init__(self, args: argparse.Namespace, paths: RunPaths, task: Task):
        super().__init__(args, paths, task)
        if task.init is not None:  # after config.json, the first file a run writes
            write_init_link(task.init_link, paths.results)

    def build(self, task: Task) -> None:
        import torch

        from replay_memory import ReplayMemory
        from sac import POSAC, SACConfig

        args, self.env = self.args, task.env
        obs_dim = self.env.observation_space.shape[0]
        low = torch.as_tensor(self.env.action_space.low, dtype=torch.float32)
        high = torch.as_tensor(self.env.action_space.high, dtype=torch.float32)
        fields = flag_fields(SACConfig, args)
        if args.alpha is None:  # --init-from without --alpha: α continues from the run's
            fields["alpha"] = task.init_link["alpha"]
        self.agent = POSAC(obs_dim, low, high, SACConfig(**fields), seed=args.seed,
                           device=self.device)
        if task.init is not None:  # resuming replaces it with the run's own checkpoint
            warn_other_evaluation(task.init, args)
            # an offline run's actor 0 had a data term and λ_0: online its loss is another
            self.agent.load_trained(
                task.init["agent"],
                fresh_actor0_optimizer=task.init["settings"].get("data_weight", 0.0) > 0)
            if args.alpha is not None:  # a given --alpha restarts α there
                self.agent.log_alpha.data.fill_(math.log(args.alpha))
        self.memory = ReplayMemory(args.replay_size, obs_dim, low.numel(),
                                   seed=stream_seed(args.seed, "data"), device=self.device)
        self.offline = None if task.data is None else raw_sampler(
            task.data, stream_seed(args.seed, "offline_data"), self.device)
        # RLPD's symmetric sampling: this many of every minibatch come from the dataset
        self.offline_batch = round(args.offline_ratio * args.batch_size)
        self.obs_input, self.obs_staging = acting_input(obs_dim, self.device)
        self.update_step, self.act = self.device_steps(args.cuda_graphs)
        # random actions and training episodes' reset seeds
        self.rng = np.random.default_rng(stream_seed(args.seed, "environment"))
        self.episodes, self.last_return = 0, float("nan")  # nan: no episode finished yet

    def device_steps(self, cuda_graphs: bool) -> tuple[Any, Any]:
        """The loop's device work as calls without arguments: one update on a fresh
        minibatch (returns the metrics and whether all are finite) and act (the behaviour
        actor's action at `obs_input`). With `cuda_graphs`, each of them and the replay
        memory's write are replayed as CUDA graphs (cuda_graphs.py)."""
        def act() -> Any:
            return self.agent.act(self.obs_input, self.args.behavior_actor)

        sample = self.sample
        if not cuda_graphs:
            return lambda: with_finite(self.agent.update(sample())), act
        from cuda_graphs import Graphed

        self.memory.write_staged = Graphed(self.memory.write_staged)
        return (self.agent.graphed_update(sample, self.memory.generator),
                Graphed(act, [self.agent.generator]))

    def sample(self) -> Any:
        """A minibatch from the replay memory, or with --offline-data its first
        offline_batch transitions from the dataset and the rest from the replay memory."""
        if self.offline is None:
            return self.memory.sample(self.args.batch_size)
        return self.offline.sample(self.offline_batch).cat(
            self.memory.sample(self.args.batch_size - self.offline_batch))

    def policies(self) -> list[Any]:
        return evaluation_policies(self.agent)

    def checkpoint_parts(self) -> dict[str, Any]:
        parts = {"agent": self.agent.state_dict(), "memory": self.memory.state_dict(),
                 "loop": {"episodes": self.episodes, "last_return": self.last_return,
                          "rng": self.rng.bit_generator.state}}
        if self.offline is not None:
            parts["offline_data"] = self.offline.state_dict()
        return parts

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.agent.load_state_dict(checkpoint["agent"])
        self.memory.load_state_dict(checkpoint["memory"])
        self.episodes = checkpoint["loop"]["episodes"]
        self.last_return = checkpoint["loop"].get("last_return", float("nan"))  # older: none
        self.rng.bit_generator.state = checkpoint["loop"]["rng"]
        if self.offline is not None:
            self.offline.load_state_dict(checkpoint["offline_data"])

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

    def run_episode(self) -> tuple[float, bool]:
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
            self.log_if_due(lambda: f"episode {self.episodes} | last return "
                                    f"{self.last_return:.1f}")
        return episode_return, done

    def train(self) -> None:
        if not self.state.history:
            # the starting actors, before any step, so that every learning curve (and its
            # area) starts at step 0; with --init-from this is the switch
            self.evaluate()
        while self.state.total_steps < self.args.num_steps:
            episode_return, completed = self.run_episode()
            if not completed:
                break
            self.episodes += 1
            self.last_return = episode_return
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
        return ({"episodes": self.episodes, **init_summary(self.task)},
                f"{self.state.total_steps} steps, {self.episodes} episodes")

    def finish(self) -> None:
        if self.args.save_replay:
            import torch

            atomic_write(self.experiment.paths.replay_checkpoint,
                         lambda tmp: torch.save({"memory": self.memory.state_dict()}, tmp))
        super().finish()


class OfflineSACTrainer(OfflineTrainer):
    """POSAC offline (--dataset): one gradient update per step on the dataset's minibatches,
    actor 0 pulled to the data by --data-weight, evaluated in the dataset's environment every
    --eval-freq steps (training/trainer.py holds the rest)."""
    program = PROGRAM
    modes = MODES

    def build(self, task: Task) -> None:
        import torch

        from sac import POSAC, SACConfig

        args, self.data, space = self.args, task.data, task.env.action_space
        self.agent = POSAC(self.data.obs_dim, torch.as_tensor(space.low, dtype=torch.float32),
                           torch.as_tensor(space.high, dtype=torch.float32),
                           config_from_flags(SACConfig, args), seed=args.seed,
                           device=self.device)
        self.sampler = raw_sampler(self.data, stream_seed(args.seed, "data"), self.device)
        self.update_step = lambda: with_finite(
            self.agent.update(self.sampler.sample(args.batch_size)))
        if self.data.has_reference_scores:
            self.scores = self.data.normalized_score

    def policies(self) -> list[Any]:
        return evaluation_policies(self.agent)

    def algorithm(self) -> str:
        return "POSAC"

    def final_extras(self) -> dict[str, Any]:
        data = self.data
        return {"reference_scores": ([data.ref_min_score, data.ref_max_score]
                                     if data.has_reference_scores else None)}

    def summary(self) -> tuple[dict[str, Any], str]:
        return ({"dataset": self.args.dataset, "env_id": self.data.env_id},
                f"{self.state.total_steps} gradient steps")


def trainer_for(args: argparse.Namespace, paths: RunPaths, task: Task) -> Trainer:
    """The online trainer, or the offline one with --dataset."""
    return (SACTrainer if args.dataset is None else OfflineSACTrainer)(args, paths, task)


@interruptible(PROGRAM)
def main(argv: list[str] | None = None) -> None:
    train_to_end(PROGRAM, parse_and_check, argv, trainer_for)


if __name__ == "__main__":
    main()
