"""Run a POSAC sweep: YAML → validated grid → train_sac.py subprocesses → status table → results.

    python run_sac.py --config config_sac.yaml --dry-run     # every command and where it writes
    python run_sac.py --config config_sac.yaml               # run it here (--jobs K at once)
    python run_sac.py --config config_sac.yaml --launcher slurm --partition gpu --gpus-per-task 1
    python run_sac.py --config config_sac.yaml --summarize   # tables and learning curves

The grid is enabled environment × w2 setting × seed; one train_sac.py process per run,
always started with --resume, so re-running a sweep skips finished runs (summary.json) and
continues unfinished ones from their checkpoints. Every YAML key other than the sweep keys
(seeds, enabled_environments, w2_weights, w2_weights_list) is a train_sac.py flag by one
rule: `batch_size` or `batch-size` → `--batch-size=VALUE`, true/false → `--flag`/`--no-flag`.

The whole file is validated before anything starts, against train_sac.py's own parser and
checks (train_sac is imported on first use; neither module imports torch at import time,
so `--help` stays instant).

Per run, next to train_sac.py's own outputs:
    {results_dir}/logs/{file_name}.log       stdout+stderr of every attempt, appended; locked
                                             (flock) while a process works on the run
    {results_dir}/summary/                   --summarize (and the end of a sweep): tables, plots
    {results_dir}/submitit/                  submitit's job files (--launcher slurm/submitit-local)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import difflib
import fcntl
import io
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from utils import (CaughtSignals, OneLineErrorParser, non_negative_int, positive_int,
                   usage_error)

HERE = Path(__file__).resolve().parent
TRAIN_SAC = HERE / "train_sac.py"

SWEEP_KEYS = {"seeds", "w2_weights", "w2_weights_list"}  # allowed in common and in an entry
COMMON_ONLY_KEYS = {"enabled_environments"}
GRID_OWNED = {  # train_sac.py flags a sweep must not set, and why
    "env_name": "environments come from common.enabled_environments and the environments section",
    "seed": "use seeds: [...] (a list; every seed is one run)",
    "run_name": "run names are derived from env, seed and weights, so runs never collide",
    "resume": "run_sac.py always passes --resume: finished runs are skipped, the rest continue",
}
STOP_GRACE_S = 15.0  # after forwarding SIGINT, wait this long before SIGKILL
MEMORY_OVERHEAD_BYTES = 600 * 2**20  # torch + MuJoCo + Python per train_sac.py process (RSS)


def fail(message: str) -> NoReturn:
    usage_error("run_sac.py", message)


class ConfigError(Exception):
    """Every problem found in a sweep file, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


# --------------------------------------------------------------------------- train_sac.py's flags
@dataclass(frozen=True)
class Flag:
    key: str  # argparse dest, the YAML key with underscores
    option: str  # --batch-size
    boolean: bool  # --flag / --no-flag
    default: Any


def train_sac_module() -> Any:
    """train_sac.py, imported on first use only, when a file is validated."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import train_sac

    return train_sac


def train_sac_flags() -> dict[str, Flag]:
    """Every train_sac.py flag by YAML key, in the parser's order, from the parser itself."""
    parser = train_sac_module().build_parser()
    flags = {}
    for action in parser._actions:  # argparse has no public listing of its actions
        if not action.option_strings or action.dest == "help":
            continue
        flags[action.dest] = Flag(key=action.dest, option=action.option_strings[0],
                                  boolean=isinstance(action, argparse.BooleanOptionalAction),
                                  default=action.default)
    return flags


# --------------------------------------------------------------------------- the grid
@dataclass
class Run:
    """One train_sac.py process of the sweep."""
    env: str
    weights: tuple[float, ...]
    seed: int
    settings: dict[str, Any]  # train_sac.py settings from the YAML (YAML keys, underscores)
    argv: list[str] = field(default_factory=list)  # train_sac.py's arguments
    file_name: str = ""
    results: Path = Path()
    summary_json: Path = Path()
    metrics_csv: Path = Path()
    latest_checkpoint: Path = Path()
    log: Path = Path()
    num_steps: int = 0
    cuda: bool = False

    @property
    def num_actors(self) -> int:
        return len(self.weights)

    @property
    def finished(self) -> bool:
        return self.summary_json.exists()


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_keys(mapping: dict, where: str, allowed: set[str], flags: dict[str, Flag],
              problems: list[str]) -> dict[str, Any]:
    """The mapping with keys normalised to underscores; unknown, doubled and grid-owned keys
    become problems (with the nearest valid name)."""
    known = allowed | (set(flags) - set(GRID_OWNED))
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for raw, value in mapping.items():
        if not isinstance(raw, str):
            problems.append(f"{where}: key {raw!r} is not a name (YAML reads bare yes/no/on/off "
                            f"and numbers as values; quote the key)")
            continue
        key = raw.replace("-", "_")
        if key in spelled:
            problems.append(f"{where}: {spelled[key]!r} and {raw!r} are the same setting; keep one")
            continue
        spelled[key] = raw
        if key in GRID_OWNED:
            problems.append(f"{where}.{raw}: cannot be set in a sweep: {GRID_OWNED[key]}")
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else "; see python train_sac.py --help"
            problems.append(f"{where}: unknown key {raw!r}{hint}")
        else:
            out[key] = value
    return out


def check_values(settings: dict[str, Any], where: dict[str, str], flags: dict[str, Flag],
                 problems: list[str]) -> None:
    """Types that YAML can get wrong before train_sac.py's parser sees the values."""
    for key, value in settings.items():
        if key not in flags:
            continue
        if value is None:
            problems.append(f"{where[key]}: has no value; remove the key to use "
                            f"train_sac.py's default ({flags[key].default!r})")
        elif flags[key].boolean and not isinstance(value, bool):
            problems.append(f"{where[key]}: must be true or false (got {value!r})")
        elif not flags[key].boolean and (isinstance(value, (bool, list, dict))):
            problems.append(f"{where[key]}: must be a single {type(flags[key].default).__name__} "
                            f"(got {value!r})")


