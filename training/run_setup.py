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
    {checkpoint_dir}/{group}/{file_name}_final.pt        the self-contained final checkpoint
    {checkpoint_dir}/{group}/{file_name}_replay.pt       collected data (train_sac.py --save-replay)
    .{file_name}.lock in {results_dir}, {log_dir} and {checkpoint_dir}/{group}: held while the
                                                         run trains (RunPaths.owned)

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
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from utils import (Stopped, StopRequest, UsageError, locked_file, positive_int,
                   usage_error)

# settings that change no number: a resumed run may differ in them (threads: the same
# numbers at 1 and 2 threads were measured for a 2-actor HalfCheetah run, docs/speed.md;
# checkpoint_freq: a run resumed with another one equals the uninterrupted run, a test checks;
# log_freq: which steps' training metrics reach TensorBoard, not their values)
SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME = {"resume", "capture_video", "video_every", "video_size",
                                        "cuda_graphs", "threads", "thread_environment",
                                        "checkpoint_freq", "log_freq"}
POSITIVE = (lambda value: value > 0, "a positive number")
NON_NEGATIVE = (lambda value: 0 <= value < float("inf"), "a finite non-negative number")
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


# CPU threads. PyTorch's OpenMP threads spin while they wait for work, and an update of small
# networks is many short parallel regions: a spinning thread burns its share of a core that
# another process wants, and the scheduler then makes it wait. The default keeps
# DEFAULT_THREADS threads but lets them spin only briefly before they sleep (DEFAULT_OPENMP_WAIT,
# libgomp's settings; benchmarks/bench_threads.py measures the choice, docs/speed.md).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
OPENMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_THREADS = 2
# 1,000 spins: about 0.9x the idle speed of libgomp's 300,000, and 2 threads keep up with 1
# thread beside 2 busy processes on 2 cores, where 300,000 fall far behind.
DEFAULT_OPENMP_WAIT = {"GOMP_SPINCOUNT": "1000"}


def add_threads_flag(group: argparse._ArgumentGroup, default: int = DEFAULT_THREADS) -> None:
    group.add_argument("--threads", type=positive_int, default=None,
                       help=f"CPU threads for PyTorch; None: $OMP_NUM_THREADS if set, else "
                            f"min({default}, cores), spinning only briefly while they wait "
                            f"unless $OMP_WAIT_POLICY or $GOMP_SPINCOUNT says otherwise")


def use_threads(threads: int | None, default: int = DEFAULT_THREADS) -> dict[str, str]:
    """Set PyTorch's CPU threads before torch is imported: `threads` (the --threads flag)
    wins, then the user's $OMP_NUM_THREADS, then min(default, cores). OpenMP's wait is
    DEFAULT_OPENMP_WAIT unless the user set either of its variables. Returns the variables
    in effect (config.json records them). If torch is already imported (a test, a notebook),
    its thread count is set directly; the wait settings then are what it started with."""
    chosen = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or min(
        default, os.cpu_count() or 1)
    for name in THREAD_VARIABLES:
        if threads is not None or name not in os.environ:
            os.environ[name] = str(chosen)
    if not any(name in os.environ for name in OPENMP_WAIT_VARIABLES):
        os.environ.update(DEFAULT_OPENMP_WAIT)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(chosen)
    return {name: os.environ[name] for name in (*THREAD_VARIABLES, *OPENMP_WAIT_VARIABLES)
            if name in os.environ}


def add_output_flags(parser: argparse.ArgumentParser, step_unit: str) -> None:
    """The output, logging and resume flags every training script takes."""
    output = parser.add_argument_group("outputs and resume")
    output.add_argument("--results-dir", default="results", help="metrics, returns, config")
    output.add_argument("--log-dir", default="runs", help="TensorBoard root")
    output.add_argument("--checkpoint-dir", default="checkpoints", help="checkpoint root")
    output.add_argument("--run-name", type=run_name_text, default=None,
                        help="overrides the derived file_name")
    output.add_argument("--log-freq", type=positive_int, default=5000,
                        help=f"{step_unit} between TensorBoard scalars and progress lines")
    output.add_argument("--checkpoint-freq", type=positive_int, default=50_000,
                        help=f"{step_unit} between resume checkpoints")
    output.add_argument("--resume", action="store_true",
                        help="continue this run from its latest checkpoint (start it if none)")


