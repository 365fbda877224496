"""reports/offline.py's figures: learning curves per dataset and the last-fifth score against
the chain weights; and agg_figure, on which every report draws. Each function takes the
report's numbers (its curve rows or table rows) and draws them; nothing here computes a
statistic. Figures are drawn by the Agg canvas without pyplot, so no global figure state is
switched or left open."""

from __future__ import annotations

from typing import Any

import numpy as np

from reports.curves import plot_band, steps_formatter

LINE_STYLES = ("-", "-.", ":")  # actor 0, 1, 2, … (cycled); "--" is the behaviour line
MARKERS = "os^Dv"  # actor 0, 1, 2, … (cycled) in the weight figure


def agg_figure(width: float, height: float, **subplots: Any) -> tuple[Any, Any]:
    """A matplotlib Figure drawn by the Agg canvas (no pyplot: no global figure state to
    switch or close) and its Axes (Figure.subplots(**subplots): one, or an array)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def finish_panel(fig: Any, ax: Any, behaviour: float | None, title: str) -> Any:
    """The behaviour policy's score as a dashed black line, the grid, the legend beside the
    panel and the title; returns the figure."""
    if behaviour is not None:
        ax.axhline(behaviour, color="black", linestyle="--", linewidth=1.2,
                   label=f"behaviour policy ({behaviour:.1f})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def curve_figure(dataset: str, curves: Any, behaviour: float | None, score: str) -> Any:
    """One panel: a colour per (method, budget), a line style per actor, the CI bands, and
    the behaviour policy's score as a dashed black line; `score` names the y-axis's scores
    (e.g. "D4RL-referenced score"). Returns the matplotlib Figure."""
    from matplotlib import colormaps
    from matplotlib.ticker import FuncFormatter

    colors = colormaps["tab10"].colors
    settings = list(dict.fromkeys(zip(curves["method"], curves["num_steps"])))
    budgets = len({budget for _, budget in settings})
    fig, ax = agg_figure(10, 5)
    for index, (method, budget) in enumerate(settings):
        color = colors[index % len(colors)]
        setting = curves[(curves["method"] == method) & (curves["num_steps"] == budget)]
        for actor, line in setting.groupby("actor"):
            label = f"{method} actor {actor} (n={int(line['seeds'].iloc[0])})"
            plot_band(ax, line, color, label if budgets == 1 else f"{label}, budget {budget}",
                      band_alpha=0.15, linestyle=LINE_STYLES[actor % len(LINE_STYLES)])
    ax.set_xlabel("gradient steps")
    ax.xaxis.set_major_formatter(FuncFormatter(steps_formatter))
    ax.set_ylabel(score)
    return finish_panel(fig, ax, behaviour, f"{dataset}: mean over seeds, shaded 95% bootstrap CI")


def weight_figure(dataset: str, rows: list[dict[str, Any]], behaviour: float | None,
                  baseline: str, score: str) -> Any:
    """How the chain responds to its weight: each POGO actor's last-fifth score (mean over
    seeds, the 95% bootstrap CI as error bars) at each chain-weight setting of the dataset,
    the baseline's last-fifth mean (rows whose method starts with `baseline`) as a solid
    grey line and the behaviour policy's score as a dashed black one; each tick names its
    setting's seeds (n) when the settings have different numbers of them. None with fewer
    than two settings that have a last fifth."""
    scored = [row for row in rows if row["dataset"] == dataset and row["window_seeds"]]
    chain = [row for row in scored if not row["method"].startswith(baseline)]
    settings = list(dict.fromkeys((row["method"], row["num_steps"]) for row in chain))
    if len(settings) < 2:
        return None
    fig, ax = agg_figure(7, 4.5)
    actors = sorted({row["actor"] for row in chain})
    for actor in actors:
        points = [row for row in chain if row["actor"] == actor]
        means, lows, highs = (np.array([row[f"window_{kind}"] for row in points])
                              for kind in ("mean", "ci_low", "ci_high"))
        errors = np.nan_to_num([means - lows, highs - means])  # no interval with one seed
        offset = 0.1 * (actor - (len(actors) - 1) / 2)  # side by side, not on top of each other
        ax.errorbar([settings.index((row["method"], row["num_steps"])) + offset for row in points],
                    means, yerr=errors, marker=MARKERS[actor % len(MARKERS)], linewidth=1,
                    capsize=3, label=f"actor {actor}")
    for row in scored:
        if row["method"].startswith(baseline):
            ax.axhline(row["window_mean"], color="grey", linewidth=1.2,
                       label=f"{baseline} ({row['window_mean']:.1f})")
    several_budgets = len({budget for _, budget in settings}) > 1
    seeds = {(row["method"], row["num_steps"]): row["window_seeds"] for row in chain}
    uneven_seeds = len(set(seeds.values())) > 1  # then say each setting's n
    ax.set_xticks(range(len(settings)),
                  [method.removeprefix("POGO ") + (f"\n{budget} steps" if several_budgets else "")
                   + (f"\nn = {seeds[method, budget]}" if uneven_seeds else "")
                   for method, budget in settings])
    ax.set_xlim(-0.5, len(settings) - 0.5)
    ax.set_xlabel("chain weights (w2_weights)")
    ax.set_ylabel(f"{score}, last fifth")
    return finish_panel(fig, ax, behaviour, f"{dataset}: mean over seeds, 95% bootstrap CI")