def weight_settings(entry: dict[str, Any], where: str, num_actors: int | None,
                    problems: list[str]) -> list[tuple[float, ...]]:
    """The w2 settings of one environment: `w2_weights` (one setting) or `w2_weights_list`.
    A setting is a list with one weight per actor, or a number w meaning [0.0, w, w, …].
    With `num_actors` None (not set), each list's length is its run's number of actors, so
    one sweep can compare chain lengths; the number form then has no length and is refused."""
    if "w2_weights" in entry and "w2_weights_list" in entry:
        problems.append(f"{where}: give w2_weights (one setting) or w2_weights_list, not both")
        return []
    if "w2_weights" in entry:
        raw, label = [entry["w2_weights"]], f"{where}.w2_weights"
    elif "w2_weights_list" in entry:
        raw, label = entry["w2_weights_list"], f"{where}.w2_weights_list"
        if not isinstance(raw, list) or not raw:
            problems.append(f"{label}: must be a non-empty list of settings such as "
                            f"[[0.0, 0.0], [0.0, 0.1]]")
            return []
    else:
        problems.append(f"{where}: no w2 setting; add w2_weights: [0.0, 0.1] or "
                        f"w2_weights_list: [[0.0, 0.0], [0.0, 0.1]] (here or in common)")
        return []
    settings: list[tuple[float, ...]] = []
    for index, value in enumerate(raw):
        at = label if "w2_weights_list" not in label else f"{label}[{index}]"
        if is_number(value):
            if num_actors is None:
                problems.append(f"{at}: the number {value!r} stands for [0.0, w, w, …] and "
                                f"needs num_actors; set num_actors or write the weights out, "
                                f"e.g. [0.0, {value!r}]")
                continue
            value = [0.0] + [value] * (num_actors - 1)
        if not (isinstance(value, list) and value and all(is_number(w) for w in value)):
            problems.append(f"{at}: {value!r} is not a list of numbers like [0.0, 0.1] "
                            f"(or one number w meaning [0.0, w, w, …])")
            continue
        weights = tuple(float(w) for w in value)
        if num_actors is not None and len(weights) != num_actors:
            problems.append(f"{at}: {len(weights)} weights {list(weights)} but num_actors is "
                            f"{num_actors}; give one weight per actor")
            continue
        if weights in settings:
            problems.append(f"{at}: {list(weights)} is listed twice")
            continue
        settings.append(weights)
    return settings


def seeds_of(value: Any, where: str, problems: list[str]) -> list[int]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)):
        problems.append(f"{where}: must be a non-empty list of integers such as [1, 2, 3] "
                        f"(got {value!r})")
        return []
    if len(set(value)) != len(value):
        problems.append(f"{where}: lists a seed twice ({value})")
        return []
    return list(value)


def expand_grid(config: Any, flags: dict[str, Flag], source: str = "config") -> list[Run]:
    """The runs of a parsed sweep file, in enabled-environment × w2-setting × seed order.

    An environment's entry overrides `common` key by key (its w2 key replaces common's, of
    either form). Every enabled environment must have an entry (`{}` or an empty value
    means: the common settings). Raises ConfigError listing every problem."""
    runs, problems = grid_and_problems(config, flags, source)
    if problems:
        raise ConfigError(problems)
    return runs


def grid_and_problems(config: Any, flags: dict[str, Flag],
                      source: str) -> tuple[list[Run], list[str]]:
    """expand_grid's work: the runs of every environment whose settings have no problem,
    and every problem found (each once)."""
    problems: list[str] = []
    if not isinstance(config, dict):
        return [], [f"{source}: the file must be a mapping with `common` and `environments` "
                    f"(got {type(config).__name__})"]
    for key in config:
        if key not in ("common", "environments"):
            close = difflib.get_close_matches(str(key), ["common", "environments"], n=1)
            hint = f"; did you mean {close[0]}?" if close else "; use common and environments"
            problems.append(f"{source}: unknown top-level key {key!r}{hint}")
    common_raw = config.get("common") or {}
    entries_raw = config.get("environments") or {}
    if "environments" not in config and not problems:
        problems.append(f"{source}: no environments section; add `environments:` with an "
                        f"entry per enabled environment")
    if not isinstance(common_raw, dict):
        problems.append(f"{source}: common must be a mapping of settings")
        common_raw = {}
    if not isinstance(entries_raw, dict):
        problems.append(f"{source}: environments must be a mapping from environment id to "
                        f"settings")
        entries_raw = {}
    common = read_keys(common_raw, f"{source}: common", SWEEP_KEYS | COMMON_ONLY_KEYS, flags,
                       problems)
    common_where = {key: f"{source}: common.{key}" for key in common}

    enabled = common.get("enabled_environments")
    if (not isinstance(enabled, list) or not enabled
            or not all(isinstance(e, str) for e in enabled)):
        problems.append(f"{source}: common.enabled_environments must be a non-empty list of "
                        f"environment ids (got {enabled!r})")
        enabled = []
    elif len(set(enabled)) != len(enabled):
        problems.append(f"{source}: common.enabled_environments lists an environment twice")
        enabled = list(dict.fromkeys(enabled))

    runs: list[Run] = []
    for env in enabled:
        problems_before = len(problems)
        if "environments" not in config:
            continue  # reported above, once
        if env not in entries_raw:
            close = difflib.get_close_matches(env, [str(k) for k in entries_raw], n=1, cutoff=0.6)
            hint = f" (is {close[0]!r} a misspelling?)" if close else ""
            problems.append(f"{source}: enabled environment {env!r} has no entry under "
                            f"environments{hint}; add `{env}: {{}}` to run it with the common "
                            f"settings")
            continue
        entry_raw = entries_raw[env] if entries_raw[env] is not None else {}
        where = f"{source}: environments.{env}"
        if not isinstance(entry_raw, dict):
            problems.append(f"{where}: must be a mapping of settings (or {{}})")
            continue
        entry = read_keys(entry_raw, where, SWEEP_KEYS, flags, problems)
        merged = {k: v for k, v in common.items() if k not in COMMON_ONLY_KEYS}
        origin = {k: v for k, v in common_where.items()}
        if "w2_weights" in entry or "w2_weights_list" in entry:  # an entry's w2 replaces common's
            merged.pop("w2_weights", None)
            merged.pop("w2_weights_list", None)
        merged.update(entry)
        origin.update({key: f"{where}.{key}" for key in entry})
        settings = {k: v for k, v in merged.items() if k not in SWEEP_KEYS}
        check_values(settings, origin, flags, problems)
        num_actors = settings.get("num_actors")  # None: each w2 setting's length
        w2_where = where if ("w2_weights" in entry or "w2_weights_list" in entry) else (
            f"{source}: common" if ("w2_weights" in merged or "w2_weights_list" in merged)
            else where)
        weights_list = []
        if num_actors is None or (isinstance(num_actors, int)
                                  and not isinstance(num_actors, bool) and num_actors >= 1):
            weights_list = weight_settings(merged, w2_where, num_actors, problems)
        else:
            problems.append(f"{origin['num_actors']}: num_actors must be an integer >= 1 "
                            f"(got {num_actors!r})")
        if "seeds" not in merged:
            problems.append(f"{where}: no seeds; add seeds: [1, 2, 3] to common or to this entry")
            seeds = []
        else:
            seeds = seeds_of(merged["seeds"], origin["seeds"], problems)
        if len(problems) > problems_before:
            continue  # train_sac.py's checks would only repeat the problem in other words
        for weights in weights_list:
            for seed in seeds:
                runs.append(Run(env=env, weights=weights, seed=seed,
                                settings={**settings, "num_actors": len(weights)}))
    return runs, list(dict.fromkeys(problems))


