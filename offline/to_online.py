"""train_sac.py across the offline-online boundary: what a POSAC run trains on and starts
from besides the environment (docs/offline_to_online.md).

- `--dataset`: train offline on a fixed dataset, actor 0 pulled to the data (`--data-weight`);
- `--init-from`: start online from a finished run's self-contained final checkpoint (actors,
  critic, targets, optimisers, α, and its environment's settings);
- `--offline-data`: draw `--offline-ratio` of every online minibatch from a dataset (RLPD's
  symmetric sampling).

Here: those flags, their checks (UsageError, one line naming the problem and the fix), the
task they open (the environment with the dataset or the run, checked against it), and the
dataset's minibatches as POSAC sees the environment's. The trainers stay in train_sac.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from training.evaluation import make_env
from training.final_checkpoint import check_spaces, read_final_checkpoint, resolve_run
from training.run_setup import RunPaths
from training.trainer import Task
from utils import UsageError, atomic_write_json

INIT_LINK = "init_from.json"  # in a continued run's results folder: what it started from
SUMMARY_KEYS = ("final_checkpoint", "steps", "program", "settings")  # summary.json's init_from
LINK_KEYS = SUMMARY_KEYS + ("env_kwargs", "alpha")  # and what a resume needs to rebuild it


def add_offline_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of this module's three ways in; check_offline_flags checks them."""
    offline = parser.add_argument_group("offline data and pretrained runs")
    offline.add_argument("--dataset", default=None,
                         help="train offline on this dataset (a local Minari id, or a D4RL "
                              ".hdf5 file collected on --env-name): --num-steps counts gradient "
                              "steps, nothing is collected, observations and rewards stay raw")
    offline.add_argument("--data-weight", type=float, default=0.0,
                         help="with --dataset: w_D, actor 0's pull to the data action a_D by "
                              "its log score, w_D·E[−log π0(a_D|s)] (its SAC term is then "
                              "normalised like the chain's)")
    offline.add_argument("--init-from", default=None,
                         help="start from a finished POSAC run (its results directory or "
                              "_final.pt): its actors, critic, targets, optimiser states and "
                              "α, and its environment's settings")
    offline.add_argument("--offline-data", default=None,
                         help="online: draw a share of every minibatch from this dataset "
                              "(RLPD's symmetric sampling), the rest from the replay memory")
    offline.add_argument("--offline-ratio", type=float, default=0.5,
                         help="with --offline-data: the dataset's share of every minibatch")


def check_offline_flags(args: argparse.Namespace) -> None:
    """The offline flags' combinations; fills the defaults that depend on them."""
    if args.dataset is not None:
        for flag, value in (("--init-from", args.init_from), ("--offline-data", args.offline_data),
                            ("--save-replay", args.save_replay or None),
                            ("--cuda-graphs", args.cuda_graphs or None)):
            if value is not None:
                raise UsageError(f"{flag} does not go with --dataset (offline training); "
                                 f"drop one of them")
        if args.automatic_entropy_tuning:
            # the data term holds actor 0 at the data's entropy, far above −dim(A), so a
            # learned α would fall without bound (0.2 → 0.01 in 10k steps on hopper
            # medium-replay) and start the online phase near 0
            raise UsageError("--automatic-entropy-tuning does not go with --dataset: the data "
                             "term sets actor 0's entropy offline; drop it (α stays --alpha) "
                             "and turn it on for the online run")
    elif args.data_weight != 0.0:
        raise UsageError("--data-weight pulls actor 0 to a dataset's actions: add --dataset, "
                         "or drop --data-weight")
    if not 0.0 < args.offline_ratio < 1.0:
        raise UsageError(f"--offline-ratio must lie in (0, 1) (got {args.offline_ratio}); "
                         f"RLPD's symmetric sampling is 0.5")
    if (args.offline_data is not None
            and not 0 < round(args.offline_ratio * args.batch_size) < args.batch_size):
        raise UsageError(f"--offline-ratio {args.offline_ratio} of --batch-size "
                         f"{args.batch_size} leaves the dataset or the replay memory no row; "
                         f"move the ratio towards 0.5 or enlarge the batch")
    if args.offline_data is not None and args.cuda_graphs:
        raise UsageError("--cuda-graphs does not record --offline-data's sampling; drop one")
    if args.eval_freq is None:
        args.eval_freq = 10 if args.dataset is None else 5000
    if args.start_steps is None:
        args.start_steps = 10_000 if args.init_from is None else 0
    if args.alpha is None and args.init_from is None:
        args.alpha = 0.2  # with --init-from, None: the run's α (SACTrainer.build)


def open_dataset_for(spec: str, env_name: str) -> tuple[Any, Any]:
    """A dataset and its environment, which must be `env_name` (UsageError if not)."""
    from offline.data import DatasetError, open_dataset

    try:
        data, env = open_dataset(spec, env_name if Path(spec).suffix in (".hdf5", ".h5")
                                 else None)
    except DatasetError as error:
        raise UsageError(str(error)) from None
    if data.env_id != env_name:
        raise UsageError(f"{spec} was collected on {data.env_id}, not on --env-name "
                         f"{env_name}; give --env-name {data.env_id}")
    return data, env


def check_init(checkpoint: dict[str, Any], args: argparse.Namespace) -> None:
    """UsageError unless the --init-from run's agent can continue as this run's (its spaces
    are checked once the environment is built)."""
    algorithm, source = checkpoint["algorithm"], args.init_from
    if algorithm != "POSAC":
        raise UsageError(f"{source} is a {algorithm} run: its noise-input or deterministic "
                         f"actors have no log-density for SAC's loss; start from a POSAC run "
                         f"(train_sac.py, offline with --dataset)")
    if checkpoint["env_id"] != args.env_name:
        raise UsageError(f"{source} was trained on {checkpoint['env_id']}, not on --env-name "
                         f"{args.env_name}; give --env-name {checkpoint['env_id']}")
    config = checkpoint["agent_config"]
    for flag, trained, asked in (("--num-actors", config["num_actors"], args.num_actors),
                                 ("--hidden-size", config["hidden_size"], args.hidden_size)):
        if trained != asked:
            raise UsageError(f"{source} has {flag} {trained}, this run {asked}; give "
                             f"{flag} {trained}")


