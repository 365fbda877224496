"""Sweep file → validated runs: the YAML read, checked key by key, and expanded into the
grid enabled task × w2 setting × seed; then every run is checked by the training script
itself (sweeps/script.py). run_sac.py's validation room.

The file's top-level keys: `script` (the training script, a file in the repository root;
default train_sac.py), `common` (the sweep keys `seeds`, `enabled_{section}`, `w2_weights`
or `w2_weights_list`, and any of the script's flags) and the script's task section, named
by its SWEEP_SECTION (`environments` for train_sac.py, `datasets` for train_pogo.py): one
entry per enabled task, overriding `common` key by key; a task is the value of the
script's SWEEP_AXIS flag. "{seed}" in a text value becomes each run's seed. Every problem
found becomes one line of a ConfigError.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from sweeps.script import DEFAULT_SCRIPT, Run, Script, is_number, load_script, resolve_runs
from utils import MAX_SEED, UsageError, parse_w2_weights

SWEEP_KEYS = {"seeds", "w2_weights", "w2_weights_list"}  # allowed in common and in an entry
W2_KEYS = ("w2_weights", "w2_weights_list")


class ConfigError(Exception):
    """Every problem found in a sweep file, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def grid_owned(script: Script) -> dict[str, str]:
    """The script's flags a sweep must not set, and why."""
    return {
        script.axis: f"{script.section} come from common.{script.enabled_key} and the "
                     f"{script.section} section",
        "seed": "use seeds: [...] (a list; every seed is one run)",
        "run_name": f"run names are derived from {script.task}, seed and weights, so runs "
                    f"never collide",
        "resume": "run_sac.py always passes --resume: finished runs are skipped, the rest "
                  "continue"}


def top_level_keys(script: Script) -> tuple[str, ...]:
    """The keys a sweep file may have at its top: script, common and the script's section."""
    return ("script", "common", script.section)


def non_empty_list_of(value: Any, kind: type) -> bool:
    """Whether `value` is a non-empty list of `kind` items (true and false are no int)."""
    return (isinstance(value, list) and bool(value)
            and all(isinstance(item, kind) and not isinstance(item, bool) for item in value))


def read_keys(mapping: dict, where: str, allowed: set[str], script: Script,
              problems: list[str]) -> dict[str, Any]:
    """The mapping with keys normalised to underscores; unknown, doubled and grid-owned keys
    become problems (with the nearest valid name)."""
    owned = grid_owned(script)
    known = allowed | (set(script.flags) - set(owned))
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
        if key in owned:
            problems.append(f"{where}.{raw}: cannot be set in a sweep: {owned[key]}")
        elif key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; see python {script.name} --help"
            problems.append(f"{where}: unknown key {raw!r}{hint}")
        else:
            out[key] = value
    return out


def check_values(settings: dict[str, Any], where: dict[str, str], script: Script,
                 problems: list[str]) -> None:
    """Types that YAML can get wrong before the script's parser sees the values."""
    for key, value in settings.items():
        flag = script.flags.get(key)
        if flag is None:
            continue
        if value is None:
            problems.append(f"{where[key]}: has no value; remove the key to use "
                            f"{script.name}'s default ({flag.default!r})")
        elif flag.boolean and not isinstance(value, bool):
            problems.append(f"{where[key]}: must be true or false (got {value!r})")
        elif not flag.boolean and isinstance(value, (bool, list, dict)):
            problems.append(f"{where[key]}: must be a single {type(flag.default).__name__} "
                            f"(got {value!r})")


