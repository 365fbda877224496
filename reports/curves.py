"""Sweep results → tables and learning curves (called by `run_sac.py --summarize`).

Reads each run's metrics CSV (one row per evaluation) with pandas and writes, into the
summary directory:

    summary.csv, summary.md   one row per environment × w2 setting × actor: final and best
                              deterministic return, the return at 100k steps and its average
                              over 80k-100k (and that average minus actor 0's), mean over
                              seeds with a 95% bootstrap confidence interval, number of
                              seeds, steps reached
    curves_{env}.png          one figure per environment, one line per (w2 setting, actor):
                              mean over seeds with a shaded 95% bootstrap band, x = env steps
    curves_{env}.csv          the numbers behind each figure

Definitions
- final return: a seed's last evaluation (at the steps it reached); best: its highest
  evaluation; at 100k: its curve (below) at step 100,000, for the seeds that evaluated at
  or beyond it; 80k-100k average: the time average of that curve over the last fifth of
  the 100k budget, (1/20k)·∫ curve(s) ds from 80k to 100k, for the same seeds (less noisy
  than one evaluation, which on Hopper or Walker2d can swing by half the return); minus
  actor 0: for actor i ≥ 1, each seed's 80k-100k average minus actor 0's in the same run.
  The actors of a run share its critic and replay data, so this paired difference leaves
  out the seed-to-seed spread they have in common. All are deterministic-policy returns
  (`actor_{i}_deterministic`).
- confidence interval (reports/statistics.py): percentile bootstrap over seeds: 10,000
  resamples of the seeds with replacement, 2.5th and 97.5th percentiles of the resampled
  means, from numpy.random.default_rng(0) for every cell (the numbers do not depend on table
  order).
  With one seed there is no interval (blank / NaN).
- curves: seeds evaluate at different steps (evaluations happen at episode ends), so each
  seed's curve is linearly interpolated (numpy.interp) onto a common grid: the union of all
  the seeds' evaluation steps that lie between the latest first evaluation and the earliest
  last evaluation. Every plotted point is thus a mean over all seeds of the line, each seed's
  own evaluations are used exactly, and nothing is extrapolated: a seed that is still
  running cuts the line short at the step it has reached.

A run without an evaluation yet is counted as such. A run whose metrics CSV cannot be used
(read_metrics: missing or empty though the run finished, unparseable, a column the tables
read absent or not a number) is left out with one warning line naming the file, what is
wrong and the fix; reports/offline.py and reports/finetune.py read their runs the same way.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reports.statistics import mean_and_ci, seed_bands, window_average
from utils import UsageError

AT_STEP = 100_000  # the common budget every table reports, however long the runs
WINDOW_START = 80_000  # the late-training average covers [WINDOW_START, AT_STEP]
PROGRAM = "run_sac.py"  # whose --summarize writes these tables (and names their warnings)


@dataclass(frozen=True)
class RunRecord:
    task: str  # the environment id
    w2_weights: tuple[float, ...]
    seed: int
    metrics_csv: Path
    finished: bool


def weights_label(weights: tuple[float, ...]) -> str:
    return "[" + ", ".join(repr(float(w)) for w in weights) + "]"


def read_json_object(path: Path) -> dict[str, Any]:
    """A run's config.json or summary.json; UsageError naming it when it is unreadable or
    not a JSON object."""
    try:
        content = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} unreadable ({error}); restore it or move its run folder "
                         f"out of the results folder") from None
    if not isinstance(content, dict):
        raise UsageError(f"{path} is not a JSON object; restore it or move its run folder out "
                         f"of the results folder")
    return content


def config_weights(value: Any) -> tuple[float, ...]:
    """A run's config.json w2_weights as floats; ValueError unless a non-empty list of
    numbers (a string would pass as a list of its characters)."""
    if not (isinstance(value, list) and value
            and all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in value)):
        raise ValueError(f"w2_weights {value!r} is not a list of numbers")
    return tuple(float(w) for w in value)


class MetricsError(Exception):
    """A run's metrics CSV that a report cannot use; the message names the file and what is
    wrong with it."""


def read_metrics(path: Path, columns: Sequence[str] = (), finished: bool = False) -> Any | None:
    """A run's metrics CSV as a DataFrame sorted by step, or None while an unfinished run has
    no evaluation yet (no file, or only its header). MetricsError for a CSV the report cannot
    use: one that does not parse, one whose `step` or `columns` fail check_columns, and a
    finished run's absent or empty one (every run evaluates at its end). The training
    scripts write the CSV atomically, so any of these is damage, not a write caught half-way."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        frame = None
    except (OSError, ValueError) as error:  # pandas' EmptyDataError and ParserError included
        reason = " ".join(str(error).split()) or type(error).__name__
        raise MetricsError(f"{path} cannot be read as a CSV ({reason})") from None
    if frame is None or frame.empty:
        if finished:
            raise MetricsError(f"{path} {'is missing' if frame is None else 'holds no evaluation'}"
                               f", though its run finished")
        return None
    check_columns(frame, path, ["step", *columns])
    return frame.sort_values("step", kind="stable")


