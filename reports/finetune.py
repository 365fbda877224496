"""Offline to online: train_sac.py's pretrained-then-online runs against online from scratch.

    python -m reports.finetune --results-dir results [--out-dir results/finetune_report]

Finds in --results-dir every finished train_sac.py run (summary.json written; unfinished
ones are named and left out, and so is one whose metrics CSV cannot be used, with a warning
line naming the file, what is wrong and the fix; a config.json without the settings read
here is one error line, exit status 2): offline runs (config.json names a `dataset`), online runs
started from one (config.json's `init_from`) and online runs from scratch (with or without
`offline_data`), reads their metrics CSVs (one row per evaluation) and writes into --out-dir:

    finetune_results.md, finetune_results.csv   one row per environment × method × setting
                                                 × actor
    switch.md, switch.csv                        the chain across the switch: per continued
                                                 group and actor, W2² to the predecessor,
                                                 entropy and α at the offline end, the
                                                 online start and end (reports/switch.py)
    curves_{env}.png, curves_{env}.csv           both phases on one x-axis: the offline runs'
                                                 gradient steps, then (shifted by them) the
                                                 environment steps of the online runs; per
                                                 group the mean over seeds of each seed's
                                                 curve interpolated onto their common steps,
                                                 with its 95% bootstrap band; beside it, the
                                                 online curves' first fifth (the dip); a
                                                 dashed line at each dataset's behaviour
                                                 policy score, where the dataset is stored
                                                 locally (its make_dataset.py metadata)

Methods: "offline → online" (an online run with init_from; its offline run by the name of
the run it started from), "scratch" and "scratch + data" (online from scratch, without and
with --offline-data). Runs are grouped by environment, method and setting (chain weights,
online steps, the dataset and its share with --offline-data, and the offline run's own
setting with its dataset: the one the continued run's summary.json says it loaded, else that
of its offline run in the folder), and
a group's runs must have distinct seeds and the same flags apart from those that do not
change a run's numbers (reports/finetune_runs.py), and each continued run must start from
its own offline run, with its seed: unlike runs are never pooled as seeds (one error line
names the two runs and what they differ in).

Definitions (per seed, then the mean over seeds with a 95% percentile-bootstrap interval,
reports.statistics.bootstrap_ci; the score is D4RL's normalised score of the deterministic
evaluation, 100·(return − random)/(expert − random), with the environment's D4RL reference
returns: on -v5 environments "D4RL-referenced (v2 reference returns on v5 environments)"):
- offline: the offline run's last evaluation (CORL's "offline → online" form starts here);
- switch: the online run's evaluation at environment step 0, before any online step (the
  same actors, so it equals `offline`: tests/test_train_sac_offline.py; a warning line
  names a run where it does not, e.g. one whose offline run was made again since);
- dip: the largest drop below the switch score after it, min(0, min_t score_t − switch);
- end: the last evaluation;
- AUC: the area under the online learning curve (evaluations linearly interpolated over
  environment steps) over [0, its last step], divided by that length, i.e. the curve's
  mean score. Every online train_sac.py run evaluates at step 0, so every method's area
  covers the same span, its first steps included; "–" for a run without an evaluation at
  step 0 (made before train_sac.py evaluated there).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reports.finetune_runs import (METHODS, PROGRAM, Run, check_groups, find_runs, groups_of,
                                   offline_frames, read_frames)
from utils import OneLineErrorParser, UsageError, usage_error

MEASURES = ("offline", "switch", "dip", "end", "auc")
ZOOM_FRACTION = 0.2  # the figure's right panel: the online curves' first fifth


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog=f"python -m {PROGRAM}", description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="the runs' results folders")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the tables and figures go (default: "
                             "{results-dir}/finetune_report)")
    return parser


def scores(frame: Any, env: str, actor: int) -> tuple[Any, Any]:
    """(steps, normalised scores) of an actor's deterministic evaluations (the returns
    themselves for an environment without D4RL reference returns)."""
    from offline.readers import d4rl_reference_scores

    references = d4rl_reference_scores(env)
    returns = frame[f"actor_{actor}_deterministic"].to_numpy(float)
    if references is None:
        return frame["step"].to_numpy(float), returns
    low, high = references
    return frame["step"].to_numpy(float), 100.0 * (returns - low) / (high - low)


def seed_measures(online: Any, offline: Any | None, env: str, actor: int,
                  continued: bool) -> dict[str, float]:
    """The measures of the module docstring for one seed's online run. `continued`: it
    started from an offline run (switch and dip are measured on its own curve); `offline`:
    that run's metrics, or None where they cannot describe the switch (offline_frames)."""
    from reports.statistics import window_average

    steps, values = scores(online, env, actor)
    from_start = steps[0] == 0 and len(steps) > 1
    nan = float("nan")
    return {"end": values[-1],
            "offline": scores(offline, env, actor)[1][-1] if offline is not None else nan,
            "switch": values[0] if continued and from_start else nan,
            "dip": min(0.0, float(values[1:].min() - values[0])) if continued and from_start
            else nan,
            "auc": window_average(steps, values, 0, steps[-1]) if from_start else nan}


