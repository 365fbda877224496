"""What a run is before it starts, for every training script: the output flags, its paths,
the rules for resuming it, and the checks that reject bad input before anything is written.

Outputs of a run (file_name from the script's prefix, task, seed and weights unless
--run-name is given; `group` is the environment or dataset):
    {log_dir}/{file_name}/                               TensorBoard events
    {results_dir}/{file_name}/config.json                every setting
    {results_dir}/{file_name}/training/{file_name}_metrics.csv
    {results_dir}/{file_name}/{file_name}_actor_{i}.npy  deterministic eval returns
    {results_dir}/{file_name}/summary.json               written last: the run finished
    {checkpoint_dir}/{group}/{file_name}_latest.pt       resume checkpoint (removed at the end)
    {checkpoint_dir}/{group}/{file_name}_previous.pt     the one before it (fallback; removed too)
    {checkpoint_dir}/{group}/{file_name}_final.pt        final networks
    {checkpoint_dir}/{group}/{file_name}_replay.pt       collected data (train_sac.py --save-replay)

A training script the sweep can launch is a module with `build_parser()`, `validate_args(args)`
(raises UsageError), `run_paths(args) -> RunPaths`, `preflight(args) -> int` (the checks that
build the environment or open the dataset, raising UsageError; returns the run's peak memory
estimate in bytes), `SWEEP_AXIS` (the flag a sweep's per-task entries set, e.g. "env_name"),
`SWEEP_SECTION` (the sweep file's per-task section, e.g. "environments"; its list is
common.enabled_{SWEEP_SECTION}) and `ACTOR0_WEIGHT_ZERO` (whether one number w as a w2
setting means 0.0,w,w,… or w,w,…; utils.parse_w2_weights). Nothing here imports torch at
import time: the sweep imports this module and stays torch-free.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from utils import UsageError, positive_int, usage_error

# settings that change no number: a resumed run may differ in them
SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME = {"resume", "capture_video", "video_every", "video_size",
                                        "cuda_graphs"}
POSITIVE = (lambda value: value > 0, "a positive number")
OPTIMIZER_RANGES = {"lr": POSITIVE, "tau": (lambda value: 0 < value <= 1, "in (0, 1]"),
                    "gamma": (lambda value: 0 <= value <= 1, "in [0, 1]")}


def add_network_flags(agent: argparse._ArgumentGroup) -> None:
    """The network and optimisation flags every training script takes, with the same
    defaults (CleanRL's and the seeds')."""
    agent.add_argument("--hidden-size", type=positive_int, default=256,
                       help="units in each of the 2 hidden layers")
    agent.add_argument("--lr", type=float, default=3e-4, help="Adam learning rate")
    agent.add_argument("--gamma", type=float, default=0.99, help="discount factor")
    agent.add_argument("--tau", type=float, default=0.005, help="target smoothing coefficient")


def add_output_flags(parser: argparse.ArgumentParser, step_unit: str) -> None:
    """The output, logging and resume flags every training script takes."""
    output = parser.add_argument_group("outputs and resume")
    output.add_argument("--results-dir", default="results", help="metrics, returns, config")
    output.add_argument("--log-dir", default="runs", help="TensorBoard root")
    output.add_argument("--checkpoint-dir", default="checkpoints", help="checkpoint root")
    output.add_argument("--run-name", default=None, help="overrides the derived file_name")
    output.add_argument("--log-freq", type=positive_int, default=5000,
                        help=f"{step_unit} between TensorBoard scalars and progress lines")
    output.add_argument("--checkpoint-freq", type=positive_int, default=50_000,
                        help=f"{step_unit} between resume checkpoints")
    output.add_argument("--resume", action="store_true",
                        help="continue this run from its latest checkpoint (start it if none)")


# --------------------------------------------------------------------------- paths and resume
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
    def of(cls, args: argparse.Namespace, file_name: str, group: str) -> RunPaths:
        file_name = args.run_name or file_name
        results = Path(args.results_dir) / file_name
        checkpoints = Path(args.checkpoint_dir) / group
        return cls(results=results,
                   metrics_csv=results / "training" / f"{file_name}_metrics.csv",
                   config_json=results / "config.json",
                   summary_json=results / "summary.json",
                   tensorboard=Path(args.log_dir) / file_name,
                   latest_checkpoint=checkpoints / f"{file_name}_latest.pt",
                   final_checkpoint=checkpoints / f"{file_name}_final.pt",
                   file_name=file_name)

    @property
    def previous_checkpoint(self) -> Path:
        return self.latest_checkpoint.with_name(f"{self.file_name}_previous.pt")

    @property
    def resume_checkpoints(self) -> list[Path]:
        """The checkpoints a resume may start from, newest first."""
        return [path for path in (self.latest_checkpoint, self.previous_checkpoint)
                if path.exists()]

    @property
    def replay_checkpoint(self) -> Path:
        return self.final_checkpoint.with_name(f"{self.file_name}_replay.pt")

    def actor_returns(self, actor_index: int) -> Path:
        return self.results / f"{self.file_name}_actor_{actor_index}.npy"


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {key: value for key, value in sorted(vars(args).items())}


def check_resume(args: argparse.Namespace, paths: RunPaths,
                 parser: argparse.ArgumentParser) -> None:
    """Never overwrite a finished run; on --resume, the saved settings must match the flags."""
    if paths.final_checkpoint.exists() and not paths.summary_json.exists():
        raise UsageError(f"{paths.final_checkpoint} holds this run's final weights but "
                         f"{paths.summary_json} is missing: the run finished and lost its "
                         f"summary; rebuild it with run_sac.py --rebuild-summaries, or delete "
                         f"both to train the run again")
    if not paths.results.exists():
        return
    if not args.resume:
        raise UsageError(f"results for this run already exist in {paths.results}; pass --resume "
                         f"to continue it, or --run-name to start a separate run")
    if paths.config_json.exists():
        # a flag added after the run started counts as saved with its default value
        defaults = vars(parser.parse_args([]))
        try:
            saved = {**defaults, **json.loads(paths.config_json.read_text())}
        except (OSError, TypeError, ValueError) as error:
            raise UsageError(f"cannot read {paths.config_json} ({error}), which --resume "
                             f"compares the settings with; restore it, or delete "
                             f"{paths.results} to train the run again") from None
        current = settings_of(args)
        conflicts = [f"{key} (saved {saved.get(key)!r}, now {current.get(key)!r})"
                     for key in sorted(set(saved) | set(current))
                     if key not in SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME
                     and saved.get(key) != current.get(key)]
        if conflicts:
            raise UsageError(f"--resume with settings that differ from the saved run in "
                             f"{paths.config_json}: {'; '.join(conflicts)}")


def check_ranges(args: argparse.Namespace,
                 ranges: dict[str, tuple[Callable[[float], bool], str]]) -> None:
    """Each named float flag must be finite and pass its range check."""
    for name, (in_range, expected) in ranges.items():
        value = getattr(args, name)
        if not (math.isfinite(value) and in_range(value)):
            raise UsageError(f"--{name.replace('_', '-')} must be {expected} (got {value})")


class interruptible(contextlib.ContextDecorator):
    """Around a script's imports and as its main's decorator: a SIGINT outside the training
    loop (start-up: imports, environments, loading a checkpoint; or the final writes) is
    reported as one line and exit status 130, like one inside it."""

    def __init__(self, program: str) -> None:
        self.program = program

    def __enter__(self) -> interruptible:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is KeyboardInterrupt:
            print(f"{self.program}: interrupted outside training (start-up or final writes); "
                  f"run the same command again, with --resume if the run had started",
                  file=sys.stderr)
            raise SystemExit(130) from None


def finished_already(paths: RunPaths) -> bool:
    """A finished run is never redone (nor overwritten): say so and do nothing."""
    if paths.summary_json.exists():
        print(f"{paths.file_name} already finished ({paths.summary_json}); nothing to do.")
        return True
    return False


def check_cuda(args: argparse.Namespace) -> None:
    if args.cuda:
        import torch
        if not torch.cuda.is_available():
            raise UsageError("--cuda was given but no CUDA GPU is available; drop --cuda")


def parse_and_check(program: str, parser: argparse.ArgumentParser, argv: list[str] | None,
                    checks: Callable[[argparse.Namespace], tuple[RunPaths, Any]]
                    ) -> tuple[argparse.Namespace, RunPaths, Any]:
    """Every check that can reject the input, before any output is written: the parser's,
    then `checks(args)` (which returns the run paths and what it built, e.g. the
    environment), then the resume rules. A UsageError becomes one line and exit status 2."""
    args = parser.parse_args(argv)
    try:
        paths, built = checks(args)
        check_resume(args, paths, parser)
    except UsageError as error:
        usage_error(program, str(error))
    return args, paths, built
