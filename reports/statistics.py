"""The reports' statistics over seeds, numbers in and numbers out (reports/curves.py,
offline.py and finetune.py compute their means over seeds, intervals and curves here; the
IQM aggregate is rliable's, in reports/aggregate.py):

- bootstrap_ci: the percentile-bootstrap interval of a mean over seeds (BOOTSTRAP_RESAMPLES
  resamples of the seeds with replacement, the CONFIDENCE interval's percentiles of the
  resampled means, from numpy.random.default_rng(BOOTSTRAP_SEED) for every call, so that a
  number does not depend on which others are computed); none with one seed;
- window_average: a learning curve's time average over a window, exact for the piecewise
  linear curve through the evaluations;
- seed_bands: learning curves of several seeds on one grid (the union of their evaluation
  steps within the range every seed covers, each seed linearly interpolated onto it, nothing
  extrapolated), with the mean and the bootstrap band at each step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def bootstrap_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap interval of the mean over seeds.

    values: [seeds, points]. Returns (low, high), each [points], NaN with fewer than two
    seeds. The same resamples of the seeds serve every point, from a fixed generator."""
    values = np.asarray(values, dtype=np.float64)
    seeds, points = values.shape
    if seeds < 2:
        nan = np.full(points, np.nan)
        return nan, nan.copy()
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, seeds, size=(BOOTSTRAP_RESAMPLES, seeds))
    weights = np.zeros((BOOTSTRAP_RESAMPLES, seeds))
    np.add.at(weights, (np.arange(BOOTSTRAP_RESAMPLES)[:, None], picks), 1.0 / seeds)
    means = weights @ values  # [resamples, points]
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


def window_average(steps: np.ndarray, returns: np.ndarray, start: float, end: float) -> float:
    """(1/(end - start)) · ∫ curve(s) ds over [start, end], where curve linearly interpolates
    the evaluations (steps, returns). The curve is piecewise linear, so the trapezoid rule on
    its breakpoints inside the window (plus the two ends) is exact."""
    inside = steps[(steps > start) & (steps < end)]
    points = np.concatenate([[start], inside, [end]]).astype(np.float64)
    values = np.interp(points, steps, returns)
    areas = (values[1:] + values[:-1]) / 2 * np.diff(points)
    return float(areas.sum() / (end - start))


def mean_and_ci(name: str, values: np.ndarray) -> dict[str, float]:
    """{name}_mean, {name}_ci_low, {name}_ci_high of per-seed values (NaN where undefined)."""
    low, high = bootstrap_ci(values[:, None])
    return {f"{name}_mean": values.mean() if len(values) else math.nan,
            f"{name}_ci_low": low[0], f"{name}_ci_high": high[0]}


def common_grid(frames: list[Any]) -> np.ndarray:
    """Union of the seeds' evaluation steps within the range every seed covers."""
    low = max(frame["step"].iloc[0] for frame in frames)
    high = min(frame["step"].iloc[-1] for frame in frames)
    steps = np.unique(np.concatenate([frame["step"].to_numpy() for frame in frames]))
    return steps[(steps >= low) & (steps <= high)].astype(np.float64)


def interpolate_seeds(frames: list[Any], grid: np.ndarray, column: str) -> np.ndarray:
    """[seeds, points]: each seed's `column` linearly interpolated onto the grid."""
    return np.stack([np.interp(grid, frame["step"].to_numpy(np.float64),
                               frame[column].to_numpy(np.float64)) for frame in frames])


def seed_bands(frames: list[Any], name: str,
               columns: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """band_rows of every (column, labels) on the seeds' common grid; none (said so, with
    the group's `name`) while the seeds' evaluations do not overlap yet."""
    grid = common_grid(frames)
    if not len(grid):
        print(f"{name}: the seeds' evaluations do not overlap yet; no curve")
        return []
    return [row for column, labels in columns for row in band_rows(frames, grid, column, labels)]


def band_rows(frames: list[Any], grid: np.ndarray, column: str,
              labels: dict[str, Any]) -> list[dict[str, Any]]:
    """One curve row per grid step: `labels`, then the step, the mean over the seeds of
    `column` (each seed interpolated onto the grid) and its 95% bootstrap band."""
    values = interpolate_seeds(frames, grid, column)
    low, high = bootstrap_ci(values)
    return [{**labels, "step": int(step), "mean": values[:, k].mean(), "ci_low": low[k],
             "ci_high": high[k], "seeds": len(frames)} for k, step in enumerate(grid)]
