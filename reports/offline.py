"""POGO's offline results: train_pogo.py runs → one table and a learning-curve figure per dataset.

    python offline_report.py --results-dir results [--out-dir results/offline_report] \\
        [--behaviour-score posac/hopper/medium-v0=71.1 ...]

Finds every train_pogo.py run in --results-dir (a folder whose config.json names a `dataset`;
other runs there, such as train_sac.py's POSAC_*, are skipped), reads its metrics CSV (one
row per evaluation) and writes, into --out-dir (the figures drawn by offline_figures.py):

    offline_results.md, offline_results.csv   one row per dataset × method (TD3+BC, or POGO
                                              with one chain-weight setting) × actor
    curves_{dataset}.png                      one figure per dataset (its id, / as _), one
                                              line per (method, actor): mean over seeds
                                              with a shaded 95% bootstrap band, x =
                                              gradient steps, and the behaviour policy's
                                              score as a dashed line
    curves_{dataset}.csv                      the numbers behind each figure
    weights_{dataset}.png                     only for a dataset with POGO runs at two or
                                              more chain-weight settings: each actor's
                                              last-fifth score (mean, 95% CI) against the
                                              setting, TD3+BC's and the behaviour policy's
                                              as lines (the numbers are the table's)

Unfinished runs count with the evaluations they have, so the report can be made while the
runs go on; a run with no evaluation yet is left out (said so), and so is one whose metrics
have no normalised score (its dataset has no reference scores; a warning). The statistics
are plot_results.py's, reused from there.

Definitions
- score: the D4RL-normalised score of an actor's deterministic evaluation,
  100·(return − ref_min)/(ref_max − ref_min) (`actor_{i}_deterministic_score`).
- group: the runs (one per seed) with the same dataset, method, chain weights (w2_weights)
  and budget (num_steps, the gradient steps a run trains for). TD3+BC is a run with
  `td3_bc` set (one actor), POGO any other.
- steps: the last evaluation step reached (min–max over the seeds) / the budget.
- end: each seed's last evaluation, at the steps it reached.
- last fifth: the time average of a seed's learning curve (its evaluations, linearly
  interpolated) over the last fifth of the budget, (1/(0.2·B))·∫ curve(s) ds from 0.8·B to
  B (plot_results.window_average), over the seeds that reached B (n = how many when not
  all; – when none has yet).
- − actor 0: for actor i ≥ 1, each seed's last-fifth average minus actor 0's in the same
  run, averaged over those seeds: the actors of a run share its critic and data, so the
  paired difference leaves out the spread between seeds they have in common.
- mean and 95% CI: mean over seeds and plot_results.bootstrap_ci's percentile bootstrap
  (10,000 resamples of the seeds, numpy.random.default_rng(0) for every cell); no interval
  with one seed.
- behaviour: the normalised score of the policy that collected the dataset:
  --behaviour-score DATASET=SCORE when given, else make_dataset.py's
  `make_dataset.summary.normalized_score` in the Minari dataset's metadata under
  $MINARI_DATASETS_PATH (else ~/.minari/datasets); unknown (–) otherwise.
- wall time: mean over seeds of the last evaluation's wall_time_s, the run's training time
  so far (time before a resume included).
- curves: plot_results' rule: each seed's curve interpolated onto the union of the seeds'
  evaluation steps between the latest first and the earliest last evaluation, so nothing
  is extrapolated and a seed that is still running cuts its group's line short. One
  colour per (method, weights), one line style per actor; the behaviour line is dashed.

Bad input (no run found, none evaluated yet, an unreadable config.json, a malformed
--behaviour-score) is one `offline_report.py: error:` line and exit status 2; a
--behaviour-score for a dataset no evaluated run uses is a warning (its runs may not have
evaluated yet, or the name is misspelt).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline.readers import minari_root
from reports.curves import (budget_cell, file_safe, mean_and_ci, range_cell, read_metrics,
                            seed_bands, seeds_cell, weights_label, window_average, with_ci)
from reports.figures import curve_figure, weight_figure
from utils import OneLineErrorParser, UsageError, format_duration, usage_error

PROGRAM = "reports.offline"
WINDOW_FRACTION = 0.2  # the late-training average covers the last fifth of the budget
BASELINE = "TD3+BC"

# dataset, method, chain weights, budget
GroupKey = tuple[str, str, tuple[float, ...], int]


@dataclass(frozen=True)
class OfflineRun:
    name: str
    dataset: str
    method: str  # BASELINE or "POGO"
    weights: tuple[float, ...]
    seed: int
    num_steps: int
    metrics_csv: Path
    finished: bool


def score_column(actor: int) -> str:
    return f"actor_{actor}_deterministic_score"


# --------------------------------------------------------------------------- input
def behaviour_override(text: str) -> tuple[str, float]:
    """argparse type of --behaviour-score: DATASET=SCORE with a finite SCORE."""
    dataset, sep, value = text.rpartition("=")
    try:
        score = float(value)
    except ValueError:
        score = math.nan
    if not (sep and dataset and math.isfinite(score)):
        raise argparse.ArgumentTypeError(
            f"expected DATASET=SCORE with a finite number, e.g. "
            f"posac/halfcheetah/medium-v0=46.3; got {text!r}")
    return dataset, score


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog=PROGRAM,
        description="Table and learning curves of the train_pogo.py runs (TD3+BC and POGO) "
                    "in a results folder, with the behaviour policy's score of each dataset.")
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="folder of the runs' results folders (train_pogo.py's "
                             "--results-dir; default: results)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the table and the figures go (default: "
                             "RESULTS_DIR/offline_report)")
    parser.add_argument("--behaviour-score", type=behaviour_override, action="append",
                        default=[], metavar="DATASET=SCORE",
                        help="the behaviour policy's normalised score of a dataset (repeatable); "
                             "overrides the dataset's metadata, needed when it is not stored "
                             "locally")
    return parser


def read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} unreadable ({error}); restore it or move its run folder "
                         f"out of the results folder") from None
    if not isinstance(config, dict):
        raise UsageError(f"{path} is not a JSON object; restore it or move its run folder out "
                         f"of the results folder")
    return config


def run_of(folder: Path, config: dict[str, Any]) -> OfflineRun:
    """The run train_pogo.py wrote into `folder` (its folder name is the run's file_name)."""
    try:
        return OfflineRun(name=folder.name, dataset=str(config["dataset"]),
                          method=BASELINE if config["td3_bc"] else "POGO",
                          weights=tuple(float(w) for w in config["w2_weights"]),
                          seed=int(config["seed"]), num_steps=int(config["num_steps"]),
                          metrics_csv=folder / "training" / f"{folder.name}_metrics.csv",
                          finished=(folder / "summary.json").exists())
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{folder / 'config.json'} needs a valid dataset, td3_bc, w2_weights, "
                         f"seed and num_steps ({type(error).__name__}: {error})") from None