def table_rows(runs: list[Run], frames: dict[str, Any],
               offline: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per environment × method × setting × actor: each measure's mean and 95%
    interval over the group's seeds (frames: each run's metrics by name; offline: each
    continued run's offline run's, finetune_runs.offline_frames)."""
    import numpy as np

    from reports.statistics import mean_and_ci

    rows = []
    for (env, method, setting), group in groups_of(runs, frames, online=True).items():
        for actor in range(min(run.actors for run in group)):
            per_seed = [seed_measures(frames[run.name], offline.get(run.name), env, actor,
                                      continued=method == METHODS[0])
                        for run in group]
            row = {"env": env, "method": method, "setting": setting, "actor": actor,
                   "seeds": len(group),
                   "steps": int(min(frames[run.name]["step"].iloc[-1] for run in group))}
            for name in MEASURES:
                row.update(mean_and_ci(name, np.array([m[name] for m in per_seed])))
            rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    from reports.curves import ci_cell

    lines = ["Offline to online: D4RL-referenced scores (v2 reference returns on v5 "
             "environments; returns where an environment has no D4RL references), mean over "
             "seeds [95% bootstrap interval].", "",
             "| env | method | setting | actor | seeds | online steps | offline → online (end) "
             "| switch | dip | AUC |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        offline, end = ci_cell(row, "offline"), ci_cell(row, "end")
        arrow = end if offline == "–" else f"{offline} → {end}"  # "–": not from an offline run
        lines.append(f"| {row['env']} | {row['method']} | {row['setting']} | {row['actor']} "
                     f"| {row['seeds']} | {row['steps']} | {arrow} | {ci_cell(row, 'switch')} "
                     f"| {ci_cell(row, 'dip')} | {ci_cell(row, 'auc')} |")
    return "\n".join(lines) + "\n"


def curve_frame(runs: list[Run], frames: dict[str, Any], env: str) -> tuple[Any, list[int]]:
    """The curves of one environment on one x-axis: the offline runs' groups at their
    gradient steps, the online groups at offset + environment steps (offset: the last step
    of the group's offline runs; for runs from scratch, of the longest offline run); per
    group and actor the mean over seeds on their common steps with its 95% bootstrap band
    (reports.statistics.seed_bands). Also the online groups' offsets, where the phases meet."""
    import pandas as pd

    from reports.statistics import seed_bands

    runs = [run for run in runs if run.env == env]
    ends = {run.name: int(frames[run.name]["step"].iloc[-1]) for run in runs
            if run.method is None and frames[run.name] is not None}
    rows, offsets = [], set()
    for online in (False, True):
        for (_, method, setting), group in groups_of(runs, frames, online).items():
            offset = 0
            if online:
                offset = max([ends[run.offline_name] for run in group
                              if run.offline_name in ends] or [max(ends.values(), default=0)])
                offsets.add(offset)
            scored = []
            for run in group:  # each seed's normalised scores beside its steps
                frame = frames[run.name][["step"]].copy()
                for actor in range(run.actors):
                    frame[f"score_{actor}"] = scores(frames[run.name], env, actor)[1]
                scored.append(frame)
            actors = min(run.actors for run in group)
            rows += [{"x": row["step"] + offset, **row} for row in seed_bands(
                scored, f"{env} {method} {setting}", [
                    (f"score_{actor}", {"phase": "online" if online else "offline",
                                        "method": method, "setting": setting, "actor": actor})
                    for actor in range(actors)])]
    return pd.DataFrame(rows), sorted(offsets)


def behaviour_scores(runs: list[Run], env: str) -> dict[str, float]:
    """dataset → its behaviour policy's score, for the datasets `env`'s runs learn from
    (offline, or with --offline-data) whose make_dataset.py metadata is stored locally."""
    from reports.offline import metadata_score

    datasets = {run.settings.get("dataset") or run.settings.get("offline_data")
                for run in runs if run.env == env} - {None, ""}
    scores = {dataset: metadata_score(dataset) for dataset in sorted(datasets)}
    return {dataset: score for dataset, score in scores.items() if score is not None}


def curve_figure(curves: Any, offsets: list[int], env: str,
                 behaviour: dict[str, float] | None = None) -> Any:
    """Both phases on one x-axis (left) and, beside it, the online curves over their first
    ZOOM_FRACTION of environment steps (right), where the switch's dip lies; `behaviour`'s
    scores (dataset → score) as dashed lines on both."""
    import matplotlib

    from reports.curves import plot_band
    from reports.figures import agg_figure

    online = curves[curves["phase"] == "online"] if not curves.empty else curves
    zoom, horizon = None, 0.0
    if online.empty:  # only offline runs so far: no online panel
        fig, ax = agg_figure(8, 4.5)
    else:
        fig, (ax, zoom) = agg_figure(12, 4.5, ncols=2, width_ratios=[2, 1])
        horizon = ZOOM_FRACTION * online["step"].max()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    # a label names the setting only where its method has more than one in that phase
    several = (curves.groupby(["phase", "method"])["setting"].nunique() > 1).to_dict() \
        if not curves.empty else {}
    keys: dict[tuple[str, int], Any] = {}  # one colour per method × actor; offline as →
    for (phase, method, setting, actor), line in (curves.groupby(
            ["phase", "method", "setting", "actor"], sort=False) if not curves.empty else []):
        key = (METHODS[0] if phase == "offline" else method, actor)
        color = keys.setdefault(key, colors[len(keys) % len(colors)])
        label = f"{method}, actor {actor}" + (f" ({setting})" if several[phase, method] else "")
        plot_band(ax, line, color, label, 0.15, x="x",
                  linestyle="-" if phase == "online" else ":")
        if phase == "online":
            plot_band(zoom, line[line["step"] <= horizon], color, label, 0.15)
    for offset in offsets:  # where an online phase starts
        ax.axvline(offset, color="grey", linewidth=0.8)
    for dataset, score in (behaviour or {}).items():
        for panel in (ax, zoom) if zoom is not None else (ax,):
            panel.axhline(score, color="black", linestyle="--", linewidth=0.8,
                          label=f"behaviour policy of {dataset} ({score:.1f})")
    label_panels(ax, zoom, env, horizon)
    fig.tight_layout()
    return fig


def label_panels(ax: Any, zoom: Any | None, env: str, horizon: float) -> None:
    """The curve figure's axis labels, titles, step ticks (10k, …) and legend."""
    from matplotlib.ticker import FuncFormatter

    from reports.curves import steps_formatter

    ax.set_xlabel("offline gradient steps, then environment steps")
    ax.set_ylabel("D4RL-referenced score")
    ax.set_title(f"{env}: offline to online (dotted: offline phase; mean over seeds, 95% band)",
                 fontsize=10)
    # below the panel: a legend of every method × actor inside it would hide curves; left
    # out of tight_layout (a wide one would squeeze the panels), write_report's savefig
    # widens the image to hold it
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.14)
              ).set_in_layout(False)
    ax.xaxis.set_major_formatter(FuncFormatter(steps_formatter))
    if zoom is not None:
        zoom.set_xlabel("environment steps")
        zoom.set_title(f"online, the first {steps_formatter(horizon, None)} steps",
                       fontsize=10)
        zoom.xaxis.set_major_formatter(FuncFormatter(steps_formatter))