def run_name_text(text: str) -> str:
    """argparse type of --run-name: one visible file name (it names the run's folders and
    files, and .{name}.lock beside them)."""
    if not text or text.startswith(".") or "/" in text or "\0" in text:
        raise argparse.ArgumentTypeError(f"must be a file name without '/' that does not start "
                                         f"with '.', got {text!r}")
    return text


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

    def resumes(self, resume: bool) -> bool:
        """Whether a start with --resume set to `resume` continues from a checkpoint."""
        return bool(resume and self.resume_checkpoints)

    @property
    def lost_summary(self) -> bool:
        """The final checkpoint without summary.json and without a resume checkpoint: a
        finished run (its resume checkpoints are deleted only after summary.json is
        written) whose summary.json was lost since. A final checkpoint beside a resume
        checkpoint is a run stopped while finishing, which resumes and writes both again."""
        return (self.final_checkpoint.is_file() and self.config_json.exists()
                and not self.summary_json.exists() and not self.resume_checkpoints)

    @contextlib.contextmanager
    def owned(self) -> Iterator[None]:
        """Hold an exclusive lock (flock) in each of the run's three output folders while
        the run trains: two processes of one name clash in any folder they share (results,
        TensorBoard or checkpoints), and a check that no output exists yet cannot exclude
        one that starts a moment later. The OS releases the locks when the process ends,
        even by SIGKILL. UsageError if a folder cannot be written or another process holds
        a lock (a process that started this run after it was checked still holds them)."""
        with contextlib.ExitStack() as held:
            for flag, folder in (("--results-dir", self.results.parent),
                                 ("--log-dir", self.tensorboard.parent),
                                 ("--checkpoint-dir", self.latest_checkpoint.parent)):
                lock = folder / f".{self.file_name}.lock"
                try:
                    handle = locked_file(lock)
                except OSError as error:
                    raise UsageError(f"{flag}: cannot write in {folder} ({error.strerror}); "
                                     f"give a folder this user can write") from None
                if handle is None:
                    raise UsageError(f"another process is running {self.file_name} (it holds "
                                     f"{lock}); wait for it to end, or give this run its own "
                                     f"--run-name")
                held.enter_context(handle)
            yield

    @property
    def replay_checkpoint(self) -> Path:
        return self.final_checkpoint.with_name(f"{self.file_name}_replay.pt")

    def actor_returns(self, actor_index: int) -> Path:
        return self.results / f"{self.file_name}_actor_{actor_index}.npy"


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {key: value for key, value in sorted(vars(args).items())}


def differing_settings(one: dict[str, Any], other: dict[str, Any],
                       exempt: Collection[str] = SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME
                       ) -> list[str]:
    """The keys, sorted, whose values differ between two runs' settings (a key one lacks
    counts as None), leaving out `exempt`."""
    return sorted(key for key in set(one) | set(other)
                  if key not in exempt and one.get(key) != other.get(key))


def settings_conflicts(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Each setting that differs between a saved run and these flags, as "key (saved …, now
    …)", leaving out those a resumed run may change."""
    return [f"{key} (saved {saved.get(key)!r}, now {current.get(key)!r})"
            for key in differing_settings(saved, current)]


def check_resume(args: argparse.Namespace, paths: RunPaths,
                 parser: argparse.ArgumentParser) -> None:
    """Never overwrite a finished run (nor one that lost its summary: RunPaths.lost_summary);
    on --resume, the saved settings must match the flags."""
    if not paths.config_json.exists():
        # a run writes config.json before its first checkpoint and before TensorBoard opens:
        # without it, these outputs are another run's (one of this name with another
        # --results-dir), or this one's whose results were deleted; resuming would train on
        # them, starting over would overwrite them
        check_no_foreign_outputs(paths)
    if paths.lost_summary:
        raise UsageError(f"{paths.final_checkpoint} holds this run's final weights but "
                         f"{paths.summary_json} is missing: the run finished and lost its "
                         f"summary; rebuild it from the metrics CSV with run_sac.py "
                         f"--rebuild-summaries, or delete both to train the run again")
    if not paths.results.exists():
        return
    if paths.summary_json.exists() and not args.resume:
        raise UsageError(f"this run already finished ({paths.summary_json}); give --run-name "
                         f"to start a separate run (--resume only reports a finished run)")
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
        conflicts = settings_conflicts(saved, settings_of(args))
        if conflicts:
            raise UsageError(f"--resume with settings that differ from the saved run in "
                             f"{paths.config_json}: {'; '.join(conflicts)}")