def find_runs(results_dir: Path) -> list[OfflineRun]:
    """Every train_pogo.py run in results_dir, by folder name."""
    if not results_dir.is_dir():
        raise UsageError(f"--results-dir {results_dir} is not a folder")
    runs = []
    for folder in sorted(results_dir.iterdir()):
        if not (folder / "config.json").is_file():
            continue
        config = read_config(folder / "config.json")
        if "dataset" in config and "td3_bc" in config:  # train_sac.py's runs have neither
            runs.append(run_of(folder, config))
    if not runs:
        raise UsageError(f"no train_pogo.py run in {results_dir} (a folder with a config.json "
                         f"naming a dataset); pass the runs' --results-dir")
    return runs


def group_order(key: GroupKey) -> tuple[Any, ...]:
    dataset, method, weights, num_steps = key
    return dataset, method != BASELINE, method, weights, num_steps


def load_groups(runs: list[OfflineRun]) -> dict[GroupKey, list[tuple[OfflineRun, Any]]]:
    """Group → [(run, metrics DataFrame sorted by step)], the baseline first in each dataset.
    Runs without an evaluation yet, or without normalised scores, are left out (said so)."""
    groups: dict[GroupKey, list[tuple[OfflineRun, Any]]] = {}
    unevaluated = 0
    for run in runs:
        frame = read_metrics(run.metrics_csv)
        if frame is None:
            unevaluated += 1
            continue
        if score_column(0) not in frame:
            print(f"{PROGRAM}: warning: {run.metrics_csv} has no {score_column(0)} (its "
                  f"dataset has no reference scores); {run.name} is left out", file=sys.stderr)
            continue
        key = (run.dataset, run.method, run.weights, run.num_steps)
        groups.setdefault(key, []).append((run, frame))
    if not groups:
        raise UsageError(f"none of the {len(runs)} train_pogo.py runs has a normalised-score "
                         f"evaluation yet; nothing to report")
    if unevaluated:
        print(f"({unevaluated} of {len(runs)} runs have no evaluation yet and are not included)")
    return dict(sorted(groups.items(), key=lambda item: group_order(item[0])))