def write_report(runs: list[Run], frames: dict[str, Any], out_dir: Path) -> list[Path]:
    import pandas as pd

    from reports import switch

    out_dir.mkdir(parents=True, exist_ok=True)
    offline = offline_frames(runs, frames)
    rows = table_rows(runs, frames, offline)
    continued = {key: group for key, group in groups_of(runs, frames, online=True).items()
                 if key[1] == METHODS[0]}
    switch_table = switch.switch_rows(continued, frames, offline)
    written = [out_dir / "finetune_results.md", out_dir / "finetune_results.csv",
               out_dir / "switch.md", out_dir / "switch.csv"]
    written[0].write_text(markdown(rows))
    pd.DataFrame(rows).to_csv(written[1], index=False)
    written[2].write_text(switch.markdown(switch_table))
    pd.DataFrame(switch_table, columns=switch.COLUMNS).astype(
        {"actor": "Int64", "online_start_step": "Int64"}).to_csv(written[3], index=False)
    for env in sorted({run.env for run in runs}):
        curves, offsets = curve_frame(runs, frames, env)
        curves.to_csv(out_dir / f"curves_{env}.csv", index=False)
        figure = curve_figure(curves, offsets, env, behaviour_scores(runs, env))
        figure.savefig(out_dir / f"curves_{env}.png", bbox_inches="tight",
                       bbox_extra_artists=[figure.axes[0].get_legend()])
        written += [out_dir / f"curves_{env}.csv", out_dir / f"curves_{env}.png"]
    return written


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        runs = find_runs(args.results_dir)
        frames = read_frames(runs)
        if not any(run.method and frames[run.name] is not None for run in runs):
            raise UsageError(f"no finished online train_sac.py run in {args.results_dir} has "
                             f"usable metrics (see the warnings above); nothing to report")
        check_groups(runs, frames)
    except UsageError as error:
        usage_error(PROGRAM, str(error))
    out_dir = args.out_dir or args.results_dir / "finetune_report"
    for path in write_report(runs, frames, out_dir):
        print(path)


if __name__ == "__main__":
    main()