def flag_value(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def train_sac_argv(run: Run, flags: dict[str, Flag]) -> list[str]:
    """train_sac.py's arguments for a run, in the parser's order: `--key=value`, and for
    true/false settings `--flag`/`--no-flag`; always --resume."""
    values = {"env_name": run.env, "seed": run.seed,
              "w2_weights": ",".join(repr(w) for w in run.weights), **run.settings}
    argv = []
    for key, flag in flags.items():
        if key not in values:
            continue
        value = values[key]
        if flag.boolean:
            argv.append(flag.option if value else "--no-" + flag.option[2:])
        else:
            argv.append(f"{flag.option}={flag_value(value)}")
    return argv + ["--resume"]


def resolve_runs(runs: list[Run], flags: dict[str, Flag], source: str,
                 thorough: bool = True) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Check every run's arguments with train_sac.py's own parser and checks and fill in
    the output paths it will use. `thorough` adds what train_sac.py checks at start-up:
    each environment is built once, and existing results must have been made with the same
    settings (--resume refuses others). Not checked: --cuda, since runs may start on other
    machines than this one. Returns {env: (obs_dim, action_dim)} of the environments built,
    and the problems found."""
    train_sac = train_sac_module()
    parser = train_sac.build_parser()
    problems: dict[str, list[str]] = {}  # message → where, so a repeated problem is one line
    for run in runs:
        run.argv = train_sac_argv(run, flags)
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                args = parser.parse_args(run.argv)
            train_sac.validate_args(args)
        except SystemExit:
            message = stderr.getvalue().strip().removeprefix("train_sac.py: error: ")
            problems.setdefault(message.split(" (see python")[0], []).append(label_of(run))
            continue
        except train_sac.UsageError as error:
            problems.setdefault(str(error), []).append(label_of(run))
            continue
        paths = train_sac.RunPaths.of(args)
        if thorough:
            try:
                train_sac.check_resume(args, paths)
            except train_sac.UsageError as error:
                problems.setdefault(str(error), []).append(label_of(run))
        run.file_name, run.results = paths.file_name, paths.results
        run.summary_json, run.metrics_csv = paths.summary_json, paths.metrics_csv
        run.latest_checkpoint = paths.latest_checkpoint
        run.log = Path(args.results_dir) / "logs" / f"{paths.file_name}.log"
        run.num_steps, run.cuda = args.num_steps, args.cuda
    lines = [f"{source}: {compress(where)}: train_sac.py rejects these settings: {message}"
             for message, where in problems.items()]
    seen: dict[str, Run] = {}
    for run in runs:
        if run.file_name and run.file_name in seen:
            lines.append(f"{source}: {label_of(seen[run.file_name])} and {label_of(run)} would "
                         f"both write {run.results}")
        seen.setdefault(run.file_name, run)
    dims: dict[str, tuple[int, int]] = {}
    if thorough:
        for env_name in dict.fromkeys(run.env for run in runs):
            try:
                env = train_sac.make_env(env_name)
            except train_sac.UsageError as error:
                lines.append(f"{source}: common.enabled_environments: {error}")
                continue
            dims[env_name] = (env.observation_space.shape[0], env.action_space.shape[0])
            env.close()
    return dims, lines


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


def duplicate_keys(text: str, source: str) -> list[str]:
    """yaml.safe_load keeps the last of two equal keys silently; find them in the node tree."""
    problems = []
    stack = [yaml.compose(text, Loader=yaml.SafeLoader)]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    problems.append(f"{source}:{key_node.start_mark.line + 1}: key "
                                    f"{key_node.value!r} appears twice in the same mapping")
                seen.add(key)
                stack.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return problems


def load_sweep(path: Path, thorough: bool = True) -> tuple[list[Run], dict[str, tuple[int, int]]]:
    """Parse, expand and validate a sweep file. Raises ConfigError with every problem."""
    source = str(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError([f"cannot read {source}: {error.strerror}"]) from None
    try:
        config = yaml.safe_load(text)
        doubled = duplicate_keys(text, source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError([f"{at}: malformed YAML: {problem}"]) from None
    flags = train_sac_flags()
    runs, problems = grid_and_problems(config, flags, source)
    dims, more = resolve_runs(runs, flags, source, thorough)
    problems = doubled + problems + more
    if problems:
        raise ConfigError(problems)
    return runs, dims


# --------------------------------------------------------------------------- one run's process
def die_with_parent() -> None:
    """In the child, before exec: SIGKILL this process if its supervisor dies (Linux), so a
    crashed launcher or job never leaves an unsupervised run writing its checkpoints."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def child_env(threads: int, gpu: str | None = None) -> dict[str, str]:
    """What a run's environment adds: thread limits (and a pinned GPU)."""
    extra = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
             "OPENBLAS_NUM_THREADS": str(threads)}
    if gpu is not None:
        extra["CUDA_VISIBLE_DEVICES"] = gpu
    return extra


