"""The chain across the switch (reports.finetune's switch.md / .csv): what an offline run's
chain does once it continues online, per "offline → online" group, environment and actor,
at three points, each the mean over seeds with a 95% percentile-bootstrap interval
(reports.statistics):

- offline end: the offline run's last evaluation row that holds the quantity;
- online start: the online run's first evaluation row that holds it, i.e. the first after
  an update (the step-0 row is before any update); the table names its step, the latest
  over the seeds;
- online end: the online run's last evaluation row that holds it.

The quantities are train_sac.py's metrics of the latest update before each evaluation
(one minibatch of states s, pre-tanh Gaussians, sac.py):
- w2_i, i ≥ 1: E_s[‖μ_i(s) − μ_{i−1}(s)‖² + ‖σ_i(s) − σ_{i−1}(s)‖²], actor i's closed-form
  W2² to its predecessor (actor 0's column holds its data term offline and 0 online, so it
  is left out);
- entropy_i: −E_s E_{a∼π_i}[log π_i(a|s)], a one-sample estimate per state;
- alpha: the entropy temperature (fixed offline, learned online).
A cell is "–" where any seed lacks the value (a column from code older than it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

POINTS = ("offline_end", "online_start", "online_end")
SIGNIFICANT = 3  # digits in switch.md: the quantities are small (α ≈ 0.2, W2² ≈ 0.3)
COLUMNS = ["env", "setting", "actor", "quantity", "seeds", "online_start_step",
           *(f"{point}_{part}" for point in POINTS for part in ("mean", "ci_low", "ci_high"))]


def logged(frame: Any, column: str) -> Any:
    """The rows of `frame` that hold `column`'s value (an update's metrics), as a Series."""
    return frame[column].dropna() if column in frame else frame["step"].iloc[:0]


def points_of(offline: Any | None, online: Any, column: str) -> tuple[list[float], float]:
    """`column` at the offline end, the online start and the online end, and the online
    start's step (NaN where the run has no such row, the offline end's where the offline
    run's metrics are None; the step-0 row never has one)."""
    before = logged(online.iloc[:0] if offline is None else offline, column)
    after = logged(online, column)
    nan = float("nan")
    return ([float(before.iloc[-1]) if len(before) else nan,
             float(after.iloc[0]) if len(after) else nan,
             float(after.iloc[-1]) if len(after) else nan],
            float(online.loc[after.index[0], "step"]) if len(after) else nan)


def quantity_row(env: str, setting: str, actor: int | None, quantity: str,
                 pairs: list[tuple[Any, Any]], column: str) -> dict[str, Any]:
    """One table row: `column` at the three points over the seeds' (offline, online)
    metrics `pairs`."""
    from reports.statistics import mean_and_ci

    values, starts = zip(*(points_of(offline, online, column) for offline, online in pairs))
    row = {"env": env, "setting": setting, "actor": actor, "quantity": quantity,
           "seeds": len(pairs), "online_start_step": np.nanmax(starts)
           if not np.isnan(starts).all() else float("nan")}
    matrix = np.array(values)  # [seeds, points]
    for k, point in enumerate(POINTS):
        row.update(mean_and_ci(point, matrix[:, k]))
    return row


def switch_rows(groups: dict[tuple[str, str, str], list[Any]], frames: dict[str, Any],
                offline: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows for reports.finetune's "offline → online" groups ((env, method,
    setting) → runs with `name` and `actors`; frames: each run's metrics by name; offline:
    each run's offline run's, or None, finetune_runs.offline_frames). A run without its
    offline run's metrics counts at the online points; its group's offline end is then
    unknown (NaN), as the offline score of reports.finetune's table is."""
    rows = []
    for (env, _, setting), group in groups.items():
        pairs = [(offline.get(run.name), frames[run.name]) for run in group]
        rows.append(quantity_row(env, setting, None, "α", pairs, "alpha"))
        for actor in range(min(run.actors for run in group)):
            if actor > 0:
                rows.append(quantity_row(env, setting, actor, "W2² to actor i−1", pairs,
                                         f"w2_{actor}"))
            rows.append(quantity_row(env, setting, actor, "entropy", pairs,
                                     f"entropy_{actor}"))
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """switch.md: the rows as a table under a line that says what the points are."""
    from reports.curves import ci_cell

    lines = ["The chain across the switch: each quantity at the offline run's end, at the "
             "online run's first evaluation after an update (its step) and at its end; mean "
             "over seeds [95% bootstrap interval], from the latest update's minibatch.", "",
             "| env | setting | actor | quantity | seeds | offline end | online start (step) "
             "| online end |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        actor = "–" if row["actor"] is None else row["actor"]
        start = ci_cell(row, "online_start", SIGNIFICANT)
        if not np.isnan(row["online_start_step"]):
            start += f" ({int(row['online_start_step'])})"
        lines.append(f"| {row['env']} | {row['setting']} | {actor} | {row['quantity']} "
                     f"| {row['seeds']} | {ci_cell(row, 'offline_end', SIGNIFICANT)} | {start} "
                     f"| {ci_cell(row, 'online_end', SIGNIFICANT)} |")
    return "\n".join(lines) + "\n"