def check_columns(frame: Any, path: Path, columns: Sequence[str],
                  optional: Sequence[str] = ()) -> None:
    """MetricsError naming the first problem: one of `columns` absent, or a cell in them that
    is empty or not a number; a cell of an `optional` column that is there may be empty (an
    evaluation that did not measure it), not anything else that is not a number."""
    import pandas as pd

    absent = [column for column in columns if column not in frame]
    if absent:
        raise MetricsError(f"{path} has no column {', '.join(absent)}")
    for column in [*columns, *(column for column in optional if column in frame)]:
        bad = pd.to_numeric(frame[column], errors="coerce").isna()
        if column not in columns:
            bad &= frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            value = frame[column].iloc[row]
            cell = "an empty cell" if pd.isna(value) else repr(value)
            raise MetricsError(f"{path} has {cell} in column {column} at evaluation {row + 1}, "
                               f"where a number belongs")


def warn_left_out(program: str, path: Path, error: MetricsError) -> None:
    """The one warning line for a run a report leaves out because of its metrics CSV `path`
    ({results}/{run}/training/{run}_metrics.csv)."""
    print(f"{program}: warning: {error}; {path.parent.parent.name} is left out (restore the "
          f"file from a copy, or delete the run's results and checkpoints to train it again)",
          file=sys.stderr)


def load_runs(records: list[RunRecord]
              ) -> tuple[dict[tuple[str, tuple[float, ...]], list[tuple[RunRecord, Any]]], int]:
    """(task, w2_weights) → [(record, metrics DataFrame sorted by step)] for the runs with
    evaluations, and how many have none yet; a run whose metrics CSV is unusable is left out
    with a warning."""
    groups: dict[tuple[str, tuple[float, ...]], list[tuple[RunRecord, Any]]] = {}
    unevaluated = 0
    for record in records:
        try:
            frame = read_metrics(record.metrics_csv, deterministic_columns(len(record.w2_weights)),
                                 record.finished)
        except MetricsError as error:
            warn_left_out(PROGRAM, record.metrics_csv, error)
            continue
        if frame is None:
            unevaluated += 1
        else:
            groups.setdefault((record.task, record.w2_weights), []).append((record, frame))
    return groups, unevaluated


def deterministic_columns(actors: int) -> list[str]:
    """The deterministic-return columns of a run's metrics, one per actor."""
    return [f"actor_{actor}_deterministic" for actor in range(actors)]


