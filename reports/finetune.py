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
                                                 with its 95% bootstrap band

Methods: "offline → online" (an online run with init_from; its offline run by the name of
the run it started from), "scratch" and "scratch + data" (online from scratch, without and
with --offline-data). Runs are grouped by environment, method and setting (chain weights,
online steps, the dataset share with --offline-data, and the offline run's own setting), and
a group's runs must have distinct seeds and the same flags apart from those that do not
change a run's numbers (NOT_SETTINGS), and each continued run must start from its own
offline run, with its seed: unlike runs are never pooled as seeds (one error line names the
two runs and what they differ in).

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
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.run_setup import SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME, differing_settings
from utils import OneLineErrorParser, UsageError, usage_error

PROGRAM = "reports.finetune"
METHODS = ("offline → online", "scratch", "scratch + data")
MEASURES = ("offline", "switch", "dip", "end", "auc")
# config.json keys that may differ between a group's seeds: names, folders, the device,
# tracking and bookkeeping, none of which changes a run's numbers
NOT_SETTINGS = {"seed", "run_name", "results_dir", "log_dir", "checkpoint_dir", "init_from",
                "checkpoint_freq", "log_freq", "save_replay", "cuda", "track", "wandb_project",
                "wandb_entity", "wandb_group", "wandb_mode",
                *SETTINGS_ALLOWED_TO_CHANGE_ON_RESUME}


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


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog=f"python -m {PROGRAM}", description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", type=Path, default=Path("results"),
                        help="the runs' results folders")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the tables and figures go (default: "
                             "{results-dir}/finetune_report)")
    return parser


def setting_of(settings: dict[str, Any]) -> str:
    """A run's setting besides its method and seed, as the table and curves name it."""
    from reports.curves import config_weights, weights_label

    text = (f"w {weights_label(config_weights(settings['w2_weights']))}, "
            f"{int(settings['num_steps'])} steps")
    if settings.get("dataset"):
        return f"{text}, data weight {float(settings['data_weight']):g}"
    return text + (f", data share {float(settings['offline_ratio']):g}"
                   if settings.get("offline_data") else "")


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
                   len(config_weights(settings["w2_weights"])), settings)
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"{folder / 'config.json'} needs a valid env_name, seed, w2_weights "
                         f"and num_steps (and data_weight or offline_ratio with a dataset) "
                         f"({type(error).__name__}: {error}); restore it or move its run "
                         f"folder out of the results folder") from None


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
    runs from unlike offline runs (another data weight or budget) are never pooled; one whose
    offline run is not among `runs` stays apart under that run's name."""
    offline = {run.name: run for run in runs if run.method is None}
    return [run if run.offline_name is None else dataclasses.replace(
        run, setting=f"{run.setting}, after offline {offline[run.offline_name].setting}"
        if run.offline_name in offline
        else f"{run.setting}, after {run.offline_name} (not in the results folder)")
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
                if seeds.get(run.offline_name, run.seed) != run.seed:
                    raise UsageError(f"{run.name} (seed {run.seed}) starts from "
                                     f"{run.offline_name} (seed {seeds[run.offline_name]}); "
                                     f"continue each offline run with its own seed")
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
    """The measures of the module docstring for one seed's online run (`continued`: started
    from an offline run, whose metrics `offline` are, when that run is in the results
    folder: switch and dip need only the online run's)."""
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


def table_rows(runs: list[Run], frames: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per environment × method × setting × actor: each measure's mean and 95%
    interval over the group's seeds (frames: each run's metrics by name)."""
    import numpy as np

    from reports.statistics import mean_and_ci

    offline = {run.name for run in runs if run.method is None}
    rows = []
    for (env, method, setting), group in groups_of(runs, frames, online=True).items():
        for actor in range(min(run.actors for run in group)):
            per_seed = [seed_measures(frames[run.name], frames[run.offline_name]
                                      if run.offline_name in offline else None, env, actor,
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


def plot(curves: Any, offsets: list[int], env: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reports.curves import plot_band

    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # a label names the setting only where its phase has more than one
    several = (curves.groupby("phase")["setting"].nunique() > 1).to_dict() \
        if not curves.empty else {}
    keys: dict[tuple[str, int], Any] = {}  # one colour per method × actor; offline as →
    for (phase, method, setting, actor), line in (curves.groupby(
            ["phase", "method", "setting", "actor"], sort=False) if not curves.empty else []):
        key = (METHODS[0] if phase == "offline" else method, actor)
        color = keys.setdefault(key, colors[len(keys) % len(colors)])
        label = f"{method}, actor {actor}" + (f" ({setting})" if several[phase] else "")
        plot_band(ax, line, color, label, 0.15, x="x",
                  linestyle="-" if phase == "online" else ":")
    for offset in offsets:  # where an online phase starts
        ax.axvline(offset, color="grey", linewidth=0.8)
    ax.set_xlabel("offline gradient steps, then environment steps")
    ax.set_ylabel("D4RL-referenced score")
    ax.set_title(f"{env}: offline to online (dotted: offline phase; mean over seeds, 95% band)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


def warn_unmatched_switches(runs: list[Run], frames: dict[str, Any]) -> None:
    """One warning line per continued run whose step-0 evaluation is not its offline run's
    last one (they are the same actors on the same episodes, so every return must agree):
    it started from another version of that run (made again since, under the same name), or
    with other evaluation settings; its offline column does not describe its switch."""
    import numpy as np

    for run in runs:
        online, offline = frames[run.name], frames.get(run.offline_name)
        if run.method != METHODS[0] or online is None or offline is None \
                or online["step"].iloc[0] != 0:
            continue
        columns = [f"actor_{i}_deterministic" for i in range(run.actors)]
        if not np.allclose(online[columns].iloc[0].to_numpy(float),
                           offline[columns].iloc[-1].to_numpy(float), rtol=1e-9, atol=0):
            print(f"{PROGRAM}: warning: {run.name}'s evaluation at step 0 differs from "
                  f"{run.offline_name}'s last one: it started from another version of that "
                  f"run or with other evaluation settings (rerun it from this one)",
                  file=sys.stderr)


def write_report(runs: list[Run], frames: dict[str, Any], out_dir: Path) -> list[Path]:
    import pandas as pd

    from reports import switch

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = table_rows(runs, frames)
    continued = {key: group for key, group in groups_of(runs, frames, online=True).items()
                 if key[1] == METHODS[0]}
    switch_table = switch.switch_rows(continued, frames)
    written = [out_dir / "finetune_results.md", out_dir / "finetune_results.csv",
               out_dir / "switch.md", out_dir / "switch.csv"]
    written[0].write_text(markdown(rows))
    pd.DataFrame(rows).to_csv(written[1], index=False)
    written[2].write_text(switch.markdown(switch_table))
    pd.DataFrame(switch_table).to_csv(written[3], index=False)
    for env in sorted({run.env for run in runs}):
        curves, offsets = curve_frame(runs, frames, env)
        curves.to_csv(out_dir / f"curves_{env}.csv", index=False)
        plot(curves, offsets, env, out_dir / f"curves_{env}.png")
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
    warn_unmatched_switches(runs, frames)
    out_dir = args.out_dir or args.results_dir / "finetune_report"
    for path in write_report(runs, frames, out_dir):
        print(path)


if __name__ == "__main__":
    main()