def warn_other_evaluation(checkpoint: dict[str, Any], args: argparse.Namespace) -> None:
    """One warning line (at start-up, once every check has passed) when this run's seed or
    episode count are not the --init-from run's: its step-0 evaluation then differs from
    that run's last, and reports.finetune pools only runs continued with their offline
    run's seed."""
    trained = checkpoint["settings"]
    other = [f"{flag} {theirs}" for flag, theirs, ours in (
        ("--seed", checkpoint["seed"], args.seed),
        ("--eval-episodes", trained.get("eval_episodes", args.eval_episodes),
         args.eval_episodes)) if theirs != ours]
    if other:
        print(f"train_sac.py: warning: {args.init_from} was evaluated with "
              f"{', '.join(other)}; this run's evaluation at step 0 will not repeat its last "
              f"one, and reports.finetune takes continued runs only with their offline "
              f"run's seed", file=sys.stderr, flush=True)


def init_link(checkpoint: dict[str, Any], path: Path) -> dict[str, Any]:
    """What a continued run keeps of the run it starts from (LINK_KEYS): summary.json's
    link (the final checkpoint's path as found at start-up, its steps, program and
    settings), and the environment settings and α that a resume needs to rebuild the run
    without it."""
    return {"final_checkpoint": str(path), "steps": checkpoint["steps"],
            "program": checkpoint["program"], "settings": checkpoint["settings"],
            "env_kwargs": checkpoint["env_kwargs"],
            "alpha": math.exp(float(checkpoint["agent"]["log_alpha"]))}  # the α it ended with


def write_init_link(link: dict[str, Any], results: Path) -> None:
    """Keep the link in the run's results folder (INIT_LINK) when the run starts from the
    other run's final checkpoint, so that a resume does not need that run again."""
    atomic_write_json(results / INIT_LINK, link)


def resumed_link(args: argparse.Namespace, paths: RunPaths) -> dict[str, Any] | None:
    """The link a run being resumed kept when it started (write_init_link): it continues
    from its own checkpoint, so the run it started from may have moved or been made again
    since. None when there is no checkpoint to resume from, or the run kept no link (code
    older than it): the run is then read again. UsageError for an unreadable link."""
    file = paths.results / INIT_LINK
    if not (paths.resumes(args.resume) and file.is_file()):
        return None
    try:
        link = json.loads(file.read_text())
        missing = [key for key in LINK_KEYS if key not in link]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
    except (OSError, TypeError, ValueError) as error:
        raise UsageError(f"cannot read {file} ({error}), which links this run to the one it "
                         f"started from; restore it, or delete it to read --init-from "
                         f"{args.init_from} again") from None
    return link


def open_task(args: argparse.Namespace, paths: RunPaths) -> Task:
    """The training environment, and the dataset (--dataset, --offline-data) or the run to
    start from (--init-from), checked against it (UsageError). Offline, the environment is
    the dataset's; online, --env-name built with the settings (kwargs) of the run it starts
    from, else of the --offline-data dataset, so that the step-0 evaluation of a continued
    run is the offline run's last one and the data come from the environment trained on.
    A continued run being resumed reads its link (resumed_link), not that run."""
    if args.dataset is not None:
        data, env = open_dataset_for(args.dataset, args.env_name)
        return Task(env_id=data.env_id, env=env, env_kwargs=data.env_kwargs, data=data)
    init = data = link = None
    if args.init_from is not None:
        link = resumed_link(args, paths)
        if link is None:
            init_path = resolve_run(Path(args.init_from))[0]
            init = read_final_checkpoint(init_path)
            check_init(init, args)
            link = init_link(init, init_path.resolve())
    if args.offline_data is not None:
        data = open_dataset_for(args.offline_data, args.env_name)[0]
    env_kwargs = dict(link["env_kwargs"] if link else data.env_kwargs if data else {})
    if link and data and data.env_kwargs != env_kwargs:
        raise UsageError(f"{args.offline_data} was collected on {args.env_name} with "
                         f"{data.env_kwargs}, {args.init_from} trained on it with {env_kwargs}; "
                         f"give an --offline-data dataset of the run's environment")
    env = make_env(args.env_name, **env_kwargs)
    if init:
        check_spaces(init, env, args.env_name,  # same id and settings: another version
                     "the environment has changed since that run (another Gymnasium or "
                     "MuJoCo version?); continue it with the versions it was trained with")
    return Task(env_id=args.env_name, env=env, env_kwargs=env_kwargs, data=data, init=init,
                init_link=link)


def raw_sampler(data: Any, seed: int, device: Any) -> Any:
    """A dataset's minibatches as POSAC sees the environment's: raw observations and
    rewards, so that the critic's scale and the actors' inputs carry over between offline
    and online training unchanged (no normalisation to fold or drop at the switch)."""
    from offline.data import OfflineSampler

    return OfflineSampler(data, seed, device, normalize_states=False, normalize_rewards=False)


def init_summary(task: Task) -> dict[str, Any]:
    """summary.json's link to the run this one started from: the final checkpoint it loaded
    (the path found when it started, not looked up again), its steps, program and
    settings."""
    if task.init_link is None:
        return {}
    return {"init_from": {key: task.init_link[key] for key in SUMMARY_KEYS}}
