"""The launched training script as the sweep sees it, and its runs: a black box with the
contract training/run_setup.py's docstring gives (run_sac.py's room for the script).

The script is imported by path, only when a sweep file is validated (neither this module
nor a script imports torch at import time). The sweep uses `build_parser()` (the valid keys
and their flags), `validate_args`, `run_paths`, `run_setup.check_resume`, `preflight`
(builds the environment or opens the dataset; the run's peak memory), `ACTOR0_WEIGHT_ZERO`
(what one number means as a w2 setting: utils.parse_w2_weights), `SWEEP_AXIS` (the flag a
per-task entry sets: env_name for train_sac.py, dataset for train_pogo.py) and
`SWEEP_SECTION` (the sweep file's per-task section, whose singular is the task noun in
messages, and its list common.enabled_{section}: environments for train_sac.py, datasets for
train_pogo.py). reports/ reads a script's flags (their defaults and choices) here too.

Of a run's outputs the sweep reads summary.json (it marks the run finished; the sweep reads
its `steps`, `wall_time_s` and `final_eval`, checked by Run.read_summary) and the metrics
CSV (one row per evaluation; the last one is the final evaluation of a finished run).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.experiment import LINE_PATTERNS
from training.run_setup import RunPaths, check_resume
from utils import UsageError, atomic_write_json

HERE = Path(__file__).resolve().parent.parent  # the repository root, where the scripts are
DEFAULT_SCRIPT = "train_sac.py"
CONTRACT = ("build_parser", "validate_args", "run_paths", "preflight", "ACTOR0_WEIGHT_ZERO",
            "SWEEP_AXIS", "SWEEP_SECTION")
# the flags the sweep sets or reads, besides SWEEP_AXIS's
SWEEP_FLAGS = ("seed", "num_actors", "w2_weights", "resume", "num_steps", "cuda", "results_dir")
SUMMARY_KEYS = ("steps", "wall_time_s", "final_eval")  # what the sweep reads of summary.json


def is_number(value: Any) -> bool:
    """Whether a parsed YAML or JSON value is a number (true and false are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Flag:
    key: str  # argparse dest, the YAML key with underscores
    option: str  # --batch-size
    boolean: bool  # --flag / --no-flag
    default: Any
    choices: tuple[Any, ...] | None = None  # the values argparse accepts, where it limits them


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
        """The flag a per-task entry sets (SWEEP_AXIS), e.g. env_name."""
        return self.module.SWEEP_AXIS

    @property
    def section(self) -> str:
        """The sweep file's per-task section (SWEEP_SECTION), e.g. environments."""
        return self.module.SWEEP_SECTION

    @property
    def enabled_key(self) -> str:
        """common's list of the tasks to run, e.g. enabled_environments."""
        return f"enabled_{self.section}"

    @property
    def task(self) -> str:
        """What one task is called in messages: the section's singular, e.g. environment."""
        return self.section[:-1] if self.section.endswith("s") else self.section


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
                                      default=action.default,
                                      choices=tuple(action.choices) if action.choices else None)
    return flags


def script_path(name: Any) -> Path:
    """The file that `name` names in the repository root. Checked before anything is
    imported, since importing a file runs its code, even on --dry-run: a path (absolute,
    with a directory, or with `..`) and a link out of the root are refused. Raises
    UsageError."""
    path = HERE / name if isinstance(name, str) and Path(name).name == name else None
    if (path is None or path.suffix != ".py" or not path.is_file()
            or path.resolve().parent != HERE.resolve()):
        raise UsageError(f"{name!r} is not a training script in the repository root {HERE}: "
                         f"give the file name of one there, without a directory, e.g. "
                         f"script: {DEFAULT_SCRIPT}")
    return path


def load_script(name: Any = DEFAULT_SCRIPT) -> Script:
    """The training script `name` (a file name in the repository root). Raises UsageError
    when it is missing, or is not a script the sweep can launch."""
    path = script_path(name)
    module = import_by_path(path.resolve())
    missing = [part for part in CONTRACT if not hasattr(module, part)]
    flags = {} if missing else flags_of(module.build_parser())
    if not missing:
        missing = [f"--{key.replace('_', '-')}" for key in (module.SWEEP_AXIS, *SWEEP_FLAGS)
                   if key not in flags]
    if missing:
        raise UsageError(f"{name} lacks {', '.join(missing)}, which the sweep needs (see "
                         f"training/run_setup.py's docstring)")
    return Script(path=path, module=module, flags=flags)


