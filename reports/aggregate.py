"""Aggregates over tasks, as rliable computes them: the interquartile mean of a
[runs, tasks] score matrix with stratified bootstrap intervals (Agarwal et al., 2021), and
which tasks a method can be aggregated over. Numbers in, numbers out: reports/offline.py
builds the matrices from its runs."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np

from reports.statistics import BOOTSTRAP_SEED, CONFIDENCE


def covered_datasets(counts: dict[str, int]) -> list[str]:
    """The datasets a method is aggregated over: those on which the same number of its seeds
    reached the budget (a [seeds, datasets] matrix needs it), the number the most datasets
    share, the larger on a tie; none when no seed reached it anywhere."""
    shared = Counter(count for count in counts.values() if count)
    if not shared:
        return []
    seeds = max(shared, key=lambda count: (shared[count], count))
    return [dataset for dataset, count in counts.items() if count == seeds]


def iqm_with_ci(scores: np.ndarray, reps: int) -> tuple[float, float, float]:
    """rliable's interquartile mean of the [seeds, datasets] scores and the 95% percentile
    interval of its stratified bootstrap (seeds resampled within each dataset, `reps` times,
    seeded with BOOTSTRAP_SEED for every call, so that a row does not depend on the others);
    NaN bounds with one seed, whose every resample is the scores themselves."""
    from rliable import library as rly, metrics

    def iqm(matrix: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(matrix)])

    if len(scores) < 2:
        return float(iqm(scores)[0]), math.nan, math.nan
    # rliable 1.2's StratifiedBootstrap draws its resamples from numpy's global generator
    # (np.random.choice), not from random_state, so that one is seeded too, and restored after
    global_state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        with warnings.catch_warnings():
            # rliable hands random_state to arch's bootstrap, which deprecates it in favour
            # of an argument rliable does not pass
            warnings.filterwarnings("ignore", message="random_state is deprecated",
                                    category=FutureWarning)
            points, intervals = rly.get_interval_estimates(
                {"scores": scores}, iqm, reps=reps, confidence_interval_size=CONFIDENCE,
                random_state=np.random.RandomState(BOOTSTRAP_SEED))
    finally:
        np.random.set_state(global_state)
    return (float(points["scores"][0]), float(intervals["scores"][0, 0]),
            float(intervals["scores"][1, 0]))