def metadata_score(dataset: str) -> float | None:
    """make_dataset.py's behaviour score in the local Minari dataset's metadata, if any."""
    path = minari_root() / dataset / "data" / "metadata.json"
    try:
        summary = json.loads(path.read_bytes())["make_dataset"]["summary"]
        return float(summary["normalized_score"])
    except (OSError, ValueError, KeyError, TypeError):  # not local, not make_dataset's, no score
        return None


def behaviour_scores(datasets: list[str], overrides: dict[str, float]
                     ) -> dict[str, tuple[float | None, str]]:
    """dataset → (the behaviour policy's normalised score or None, where it comes from).
    An override for no dataset here is a warning, not an error: the same command serves a
    sweep whose runs on that dataset have not evaluated yet, and a misspelt name is shown."""
    unused = sorted(set(overrides) - set(datasets))
    if unused:
        print(f"{PROGRAM}: warning: --behaviour-score names {', '.join(unused)}, which no "
              f"evaluated run uses (their datasets: {', '.join(datasets)}); ignored",
              file=sys.stderr)
    scores: dict[str, tuple[float | None, str]] = {}
    for dataset in datasets:
        if dataset in overrides:
            scores[dataset] = (overrides[dataset], "--behaviour-score")
        else:
            score = metadata_score(dataset)
            scores[dataset] = (score, "dataset metadata" if score is not None else "unknown")
    return scores


# --------------------------------------------------------------------------- the table
def method_label(key: GroupKey) -> str:
    _, method, weights, _ = key
    return f"{method} {weights_label(weights)}"


def last_fifth(frame: Any, column: str, num_steps: int) -> float:
    return window_average(frame["step"].to_numpy(np.float64), frame[column].to_numpy(np.float64),
                          (1 - WINDOW_FRACTION) * num_steps, num_steps)


def group_rows(key: GroupKey, seeds: list[tuple[OfflineRun, Any]],
               behaviour: tuple[float | None, str]) -> list[dict[str, Any]]:
    """One row per actor of the group (see the module docstring)."""
    dataset, _, weights, num_steps = key
    frames = [frame for _, frame in seeds]
    reached = [frame for frame in frames if frame["step"].iloc[-1] >= num_steps]
    windows = [np.array([last_fifth(frame, score_column(actor), num_steps) for frame in reached])
               for actor in range(len(weights))]
    steps = [int(frame["step"].iloc[-1]) for frame in frames]
    rows = []
    for actor in range(len(weights)):
        end = np.array([frame[score_column(actor)].iloc[-1] for frame in frames], np.float64)
        versus_actor0 = windows[actor] - windows[0] if actor else np.array([])  # paired by seed
        rows.append({
            "dataset": dataset, "method": method_label(key), "actor": actor,
            "seeds": len(frames), "finished_seeds": sum(run.finished for run, _ in seeds),
            "steps_min": min(steps), "steps_max": max(steps), "num_steps": num_steps,
            **mean_and_ci("end", end), "window_seeds": len(reached),
            **mean_and_ci("window", windows[actor]),
            **mean_and_ci("window_vs_actor0", versus_actor0),
            "behaviour_score": math.nan if behaviour[0] is None else behaviour[0],
            "behaviour_source": behaviour[1],
            "wall_time_s_mean": float(np.mean([f["wall_time_s"].iloc[-1] for f in frames])),
            "seed_list": " ".join(str(run.seed) for run, _ in seeds),
        })
    return rows


def report_rows(groups: dict[GroupKey, list[tuple[OfflineRun, Any]]],
                behaviour: dict[str, tuple[float | None, str]]) -> list[dict[str, Any]]:
    return [row for key, seeds in groups.items()
            for row in group_rows(key, seeds, behaviour[key[0]])]


def markdown_row(row: dict[str, Any]) -> str:
    end = with_ci(row["end_mean"], row["end_ci_low"], row["end_ci_high"])
    behaviour = "–" if math.isnan(row["behaviour_score"]) else f"{row['behaviour_score']:.1f}"
    return (f"| {row['dataset']} | {row['method']} | {row['actor']} | {seeds_cell(row)} "
            f"| {range_cell(row['steps_min'], row['steps_max'])}/{row['num_steps']} | {end} "
            f"| {budget_cell(row, 'window', 'window_seeds')} "
            f"| {budget_cell(row, 'window_vs_actor0', 'window_seeds')} | {behaviour} "
            f"| {format_duration(row['wall_time_s_mean'])} |")