def summary_rows(groups: dict) -> list[dict[str, Any]]:
    rows = []
    for (env, weights), seeds in groups.items():
        reached = [frame for _, frame in seeds if frame["step"].iloc[-1] >= AT_STEP]
        windows = [np.array([window_average(frame["step"].to_numpy(np.float64),
                                            frame[column].to_numpy(np.float64),
                                            WINDOW_START, AT_STEP) for frame in reached])
                   for column in (f"actor_{actor}_deterministic" for actor in range(len(weights)))]
        steps = [int(frame["step"].iloc[-1]) for _, frame in seeds]
        for actor in range(len(weights)):
            column = f"actor_{actor}_deterministic"
            final = np.array([frame[column].iloc[-1] for _, frame in seeds], dtype=np.float64)
            best = np.array([frame[column].max() for _, frame in seeds], dtype=np.float64)
            at_step = np.array([np.interp(AT_STEP, frame["step"], frame[column])
                                for frame in reached])
            # paired by seed: the actors of one run share its critic and replay data
            versus_actor0 = windows[actor] - windows[0] if actor else np.array([])
            rows.append({
                "env": env, "w2_weights": weights_label(weights), "actor": actor,
                "seeds": len(seeds), "finished_seeds": sum(r.finished for r, _ in seeds),
                "steps_min": min(steps), "steps_max": max(steps),
                **mean_and_ci("final", final), **mean_and_ci("best", best),
                "at_step_seeds": len(reached), **mean_and_ci("at_step", at_step),
                **mean_and_ci("window", windows[actor]),
                **mean_and_ci("window_vs_actor0", versus_actor0),
                "seed_list": " ".join(str(r.seed) for r, _ in seeds),
            })
    return rows


def with_ci(mean: float, low: float, high: float, significant: int | None = None) -> str:
    """"mean [low, high]" (just the mean without an interval), to one decimal, or to
    `significant` digits for small quantities (α ≈ 0.2)."""
    def cell(value: float) -> str:
        if significant is not None:
            return f"{value:.{significant}g}"
        return f"{round(value, 1) + 0.0:.1f}"  # + 0.0: no "-0.0"

    return cell(mean) if math.isnan(low) else f"{cell(mean)} [{cell(low)}, {cell(high)}]"


def ci_cell(row: dict[str, Any], kind: str, significant: int | None = None) -> str:
    """row[kind_mean] with its interval row[kind_ci_low], row[kind_ci_high] (with_ci); "–"
    without a mean (no seed has the value, or a seed lacks it)."""
    mean = row[f"{kind}_mean"]
    return "–" if math.isnan(mean) else with_ci(mean, row[f"{kind}_ci_low"],
                                                 row[f"{kind}_ci_high"], significant)


def budget_cell(row: dict[str, Any], kind: str, counted: str = "at_step_seeds") -> str:
    """kind "at_step", "window" or "window_vs_actor0": over the row[counted] seeds that reached
    the budget (AT_STEP here), with n when not all of row["seeds"] did."""
    cell = ci_cell(row, kind)  # "–": no seed reached the budget, or actor 0's difference
    return cell if cell == "–" or row[counted] == row["seeds"] else f"{cell} (n={row[counted]})"


def range_cell(low: int, high: int) -> str:
    """"400" when both ends agree, else "400–520"."""
    return f"{low}" if low == high else f"{low}–{high}"