def check_no_foreign_outputs(paths: RunPaths) -> None:
    """UsageError if a checkpoint or TensorBoard events of this run's name exist while its
    config.json does not (check_resume)."""
    checkpoints = [path for path in (paths.latest_checkpoint, paths.previous_checkpoint,
                                     paths.final_checkpoint) if path.exists()]
    if checkpoints:
        raise UsageError(f"{checkpoints[0]} exists but {paths.config_json} does not: the "
                         f"checkpoint is another run's (this name and --checkpoint-dir, "
                         f"another --results-dir), or this run's results were deleted; give "
                         f"this run its own --checkpoint-dir or --run-name, or move the "
                         f"checkpoint away to start it over")
    if any(paths.tensorboard.glob("events.out.tfevents.*")):
        raise UsageError(f"{paths.tensorboard} holds TensorBoard events but "
                         f"{paths.config_json} does not exist: they are another run's (this "
                         f"name and --log-dir, another --results-dir), or this run's results "
                         f"were deleted; give this run its own --log-dir or --run-name, or "
                         f"move {paths.tensorboard} away to start it over")


def check_ranges(args: argparse.Namespace,
                 ranges: dict[str, tuple[Callable[[float], bool], str]]) -> None:
    """Each named float flag must be finite and pass its range check (None: a flag whose
    value comes from elsewhere, e.g. train_sac.py's --alpha from an --init-from run)."""
    for name, (in_range, expected) in ranges.items():
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and in_range(value)):
            raise UsageError(f"--{name.replace('_', '-')} must be {expected} (got {value})")


OUTSIDE_TRAINING = ("interrupted outside training (start-up or final writes); run the same "
                    "command again, with --resume if the run had started")


class interruptible(contextlib.ContextDecorator):
    """As a script's main's decorator (and within `imports_held`): a SIGINT outside the
    training loop (start-up: environments, loading a checkpoint; or the final writes), or a
    SIGTERM held through the start-up, is reported as one line, `{program}: {said}`, and
    exit status 130 (143), like one inside it."""

    def __init__(self, program: str, said: str = OUTSIDE_TRAINING) -> None:
        self.program, self.said = program, said

    def __enter__(self) -> interruptible:
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            print(f"{self.program}: {self.said}", file=sys.stderr)
            raise SystemExit(getattr(exc, "exit_code", 130)) from None


@contextlib.contextmanager
def imports_held(program: str, said: str = OUTSIDE_TRAINING) -> Iterator[None]:
    """Around a script's imports: a first SIGINT or SIGTERM is held until they are done, then
    reported as `interruptible` does (a second one interrupts at once). Raised inside a C
    extension's import, a KeyboardInterrupt can surface as an ImportError and a traceback
    (numpy's: 'PyCapsule_Import could not import module "datetime"'), so an ImportError
    after a stop signal is reported as the interruption it is."""
    with interruptible(program, said), StopRequest() as start_up:
        try:
            yield
        except ImportError:
            if start_up.count:
                raise Stopped(start_up.signum) from None
            raise
        start_up.check()


def finished_already(paths: RunPaths) -> bool:
    """A finished run is never redone (nor overwritten): say so and do nothing."""
    if paths.summary_json.exists():
        print(f"{paths.file_name} already finished ({paths.summary_json}); nothing to do.")
        return True
    return False


def check_cuda(args: argparse.Namespace) -> None:
    """UsageError where --cuda finds no GPU; where CUDA_VISIBLE_DEVICES is set (run_sac.py
    --gpus sets it), it names it, since a wrong id hides every GPU."""
    if args.cuda:
        import torch
        if not torch.cuda.is_available():
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            if visible is not None:
                raise UsageError(f"--cuda was given but CUDA_VISIBLE_DEVICES={visible} shows "
                                 f"no CUDA GPU; give an id that nvidia-smi -L lists, or drop "
                                 f"--cuda")
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
