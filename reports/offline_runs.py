"""The train_pogo.py runs of a results folder, read and grouped for reports/offline.py: each
run's settings from its config.json, and the groups of runs (one per seed) that a table row
summarises. Bad input (an unreadable config.json, an unknown setting, no run) is a UsageError.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from offline.readers import local_metadata, metadata_env_id
from reports.curves import (MetricsError, check_columns, config_weights, read_json_object,
                            read_metrics, warn_left_out)
from sweeps.script import load_script
from utils import UsageError

PROGRAM = "reports.offline"
BASELINE = "TD3+BC"
# train_pogo.py's flags (their choices and defaults), read from the script itself
POGO_FLAGS = load_script("train_pogo.py").flags


class Settings(NamedTuple):
    """What a run optimises besides its chain weights: train_pogo.py's --distance,
    --data-term and --weight-units."""
    distance: str = POGO_FLAGS["distance"].default
    data_term: str = POGO_FLAGS["data_term"].default
    weight_units: str = POGO_FLAGS["weight_units"].default

    def label(self) -> str:
        """The settings off their defaults, e.g. "unbiased, energy" or "seed units"; "" for
        the defaults."""
        default = Settings()
        parts = [self.distance if self.distance != default.distance else "",
                 self.data_term if self.data_term != default.data_term else "",
                 f"{self.weight_units} units" if self.weight_units != default.weight_units
                 else ""]
        return ", ".join(part for part in parts if part)


class GroupKey(NamedTuple):
    dataset: str
    method: str  # BASELINE or "POGO"
    weights: tuple[float, ...]
    settings: Settings
    num_steps: int


@dataclass(frozen=True)
class OfflineRun:
    name: str
    dataset: str
    method: str  # BASELINE or "POGO"
    weights: tuple[float, ...]
    settings: Settings
    seed: int
    num_steps: int
    env_id: str | None  # the environment it is evaluated on, where its files say
    metrics_csv: Path
    finished: bool

    def key(self) -> GroupKey:
        return GroupKey(self.dataset, self.method, self.weights, self.settings, self.num_steps)


Groups = dict[GroupKey, list[tuple[OfflineRun, Any]]]


def score_column(actor: int) -> str:
    return f"actor_{actor}_deterministic_score"


def spread_column(actor: int) -> str:
    return f"spread_{actor}"


def settings_from(config: dict[str, Any], path: Path) -> Settings:
    """The run's settings; runs made before --data-term and --weight-units existed trained
    with what are now their defaults."""
    settings = Settings(distance=config["distance"],
                        **{field: config[field] for field in ("data_term", "weight_units")
                           if field in config})
    for field in Settings._fields:
        choices = POGO_FLAGS[field].choices
        if getattr(settings, field) not in choices:
            raise UsageError(f"{path} has {field} {getattr(settings, field)!r}, which "
                             f"train_pogo.py does not know (one of {', '.join(choices)})")
    return settings


def run_of(folder: Path, config: dict[str, Any]) -> OfflineRun:
    """The run train_pogo.py wrote into `folder` (its folder name is the run's file_name)."""
    summary = folder / "summary.json"
    finished = summary.exists()
    # a finished run's summary names the environment it was evaluated on; before that an
    # explicit --env-name does, else the local Minari dataset's metadata (not config.json)
    env_id = read_json_object(summary).get("env_id") if finished else None
    try:
        return OfflineRun(name=folder.name, dataset=str(config["dataset"]),
                          method=BASELINE if config["td3_bc"] else "POGO",
                          weights=config_weights(config["w2_weights"]),
                          settings=settings_from(config, folder / "config.json"),
                          seed=int(config["seed"]), num_steps=int(config["num_steps"]),
                          env_id=(env_id or config.get("env_name")
                                  or metadata_env_id(local_metadata(str(config["dataset"])))),
                          metrics_csv=folder / "training" / f"{folder.name}_metrics.csv",
                          finished=finished)
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{folder / 'config.json'} needs a valid dataset, td3_bc, w2_weights, "
                         f"distance, seed and num_steps ({type(error).__name__}: {error}); "
                         f"restore it or move its run folder out of the results folder"
                         ) from None


def find_runs(results_dir: Path) -> list[OfflineRun]:
    """Every train_pogo.py run in results_dir, by folder name."""
    if not results_dir.is_dir():
        raise UsageError(f"--results-dir {results_dir} is not a folder")
    runs = []
    for folder in sorted(results_dir.iterdir()):
        if not (folder / "config.json").is_file():
            continue
        config = read_json_object(folder / "config.json")
        if "dataset" in config and "td3_bc" in config:  # train_sac.py's runs have neither
            runs.append(run_of(folder, config))
    if not runs:
        raise UsageError(f"no train_pogo.py run in {results_dir} (a folder with a config.json "
                         f"naming a dataset); pass the runs' --results-dir")
    return runs


def runs_on(runs: list[OfflineRun], datasets: list[str] | None) -> list[OfflineRun]:
    """The runs on `datasets` (all runs for None); a named dataset without a run is an
    error, so that a typo does not drop a dataset from the table unnoticed."""
    if datasets is None:
        return runs
    missing = sorted(set(datasets) - {run.dataset for run in runs})
    if missing:
        raise UsageError(f"--datasets: no train_pogo.py run on {', '.join(missing)}; the runs "
                         f"are on {', '.join(sorted({run.dataset for run in runs}))}")
    return [run for run in runs if run.dataset in datasets]


def method_order(key: GroupKey) -> tuple[Any, ...]:
    """The baseline first, then by method, weights, settings (the defaults first), budget."""
    return (key.method != BASELINE, key.method, key.weights,
            (key.settings != Settings(), key.settings), key.num_steps)


def load_groups(runs: list[OfflineRun]) -> Groups:
    """Group → [(run, metrics DataFrame sorted by step)], the baseline first in each dataset.
    Runs without an evaluation yet, without normalised scores or with unusable metrics are
    left out (said so)."""
    groups: Groups = {}
    unevaluated = 0
    for run in runs:
        try:
            frame = read_metrics(run.metrics_csv, ["wall_time_s"], run.finished)
            if frame is not None and score_column(0) in frame:
                actors = range(len(run.weights))
                check_columns(frame, run.metrics_csv, [score_column(a) for a in actors],
                              optional=[spread_column(a) for a in actors])
        except MetricsError as error:
            warn_left_out(PROGRAM, run.metrics_csv, error)
            continue
        if frame is None:
            unevaluated += 1
            continue
        if score_column(0) not in frame:
            print(f"{PROGRAM}: warning: {run.metrics_csv} has no {score_column(0)} (its "
                  f"dataset has no reference scores); {run.name} is left out", file=sys.stderr)
            continue
        groups.setdefault(run.key(), []).append((run, frame))
    if not groups:
        raise UsageError(f"none of the {len(runs)} train_pogo.py runs has a usable "
                         f"normalised-score evaluation yet; nothing to report")
    if unevaluated:
        print(f"({unevaluated} of {len(runs)} runs have no evaluation yet and are not included)")
    return dict(sorted(groups.items(), key=lambda item: (item[0].dataset,
                                                         *method_order(item[0]))))
