"""The launched training script as the sweep sees it, and its runs: a black box with the
contract experiment.py's docstring gives (run_sac.py's room for the script).

The script is imported by path, only when a sweep file is validated (neither this module
nor a script imports torch at import time). The sweep uses `build_parser()` (the valid keys
and their flags), `validate_args`, `run_paths`, `experiment.check_resume`, `preflight`
(builds the environment; the run's peak memory), `parse_weights` (the number form of a w2
setting) and `SWEEP_AXIS` (the flag a per-task entry sets: env_name for train_sac.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiment import LINE_PATTERNS, RunPaths, check_resume
from utils import UsageError

HERE = Path(__file__).resolve().parent
DEFAULT_SCRIPT = "train_sac.py"
CONTRACT = ("build_parser", "validate_args", "run_paths", "preflight", "parse_weights",
            "SWEEP_AXIS")
# the flags the sweep sets or reads, besides SWEEP_AXIS's
SWEEP_FLAGS = ("seed", "num_actors", "w2_weights", "resume", "num_steps", "cuda", "results_dir")


@dataclass(frozen=True)
class Flag:
    key: str  # argparse dest, the YAML key with underscores
    option: str  # --batch-size
    boolean: bool  # --flag / --no-flag
    default: Any


@dataclass(frozen=True)
class Script:
    """A training script: its file, its module and its flags."""
    path: Path
    module: Any
    flags: dict[str, Flag]  # by YAML key, in the parser's order

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def axis(self) -> str:
        return self.module.SWEEP_AXIS


def import_by_path(path: Path) -> Any:
    """The module in `path`, imported once under its file's stem (its directory on sys.path,
    for its own imports)."""
    loaded = sys.modules.get(path.stem)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path:
        return loaded
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[path.stem]
        raise
    return module


def flags_of(parser: argparse.ArgumentParser) -> dict[str, Flag]:
    """Every flag of a parser by YAML key (its dest), in the parser's order."""
    flags = {}
    for action in parser._actions:  # argparse has no public listing of its actions
        if action.option_strings and action.dest != "help":
            flags[action.dest] = Flag(key=action.dest, option=action.option_strings[0],
                                      boolean=isinstance(action, argparse.BooleanOptionalAction),
                                      default=action.default)
    return flags


def load_script(name: Any = DEFAULT_SCRIPT) -> Script:
    """The training script `name` (a file name relative to the repository root). Raises
    UsageError when it is missing, or is not a script the sweep can launch."""
    path = HERE / name if isinstance(name, str) and name.endswith(".py") else None
    if path is None or not path.resolve().is_file():
        raise UsageError(f"{name!r} is not a training script in {HERE}; use e.g. "
                         f"script: {DEFAULT_SCRIPT}")
    module = import_by_path(path.resolve())
    missing = [part for part in CONTRACT if not hasattr(module, part)]
    flags = {} if missing else flags_of(module.build_parser())
    if not missing:
        missing = [f"--{key.replace('_', '-')}" for key in (module.SWEEP_AXIS, *SWEEP_FLAGS)
                   if key not in flags]
    if missing:
        raise UsageError(f"{name} lacks {', '.join(missing)}, which the sweep needs (see "
                         f"experiment.py's docstring)")
    return Script(path=path, module=module, flags=flags)


# --------------------------------------------------------------------------- its runs
@dataclass
class Run:
    """One process of the training script."""
    env: str  # its task: the value of the script's SWEEP_AXIS flag (e.g. an environment id)
    weights: tuple[float, ...]
    seed: int
    settings: dict[str, Any]  # the script's settings from the YAML (YAML keys, underscores)
    argv: list[str] = field(default_factory=list)  # the script's arguments
    script: Path = Path()
    file_name: str = ""
    results: Path = Path()
    summary_json: Path = Path()
    metrics_csv: Path = Path()
    latest_checkpoint: Path = Path()
    log: Path = Path()
    num_steps: int = 0
    cuda: bool = False
    peak_bytes: int = 0  # the script's estimate of its peak memory (thorough checks only)

    @property
    def num_actors(self) -> int:
        return len(self.weights)

    @property
    def finished(self) -> bool:
        return self.summary_json.exists()

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-u", str(self.script), *self.argv]


