"""Offline to online: train_sac.py's pretrained-then-online runs against online from scratch.

    python -m reports.finetune --results-dir results [--out-dir results/finetune_report]

Finds in --results-dir every train_sac.py run: offline runs (config.json names a `dataset`),
online runs started from one (summary.json's `init_from`) and online runs from scratch
(with or without `offline_data`), reads their metrics CSVs (one row per evaluation) and
writes into --out-dir:

    finetune_results.md, finetune_results.csv   one row per environment × method × actor
    curves_{env}.png, curves_{env}.csv           both phases on one x-axis: the offline run's
                                                 gradient steps, then (shifted by them) the
                                                 environment steps of the online runs

Methods: "offline → online" (an online run with init_from; its offline run by the name of
the final checkpoint it started from), "scratch" and "scratch + data" (online from scratch,
without and with --offline-data).

Definitions (per seed, then the mean over seeds with a 95% percentile-bootstrap interval,
reports.curves.bootstrap_ci; the score is D4RL's normalised score of the deterministic
evaluation, 100·(return − random)/(expert − random), with the environment's D4RL reference
returns: on -v5 environments "D4RL-referenced (v2 reference returns on v5 environments)"):
- offline: the offline run's last evaluation (CORL's "offline → online" form starts here);
- switch: the online run's evaluation at environment step 0, before any online step (the
  same actors, so it equals `offline`: tests/test_train_sac_offline.py);
- dip: the largest drop below the switch score after it, min(0, min_t score_t − switch);
- end: the last evaluation;
- AUC: the area under the online learning curve (evaluations linearly interpolated over
  environment steps, from the first to the last evaluation) over its length, i.e. the
  curve's mean score.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils import OneLineErrorParser, UsageError, usage_error

PROGRAM = "reports.finetune"
METHODS = ("offline → online", "scratch", "scratch + data")
MEASURES = ("offline", "switch", "dip", "end", "auc")


@dataclass(frozen=True)
class Run:
    name: str
    env: str
    seed: int
    method: str | None  # None: an offline run
    offline_name: str | None  # the offline run an online run started from
    metrics_csv: Path


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog=f"python -m {PROGRAM}", description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="the runs' results folders")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the tables and figures go (default: "
                             "{results-dir}/finetune_report)")
    return parser


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def run_of(folder: Path) -> Run | None:
    """The train_sac.py run in `folder`, or None for anything else."""
    settings = read_json(folder / "config.json")  # the run's flags
    if "automatic_entropy_tuning" not in settings:  # not train_sac.py's (train_pogo.py's)
        return None
    metrics = folder / "training" / f"{folder.name}_metrics.csv"
    if settings.get("dataset"):
        return Run(folder.name, settings["env_name"], settings["seed"], None, None, metrics)
    init = read_json(folder / "summary.json").get("init_from")
    if settings.get("init_from") and init is None:
        return None  # unfinished: its link is written when it finishes
    offline_name = (Path(init["final_checkpoint"]).name.removesuffix("_final.pt")
                    if init else None)
    method = (METHODS[0] if offline_name else
              METHODS[2] if settings.get("offline_data") else METHODS[1])
    return Run(folder.name, settings["env_name"], settings["seed"], method, offline_name,
               metrics)


def find_runs(results_dir: Path) -> list[Run]:
    if not results_dir.is_dir():
        raise UsageError(f"{results_dir} is not a directory; give --results-dir the folder "
                         f"that holds the runs' results")
    runs = [run for folder in sorted(results_dir.iterdir()) if folder.is_dir()
            for run in [run_of(folder)] if run is not None]
    if not any(run.method for run in runs):
        raise UsageError(f"{results_dir} holds no online train_sac.py run with metrics; run "
                         f"the offline-to-online sweeps first (README, Offline to online)")
    return runs


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


def seed_measures(online: Any, offline: Any | None, env: str, actor: int) -> dict[str, float]:
    """The measures of the module docstring for one seed's online (and offline) run."""
    from reports.curves import window_average

    steps, values = scores(online, env, actor)
    measures = {"end": values[-1], "offline": float("nan"), "switch": float("nan"),
                "dip": float("nan"),
                "auc": (window_average(steps, values, steps[0], steps[-1])
                        if len(steps) > 1 else values[0])}
    if offline is not None and steps[0] == 0:
        measures["offline"] = scores(offline, env, actor)[1][-1]
        measures["switch"] = values[0]
        measures["dip"] = min(0.0, float(values[1:].min() - values[0])) if len(values) > 1 else 0.0
    return measures