def command_of(run: Run) -> list[str]:
    return [sys.executable, "-u", str(TRAIN_SAC), *run.argv]


def shell_line(run: Run, extra_env: dict[str, str]) -> str:
    """The command as one copy-pasteable shell line."""
    return shlex.join([f"{k}={v}" for k, v in extra_env.items()] + command_of(run))


def open_locked_log(path: Path) -> Any:
    """The run's log, opened for appending and flock-ed; None if another process holds it.
    The child inherits the descriptor as its stdout, so the lock lasts as long as it runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a", buffering=1)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def log_is_locked(path: Path) -> bool:
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def start_child(payload: dict[str, Any], log: Any, new_session: bool) -> subprocess.Popen:
    log.write(f"=== run_sac.py {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()}: "
              f"{shlex.join([f'{k}={v}' for k, v in payload['env'].items()] + payload['command'])}"
              f"\n")
    child = subprocess.Popen(payload["command"], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=payload["cwd"],
                             env={**os.environ, **payload["env"]},
                             start_new_session=new_session, preexec_fn=die_with_parent)
    log.write(f"=== pid {child.pid}\n")
    return child


def end_log(log: Any, returncode: int, seconds: float) -> None:
    log.write(f"=== run_sac.py: {describe_exit(returncode)} after {format_duration(seconds)}\n")
    log.close()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit status {returncode}"


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def stop_child(child: subprocess.Popen, grace: float) -> None:
    """SIGINT (train_sac.py stops at once; its last checkpoint stays), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)
        child.wait()


def payload_of(run: Run, extra_env: dict[str, str]) -> dict[str, Any]:
    """Everything a job needs to run one experiment, as plain picklable values."""
    return {"file_name": run.file_name, "command": command_of(run), "env": extra_env,
            "cwd": os.getcwd(), "log": str(run.log.resolve()),
            "summary_json": str(run.summary_json.resolve())}


class RunTask:
    """The callable each submitit job runs: one train_sac.py process, with the same lock,
    skip and log rules as the local launcher. On a Slurm timeout or preemption submitit
    calls checkpoint(): the run is stopped and the job requeued; it resumes from its
    train_sac.py checkpoint."""

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._child = None

    def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
        log = open_locked_log(Path(payload["log"]))
        if log is None:
            return {"status": "busy", "returncode": None, "seconds": 0.0}
        if Path(payload["summary_json"]).exists():
            log.close()
            return {"status": "skipped", "returncode": 0, "seconds": 0.0}
        start = time.time()
        self._child = start_child(payload, log, new_session=False)
        try:
            returncode = self._child.wait()
        except BaseException:  # a cancel (KeyboardInterrupt), or submitit requeuing the job
            stop_child(self._child, grace=30.0)  # (SystemExit) after checkpoint()
            end_log(log, self._child.returncode, time.time() - start)
            raise
        end_log(log, returncode, time.time() - start)
        return {"status": "finished" if returncode == 0 else "failed",
                "returncode": returncode, "seconds": time.time() - start}

    def checkpoint(self, payload: dict[str, Any]) -> Any:
        """Called by submitit's signal handler while __call__ waits on the child. It only
        sends SIGINT: waiting here would wait on the lock __call__'s wait() holds. submitit
        then requeues and exits, and __call__ reaps the child on the way out."""
        import submitit

        if self._child is not None:
            with contextlib.suppress(ProcessLookupError):
                self._child.send_signal(signal.SIGINT)
        return submitit.helpers.DelayedSubmission(RunTask(), payload)


# --------------------------------------------------------------------------- progress
LINE_PATTERNS = {
    "start": re.compile(r"^(Starting|Resuming) \S+ at step (\d+)"),
    "progress": re.compile(r"^step (\d+)/(\d+) .*\| ([\d.]+) steps/s"),
    "eval": re.compile(r"^Evaluation over \d+ episodes at step (\d+):"),
    "actor": re.compile(r"^\s+Actor (\d+) - Deterministic: (\S+)"),
    "finished": re.compile(r"^Finished \S+: (\d+) steps"),
}