def number_form(value: float, at: str, num_actors: int | None, script: Script,
                problems: list[str]) -> list[float] | None:
    """A w2 setting given as one number: what utils.parse_w2_weights makes of it for the
    script (0.0,w,w,… where its actor 0's weight is zero, else w,w,…).
    Without num_actors it has no length, and is refused with what it would stand for."""
    try:
        if num_actors is not None:
            return parse_w2_weights(repr(value), num_actors, script.module.ACTOR0_WEIGHT_ZERO)
        example = parse_w2_weights(repr(value), 3, script.module.ACTOR0_WEIGHT_ZERO)
    except ValueError as error:
        problems.append(f"{at}: {error}")
        return None
    problems.append(f"{at}: the number {value!r} stands for [{', '.join(map(repr, example))}, "
                    f"…] and needs num_actors; set num_actors or write the weights out, e.g. "
                    f"{example[:2]}")
    return None


def weight_settings(entry: dict[str, Any], where: str, num_actors: int | None, script: Script,
                    problems: list[str]) -> list[tuple[float, ...]]:
    """The w2 settings of one task: `w2_weights` (one setting) or `w2_weights_list`.
    A setting is a list with one weight per actor, or a single number (see number_form).
    With `num_actors` None (not set), each list's length is its run's number of actors, so
    one sweep can compare chain lengths."""
    if all(key in entry for key in W2_KEYS):
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
            value = number_form(value, at, num_actors, script, problems)
            if value is None:
                continue
        if not (isinstance(value, list) and value and all(is_number(w) for w in value)):
            problems.append(f"{at}: {value!r} is not a list of numbers like [0.0, 0.1] "
                            f"(or a single number)")
            continue
        weights = tuple(float(w) for w in value)
        if num_actors is not None and len(weights) != num_actors:
            problems.append(f"{at}: {len(weights)} weights {list(weights)} but num_actors is "
                            f"{num_actors}; give one weight per actor")
        elif weights in settings:
            problems.append(f"{at}: {list(weights)} is listed twice")
        else:
            settings.append(weights)
    return settings


def seeds_of(value: Any, where: str, problems: list[str]) -> list[int]:
    """`seeds`: a non-empty list of distinct integers in [0, 2**63) (utils.MAX_SEED)."""
    if not non_empty_list_of(value, int) or not all(0 <= seed < MAX_SEED for seed in value):
        problems.append(f"{where}: must be a non-empty list of integers in [0, 2**63) such as "
                        f"[1, 2, 3] (got {value!r})")
        return []
    if len(set(value)) != len(value):
        problems.append(f"{where}: lists a seed twice ({value})")
        return []
    return list(value)


def misnamed_section(config: dict, script: Script, source: str) -> str | None:
    """The one problem of a file whose task section is named for another script's tasks
    (`environments:` with `common.enabled_environments` where the script's tasks are
    datasets): the rename to make, or None. A misnamed section is found by its enabled list
    in `common`, so that a misspelt section stays an unknown top-level key."""
    common = config.get("common")
    if not isinstance(common, dict) or script.enabled_key in common:
        return None
    wrong = next((key[len("enabled_"):] for key in common if isinstance(key, str)
                  and key.startswith("enabled_") and key.replace("-", "_") not in script.flags
                  and key != script.enabled_key), None)
    if wrong is None:
        return None
    renames = (f"`{wrong}:` to `{script.section}:` (and `enabled_{wrong}` to "
               f"`{script.enabled_key}`)" if wrong in config and script.section not in config
               else f"`common.enabled_{wrong}` to `common.{script.enabled_key}`")
    return f"{source}: {script.name}'s tasks are {script.section}: rename {renames}"


def sections(config: dict, script: Script, source: str,
             problems: list[str]) -> tuple[dict[str, Any], dict]:
    """The file's `common` settings (keys normalised) and its raw per-task entries."""
    section, allowed = script.section, top_level_keys(script)
    for key in config:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = (f"; did you mean {close[0]}?" if close
                    else f"; {script.name}'s tasks go under `{section}:`"
                    if section not in config else f"; use common and {section}")
            problems.append(f"{source}: unknown top-level key {key!r}{hint}")
    common_raw, entries = config.get("common") or {}, config.get(section) or {}
    if section not in config and not problems:
        problems.append(f"{source}: no {section} section; add `{section}:` with an entry per "
                        f"enabled {script.task}")
    if not isinstance(common_raw, dict):
        problems.append(f"{source}: common must be a mapping of settings")
        common_raw = {}
    if not isinstance(entries, dict):
        problems.append(f"{source}: {section} must be a mapping from {script.task} id to "
                        f"settings")
        entries = {}
    return read_keys(common_raw, f"{source}: common", SWEEP_KEYS | {script.enabled_key},
                     script, problems), entries