def table_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per environment × method × actor: each measure's mean and 95% interval."""
    import numpy as np

    from reports.curves import mean_and_ci, read_metrics

    frames = {run.name: read_metrics(run.metrics_csv) for run in runs}
    offline = {run.name: run for run in runs if run.method is None}
    rows = []
    for env in sorted({run.env for run in runs}):
        for method in METHODS:
            group = [run for run in runs if run.env == env and run.method == method
                     and frames[run.name] is not None]
            if not group:
                continue
            actors = sum(column.endswith("_deterministic") for column in frames[group[0].name])
            for actor in range(actors):
                per_seed = [seed_measures(frames[run.name], frames.get(run.offline_name)
                                          if run.offline_name in offline else None, env, actor)
                            for run in group]
                row = {"env": env, "method": method, "actor": actor, "seeds": len(group),
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
             "| env | method | actor | seeds | online steps | offline → online (end) | switch "
             "| dip | AUC |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        offline, end = ci_cell(row, "offline"), ci_cell(row, "end")
        arrow = end if offline == "–" else f"{offline} → {end}"  # "–": not from an offline run
        lines.append(f"| {row['env']} | {row['method']} | {row['actor']} | {row['seeds']} | "
                     f"{row['steps']} | {arrow} | {ci_cell(row, 'switch')} "
                     f"| {ci_cell(row, 'dip')} | {ci_cell(row, 'auc')} |")
    return "\n".join(lines) + "\n"


def curve_frame(runs: list[Run], env: str) -> Any:
    """The curves of one environment on one x-axis: offline runs at their gradient steps,
    online runs at offset + environment steps (offset: the offline budget reached)."""
    import pandas as pd

    from reports.curves import read_metrics

    frames = {run.name: read_metrics(run.metrics_csv) for run in runs if run.env == env}
    offline_end = max((int(frames[run.name]["step"].iloc[-1]) for run in runs
                       if run.env == env and run.method is None and frames[run.name] is not None),
                      default=0)
    parts = []
    for run in runs:
        frame = frames.get(run.name)
        if run.env != env or frame is None:
            continue
        actors = sum(column.endswith("_deterministic") for column in frame)
        for actor in range(actors):
            steps, values = scores(frame, env, actor)
            parts.append(pd.DataFrame({
                "x": steps + (0 if run.method is None else offline_end),
                "phase": "offline" if run.method is None else "online",
                "method": run.method or METHODS[0], "actor": actor, "seed": run.seed,
                "score": values}))
    return pd.concat(parts, ignore_index=True), offline_end


def plot(curves: Any, offline_end: int, env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, ((method, actor), group) in enumerate(curves.groupby(["method", "actor"], sort=False)):
        for phase, part in group.groupby("phase", sort=False):  # one colour for both phases
            mean = part.groupby("x")["score"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=colors[k % len(colors)],
                    label=f"{method}, actor {actor}" if phase == "online" else None,
                    linestyle="-" if phase == "online" else ":")
    ax.axvline(offline_end, color="grey", linewidth=0.8)
    ax.set_xlabel("offline gradient steps, then environment steps")
    ax.set_ylabel("D4RL-referenced score")
    ax.set_title(f"{env}: offline to online (dotted: offline phase; mean over seeds)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(runs: list[Run], out_dir: Path) -> list[Path]:
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(runs)
    written = [out_dir / "finetune_results.md", out_dir / "finetune_results.csv"]
    written[0].write_text(markdown(rows))
    pd.DataFrame(rows).to_csv(written[1], index=False)
    for env in sorted({run.env for run in runs}):
        curves, offline_end = curve_frame(runs, env)
        curves.to_csv(out_dir / f"curves_{env}.csv", index=False)
        plot(curves, offline_end, env, out_dir / f"curves_{env}.png")
        written += [out_dir / f"curves_{env}.csv", out_dir / f"curves_{env}.png"]
    return written


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        runs = find_runs(args.results_dir)
    except UsageError as error:
        usage_error(PROGRAM, str(error))
    for path in write_report(runs, args.out_dir or args.results_dir / "finetune_report"):
        print(path)


if __name__ == "__main__":
    main()