def seeds_cell(row: dict[str, Any]) -> str:
    """The number of seeds, and how many finished when not all did."""
    finished = row["finished_seeds"]
    return f"{row['seeds']}" + ("" if finished == row["seeds"] else f" ({finished} finished)")


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["# POSAC sweep results", "",
             "Deterministic evaluation return per environment, w2 setting and actor: mean over "
             "seeds [95% percentile-bootstrap CI over seeds, 10,000 resamples]. *final*: each "
             "seed's last evaluation; *best*: its highest; *at 100k*: the learning curve at "
             "step 100,000; *80k–100k*: the curve's time average over those steps; *− actor 0*: "
             "that average minus actor 0's in the same run, paired by seed (these three over "
             "the seeds that got to 100k; n = how many when not all). *steps*: last "
             "evaluation step reached (min–max over seeds). No interval with one seed.", ""]
    for env in dict.fromkeys(row["env"] for row in rows):
        lines += [f"## {env}", "",
                  "| w2 weights | actor | seeds | steps | final return | best return "
                  "| at 100k | 80k–100k | − actor 0 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in (r for r in rows if r["env"] == env):
            lines.append(f"| {row['w2_weights']} | {row['actor']} | {seeds_cell(row)} "
                         f"| {range_cell(row['steps_min'], row['steps_max'])} "
                         f"| {ci_cell(row, 'final')} | {ci_cell(row, 'best')} "
                         f"| {budget_cell(row, 'at_step')} | {budget_cell(row, 'window')} "
                         f"| {budget_cell(row, 'window_vs_actor0')} |")
        lines.append("")
    return "\n".join(lines)


def curve_rows(groups: dict, env: str) -> list[dict[str, Any]]:
    rows = []
    for (group_env, weights), seeds in groups.items():
        if group_env != env:
            continue
        rows += seed_bands([frame for _, frame in seeds], f"{env} w2 {weights_label(weights)}",
                           [(f"actor_{actor}_deterministic",
                             {"w2_weights": weights_label(weights), "actor": actor})
                            for actor in range(len(weights))])
    return rows


def plot_band(ax: Any, line: Any, color: Any, label: str, band_alpha: float, x: str = "step",
              **style: Any) -> None:
    """A curve's mean line over line[x] (a marker when it is one point) and its CI band when
    it has one."""
    ax.plot(line[x], line["mean"], color=color, marker="o" if len(line) == 1 else None,
            label=label, **style)
    if line["ci_low"].notna().all():
        ax.fill_between(line[x], line["ci_low"], line["ci_high"], color=color,
                        alpha=band_alpha, linewidth=0)


def steps_formatter(value: float, _: Any) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def plot_env(env: str, curves: Any, path: Path) -> None:
    """One figure for the environment, one panel per actor index (shared y axis), one line
    per w2 setting in each: every line is one (w2 setting, actor) with its CI band, and a
    setting keeps its colour across panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    colors = plt.get_cmap("tab10").colors
    settings = list(dict.fromkeys(curves["w2_weights"]))
    actors = sorted(set(curves["actor"]))
    fig, axes = plt.subplots(1, len(actors), figsize=(5.5 * len(actors) + 1, 4.6), dpi=120,
                             sharey=True, squeeze=False)
    for ax, actor in zip(axes[0], actors):
        for index, setting in enumerate(settings):
            line = curves[(curves["w2_weights"] == setting) & (curves["actor"] == actor)]
            if line.empty:
                continue
            color = colors[index % len(colors)]
            # earlier settings drawn wider, so identical curves stay visible (with the same
            # seed, actor 0 learns exactly the same way in every w2 setting)
            width = 1.2 + 1.2 * (len(settings) - 1 - index) / max(len(settings) - 1, 1)
            plot_band(ax, line, color, f"w2 {setting} (n={int(line['seeds'].iloc[0])})",
                      band_alpha=0.18, linewidth=width)
        ax.set_title(f"actor {actor}", fontsize=10)
        ax.set_xlabel("environment steps")
        ax.xaxis.set_major_formatter(FuncFormatter(steps_formatter))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[0][0].set_ylabel("deterministic evaluation return")
    fig.suptitle(f"{env}: mean over seeds, shaded 95% bootstrap CI", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def write_summary(records: list[RunRecord], out_dir: Path) -> list[Path]:
    """Write the tables and figures; prints the markdown table and the files written."""
    import pandas as pd

    groups, unevaluated = load_runs(records)
    if not groups:
        print(f"no usable metrics CSV yet for any of the {len(records)} runs; nothing to "
              f"summarize")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(groups)
    written = [out_dir / "summary.csv", out_dir / "summary.md"]
    pd.DataFrame(rows).to_csv(written[0], index=False)
    text = markdown(rows)
    written[1].write_text(text + "\n")
    for env in dict.fromkeys(env for env, _ in groups):
        curves = pd.DataFrame(curve_rows(groups, env))
        if curves.empty:
            continue
        stem = f"curves_{file_safe(env)}"
        curves.to_csv(out_dir / f"{stem}.csv", index=False)
        plot_env(env, curves, out_dir / f"{stem}.png")
        written += [out_dir / f"{stem}.png", out_dir / f"{stem}.csv"]
    print(text)
    if unevaluated:
        print(f"({unevaluated} of {len(records)} runs have no metrics yet and are not included)")
    print("wrote " + ", ".join(str(path) for path in written))
    return written