def enabled_tasks(common: dict[str, Any], script: Script, source: str,
                  problems: list[str]) -> list[str]:
    """common.enabled_{section}: the tasks to run, in order, each once."""
    key, enabled = script.enabled_key, common.get(script.enabled_key)
    if not non_empty_list_of(enabled, str):
        problems.append(f"{source}: common.{key} must be a non-empty list of "
                        f"{script.task} ids (got {enabled!r})")
        return []
    if len(set(enabled)) != len(enabled):
        problems.append(f"{source}: common.{key} lists {article(script.task)} twice")
    return list(dict.fromkeys(enabled))


def article(noun: str) -> str:
    """'an environment', 'a dataset'."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def expand_grid(config: Any, script: Script, source: str = "config"
                ) -> tuple[list[Run], list[str]]:
    """The runs of a parsed sweep file, in enabled-task × w2-setting × seed order, of every
    task whose settings have no problem; and every problem found (each once).

    A task's entry overrides `common` key by key (its w2 key replaces common's, of either
    form). Every enabled task must have an entry (`{}` or an empty value means: the common
    settings)."""
    if not isinstance(config, dict):
        return [], [f"{source}: the file must be a mapping with `common` and "
                    f"`{script.section}` (got {type(config).__name__})"]
    misnamed = misnamed_section(config, script, source)
    if misnamed is not None:
        return [], [misnamed]  # every other line would be this one in other words
    problems: list[str] = []
    common, entries = sections(config, script, source, problems)
    runs: list[Run] = []
    for task in enabled_tasks(common, script, source, problems):
        if script.section in config:  # else reported above, once
            runs += task_runs(task, common, entries, script, source, problems)
    return runs, list(dict.fromkeys(problems))


def entry_of(task: str, entries: dict, script: Script, source: str,
             problems: list[str]) -> dict | None:
    """A task's entry (an empty one is {}), or None when it has none or it is no mapping."""
    if task not in entries:
        close = difflib.get_close_matches(task, [str(k) for k in entries], n=1, cutoff=0.6)
        hint = f" (is {close[0]!r} a misspelling?)" if close else ""
        problems.append(f"{source}: enabled {script.task} {task!r} has no entry under "
                        f"`{script.section}:`{hint}; add `{task}: {{}}` to run it with the "
                        f"common settings")
        return None
    entry = entries[task] if entries[task] is not None else {}
    if not isinstance(entry, dict):
        problems.append(f"{source}: {script.section}.{task}: must be a mapping of settings "
                        f"(or {{}})")
        return None
    return entry


def chain_settings(merged: dict[str, Any], where: dict[str, str], script: Script,
                   problems: list[str]) -> list[tuple[float, ...]]:
    """The task's w2 settings, each of its number of actors (`num_actors`, or each list's
    length when it is not set). `where` says where each key was set."""
    num_actors = merged.get("num_actors")  # None: each w2 setting's length
    if num_actors is not None and not (isinstance(num_actors, int)
                                       and not isinstance(num_actors, bool) and num_actors >= 1):
        problems.append(f"{where['num_actors']}: num_actors must be an integer >= 1 "
                        f"(got {num_actors!r})")
        return []
    w2_key = next((key for key in W2_KEYS if key in merged), None)
    w2_where = where[w2_key].rsplit(".", 1)[0] if w2_key else where["entry"]  # its section
    return weight_settings(merged, w2_where, num_actors, script, problems)