@dataclass
class RunState:
    """What the launcher knows about a run, partly read back from its log."""
    run: Run
    status: str = "pending"  # pending queued running finished skipped failed interrupted busy
    offset: int = 0  # log bytes already parsed
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None
    message: str = ""  # why it failed
    start_step: int = 0
    step: int = 0
    rate: float = 0.0
    eval_step: int | None = None
    returns: dict[int, float] = field(default_factory=dict)
    last_line: str = ""
    error_line: str = ""
    gpu: str | None = None
    job_id: str = ""

    def read_log(self) -> None:
        """Parse what the run wrote since the last call (complete lines only)."""
        try:
            with open(self.run.log, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            self.parse(line)

    def parse(self, line: str) -> None:
        if line.startswith("=== "):
            return
        if line.strip():
            self.last_line = line.strip()
        if line.startswith("train_sac.py: error:"):
            self.error_line = line.strip()
        match = LINE_PATTERNS["start"].match(line)
        if match:
            self.start_step = self.step = int(match.group(2))
        match = LINE_PATTERNS["progress"].match(line)
        if match:
            self.step = max(self.step, int(match.group(1)))
            self.rate = float(match.group(3))
        match = LINE_PATTERNS["eval"].match(line)
        if match:
            self.eval_step = int(match.group(1))
            self.step = max(self.step, self.eval_step)
            self.returns = {}
        match = LINE_PATTERNS["actor"].match(line)
        if match:
            self.returns[int(match.group(1))] = float(match.group(2))
        match = LINE_PATTERNS["finished"].match(line)
        if match:
            self.step = int(match.group(1))

    def eta(self) -> str:
        total = self.run.num_steps
        if self.status != "running" or self.step >= total:
            return ""
        rate = self.rate  # train_sac.py's own, between progress lines (evaluations excluded)
        elapsed = time.time() - self.started
        if self.step > self.start_step and elapsed > 60:
            rate = (self.step - self.start_step) / elapsed  # this attempt's, evaluations included
        return f"ETA {format_duration((total - self.step) / rate)}" if rate > 0 else "ETA ?"

    def line(self) -> str:
        total = self.run.num_steps
        pct = 100.0 * self.step / total if total else 0.0
        evals = ""
        if self.eval_step is not None and self.returns:
            evals = (f"eval@{self.eval_step}: "
                     + " ".join(f"A{i} {r:.1f}" for i, r in sorted(self.returns.items())))
        extra = self.job_id and f"job {self.job_id}"
        return "  ".join(part for part in (
            f"{self.run.file_name}", f"{self.status:<11}",
            f"{self.step:>8}/{total} {pct:5.1f}%", evals, self.eta(), extra) if part)


class ProgressView:
    """A live view, one line per run. On a terminal it redraws in place every second;
    otherwise it prints start/end events and, every `interval` seconds, the running runs."""

    def __init__(self, states: list[RunState], interval: float, stream: Any = None):
        self.states, self.interval = states, interval
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty()
        self.drawn = 0
        self.last_print = time.time()
        self.started = time.time()

    def event(self, state: RunState, text: str) -> None:
        if not self.tty:
            print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.stream, flush=True)

    def header(self) -> str:
        counts: dict[str, int] = {}
        for state in self.states:
            counts[state.status] = counts.get(state.status, 0) + 1
        parts = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"sweep: {len(self.states)} runs ({parts}) | {format_duration(time.time() - self.started)}"

    def refresh(self, force: bool = False) -> None:
        for state in self.states:
            if state.status == "running":
                state.read_log()
        if self.tty:
            if force or time.time() - self.last_print >= 1.0:
                self.last_print = time.time()
                self.redraw()
        elif force or time.time() - self.last_print >= self.interval:
            self.last_print = time.time()
            running = [s for s in self.states if s.status == "running"]
            if running:
                print(self.header(), file=self.stream)
                for state in running:
                    print("  " + state.line(), file=self.stream)
                self.stream.flush()

    def redraw(self) -> None:
        width, height = shutil.get_terminal_size()
        shown = self.states
        if len(shown) + 1 > height - 1:  # too many for the screen: the active ones first
            order = {"running": 0, "queued": 1, "failed": 2, "interrupted": 3}
            shown = sorted(self.states, key=lambda s: order.get(s.status, 9))[:max(height - 2, 1)]
        lines = [self.header()] + [state.line() for state in shown]
        out = f"\x1b[{self.drawn}F" if self.drawn else ""
        out += "".join(f"\x1b[2K{line[:width - 1]}\n" for line in lines)
        if len(lines) < self.drawn:
            out += "".join("\x1b[2K\n" for _ in range(self.drawn - len(lines)))
            out += f"\x1b[{self.drawn - len(lines)}F"
        self.stream.write(out)
        self.stream.flush()
        self.drawn = len(lines)


# --------------------------------------------------------------------------- local launcher
# the launch loops stop their runs on these, between polls
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class GpuPool:
    """Round-robin over the GPUs, skipping busier ones: each run gets the GPU running the
    fewest runs, ties going to the one assigned longest ago. No GPUs: None."""

    def __init__(self, gpus: list[str]):
        self.load = {gpu: 0 for gpu in gpus}
        self.last = {gpu: index - len(gpus) for index, gpu in enumerate(gpus)}
        self.clock = 0

    def take(self) -> str | None:
        if not self.load:
            return None
        gpu = min(self.load, key=lambda g: (self.load[g], self.last[g]))
        self.load[gpu] += 1
        self.last[gpu] = self.clock
        self.clock += 1
        return gpu

    def give(self, gpu: str | None) -> None:
        if gpu is not None:
            self.load[gpu] -= 1