def flag_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def script_argv(run: Run, script: Script) -> list[str]:
    """The script's arguments for a run, in the parser's order: `--key=value`, and for
    true/false settings `--flag`/`--no-flag`; always --resume."""
    values = {script.axis: run.env, "seed": run.seed,
              "w2_weights": ",".join(repr(w) for w in run.weights), **run.settings}
    argv = []
    for key, flag in script.flags.items():
        if key not in values:
            continue
        if flag.boolean:
            argv.append(flag.option if values[key] else "--no-" + flag.option[2:])
        else:
            argv.append(f"{flag.option}={flag_value(values[key])}")
    return argv + ["--resume"]


def parsed_args(run: Run, script: Script,
                parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The run's arguments, through the script's parser and validate_args; a rejection is
    a UsageError with the script's message."""
    run.argv, run.script = script_argv(run, script), script.path
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parser.parse_args(run.argv)
    except SystemExit:
        last = (stderr.getvalue().strip().splitlines() or ["rejected"])[-1]
        raise UsageError(LINE_PATTERNS["error"].sub("", last).split(" (see python")[0]) from None
    script.module.validate_args(args)
    return args


def place(run: Run, paths: RunPaths, args: argparse.Namespace) -> None:
    """Where the run writes: the script's layout, and the sweep's log beside its results."""
    run.file_name, run.results = paths.file_name, paths.results
    run.summary_json, run.metrics_csv = paths.summary_json, paths.metrics_csv
    run.latest_checkpoint = paths.latest_checkpoint
    run.log = Path(args.results_dir) / "logs" / f"{paths.file_name}.log"
    run.num_steps, run.cuda = args.num_steps, args.cuda


def resolve_runs(runs: list[Run], script: Script, source: str, enabled_key: str,
                 thorough: bool = True) -> list[str]:
    """Check every run's arguments with the script's own parser and checks, and fill in the
    paths it will use. `thorough` adds what the script checks at start-up: existing results
    must have been made with the same settings (--resume refuses others), and its preflight
    (the environment builds; it also gives the run's peak memory), whose problems are
    reported at `enabled_key`. Not checked: --cuda, since runs may start on other machines
    than this one. Returns the problems found, one line each."""
    parser = script.module.build_parser()
    rejected: dict[str, list[str]] = {}  # message → its runs, so a repeated problem is one line
    unbuildable: dict[str, None] = {}  # preflight's messages, each once
    for run in runs:
        try:
            args = parsed_args(run, script, parser)
        except UsageError as error:
            rejected.setdefault(str(error), []).append(label_of(run))
            continue
        paths = script.module.run_paths(args)
        place(run, paths, args)
        if not thorough:
            continue
        try:
            check_resume(args, paths, parser)
        except UsageError as error:
            rejected.setdefault(str(error), []).append(label_of(run))
        try:
            run.peak_bytes = int(script.module.preflight(args))
        except UsageError as error:
            unbuildable[str(error)] = None
    return ([f"{source}: {compress(where)}: {script.name} rejects these settings: {message}"
             for message, where in rejected.items()] + collisions(runs, source)
            + [f"{source}: {enabled_key}: {message}" for message in unbuildable])


def collisions(runs: list[Run], source: str) -> list[str]:
    """Two runs that would write the same directory."""
    lines, seen = [], {}
    for run in runs:
        if run.file_name and run.file_name in seen:
            lines.append(f"{source}: {label_of(seen[run.file_name])} and {label_of(run)} would "
                         f"both write {run.results}")
        seen.setdefault(run.file_name, run)
    return lines


def label_of(run: Run) -> str:
    return f"{run.env} w2 {list(run.weights)} seed {run.seed}"


def compress(labels: list[str]) -> str:
    """'Hopper-v5 w2 [0.0, 0.1] seed 1', … seed 2 → 'Hopper-v5 w2 [0.0, 0.1] (seeds 1, 2)'."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        head, seed = label.rsplit(" seed ", 1)
        groups.setdefault(head, []).append(seed)
    parts = [f"{head} (seed{'s' if len(s) > 1 else ''} {', '.join(s)})"
             for head, s in groups.items()]
    return "; ".join(parts[:3]) + (f"; and {len(parts) - 3} more" if len(parts) > 3 else "")