def task_runs(task: str, common: dict[str, Any], entries: dict, script: Script, source: str,
              problems: list[str]) -> list[Run]:
    """The runs of one enabled task: its entry over the common settings, w2 setting × seed."""
    entry_raw = entry_of(task, entries, script, source, problems)
    if entry_raw is None:
        return []
    before = len(problems)
    where = f"{source}: {script.section}.{task}"
    entry = read_keys(entry_raw, where, SWEEP_KEYS, script, problems)
    own_w2 = any(key in entry for key in W2_KEYS)  # an entry's w2 replaces common's
    merged = {k: v for k, v in common.items()
              if k != script.enabled_key and not (own_w2 and k in W2_KEYS)}
    merged.update(entry)
    origin = {key: f"{where}.{key}" if key in entry else f"{source}: common.{key}"
              for key in merged}
    settings = {k: v for k, v in merged.items() if k not in SWEEP_KEYS}
    check_values(settings, origin, script, problems)
    weights_list = chain_settings(merged, {**origin, "entry": where}, script, problems)
    if "seeds" not in merged:
        problems.append(f"{where}: no seeds; add seeds: [1, 2, 3] to common or to this entry")
    seeds = seeds_of(merged["seeds"], origin["seeds"], problems) if "seeds" in merged else []
    if len(problems) > before:
        return []  # the script's checks would only repeat the problem in other words
    return [Run(task=task, w2_weights=weights, seed=seed,
                settings={**with_seed(settings, seed), "num_actors": len(weights)})
            for weights in weights_list for seed in seeds]


def with_seed(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """The settings with "{seed}" in a text value replaced by the run's seed, so that a
    run can name another run of its seed (e.g. init_from: results/POSAC_…_s{seed}_…)."""
    return {key: value.replace("{seed}", str(seed)) if isinstance(value, str) else value
            for key, value in settings.items()}


# --------------------------------------------------------------------------- the file
def duplicate_keys(text: str, source: str) -> list[str]:
    """yaml.safe_load keeps the last of two equal keys silently; find them in the node tree
    (each node once: an alias may point back into its own node, `a: &x [*x]`)."""
    problems = []
    stack, visited = [yaml.compose(text, Loader=yaml.SafeLoader)], set()
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
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


def read_yaml(path: Path) -> tuple[Any, list[str]]:
    """The parsed file, and its doubled keys. Raises ConfigError if it is unreadable or
    malformed."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")  # YAML's own encoding, whatever the locale's
    except OSError as error:
        raise ConfigError([f"cannot read {source}: {error.strerror}"]) from None
    except UnicodeDecodeError as error:
        raise ConfigError([f"{source}: not UTF-8 text (byte {error.object[error.start]:#04x} "
                           f"at offset {error.start}); save the file as UTF-8"]) from None
    try:
        return yaml.safe_load(text), duplicate_keys(text, source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError([f"{at}: malformed YAML: {problem}"]) from None


def with_tracking_group(runs: list[Run], sweep_name: str) -> list[Run]:
    """A tracked run's W&B group defaults to the sweep's name (the file's stem), so that a
    sweep's runs sit together in W&B; a `wandb_group` in the file wins."""
    return [dataclasses.replace(run, settings={**run.settings, "wandb_group": sweep_name})
            if run.settings.get("track") and not run.settings.get("wandb_group") else run
            for run in runs]


def load_sweep(path: Path, thorough: bool = True) -> tuple[list[Run], Script]:
    """Parse, expand and validate a sweep file: its runs and its training script. Raises
    ConfigError with every problem."""
    source = str(path)
    config, doubled = read_yaml(path)
    name = config.get("script", DEFAULT_SCRIPT) if isinstance(config, dict) else DEFAULT_SCRIPT
    try:
        script = load_script(name)
    except UsageError as error:
        raise ConfigError(doubled + [f"{source}: script: {error}"]) from None
    runs, problems = expand_grid(config, script, source)
    runs = with_tracking_group(runs, path.stem)
    problems = doubled + problems + resolve_runs(runs, script, source, thorough)
    if problems:
        raise ConfigError(problems)
    return runs, script