def behaviour_line(dataset: str, behaviour: tuple[float | None, str]) -> str:
    score, source = behaviour
    if score is None:
        return (f"- {dataset}: unknown (not in the dataset's metadata under "
                f"{minari_root()}; pass --behaviour-score {dataset}=SCORE)")
    return f"- {dataset}: {score:.1f} ({source})"


def markdown(rows: list[dict[str, Any]], behaviour: dict[str, tuple[float | None, str]]) -> str:
    lines = ["# POGO offline results", "",
             "D4RL-normalised score (0 = random, 100 = expert) of each actor's deterministic "
             "evaluation: mean over seeds [95% percentile-bootstrap CI over seeds, 10,000 "
             "resamples; none with one seed]. *steps*: the last evaluation step reached "
             "(min–max over seeds) / the budget B; a run short of B is still going or was "
             "stopped. *end*: each seed's last evaluation; *last fifth*: the time average "
             "of each seed's learning curve over 0.8·B–B, over the seeds that reached B (n = "
             "how many when not all, – when none yet); *− actor 0*: that average minus actor "
             "0's in the same run, paired by seed; *behaviour*: the score of the policy that "
             "collected the dataset; *wall time*: mean over seeds of the training time up to "
             "the last evaluation (H:MM:SS).", "",
             "| dataset | method [weights] | actor | seeds | steps | end | last fifth "
             "| − actor 0 | behaviour | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [markdown_row(row) for row in rows]
    lines += ["", "Behaviour policies' normalised scores:"]
    lines += [behaviour_line(dataset, score) for dataset, score in behaviour.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the curves
def curve_rows(groups: dict[GroupKey, list[tuple[OfflineRun, Any]]],
               dataset: str) -> list[dict[str, Any]]:
    """Mean and bootstrap band of every (group, actor) of the dataset on its common grid."""
    rows = []
    for key, seeds in groups.items():
        if key[0] != dataset:
            continue
        rows += seed_bands([frame for _, frame in seeds], f"{dataset} {method_label(key)}",
                           [(score_column(actor), {"method": method_label(key),
                                                   "num_steps": key[3], "actor": actor})
                            for actor in range(len(key[2]))])
    return rows


# --------------------------------------------------------------------------- output
def write_curves(groups: dict[GroupKey, list[tuple[OfflineRun, Any]]], dataset: str,
                 behaviour: float | None, out_dir: Path) -> list[Path]:
    import pandas as pd

    curves = pd.DataFrame(curve_rows(groups, dataset))
    if curves.empty:
        return []
    stem = out_dir / f"curves_{file_safe(dataset)}"
    curves.to_csv(stem.with_suffix(".csv"), index=False)
    curve_figure(dataset, curves, behaviour).savefig(stem.with_suffix(".png"))
    return [stem.with_suffix(".png"), stem.with_suffix(".csv")]


def write_report(groups: dict[GroupKey, list[tuple[OfflineRun, Any]]],
                 behaviour: dict[str, tuple[float | None, str]], out_dir: Path) -> list[Path]:
    """Write the table and the figures; prints the markdown and the files written."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = report_rows(groups, behaviour)
    written = [out_dir / "offline_results.csv", out_dir / "offline_results.md"]
    pd.DataFrame(rows).to_csv(written[0], index=False)
    text = markdown(rows, behaviour)
    written[1].write_text(text + "\n")
    for dataset, (score, _) in behaviour.items():
        written += write_curves(groups, dataset, score, out_dir)
        figure = weight_figure(dataset, rows, score, BASELINE)
        if figure is not None:
            written.append(out_dir / f"weights_{file_safe(dataset)}.png")
            figure.savefig(written[-1])
    print(text)
    print("wrote " + ", ".join(str(path) for path in written))
    return written


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        groups = load_groups(find_runs(args.results_dir))
        datasets = list(dict.fromkeys(key[0] for key in groups))
        behaviour = behaviour_scores(datasets, dict(args.behaviour_score))
    except UsageError as error:
        usage_error(PROGRAM, str(error))
    write_report(groups, behaviour, args.out_dir or args.results_dir / "offline_report")


if __name__ == "__main__":
    main()
