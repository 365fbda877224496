"""The train_sac.py runs of a results folder, read, grouped and checked for
reports/finetune.py: each run's method (offline, offline → online, scratch, scratch + data)
and setting from its config.json, its metrics, the groups of runs (one per seed) that a row
summarises, and the checks that unlike runs are never pooled (UsageError) and that each
continued run starts where its offline run ended (a warning).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.run_setup import SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME, differing_settings
from utils import UsageError

PROGRAM = "reports.finetune"
METHODS = ("offline → online", "scratch", "scratch + data")
# config.json keys that may differ between a group's seeds: names, folders, the device,
# tracking and bookkeeping, none of which changes a run's numbers
NOT_SETTINGS = {"seed", "run_name", "results_dir", "log_dir", "checkpoint_dir", "init_from",
                "save_replay", "cuda", "track", "wandb_project", "wandb_entity", "wandb_group",
                "wandb_mode", *SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME}


@dataclass(frozen=True)
class Run:
    name: str
    env: str
    seed: int
    method: str | None  # None: an offline run
    offline_name: str | None  # the offline run an online run started from
    setting: str  # what else tells the method's runs apart, e.g. "w [0.0, 0.1], 100000 steps"
    metrics_csv: Path
    actors: int
    settings: dict[str, Any] = dataclasses.field(compare=False, repr=False)  # config.json
    # the settings of the offline run whose checkpoint it loaded (its summary.json)
    offline_settings: dict[str, Any] | None = dataclasses.field(default=None, compare=False,
                                                                 repr=False)


def setting_of(settings: dict[str, Any]) -> str:
    """A run's setting besides its method and seed, as the table and curves name it: its
    dataset is in it, so that runs on two datasets of one environment are other rows."""
    from reports.curves import config_weights, weights_label

    text = (f"w {weights_label(config_weights(settings['w2_weights']))}, "
            f"{int(settings['num_steps'])} steps")
    if settings.get("dataset"):
        return f"{text}, {settings['dataset']}, data weight {float(settings['data_weight']):g}"
    return text + (f", data share {float(settings['offline_ratio']):g} of "
                   f"{settings['offline_data']}" if settings.get("offline_data") else "")


def run_of(folder: Path) -> Run | None:
    """The train_sac.py run in `folder`, or None for anything else (UsageError for an
    unreadable config.json, or one without the settings the report reads)."""
    from reports.curves import config_weights, read_json_object

    if not (folder / "config.json").is_file():
        return None
    settings = read_json_object(folder / "config.json")  # the run's flags
    if "automatic_entropy_tuning" not in settings:  # not train_sac.py's (train_pogo.py's)
        return None
    init = settings.get("init_from")
    method = (None if settings.get("dataset") else METHODS[0] if init else
              METHODS[2] if settings.get("offline_data") else METHODS[1])
    try:
        env = settings["env_name"]
        if not (isinstance(env, str) and env):
            raise ValueError(f"env_name {env!r} is not an environment id")
        # the run it started from: a results directory or its _final.pt, named after the run
        offline_name = Path(init).name.removesuffix("_final.pt") if init else None
        return Run(folder.name, env, int(settings["seed"]), method, offline_name,
                   setting_of(settings), folder / "training" / f"{folder.name}_metrics.csv",
                   len(config_weights(settings["w2_weights"])), settings,
                   loaded_settings(folder) if init else None)
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{folder / 'config.json'} needs a valid env_name, seed, w2_weights "
                         f"and num_steps (and data_weight or offline_ratio with a dataset) "
                         f"({type(error).__name__}: {error}); restore it or move its run "
                         f"folder out of the results folder") from None


def loaded_settings(folder: Path) -> dict[str, Any] | None:
    """The settings of the offline run whose checkpoint a finished continued run loaded,
    from its summary.json's `init_from` (None before it has finished, or from code older
    than the link), so that its setting and seed are known even when that run is not in
    the folder; UsageError naming an unreadable summary.json."""
    from reports.curves import read_json_object

    summary = folder / "summary.json"
    if not summary.is_file():
        return None
    link = read_json_object(summary).get("init_from")
    if link is None:
        return None
    try:
        settings = link["settings"]
        setting_of(settings), int(settings["seed"])  # what the report reads of them
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{summary}'s init_from needs the offline run's settings (seed, "
                         f"w2_weights, num_steps, dataset, data_weight) "
                         f"({type(error).__name__}: {error}); restore it or move its run "
                         f"folder out of the results folder") from None
    return settings


def find_runs(results_dir: Path) -> list[Run]:
    """The finished train_sac.py runs of `results_dir` (the unfinished ones are named on
    standard output and left out: a group's seeds must all have run their whole budget)."""
    if not results_dir.is_dir():
        raise UsageError(f"{results_dir} is not a directory; give --results-dir the folder "
                         f"that holds the runs' results")
    runs, unfinished = [], []
    for folder in sorted(path for path in results_dir.iterdir() if path.is_dir()):
        run = run_of(folder)
        if run is not None:
            (runs if (folder / "summary.json").is_file() else unfinished).append(run)
    if unfinished:
        print(f"left out {len(unfinished)} unfinished run(s): "
              f"{', '.join(run.name for run in unfinished)}")
    if not any(run.method for run in runs):
        raise UsageError(f"{results_dir} holds no finished online train_sac.py run; run "
                         f"the offline-to-online sweeps first (README, Offline to online)")
    return with_offline_settings(runs)


def with_offline_settings(runs: list[Run]) -> list[Run]:
    """Each run started from an offline run gets that run's setting in its own, so that
    runs from unlike offline runs (another dataset, data weight or budget) are never pooled:
    the settings it loaded (its summary.json), else those of its offline run in `runs`.
    With neither (code older than the link), it is named after its offline run, seed left
    out, so that the seeds of one setting still share a row."""
    offline = {run.name: run.settings for run in runs if run.method is None}

    def after(run: Run) -> str:
        settings = run.offline_settings or offline.get(run.offline_name)
        if settings is not None:
            return f"{run.setting}, after offline {setting_of(settings)}"
        seedless = re.sub(r"_s\d+(?=_|$)", "_s*", run.offline_name)
        return f"{run.setting}, after {seedless} (not in the results folder)"

    return [run if run.offline_name is None else dataclasses.replace(run, setting=after(run))
            for run in runs]


def check_groups(runs: list[Run], frames: dict[str, Any]) -> None:
    """UsageError unless each group's runs are seeds of one setting: distinct seeds, and the
    same flags but NOT_SETTINGS (a flag a run's config.json lacks, from code older than the
    flag, counts at train_sac.py's default, as --resume counts it); runs continued from
    offline runs, each from its own, with its seed (else its switch is not the offline run's
    last evaluation, and seeds of one offline run would be pooled as independent ones)."""
    from sweeps.script import load_script

    defaults = {key: flag.default for key, flag in load_script("train_sac.py").flags.items()}
    seeds = {run.name: run.seed for run in runs}
    for online in (False, True):
        for key, group in groups_of(runs, frames, online).items():
            first, by_seed, by_offline = {**defaults, **group[0].settings}, {}, {}
            for run in group:
                if run.seed in by_seed:
                    raise unlike(key, by_seed[run.seed], run, f"share seed {run.seed}")
                if run.offline_name in by_offline:
                    raise unlike(key, by_offline[run.offline_name], run,
                                 f"both start from {run.offline_name}")
                loaded = run.offline_settings
                theirs = seeds.get(run.offline_name,
                                   None if loaded is None else int(loaded["seed"]))
                if theirs is not None and theirs != run.seed:
                    raise UsageError(f"{run.name} (seed {run.seed}) starts from "
                                     f"{run.offline_name} (seed {theirs}); continue each "
                                     f"offline run with its own seed")
                by_seed[run.seed] = run
                if run.offline_name is not None:
                    by_offline[run.offline_name] = run
                differ = differing_settings(first, {**defaults, **run.settings}, NOT_SETTINGS)
                if differ:
                    raise unlike(key, group[0], run, f"differ in {', '.join(differ)}")


def unlike(key: tuple[str, str, str], one: Run, other: Run, what: str) -> UsageError:
    """The error for two runs that group `key` (env, method, setting) would pool as seeds."""
    env, method, setting = key
    return UsageError(f"{one.name} and {other.name} would be pooled as seeds of {env}, "
                      f"{method}, {setting}, but they {what}; move one of them out of the "
                      f"results folder")


def groups_of(runs: list[Run], frames: dict[str, Any],
              online: bool) -> dict[tuple[str, str, str], list[Run]]:
    """(env, method, setting) → its runs (one per seed) with an evaluation, online or
    offline ones (method "offline"), in METHODS' order."""
    order = {method: k for k, method in enumerate(METHODS)}
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.env, order.get(r.method, -1), r.setting, r.seed)):
        if (run.method is not None) == online and frames[run.name] is not None:
            groups.setdefault((run.env, run.method or "offline", run.setting), []).append(run)
    return groups