# --------------------------------------------------------------------------- its runs
@dataclass
class Run:
    """One process of the training script."""
    task: str  # the value of the script's SWEEP_AXIS flag (an environment id, a dataset)
    w2_weights: tuple[float, ...]
    seed: int
    settings: dict[str, Any]  # the script's settings from the YAML (YAML keys, underscores)
    argv: list[str] = field(default_factory=list)  # the script's arguments
    script: Path = Path()
    file_name: str = ""
    results: Path = Path()
    summary_json: Path = Path()
    metrics_csv: Path = Path()
    latest_checkpoint: Path = Path()
    final_checkpoint: Path = Path()
    log: Path = Path()
    num_steps: int = 0
    cuda: bool = False
    peak_bytes: int = 0  # the script's estimate of its peak memory (thorough checks only)
    paths: RunPaths | None = None  # the script's layout of the run's files, once placed

    @property
    def num_actors(self) -> int:
        return len(self.w2_weights)

    @property
    def finished(self) -> bool:
        """The script wrote summary.json (or wrote it and lost it since: lost_summary): the
        run is never started again, even when that file is unreadable (summary_problem)."""
        return self.summary_json.exists() or self.lost_summary

    @property
    def lost_summary(self) -> bool:
        """A finished run whose summary.json was lost since (RunPaths.lost_summary)."""
        return self.paths is not None and self.paths.lost_summary

    def read_summary(self) -> dict[str, Any]:
        """summary.json, checked for what the sweep reads: `steps`, `wall_time_s`, and
        `final_eval` with every actor's deterministic return. Raises CorruptSummary."""
        if self.lost_summary:
            raise CorruptSummary("missing, beside the run's final checkpoint")
        try:
            summary = json.loads(self.summary_json.read_bytes())
        except OSError as error:
            raise CorruptSummary(f"cannot read it: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise CorruptSummary(f"not valid JSON: {error.msg}: line {error.lineno} "
                                 f"column {error.colno}") from None
        except ValueError:  # not UTF-8
            raise CorruptSummary("not valid JSON: not UTF-8 text") from None
        if not isinstance(summary, dict):
            raise CorruptSummary(f"not a JSON object (a {type(summary).__name__})")
        missing = [key for key in SUMMARY_KEYS if key not in summary]
        if missing:
            raise CorruptSummary(f"no {', '.join(missing)}")
        final = summary["final_eval"]
        returns = [f"actor_{i}_deterministic" for i in range(self.num_actors)]
        wrong = [f"{key} {summary[key]!r}" for key in ("steps", "wall_time_s")
                 if not is_number(summary[key])]
        if not isinstance(final, dict):
            wrong.append(f"final_eval {final!r}")
        else:
            if any(key not in final for key in returns):
                raise CorruptSummary(f"final_eval has no "
                                     f"{', '.join(k for k in returns if k not in final)}")
            wrong += [f"final_eval.{key} {final[key]!r}" for key in returns
                      if not is_number(final[key])]
        if wrong:
            raise CorruptSummary(f"{'; '.join(wrong)}: not a number")
        return summary

    def summary_problem(self) -> str | None:
        """Why the summary.json of a finished run cannot be read, or None."""
        try:
            self.read_summary()
        except CorruptSummary as error:
            return str(error)
        return None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-u", str(self.script), *self.argv]


class CorruptSummary(Exception):
    """A finished run's summary.json is unreadable or lacks what the sweep reads."""