def launch_local(states: list[RunState], jobs: int, threads: int, gpus: list[str],
                 view: ProgressView, grace: float = STOP_GRACE_S) -> int | None:
    """Run the pending runs, `jobs` at a time. Returns the signal number that stopped the
    sweep, or None when every run ended."""
    pending = [s for s in states if s.status == "pending"]
    running: dict[int, tuple[RunState, subprocess.Popen, Any]] = {}
    pool = GpuPool(gpus)
    with CaughtSignals(*STOP_SIGNALS) as stop:
        while pending or running:
            if stop.count:
                break
            while pending and len(running) < jobs:
                state = pending.pop(0)
                if state.run.finished:  # finished since the sweep started (another launcher)
                    state.status = "skipped"
                    continue
                log = open_locked_log(state.run.log)
                if log is None:
                    state.status, state.message = "busy", "another process holds its log lock"
                    view.event(state, f"busy     {state.run.file_name} (another process is "
                                      f"running it)")
                    continue
                state.gpu = pool.take()
                payload = payload_of(state.run, child_env(threads, state.gpu))
                state.offset = state.run.log.stat().st_size  # read this attempt only
                child = start_child(payload, log, new_session=True)
                state.status, state.started = "running", time.time()
                running[child.pid] = (state, child, log)
                view.event(state, f"started  {state.run.file_name} (log {state.run.log})")
            for pid, (state, child, log) in list(running.items()):
                returncode = child.poll()
                if returncode is None:
                    continue
                del running[pid]
                finish_state(state, returncode, log)
                pool.give(state.gpu)
                view.event(state, f"{state.status:<8} {state.run.file_name}"
                                  + (f": {state.message}" if state.message else ""))
            view.refresh()
            if pending or running:
                time.sleep(0.2)
        if stop.count:
            names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
            print(f"\n{names.get(stop.signum, 'signal')}: stopping {len(running)} running "
                  f"run(s); re-run the same command to resume them from their checkpoints "
                  f"(Ctrl-C again kills them now)", file=sys.stderr, flush=True)
            for state, child, log in running.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGINT)
            deadline = time.time() + grace
            count = stop.count
            while any(child.poll() is None for _, child, _ in running.values()):
                if time.time() > deadline or stop.count > count:
                    for _, child, _ in running.values():
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(child.pid, signal.SIGKILL)
                time.sleep(0.1)
            for state, child, log in running.values():
                finish_state(state, child.returncode, log)
                mark_interrupted(state)
            for state in pending:
                state.status = "not started"
            view.refresh(force=True)
            return stop.signum
    view.refresh(force=True)
    return None


def mark_interrupted(state: RunState) -> None:
    state.status = "interrupted"
    state.message = (f"resumes from {state.run.latest_checkpoint}"
                     if state.run.latest_checkpoint.exists() else "no checkpoint yet: starts over")


def finish_state(state: RunState, returncode: int, log: Any) -> None:
    state.seconds = time.time() - state.started
    state.returncode = returncode
    end_log(log, returncode, state.seconds)
    state.read_log()
    if returncode == 0 and state.run.finished:
        state.status = "finished"
    else:
        state.status = "failed"
        state.message = state.error_line or (
            f"{describe_exit(returncode)}; last line: {state.last_line}" if state.last_line
            else describe_exit(returncode))


# --------------------------------------------------------------------------- submitit launcher
def parse_minutes(text: str) -> int:
    """Slurm-style time: minutes, or [D-]HH:MM[:SS]."""
    if text.isdigit():
        return int(text)
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{2})(?::(\d{2}))?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected minutes or [D-]HH:MM[:SS], got {text!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return days * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)


def key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def make_executor(args: argparse.Namespace, folder: Path, array_parallelism: int) -> Any:
    import submitit

    cluster = "slurm" if args.launcher == "slurm" else "local"
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster,
                                     slurm_max_num_timeout=args.max_requeues)
    executor.update_parameters(
        name="posac-sweep", timeout_min=args.time, nodes=1, tasks_per_node=1,
        cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_task, mem_gb=args.mem_gb,
        slurm_partition=args.partition, slurm_array_parallelism=array_parallelism,
        slurm_additional_parameters=dict(args.slurm_extra) or None)
    return executor


def launch_submitit(states: list[RunState], args: argparse.Namespace, threads: int,
                    folder: Path, view: ProgressView) -> int | None:
    """Submit the pending runs as one submitit job array, then (unless --detach) follow it."""
    todo = [s for s in states if s.status == "pending"]
    executor = make_executor(args, folder, array_parallelism=args.jobs or len(todo))
    payloads = [payload_of(s.run, child_env(threads)) for s in todo]
    task = RunTask()
    if __name__ != "__main__":  # imported (tests): send the task's code along with it
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    jobs = executor.map_array(task, payloads)
    for state, job in zip(todo, jobs):
        state.status, state.job_id = "queued", str(job.job_id)
        state.offset = state.run.log.stat().st_size if state.run.log.exists() else 0
    print(f"submitted {len(jobs)} run(s) through submitit: "
          + (f"Slurm job array {jobs[0].job_id.split('_')[0]}" if args.launcher == "slurm"
             else f"local jobs {', '.join(str(job.job_id) for job in jobs)}")
          + f" (submitit files in {folder})", flush=True)
    if args.detach:
        for state in todo:
            print(f"  {state.job_id}  {state.run.file_name}  log {state.run.log}")
        return None
    waiting = dict(zip(range(len(todo)), zip(todo, jobs)))
    with CaughtSignals(*STOP_SIGNALS) as stop:
        while waiting and not stop.count:
            for key, (state, job) in list(waiting.items()):
                if state.status == "queued" and job.state.upper() in ("RUNNING", "COMPLETING"):
                    state.status, state.started = "running", time.time()
                    view.event(state, f"started  {state.run.file_name} (job {state.job_id})")
                if not job.done():
                    continue
                del waiting[key]
                collect_job(state, job)
                view.event(state, f"{state.status:<8} {state.run.file_name}"
                                  + (f": {state.message}" if state.message else ""))
            view.refresh()
            time.sleep(2.0 if args.launcher == "slurm" else 0.5)  # done() reads the shared FS
        if stop.count:
            print(f"\nstopping: cancelling {len(waiting)} job(s); re-run the same command to "
                  f"resume them from their checkpoints", file=sys.stderr, flush=True)
            for state, job in waiting.values():
                job.cancel(check=False)
            deadline = time.time() + STOP_GRACE_S
            while time.time() < deadline and not all(j.done() for _, j in waiting.values()):
                time.sleep(0.2)
            for state, job in waiting.values():
                state.read_log()
                if state.status == "running":
                    mark_interrupted(state)
                else:
                    state.status = "not started"
            return stop.signum
    view.refresh(force=True)
    return None