def read_frames(runs: list[Run]) -> dict[str, Any]:
    """Each run's metrics by name (read once), None for a run left out because its metrics
    CSV is unusable (a warning names it and what is wrong)."""
    from reports.curves import MetricsError, deterministic_columns, read_metrics, warn_left_out

    frames = {}
    for run in runs:
        try:
            frames[run.name] = read_metrics(run.metrics_csv, deterministic_columns(run.actors),
                                            finished=True)
        except MetricsError as error:
            warn_left_out(PROGRAM, run.metrics_csv, error)
            frames[run.name] = None
    return frames


def offline_frames(runs: list[Run], frames: dict[str, Any]) -> dict[str, Any]:
    """Each continued run's offline run's metrics by the continued run's name, None where
    they cannot describe its switch: that run is not in the folder, its metrics are
    unusable, or its last evaluation is not the continued run's step-0 one. They are the
    same actors on the same episodes, so every return must agree; where they do not (a
    warning line), the run started from another version of that run (made again since,
    under the same name) or with other evaluation settings."""
    import numpy as np

    matched: dict[str, Any] = {}
    for run in runs:
        online, offline = frames[run.name], frames.get(run.offline_name)
        if run.method != METHODS[0] or online is None:
            continue
        matched[run.name] = offline
        columns = [f"actor_{i}_deterministic" for i in range(run.actors)]
        if offline is not None and online["step"].iloc[0] == 0 and not np.allclose(
                online[columns].iloc[0].to_numpy(float),
                offline[columns].iloc[-1].to_numpy(float), rtol=1e-9, atol=0):
            matched[run.name] = None
            print(f"{PROGRAM}: warning: {run.name}'s evaluation at step 0 differs from "
                  f"{run.offline_name}'s last one: it started from another version of that "
                  f"run or with other evaluation settings; its offline columns are left "
                  f"blank (rerun it from this one)", file=sys.stderr)
    return matched
