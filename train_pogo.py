"""Train one POGO experiment offline: CLI → dataset → loop (sample, update) → evaluate → log.

    python train_pogo.py --dataset posac/halfcheetah/medium-v0 --num-actors 3 --w2-weights 10
    python train_pogo.py --dataset hopper_medium-v2.hdf5 --env-name Hopper-v5 --td3-bc

Outputs: training/run_setup.py's layout, under the file_name
POGO_{dataset}_s{seed}_w{weights}[_{distance}][_{data term}][_seed-units] (or TD3BC_…; the
default exact distance, point-wise data term and summed units add nothing); the metrics CSV
also holds each actor's normalised score (actor_{i}_deterministic_score) where the dataset has
reference scores, and each actor's spread (spread_{i}, training/evaluation.action_spread at
SPREAD_STATES fixed dataset states, SPREAD_DRAWS draws each). One step is one gradient update
(critic every step, actors every --policy-freq). Torch is imported only after the flags are
parsed.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Any

from training.run_setup import (OPTIMIZER_RANGES, POSITIVE, RunPaths, add_network_flags,
                                add_output_flags, add_threads_flag, check_ranges,
                                imports_held, interruptible)
from training.tracking import add_tracking_flags, check_tracking
from utils import (OneLineErrorParser, UsageError, dataset_task, flag_fields,
                   parse_w2_weights, positive_int, run_name, seed_int, stream_seed,
                   with_finite)

PROGRAM = "train_pogo.py"
with imports_held(PROGRAM):  # Ctrl-C while these load: one line and exit 130, as later
    from training import trainer
    from training.evaluation import (SPREAD_DRAWS, action_spread, noise_input_policies,
                                     spread_rows)
    from training.trainer import (MEMORY_OVERHEAD_BYTES, OfflineTrainer, Task,
                                  train_to_end)
    from video.recording import add_video_flags

SWEEP_AXIS = "dataset"  # a sweep file's per-task entries are datasets
SWEEP_SECTION = "datasets"  # a sweep file's per-task section, and enabled_datasets
ACTOR0_WEIGHT_ZERO = False  # actor 0 is pulled to the data: one number w means w,w,…
EVALUATION_MODES = ("deterministic",)
# the choices of --distance (transport.METHODS), --data-term (pogo.DATA_TERMS) and
# --weight-units, the default first; named here so that `--help` needs no torch
DISTANCES = ("exact", "sinkhorn", "unbiased")
DATA_TERMS = ("pointwise", "energy", "anchored")
WEIGHT_UNITS = ("sum", "seed")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROGRAM,
        description="Train POGO (a JKO chain of actors, offline) on one dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    data = parser.add_argument_group("data and budget")
    data.add_argument("--dataset", default=None,
                      help="a local Minari dataset id (e.g. mujoco/halfcheetah/medium-v0) or "
                           "a D4RL-format .hdf5 file")
    data.add_argument("--env-name", default=None,
                      help="Gymnasium id to evaluate on (needed for .hdf5 files; Minari "
                           "datasets name their own)")
    data.add_argument("--normalize-states", action=argparse.BooleanOptionalAction,
                      default=True, help="states (and evaluation observations) → (s − μ)/σ")
    data.add_argument("--normalize-rewards", action=argparse.BooleanOptionalAction,
                      default=False, help="r · 1000/(max − min episode return), CORL's rule")
    data.add_argument("--seed", type=seed_int, default=0, help="seed for everything random")
    data.add_argument("--num-steps", type=positive_int, default=1_000_000,
                      help="gradient steps to train for")
    agent = parser.add_argument_group("agent")
    agent.add_argument("--num-actors", type=positive_int, default=1, help="actors in the chain")
    agent.add_argument("--w2-weights", default=None,
                       help="w_0 (actor 0's pull to the data) … w_{N-1}, e.g. 10,10,10, or one "
                            "w for every actor (default 1.0), in --weight-units")
    agent.add_argument("--weight-units", choices=WEIGHT_UNITS, default=WEIGHT_UNITS[0],
                       help="sum: each w multiplies its term with ‖x − y‖² summed over action "
                            "dimensions; seed: the design seed's units, where w_0 multiplies "
                            "the mean over action dimensions (w_0/dim(A) in sum units) and "
                            "w_i≥1 geomloss's ½‖x − y‖² (w_i/2), so the seed's 10,10,10 "
                            "gives the seed's balance (with --data-term energy or anchored, "
                            "w_0/dim(A) is a convention: docs/offline.md)")
    agent.add_argument("--td3-bc", action=argparse.BooleanOptionalAction, default=False,
                       help="TD3+BC: one deterministic actor, Q term normalised with 2.5/E|Q|, "
                            "and --w2-weights w weighs a behaviour-cloning term averaged over "
                            "action dimensions (w_0 = w/dim(A); TD3+BC's is w = 1)")
    agent.add_argument("--deterministic-actors", action=argparse.BooleanOptionalAction,
                       default=False, help="π(s) instead of the noise-input π(s, z)")
    agent.add_argument("--distance", choices=DISTANCES, default=DISTANCES[0],
                       help="the chain's W2² between the samples of consecutive actors: exact "
                            "or sinkhorn (the seed's) on K samples, both biased towards a "
                            "narrower actor; unbiased: exact on two independent K-sample sets "
                            "per side, W2²(a, b) − ½W2²(a, a′) − ½W2²(b, b′)")
    agent.add_argument("--data-term", choices=DATA_TERMS, default=DATA_TERMS[0],
                       help="actor 0's pull to the data action a: pointwise E‖π0 − a‖² (the "
                            "seed's; collapses actor 0 to the data's conditional mean); "
                            "energy, the energy score E‖π0 − a‖ − ½E‖π0 − π0′‖ on K samples, "
                            "which keeps the behaviour policy's spread with a bounded pull; "
                            "anchored, ‖E π0 − a‖² plus the energy score (a growing pull on "
                            "the mean)")
    agent.add_argument("--num-samples", type=positive_int, default=4,
                       help="K samples per state for the distance (stochastic actors)")
    agent.add_argument("--sinkhorn-blur", type=float, default=0.05, help="geomloss blur")
    agent.add_argument("--q-normalize", type=float, default=None,
                       help="divide each actor's Q term by E|Q| (detached), times this factor")
    add_network_flags(agent)
    agent.add_argument("--policy-noise", type=float, default=0.2,
                       help="TD3 target smoothing σ (times max_action)")
    agent.add_argument("--noise-clip", type=float, default=0.5,
                       help="TD3 target smoothing clip c (times max_action)")
    agent.add_argument("--policy-freq", type=positive_int, default=2,
                       help="critic updates per actor update")
    agent.add_argument("--batch-size", type=positive_int, default=256, help="minibatch size")
    agent.add_argument("--cuda", action=argparse.BooleanOptionalAction, default=False,
                       help="train on the GPU")
    add_threads_flag(agent)
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--eval-freq", type=positive_int, default=5000,
                            help="evaluate every this many gradient steps (and at the end)")
    evaluation.add_argument("--eval-episodes", type=positive_int, default=10,
                            help="deterministic episodes per actor")
    add_video_flags(parser)
    add_output_flags(parser, "gradient steps")
    add_tracking_flags(parser)
    return parser


def validate_args(args: argparse.Namespace) -> None:
    """Checks that need no dataset; raises UsageError naming the problem and the fix."""
    check_tracking(args)
    if args.dataset is None:
        raise UsageError("--dataset is required: a local Minari dataset id or a .hdf5 file")
    if args.td3_bc:
        if args.num_actors != 1 or args.q_normalize is not None or args.deterministic_actors:
            raise UsageError("--td3-bc sets one deterministic actor and the Q normalisation "
                             "itself; drop --num-actors, --q-normalize, --deterministic-actors")
        if args.weight_units != "sum" or args.data_term != "pointwise":
            raise UsageError("--td3-bc's weight is TD3+BC's own (its BC term is averaged over "
                             "action dimensions); drop --weight-units and --data-term")
    try:
        args.w2_weights = parse_w2_weights(args.w2_weights or "1.0", args.num_actors,
                                           ACTOR0_WEIGHT_ZERO)
    except ValueError as error:
        raise UsageError(str(error)) from None
    check_ranges(args, {**OPTIMIZER_RANGES, "sinkhorn_blur": POSITIVE,
                        "policy_noise": (lambda v: v >= 0, "non-negative"),
                        "noise_clip": (lambda v: v >= 0, "non-negative")})
    if args.q_normalize is not None:
        check_ranges(args, {"q_normalize": POSITIVE})


def run_paths(args: argparse.Namespace) -> RunPaths:
    """POGO_{dataset}_s{seed}_w{weights}, then one suffix per setting off its default
    (_sinkhorn or _unbiased, _energy or _anchored, _seed-units), so runs that differ only there
    never share a folder (TD3BC_… with --td3-bc); checkpoints are grouped by dataset."""
    task = dataset_task(args.dataset)
    name = run_name("TD3BC" if args.td3_bc else "POGO", task, args.seed, args.w2_weights)
    suffixes = [args.distance if args.distance != "exact" else "",
                args.data_term if args.data_term != "pointwise" else "",
                "seed-units" if args.weight_units == "seed" else ""]
    name += "".join(f"_{suffix}" for suffix in suffixes if suffix)
    return RunPaths.of(args, name, group=task.replace("/", "-"))


def summed_weights(args: argparse.Namespace, action_dim: int) -> tuple[float, ...]:
    """--w2-weights in the agent's summed ‖x − y‖² units: the seed's w_0 (per action
    dimension) over dim(A), its chain weights (geomloss's ½‖x − y‖²) over 2."""
    if args.weight_units == "sum":
        return tuple(args.w2_weights)
    return (args.w2_weights[0] / action_dim, *(w / 2 for w in args.w2_weights[1:]))


@functools.lru_cache(maxsize=None)
def load_checked(dataset: str, env_name: str | None) -> tuple[Any, Any]:
    """The dataset and its evaluation environment, checked against each other (UsageError)."""
    from offline.data import DatasetError, open_dataset

    try:
        data, env = open_dataset(dataset, env_name)
    except DatasetError as error:
        raise UsageError(str(error)) from None
    low, high = env.action_space.low, env.action_space.high
    if not ((low == -high).all() and (high == high[0]).all()):
        raise UsageError(f"{data.env_id}'s actions lie in [{low}, {high}]; POGO's actors "
                         f"need a symmetric box [−m, m] with one m for every dimension")
    return data, env


def check_reward_scale(args: argparse.Namespace, data: Any) -> None:
    """With --normalize-rewards, the dataset must have a reward scale (UsageError if not)."""
    from offline.data import DatasetError

    if args.normalize_rewards:
        try:
            data.reward_scale()
        except DatasetError as error:
            raise UsageError(f"--normalize-rewards: {error}") from None


def agent_config(args: argparse.Namespace, action_dim: int) -> Any:
    """POGOConfig from the flags by field name (UsageError for a combination it refuses);
    with --td3-bc, TD3+BC's, whose BC weight is --w2-weights' w."""
    from pogo import POGOConfig

    try:
        if args.td3_bc:
            return POGOConfig.td3_bc(action_dim, args.w2_weights[0],
                                     **flag_fields(POGOConfig, args))
        return POGOConfig(**{**flag_fields(POGOConfig, args),
                             "w2_weights": summed_weights(args, action_dim)})
    except ValueError as error:
        raise UsageError(f"{error}") from None


def preflight(args: argparse.Namespace) -> int:
    """The start-up checks a sweep repeats for each run (dataset, environment, agent
    settings; UsageError if not), and the run's peak resident memory in bytes: the
    dataset on the host and on the device, plus the process."""
    data, env = load_checked(args.dataset, args.env_name)
    check_reward_scale(args, data)
    agent_config(args, data.action_dim)
    floats = 2 * data.obs_dim + data.action_dim + 2
    return 2 * len(data) * 4 * floats + MEMORY_OVERHEAD_BYTES


def open_task(args: argparse.Namespace, paths: RunPaths) -> Task:
    """The dataset and the environment it is evaluated on, checked against each other and
    against the agent's settings (UsageError); a POGO run reads nothing of its own `paths`
    here."""
    data, env = load_checked(args.dataset, args.env_name)
    check_reward_scale(args, data)
    warning = agent_config(args, data.action_dim).cost_warning()
    if warning is not None:
        print(f"{PROGRAM}: warning: {warning}", file=sys.stderr, flush=True)
    return Task(env_id=data.env_id, env=env, env_kwargs=data.env_kwargs, data=data)


def parse_and_check(argv: list[str] | None) -> tuple[argparse.Namespace, RunPaths, Task]:
    """Flags, paths, dataset and environment, or one line and exit status 2."""
    return trainer.parse_and_check(PROGRAM, build_parser(), argv, validate_args, open_task,
                                   run_paths)


def evaluation_policies(agent: Any, obs_mean: Any, obs_std: Any) -> list[Any]:
    """Every actor's evaluation policy on normalised observations
    (training/evaluation.noise_input_policies); training evaluates at z = 0."""
    return noise_input_policies(agent.actors, obs_mean, obs_std)


# --------------------------------------------------------------------------- training
class POGOTrainer(OfflineTrainer):
    """POGO offline: one gradient update per step on the dataset's minibatches, evaluated
    in its environment (training/trainer.py holds the rest)."""
    program = PROGRAM
    modes = EVALUATION_MODES

    def build(self, task: Task) -> None:
        import torch

        from offline.data import OfflineSampler
        from offline.readers import metadata_summary
        from pogo import POGO

        args, self.data = self.args, task.data
        self.sampler = OfflineSampler(self.data, stream_seed(args.seed, "data"), self.device,
                                      args.normalize_states, args.normalize_rewards)
        self.agent = POGO(self.data.obs_dim, self.data.action_dim,
                          float(task.env.action_space.high[0]),
                          agent_config(args, self.data.action_dim), seed=args.seed,
                          device=self.device)
        self.update_step = lambda: with_finite(
            self.agent.update(self.sampler.sample(args.batch_size)))
        if self.data.has_reference_scores:
            self.scores = self.data.normalized_score
        self.spread_states = torch.as_tensor(self.data.obs[spread_rows(len(self.data), args.seed)],
                                             device=self.device)
        # the behaviour policy's spread, for scale, where make_dataset.py measured it
        self.behaviour_spread = metadata_summary(args.dataset, "behaviour_spread")

    def eval_measures(self) -> dict[str, float]:
        """spread_i: each actor's spread (training/evaluation.action_spread) at the run's
        fixed dataset states, with the same noise at every evaluation (a fresh generator
        from the run's seed: nothing to checkpoint, and the training streams never move);
        and spread_behaviour, the data's behaviour policy's (the dataset's record), for
        scale."""
        import torch

        generator = torch.Generator(self.device).manual_seed(
            stream_seed(self.args.seed, "spread"))
        spreads = {f"spread_{i}": action_spread(policy, self.spread_states,
                                                self.data.action_dim, SPREAD_DRAWS, generator)
                   for i, policy in enumerate(self.policies())}
        if self.behaviour_spread is not None:
            spreads["spread_behaviour"] = self.behaviour_spread
        return spreads

    def policies(self) -> list[Any]:
        return evaluation_policies(self.agent, self.sampler.obs_mean, self.sampler.obs_std)

    def algorithm(self) -> str:
        return "TD3BC" if self.args.td3_bc else "POGO"

    def final_extras(self) -> dict[str, Any]:
        data = self.data
        return {"obs_mean": self.sampler.obs_mean.cpu(), "obs_std": self.sampler.obs_std.cpu(),
                "reference_scores": ([data.ref_min_score, data.ref_max_score]
                                     if data.has_reference_scores else None)}

    def summary(self) -> tuple[dict[str, Any], str]:
        return ({"dataset": self.args.dataset, "env_id": self.data.env_id},
                f"{self.state.total_steps} steps")


@interruptible(PROGRAM)
def main(argv: list[str] | None = None) -> None:
    train_to_end(PROGRAM, parse_and_check, argv, POGOTrainer)


if __name__ == "__main__":
    main()
