"""POGO's offline results: train_pogo.py runs → two tables and learning curves per dataset.

    python -m reports.offline --results-dir results [--out-dir results/offline_report] \\
        [--datasets posac/hopper/medium-v0 ...] \\
        [--behaviour-score posac/hopper/medium-v0=71.1 ...] [--bootstrap-reps 50000]

Finds every train_pogo.py run in --results-dir (a folder whose config.json names a `dataset`;
other runs there, such as train_sac.py's POSAC_*, are skipped), keeps those on --datasets if
given (so that the aggregate covers one table's datasets, not every version in the folder),
reads its metrics CSV (one row per evaluation) and writes, into --out-dir (the figures drawn
by reports/figures.py):

    offline_results.md, offline_results.csv   one row per dataset × method (TD3+BC, or POGO
                                              with one chain-weight setting) × actor
    aggregate_results.md, aggregate_results.csv
                                              one row per method × actor: the interquartile
                                              mean of the last-fifth scores over datasets,
                                              with a 95% stratified-bootstrap interval
                                              (rliable, through reports/aggregate.py)
    curves_{dataset}.png                      one figure per dataset (its id, / as _), one
                                              line per (method, actor): mean over seeds
                                              with a shaded 95% bootstrap band, x =
                                              gradient steps, and the behaviour policy's
                                              score as a dashed line
    curves_{dataset}.csv                      the numbers behind each figure
    weights_{dataset}[_{settings}].png        only where POGO runs with the same settings
                                              (distance, data term, weight units) ran at two
                                              or more chain weights, one figure per such
                                              settings (named when off the defaults): each
                                              actor's last-fifth score (mean, 95% CI)
                                              against the weights, TD3+BC's and the
                                              behaviour policy's as lines (the numbers are
                                              the table's)

Unfinished runs count with the evaluations they have, so the report can be made while the
runs go on; a run with no evaluation yet is left out (said so), and so is one whose metrics
have no normalised score (its dataset has no reference scores; a warning) or whose metrics
CSV cannot be used (missing or empty though the run finished, unparseable, a column the
tables read absent or not a number; a warning naming the file, what is wrong and the fix,
as in reports.curves.read_metrics). The statistics
of the first table are reports/statistics.py's, as the sweep's tables' are.

Definitions
- score: the normalised score of an actor's deterministic evaluation,
  100·(return − ref_min)/(ref_max − ref_min) with D4RL's reference returns
  (`actor_{i}_deterministic_score`). D4RL measured them on its -v2 environments: on a
  dataset whose runs were evaluated on a -v4/-v5 environment (summary.json's env_id, else
  config.json's env_name, else the local Minari dataset's environment) the tables call the
  scores D4RL-referenced (v2 reference returns on v5 environments), elsewhere
  D4RL-normalised.
- group: the runs (one per seed) with the same dataset, method, chain weights (w2_weights),
  settings (distance, data_term, weight_units; absent data_term and weight_units, from runs
  made before those options, are their defaults pointwise and sum) and budget (num_steps,
  the gradient steps a run trains for). TD3+BC is a run with `td3_bc` set (one actor), POGO
  any other. A method's label names the settings off their defaults, e.g.
  `POGO [10.0, 10.0, 10.0] unbiased, energy` or `POGO [10.0, 10.0, 10.0] seed units`.
- steps: the last evaluation step reached (min–max over the seeds) / the budget.
- end: each seed's last evaluation, at the steps it reached.
- last fifth: the time average of a seed's learning curve (its evaluations, linearly
  interpolated) over the last fifth of the budget, (1/(0.2·B))·∫ curve(s) ds from 0.8·B to
  B (reports.statistics.window_average), over the seeds that reached B (n = how many when not
  all; – when none has yet).
- − actor 0: for actor i ≥ 1, each seed's last-fifth average minus actor 0's in the same
  run, averaged over those seeds: the actors of a run share its critic and data, so the
  paired difference leaves out the spread between seeds they have in common.
- spread (end): the mean over seeds of `spread_{i}` at each seed's last evaluation: the
  actor's mean per-dimension standard deviation of its actions over 64 noise draws at 512
  fixed dataset states (train_pogo.py's; 0 for a deterministic actor), over the seeds whose
  metrics have it (n when not all; – for runs made before it was measured).
- mean and 95% CI: mean over seeds and reports.statistics.bootstrap_ci's percentile bootstrap
  (10,000 resamples of the seeds, numpy.random.default_rng(0) for every cell); no interval
  with one seed.
- behaviour: the normalised score of the policy that collected the dataset:
  --behaviour-score DATASET=SCORE when given, else make_dataset.py's
  `make_dataset.summary.normalized_score` in the Minari dataset's metadata under
  $MINARI_DATASETS_PATH (else ~/.minari/datasets); unknown (–) otherwise.
- wall time: mean over seeds of the last evaluation's wall_time_s, the run's training time
  so far (time before a resume included).
- aggregate: for each method (a group without its dataset) and actor, rliable's
  interquartile mean (metrics.aggregate_iqm: the mean of the middle half) of the
  [seeds, datasets] matrix of last-fifth scores, with the 95% percentile interval of
  rliable's stratified bootstrap (rly.get_interval_estimates: the seeds resampled within
  each dataset, --bootstrap-reps resamples, seeded with 0 for every row: random_state
  numpy.random.RandomState(0) and, as rliable 1.2 draws the resamples from numpy's global
  generator, np.random.seed(0), its state restored after; no interval with one seed). The
  matrix needs the same number of seeds on each dataset, so a method enters over the
  datasets on which the same number of its seeds reached the budget, the number the most
  of its datasets share (the larger on a tie); its other datasets are listed as left out.
- curves: reports.curves' rule: each seed's curve interpolated onto the union of the seeds'
  evaluation steps between the latest first and the earliest last evaluation, so nothing
  is extrapolated and a seed that is still running cuts its group's line short. One
  colour per (method, weights), one line style per actor; the behaviour line is dashed.

Bad input (no run found, none with a usable evaluation yet, an unreadable config.json or
summary.json, a config.json without a valid setting the report reads or with one
train_pogo.py does not know, a malformed --behaviour-score or
--bootstrap-reps) is one `reports.offline: error:` line and exit status 2; a
--behaviour-score for a dataset no evaluated run uses is a warning (its runs may not have
evaluated yet, or the name is misspelt).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from offline.readers import metadata_summary, minari_root
from reports.aggregate import covered_datasets, iqm_with_ci
from reports.curves import (budget_cell, ci_cell, file_safe, range_cell, seeds_cell,
                            weights_label, with_ci)
from reports.figures import curve_figure, weight_figure
from reports.offline_runs import (BASELINE, GroupKey, Groups, OfflineRun, Settings,
                                  find_runs, load_groups, method_order, runs_on, score_column,
                                  spread_column)
from reports.statistics import mean_and_ci, seed_bands, window_average
from utils import (OneLineErrorParser, UsageError, format_duration, positive_int,
                   usage_error)

PROGRAM = "reports.offline"
WINDOW_FRACTION = 0.2  # the late-training average covers the last fifth of the budget
# gymnasium's MuJoCo versions: D4RL's reference returns were measured on -v2, not on these
NEW_ENVIRONMENT = re.compile(r"-(v[45])$")


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
        description="Tables and learning curves of the train_pogo.py runs (TD3+BC and POGO) "
                    "in a results folder, with the behaviour policy's score of each dataset.")
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="folder of the runs' results folders (train_pogo.py's "
                             "--results-dir; default: results)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the tables and the figures go (default: "
                             "RESULTS_DIR/offline_report)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="DATASET",
                        help="report only the runs on these datasets (default: every dataset "
                             "with a run in --results-dir)")
    parser.add_argument("--behaviour-score", type=behaviour_override, action="append",
                        default=[], metavar="DATASET=SCORE",
                        help="the behaviour policy's normalised score of a dataset (repeatable); "
                             "overrides the dataset's metadata, needed when it is not stored "
                             "locally")
    parser.add_argument("--bootstrap-reps", type=positive_int, default=50_000,
                        help="resamples of the aggregate's stratified bootstrap (default: "
                             "50000)")
    return parser


def metadata_score(dataset: str) -> float | None:
    return metadata_summary(dataset, "normalized_score")


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


def referenced_datasets(groups: Groups) -> dict[str, list[str]]:
    """dataset → the -v4/-v5 environments its runs were evaluated on, for the datasets that
    have any: a score there is D4RL-referenced, not D4RL-normalised."""
    referenced: dict[str, set[str]] = {}
    for key, seeds in groups.items():
        for run, _ in seeds:
            if run.env_id and NEW_ENVIRONMENT.search(run.env_id):
                referenced.setdefault(key.dataset, set()).add(run.env_id)
    return {dataset: sorted(envs) for dataset, envs in referenced.items()}


# --------------------------------------------------------------------------- the score's name
def score_kind(referenced: dict[str, list[str]], datasets: list[str]) -> str:
    """What the scores of `datasets` are: D4RL-normalised (D4RL's environments),
    D4RL-referenced (evaluated on -v4/-v5 environments) or, for a mix, normalised."""
    covered = [dataset for dataset in datasets if dataset in referenced]
    return ("D4RL-normalised score" if not covered else
            "D4RL-referenced score" if len(covered) == len(datasets) else "Normalised score")


def score_name(referenced: dict[str, list[str]], datasets: list[str]) -> str:
    """The tables' opening noun phrase for the scores of `datasets`."""
    return f"{score_kind(referenced, datasets)} (0 = random, 100 = expert)"


def reference_note(referenced: dict[str, list[str]], datasets: list[str]) -> str:
    """The sentence that says which of `datasets` have D4RL-referenced scores and why ("" when
    none has)."""
    covered = [dataset for dataset in datasets if dataset in referenced]
    if not covered:
        return ""
    envs = sorted({env for dataset in covered for env in referenced[dataset]})
    versions = sorted({NEW_ENVIRONMENT.search(env).group(1) for env in envs})
    which = "every dataset here" if len(covered) == len(datasets) else ", ".join(covered)
    note = (f" D4RL-referenced (v2 reference returns on {'/'.join(versions)} environments): the "
            f"runs on {which} were evaluated on {', '.join(envs)}, while D4RL measured its "
            f"reference returns on its -v2 environments, so these scores compare with "
            f"published D4RL-normalised ones only approximately.")
    return note if len(covered) == len(datasets) else note + " The others are D4RL-normalised."


# --------------------------------------------------------------------------- the table
def method_label(key: GroupKey) -> str:
    settings = key.settings.label()
    return f"{key.method} {weights_label(key.weights)}" + (f" {settings}" if settings else "")


def last_fifth(frame: Any, column: str, num_steps: int) -> float:
    return window_average(frame["step"].to_numpy(np.float64), frame[column].to_numpy(np.float64),
                          (1 - WINDOW_FRACTION) * num_steps, num_steps)


def last_fifths(key: GroupKey, frames: list[Any]) -> list[np.ndarray]:
    """Per actor, the last-fifth score of each seed that reached the budget (same seed order
    for every actor)."""
    reached = [frame for frame in frames if frame["step"].iloc[-1] >= key.num_steps]
    return [np.array([last_fifth(frame, score_column(actor), key.num_steps) for frame in reached])
            for actor in range(len(key.weights))]


def end_spreads(frames: list[Any], actor: int) -> np.ndarray:
    """spread_{actor} at each seed's last evaluation, for the seeds whose metrics have it
    (runs made before train_pogo.py measured spreads have no such column)."""
    column = spread_column(actor)
    return np.array([frame[column].iloc[-1] for frame in frames if column in frame], np.float64)


def group_rows(key: GroupKey, seeds: list[tuple[OfflineRun, Any]],
               behaviour: tuple[float | None, str]) -> list[dict[str, Any]]:
    """One row per actor of the group (see the module docstring)."""
    frames = [frame for _, frame in seeds]
    windows = last_fifths(key, frames)
    steps = [int(frame["step"].iloc[-1]) for frame in frames]
    rows = []
    for actor in range(len(key.weights)):
        end = np.array([frame[score_column(actor)].iloc[-1] for frame in frames], np.float64)
        versus_actor0 = windows[actor] - windows[0] if actor else np.array([])  # paired by seed
        spreads = end_spreads(frames, actor)
        rows.append({
            "dataset": key.dataset, "method": method_label(key), **key.settings._asdict(),
            "actor": actor, "seeds": len(frames),
            "finished_seeds": sum(run.finished for run, _ in seeds),
            "steps_min": min(steps), "steps_max": max(steps), "num_steps": key.num_steps,
            **mean_and_ci("end", end), "window_seeds": len(windows[actor]),
            **mean_and_ci("window", windows[actor]),
            **mean_and_ci("window_vs_actor0", versus_actor0),
            "spread_end_mean": spreads.mean() if len(spreads) else math.nan,
            "spread_seeds": len(spreads),
            "behaviour_score": math.nan if behaviour[0] is None else behaviour[0],
            "behaviour_source": behaviour[1],
            "wall_time_s_mean": float(np.mean([f["wall_time_s"].iloc[-1] for f in frames])),
            "seed_list": " ".join(str(run.seed) for run, _ in seeds),
        })
    return rows


def report_rows(groups: Groups, behaviour: dict[str, tuple[float | None, str]]
                ) -> list[dict[str, Any]]:
    return [row for key, seeds in groups.items()
            for row in group_rows(key, seeds, behaviour[key.dataset])]


def spread_cell(row: dict[str, Any]) -> str:
    """The mean end spread (3 decimals), with n when not every seed measured it."""
    if not row["spread_seeds"]:
        return "–"
    cell = f"{row['spread_end_mean']:.3f}"
    return cell if row["spread_seeds"] == row["seeds"] else f"{cell} (n={row['spread_seeds']})"


def markdown_row(row: dict[str, Any]) -> str:
    end = ci_cell(row, "end")
    behaviour = "–" if math.isnan(row["behaviour_score"]) else f"{row['behaviour_score']:.1f}"
    return (f"| {row['dataset']} | {row['method']} | {row['actor']} | {seeds_cell(row)} "
            f"| {range_cell(row['steps_min'], row['steps_max'])}/{row['num_steps']} | {end} "
            f"| {budget_cell(row, 'window', 'window_seeds')} "
            f"| {budget_cell(row, 'window_vs_actor0', 'window_seeds')} | {spread_cell(row)} "
            f"| {behaviour} | {format_duration(row['wall_time_s_mean'])} |")


def behaviour_line(dataset: str, behaviour: tuple[float | None, str]) -> str:
    score, source = behaviour
    if score is None:
        return (f"- {dataset}: unknown (not in the dataset's metadata under "
                f"{minari_root()}; pass --behaviour-score {dataset}=SCORE)")
    spread = metadata_summary(dataset, "behaviour_spread")
    spread_text = "" if spread is None else f"; its spread {spread:.3f} (dataset metadata)"
    return f"- {dataset}: {score:.1f} ({source}){spread_text}"


def markdown(rows: list[dict[str, Any]], behaviour: dict[str, tuple[float | None, str]],
             referenced: dict[str, list[str]]) -> str:
    datasets = list(behaviour)
    lines = ["# POGO offline results", "",
             f"{score_name(referenced, datasets)} of each actor's deterministic evaluation: "
             "mean over seeds [95% percentile-bootstrap CI over seeds, 10,000 resamples; none "
             "with one seed]. *steps*: the last evaluation step reached (min–max over seeds) / "
             "the budget B; a run short of B is still going or was stopped. *end*: each "
             "seed's last evaluation; *last fifth*: the time average of each seed's learning "
             "curve over 0.8·B–B, over the seeds that reached B (n = how many when not all, – "
             "when none yet); *− actor 0*: that average minus actor 0's in the same run, "
             "paired by seed; *spread (end)*: the actor's spread at each seed's last "
             "evaluation, the mean per-dimension standard deviation of its actions over 64 "
             "noise draws at 512 fixed dataset states (0 for a deterministic actor), mean over "
             "seeds (n = how many measured it when not all, – for runs made before it was "
             "measured); *behaviour*: the score of the policy that collected the dataset; "
             "*wall time*: mean over seeds of the training time up to the last evaluation "
             f"(H:MM:SS).{reference_note(referenced, datasets)}", "",
             "| dataset | method [weights] | actor | seeds | steps | end | last fifth "
             "| − actor 0 | spread (end) | behaviour | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [markdown_row(row) for row in rows]
    lines += ["", "Behaviour policies' scores, in the table's units (and, where the dataset "
                  "records it, a stochastic behaviour policy's spread, measured as spread (end) "
                  "is):"]
    lines += [behaviour_line(dataset, score) for dataset, score in behaviour.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the aggregate
def aggregate_rows(groups: Groups, reps: int) -> list[dict[str, Any]]:
    """One row per method (a group without its dataset) and actor: the IQM over the datasets
    the method covers (see the module docstring)."""
    methods: dict[tuple[Any, ...], dict[GroupKey, list[np.ndarray]]] = {}
    for key, seeds in sorted(groups.items(), key=lambda item: method_order(item[0])):
        windows = last_fifths(key, [frame for _, frame in seeds])
        methods.setdefault(key[1:], {})[key] = windows  # key[1:]: all but the dataset
    rows = []
    for per_dataset in methods.values():
        counts = {key.dataset: len(windows[0]) for key, windows in per_dataset.items()}
        covered = covered_datasets(counts)
        if not covered:
            continue
        key = next(iter(per_dataset))
        left_out = [f"{dataset} (n={count})" for dataset, count in counts.items()
                    if dataset not in covered]
        for actor in range(len(key.weights)):
            scores = np.stack([windows[actor] for group, windows in per_dataset.items()
                               if group.dataset in covered], axis=1)  # [seeds, datasets]
            iqm, low, high = iqm_with_ci(scores, reps)
            rows.append({"method": method_label(key), **key.settings._asdict(), "actor": actor,
                         "num_steps": key.num_steps, "seeds": len(scores),
                         "datasets": "; ".join(covered), "iqm": iqm, "iqm_ci_low": low,
                         "iqm_ci_high": high, "bootstrap_reps": reps,
                         "left_out": "; ".join(left_out)})
    return rows


def aggregate_markdown(rows: list[dict[str, Any]], referenced: dict[str, list[str]],
                       reps: int) -> str:
    datasets = list(dict.fromkeys(dataset for row in rows
                                  for dataset in row["datasets"].split("; ")))
    lines = ["# POGO offline results: aggregate over datasets", "",
             f"{score_name(referenced, datasets)}, last fifth (as in offline_results.md): "
             "interquartile mean (IQM, the mean of the middle half; rliable's "
             "metrics.aggregate_iqm) of the [seeds × datasets] matrix of each seed's last-fifth "
             "score on the datasets a row covers [95% CI: percentile interval of rliable's "
             f"stratified bootstrap, the seeds resampled within each dataset, {reps:,} "
             "resamples, seeded with 0 for every row; none with one seed]. A method "
             "enters over the datasets on which the same number of its seeds reached the "
             "budget, the number the most of its datasets share (the larger on a tie): "
             "*seeds* is that number, *left out* its other datasets with their seeds."
             f"{reference_note(referenced, datasets)}", "",
             "| method [weights] | actor | budget | seeds | IQM | datasets | left out |",
             "|---|---|---|---|---|---|---|"]
    if not rows:
        lines.append("| (none yet: no method has a seed that reached its budget) "
                     "| | | | | | |")
    lines += [f"| {row['method']} | {row['actor']} | {row['num_steps']} | {row['seeds']} "
              f"| {with_ci(row['iqm'], row['iqm_ci_low'], row['iqm_ci_high'])} "
              f"| {row['datasets'].replace('; ', ', ')} "
              f"| {row['left_out'].replace('; ', ', ') or '–'} |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the curves
def curve_rows(groups: Groups, dataset: str) -> list[dict[str, Any]]:
    """Mean and bootstrap band of every (group, actor) of the dataset on its common grid."""
    rows = []
    for key, seeds in groups.items():
        if key.dataset != dataset:
            continue
        rows += seed_bands([frame for _, frame in seeds], f"{dataset} {method_label(key)}",
                           [(score_column(actor), {"method": method_label(key),
                                                   "num_steps": key.num_steps, "actor": actor})
                            for actor in range(len(key.weights))])
    return rows


# --------------------------------------------------------------------------- output
def write_curves(groups: Groups, dataset: str, behaviour: float | None, score: str,
                 out_dir: Path) -> list[Path]:
    import pandas as pd

    curves = pd.DataFrame(curve_rows(groups, dataset))
    if curves.empty:
        return []
    stem = out_dir / f"curves_{file_safe(dataset)}"
    curves.to_csv(stem.with_suffix(".csv"), index=False)
    curve_figure(dataset, curves, behaviour, score).savefig(stem.with_suffix(".png"))
    return [stem.with_suffix(".png"), stem.with_suffix(".csv")]


def settings_families(rows: list[dict[str, Any]], dataset: str
                      ) -> dict[str, list[dict[str, Any]]]:
    """The dataset's rows by the POGO settings (Settings.label()) they share, each with the
    baseline's rows: a weight figure compares weights only where nothing else differs."""
    rows = [row for row in rows if row["dataset"] == dataset]
    baseline = [row for row in rows if row["method"].startswith(BASELINE)]
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if not row["method"].startswith(BASELINE):
            label = Settings(**{field: row[field] for field in Settings._fields}).label()
            families.setdefault(label, []).append(row)
    return {label: family + baseline for label, family in families.items()}


def write_report(groups: Groups, behaviour: dict[str, tuple[float | None, str]], out_dir: Path,
                 reps: int) -> list[Path]:
    """Write the tables and the figures; prints the markdown and the files written."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    referenced = referenced_datasets(groups)
    rows = report_rows(groups, behaviour)
    aggregate = aggregate_rows(groups, reps)
    written = [out_dir / "offline_results.csv", out_dir / "offline_results.md",
               out_dir / "aggregate_results.csv", out_dir / "aggregate_results.md"]
    pd.DataFrame(rows).to_csv(written[0], index=False)
    text = markdown(rows, behaviour, referenced)
    written[1].write_text(text + "\n")
    pd.DataFrame(aggregate).to_csv(written[2], index=False)
    aggregate_text = aggregate_markdown(aggregate, referenced, reps)
    written[3].write_text(aggregate_text + "\n")
    for dataset, (score, _) in behaviour.items():
        kind = score_kind(referenced, [dataset])
        written += write_curves(groups, dataset, score, kind, out_dir)
        for label, family in settings_families(rows, dataset).items():
            figure = weight_figure(dataset, family, score, BASELINE, kind)
            if figure is not None:
                suffix = f"_{file_safe(label.replace(', ', '_'))}" if label else ""
                written.append(out_dir / f"weights_{file_safe(dataset)}{suffix}.png")
                figure.savefig(written[-1])
    print(text, aggregate_text, sep="\n\n")
    print("wrote " + ", ".join(str(path) for path in written))
    return written


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        groups = load_groups(runs_on(find_runs(args.results_dir), args.datasets))
        datasets = list(dict.fromkeys(key.dataset for key in groups))
        behaviour = behaviour_scores(datasets, dict(args.behaviour_score))
    except UsageError as error:
        usage_error(PROGRAM, str(error))
    write_report(groups, behaviour, args.out_dir or args.results_dir / "offline_report",
                 args.bootstrap_reps)


if __name__ == "__main__":
    main()