def last_evaluation(run: Run) -> dict[str, int | float]:
    """The last row of the run's metrics CSV (its final evaluation if the run finished),
    numbers as numbers; {} when there is none or the file cannot be read."""
    with contextlib.suppress(OSError, ValueError, csv.Error):
        with open(run.metrics_csv, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return {key: number for key, value in (rows[-1] if rows else {}).items()
                if key and (number := as_number(value)) is not None}
    return {}


def as_number(text: str | None) -> int | float | None:
    for kind in (int, float):
        with contextlib.suppress(TypeError, ValueError):
            return kind(text)
    return None


def rebuild_summary(run: Run) -> str:
    """Write a finished run's unreadable summary.json again from its metrics CSV's final
    evaluation (what the script wrote there too), keeping the keys that are still readable
    and noting `rebuilt_from`. Returns what was done; raises CorruptSummary when the CSV
    does not reach the run's last step (then only training the run again helps)."""
    last = last_evaluation(run)
    returns = [f"actor_{i}_deterministic" for i in range(run.num_actors)]
    if not last or "step" not in last or any(key not in last for key in returns):
        raise CorruptSummary(f"its metrics CSV {run.metrics_csv} is missing or has no "
                             f"evaluation with every actor's deterministic return")
    if last["step"] < run.num_steps:
        raise CorruptSummary(f"its metrics CSV {run.metrics_csv} ends at step {last['step']} "
                             f"of {run.num_steps}")
    old: Any = {}
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(run.summary_json.read_bytes())
    atomic_write_json(run.summary_json, {
        **(old if isinstance(old, dict) else {}), "file_name": run.file_name,
        "steps": last["step"], "wall_time_s": last.get("wall_time_s", 0.0), "final_eval": last,
        "rebuilt_from": str(run.metrics_csv)})
    return f"final evaluation at step {last['step']} of {run.metrics_csv}"


def corrupt_note(run: Run, problem: str, config: Path) -> str:
    """What is wrong with a finished run's summary.json, what is intact, and what to do."""
    intact = [what for what, path in (("metrics CSV", run.metrics_csv),
                                      ("final checkpoint", run.final_checkpoint)) if path.exists()]
    return (f"summary.json unreadable ({problem}); not re-run, nothing overwritten"
            + (f"; its {' and '.join(intact)} {'are' if len(intact) > 1 else 'is'} intact"
               if intact else "")
            + f": rebuild summary.json from the metrics CSV with python run_sac.py --config "
              f"{shlex.quote(str(config))} --rebuild-summaries, or delete {run.results} to "
              f"train the run again")


def flag_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def script_argv(run: Run, script: Script) -> list[str]:
    """The script's arguments for a run, in the parser's order: `--key=value`, and for
    true/false settings `--flag`/`--no-flag`; always --resume."""
    values = {script.axis: run.task, "seed": run.seed,
              "w2_weights": ",".join(repr(w) for w in run.w2_weights), **run.settings}
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
    run.latest_checkpoint, run.final_checkpoint = paths.latest_checkpoint, paths.final_checkpoint
    run.paths = paths
    run.log = Path(args.results_dir) / "logs" / f"{paths.file_name}.log"
    run.num_steps, run.cuda = args.num_steps, args.cuda


def resolve_runs(runs: list[Run], script: Script, source: str,
                 thorough: bool = True) -> list[str]:
    """Check every run's arguments with the script's own parser and checks, and fill in the
    paths it will use. `thorough` adds what the script checks at start-up: existing results
    must have been made with the same settings (--resume refuses others), and its preflight
    (the environment builds, and the dataset or --init-from run it reads fits it; it also
    gives the run's peak memory), whose problems are reported with the runs they stop. Not
    checked: --cuda, since runs may start on other machines than this one. Returns the
    problems found, one line each."""
    parser = script.module.build_parser()
    rejected: dict[str, list[str]] = {}  # message → its runs, so a repeated problem is one line
    unbuildable: dict[str, list[str]] = {}  # preflight's messages → their runs
    for run in runs:
        try:
            args = parsed_args(run, script, parser)
            paths = script.module.run_paths(args)
        except UsageError as error:
            rejected.setdefault(str(error), []).append(label_of(run))
            continue
        place(run, paths, args)
        if not thorough or run.lost_summary:  # (lost_summary: reported as a corrupt summary)
            continue
        try:
            check_resume(args, paths, parser)
        except UsageError as error:  # also an unreadable config.json
            rejected.setdefault(str(error), []).append(label_of(run))
        if run.finished:  # never launched again: what it read (an --init-from run) may be gone
            continue
        try:  # e.g. an --init-from run not finished yet
            run.peak_bytes = int(script.module.preflight(args))
        except UsageError as error:
            unbuildable.setdefault(str(error), []).append(label_of(run))
    return ([f"{source}: {compress(where)}: {script.name} rejects these settings: {message}"
             for message, where in rejected.items()] + collisions(runs, source)
            + [f"{source}: {compress(where)}: {message}"
               for message, where in unbuildable.items()])


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
    return f"{run.task} w2 {list(run.w2_weights)} seed {run.seed}"


def compress(labels: list[str]) -> str:
    """'Hopper-v5 w2 [0.0, 0.1] seed 1', … seed 2 → 'Hopper-v5 w2 [0.0, 0.1] (seeds 1, 2)'."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        head, seed = label.rsplit(" seed ", 1)
        groups.setdefault(head, []).append(seed)
    parts = [f"{head} (seed{'s' if len(s) > 1 else ''} {', '.join(s)})"
             for head, s in groups.items()]
    return "; ".join(parts[:3]) + (f"; and {len(parts) - 3} more" if len(parts) > 3 else "")