def collect_job(state: RunState, job: Any) -> None:
    state.read_log()
    try:
        result = job.result()
    except Exception as error:  # the job itself failed (node failure, cancelled, …)
        state.status = "failed"
        state.message = f"job {state.job_id}: {str(error).strip().splitlines()[-1]}"
        return
    state.returncode = result["returncode"]
    state.seconds = result["seconds"]
    state.status = result["status"]
    if state.status == "finished" and not state.run.finished:
        state.status = "failed"
    if state.status == "failed":
        state.message = state.error_line or (f"{describe_exit(state.returncode)}; last line: "
                                             f"{state.last_line}")


# --------------------------------------------------------------------------- reporting
def final_returns(state: RunState) -> dict[int, float]:
    if state.run.finished:
        import json

        with contextlib.suppress(OSError, ValueError, KeyError):
            summary = json.loads(state.run.summary_json.read_text())
            final = summary["final_eval"]
            state.step = summary.get("steps", state.step)
            state.seconds = summary.get("wall_time_s", state.seconds)  # all attempts, training
            return {i: final[f"actor_{i}_deterministic"] for i in range(state.run.num_actors)}
    return dict(state.returns)


def status_table(states: list[RunState]) -> str:
    """run | status | steps | final deterministic return per actor | wall time | log."""
    actors = max((s.run.num_actors for s in states), default=1)
    rows = [["run", "status", "steps", *(f"actor {i}" for i in range(actors)), "wall", "log"]]
    notes: dict[int, str] = {}
    for state in states:
        returns = final_returns(state)
        rows.append([state.run.file_name, state.status, f"{state.step}/{state.run.num_steps}",
                     *(f"{returns[i]:.2f}" if i in returns else "-" for i in range(actors)),
                     format_duration(state.seconds) if state.seconds else "-",
                     str(state.run.log) if state.run.log.exists() else "-"])
        if state.message:
            notes[len(rows) - 1] = state.message
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if index in notes:
            lines.append(f"    └ {notes[index]}")
    return "\n".join(lines)


def memory_per_run(run: Run, dims: dict[str, tuple[int, int]]) -> int:
    """Peak resident bytes of one run: the replay memory (twice while a checkpoint loads)
    plus the process itself."""
    obs, act = dims.get(run.env, (0, 0))
    replay = run.settings.get("replay_size", 1_000_000)
    return int(2 * (int(replay) + 1) * (4 * obs + 4 * act + 6)) + MEMORY_OVERHEAD_BYTES


def available_memory() -> int | None:
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as handle:
            line = next(l for l in handle if l.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    return None


def cpu_count() -> int:
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_jobs(todo: list[Run], dims: dict[str, tuple[int, int]]) -> tuple[int, str]:
    """What this machine can hold: one run per core, no more than memory allows."""
    cores = cpu_count()
    jobs, why = cores, f"{cores} cores"
    free = available_memory()
    if free is not None and todo and dims:
        need = max(memory_per_run(run, dims) for run in todo)
        fit = max(1, int(0.9 * free // need))
        if fit < jobs:
            jobs, why = fit, f"memory: {free / 2**30:.1f} GiB free, up to {need / 2**30:.1f} GiB per run"
    return max(1, min(jobs, len(todo) or 1)), why


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="run_sac.py",
        description="Run a POSAC sweep (environments × w2 settings × seeds) from a YAML file, "
                    "skipping finished runs and resuming unfinished ones.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", type=Path, default=Path("config_sac.yaml"),
                        help="sweep file (see config_sac.yaml)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true",
                      help="validate, then print every command and where its results go")
    mode.add_argument("--summarize", action="store_true",
                      help="only write the results tables and learning curves")
    local = parser.add_argument_group("running here (--launcher local)")
    local.add_argument("--jobs", type=positive_int, default=None,
                       help="runs at once (default: one per CPU core, fewer if memory is short; "
                            "with Slurm: the job array's parallelism)")
    local.add_argument("--threads-per-job", type=positive_int, default=None,
                       help="OMP/MKL threads per run (default: cores // jobs, at least 1; "
                            "with Slurm: --cpus-per-task)")
    local.add_argument("--gpus", default=None,
                       help="GPU ids, e.g. 0,1: each run gets CUDA_VISIBLE_DEVICES set to the "
                            "GPU running fewest runs (round-robin); set cuda: true in the YAML")
    local.add_argument("--progress-interval", type=float, default=60.0,
                       help="seconds between progress printouts when stdout is not a terminal")
    cluster = parser.add_argument_group("Slurm (--launcher slurm, through submitit)")
    cluster.add_argument("--launcher", choices=("local", "slurm", "submitit-local"),
                         default="local",
                         help="local: subprocesses here; slurm: one submitit job array; "
                              "submitit-local: that same job array run by submitit's "
                              "LocalExecutor on this machine (all runs at once; for testing)")
    cluster.add_argument("--partition", default=None, help="Slurm partition")
    cluster.add_argument("--time", type=parse_minutes, default=1440,
                         help="time limit per job, minutes or [D-]HH:MM[:SS]; a job that hits "
                              "it is requeued and resumes from its checkpoint")
    cluster.add_argument("--gpus-per-task", type=non_negative_int, default=0,
                         help="GPUs per run (needs cuda: true in the YAML)")
    cluster.add_argument("--cpus-per-task", type=positive_int, default=4, help="CPUs per run")
    cluster.add_argument("--mem-gb", type=float, default=None,
                         help="memory per run (default: the cluster's)")
    cluster.add_argument("--max-requeues", type=non_negative_int, default=5,
                         help="times a job may be requeued after hitting --time")
    cluster.add_argument("--slurm-extra", type=key_value, action="append", default=[],
                         metavar="KEY=VALUE",
                         help="extra #SBATCH setting, e.g. account=myproj (repeatable)")
    cluster.add_argument("--submitit-dir", type=Path, default=None,
                         help="submitit's job files (default: {results_dir}/submitit)")
    cluster.add_argument("--detach", action="store_true",
                         help="submit and exit instead of following the jobs")
    output = parser.add_argument_group("results")
    output.add_argument("--summary-dir", type=Path, default=None,
                        help="tables and plots (default: {results_dir}/summary)")
    output.add_argument("--no-summary", action="store_true",
                        help="do not write the results summary at the end of a sweep")
    return parser


def results_root(runs: list[Run]) -> Path:
    """The results_dir shared by the sweep (the first run's, if environments override it)."""
    return runs[0].results.parent if runs else Path("results")


def summarize(runs: list[Run], summary_dir: Path) -> None:
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import plot_results

    records = [plot_results.RunRecord(env=r.env, weights=r.weights, seed=r.seed,
                                      metrics_csv=r.metrics_csv, finished=r.finished)
               for r in runs]
    plot_results.write_summary(records, summary_dir)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.launcher != "local" and args.gpus:
        fail("--gpus pins runs on this machine; with Slurm use --gpus-per-task")
    try:
        runs, dims = load_sweep(args.config, thorough=not args.summarize)
    except ConfigError as error:
        for problem in error.problems:
            print(f"run_sac.py: error: {problem}", file=sys.stderr)
        return 2
    summary_dir = args.summary_dir or results_root(runs) / "summary"
    if args.summarize:
        summarize(runs, summary_dir)
        return 0

    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else []
    todo = [run for run in runs if not run.finished]
    # launch order: seed-major, so every (env, w2) cell gets its first seed early
    seed_rank = {seed: rank for rank, seed in enumerate(dict.fromkeys(r.seed for r in runs))}
    todo.sort(key=lambda run: seed_rank[run.seed])  # stable: grid order within a seed
    if args.launcher == "local":
        jobs, why = (args.jobs, "--jobs") if args.jobs else default_jobs(todo, dims)
        threads = args.threads_per_job or max(1, cpu_count() // jobs)
    else:
        jobs, why = (args.jobs or len(todo) or 1), "array parallelism"
        threads = args.threads_per_job or (
            args.cpus_per_task if args.launcher == "slurm"
            else max(1, cpu_count() // max(1, len(todo))))
    if gpus and not all(run.cuda for run in todo):
        print("run_sac.py: warning: --gpus given but some runs have cuda: false; they ignore "
              "their GPU", file=sys.stderr)
    if args.launcher == "slurm" and any(run.cuda for run in todo) and not args.gpus_per_task:
        fail("runs have cuda: true but --gpus-per-task is 0")
    if args.launcher == "slurm" and args.gpus_per_task and not all(run.cuda for run in todo):
        print("run_sac.py: warning: --gpus-per-task given but some runs have cuda: false; "
              "they leave their GPU idle", file=sys.stderr)
    folder = (args.submitit_dir or results_root(runs) / "submitit").resolve()

    if args.dry_run:
        dry_run(runs, todo, args, jobs, why, threads, gpus, folder)
        return 0
    if args.launcher == "slurm" and todo and shutil.which("srun") is None:
        fail("--launcher slurm needs Slurm's srun on PATH (run it on a login node); "
             "--launcher submitit-local runs the same job array on this machine")

    states = [RunState(run=run) for run in todo]
    done = [RunState(run=run, status="skipped") for run in runs if run.finished]
    view = ProgressView(states, args.progress_interval)
    print(f"{len(runs)} runs: {len(done)} finished already (skipped), {len(todo)} to run; "
          + (f"{jobs} at once ({why}), {threads} thread(s) each" if args.launcher == "local"
             else f"launcher {args.launcher}, {threads} thread(s) each")
          + (f", GPUs {','.join(gpus)}" if gpus else ""), flush=True)
    stopped = None
    if todo:
        if args.launcher == "local":
            stopped = launch_local(states, jobs, threads, gpus, view)
        else:
            stopped = launch_submitit(states, args, threads, folder, view)
            if args.detach:
                return 0
    by_name = {s.run.file_name: s for s in states + done}
    ordered = [by_name[run.file_name] for run in runs]
    print("\n" + status_table(ordered), flush=True)
    failed = [s for s in ordered if s.status == "failed"]
    if stopped is None and not args.no_summary and any(r.metrics_csv.exists() for r in runs):
        print()
        summarize(runs, summary_dir)
    if stopped is not None:
        return 128 + stopped
    if failed:
        print(f"\n{len(failed)} run(s) failed; see their logs. Re-running the sweep retries "
              f"them and skips the finished ones.", file=sys.stderr)
        return 1
    return 0


def dry_run(runs: list[Run], todo: list[Run], args: argparse.Namespace, jobs: int, why: str,
            threads: int, gpus: list[str], folder: Path) -> None:
    print(f"{len(runs)} runs from {args.config}: {len(runs) - len(todo)} finished (skipped), "
          f"{len(todo)} to run, launched seed by seed (every cell's first seed first)")
    if args.launcher == "local":
        print(f"launcher local: {jobs} at once ({why}), {threads} thread(s) each"
              + (f"; each run gets CUDA_VISIBLE_DEVICES = the GPU of {','.join(gpus)} running "
                 f"fewest runs" if gpus else ""))
    else:
        print(f"launcher {args.launcher}: one submitit job array of {len(todo)} task(s), "
              f"{jobs} at once; time {args.time} min, {args.cpus_per_task} CPUs, "
              f"{args.gpus_per_task} GPUs per task"
              + (f", partition {args.partition}" if args.partition else "")
              + (f", {args.mem_gb} GB" if args.mem_gb else "")
              + f"; job files in {folder}")
    for run in runs:
        if run.finished:
            state = "finished: skip"
        elif run.latest_checkpoint.exists():
            state = f"resume from {run.latest_checkpoint}"
        elif run.results.exists():
            state = "started before, no checkpoint: starts over"
        else:
            state = "new"
        print(f"\n# {run.file_name} [{state}]")
        print(f"#   results {run.results}  log {run.log}")
        print(shell_line(run, child_env(threads)))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before anything was launched
        print("\nrun_sac.py: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # e.g. --dry-run | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
