"""Which spread does each sample distance favour? The minimiser table of docs/offline.md.

A candidate s·X against a reference Y, X and Y independent K-sample sets of N(0, I_d): for
each estimator (transport.METHODS) the mean distance over --draws pairs of sets at spreads s
on a grid, the minimiser of the parabola fitted to it, and, for the exact K-sample W2², the
closed form's minimiser M/d (E[W2²] = d·s² + d − 2·s·M, M the expected inner product of the
best matching, from SciPy's assignment solver, independent of transport.py). An unbiased
estimator is minimised at 1.

    OMP_NUM_THREADS=1 python benchmarks/spread_bias.py              # d 1, 3, 6, 17; K 2, 4
    OMP_NUM_THREADS=1 python benchmarks/spread_bias.py --samples 8 --draws 100   # K = 8

(K = 8 enumerates 8! plans per set, six times over for the unbiased distance: about 100×
the time of K = 4 per draw, hence fewer draws.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transport import METHODS, sample_w2_squared  # noqa: E402


def expected_matching(x: np.ndarray, y: np.ndarray) -> float:
    """M = E[max_σ (1/K) Σ_i ⟨x_i, y_σ(i)⟩] over the draws x, y [draws, K, d]."""
    total = 0.0
    for a, b in zip(x, y):
        inner = a @ b.T
        rows, cols = linear_sum_assignment(inner, maximize=True)
        total += inner[rows, cols].mean()
    return total / len(x)


def fitted_minimiser(spreads: np.ndarray, means: np.ndarray) -> float:
    c2, c1, _ = np.polyfit(spreads, means, 2)
    return -c1 / (2 * c2)


def minimisers(d: int, k: int, draws: int, seed: int) -> dict[str, float]:
    """{"closed form": M/d, each estimator: its fitted minimiser} at dimension d, K samples.
    The unbiased estimator takes two K-sample sets per side (2K samples)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(draws, 2 * k, d, generator=gen, dtype=torch.float64)
    y = torch.randn(draws, 2 * k, d, generator=gen, dtype=torch.float64)
    result = {"closed form": expected_matching(x[:, :k].numpy(), y[:, :k].numpy()) / d}
    for method in METHODS:
        sets = (x, y) if method == "unbiased" else (x[:, :k], y[:, :k])
        centre = 1.0 if method == "unbiased" else result["closed form"]
        spreads = np.linspace(0.25 * centre, 1.75 * centre, 13)  # a parabola around it
        dtype = torch.float32 if method == "sinkhorn" else torch.float64  # geomloss: float32
        means = [float(sample_w2_squared((s * sets[0]).to(dtype), sets[1].to(dtype),
                                         method).mean()) for s in spreads]
        result[method] = fitted_minimiser(spreads, np.array(means))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 3, 6, 17])
    parser.add_argument("--samples", type=int, nargs="+", default=[2, 4],
                        help="K per set (at most 8: the exact distance enumerates K!)")
    parser.add_argument("--draws", type=int, default=2000, help="pairs of sets per spread")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    print("| d | K | exact, M/d (closed form) | exact | seed's Sinkhorn | unbiased |")
    print("|---|---|---|---|---|---|")
    for d in args.dims:
        for k in args.samples:
            m = minimisers(d, k, args.draws, args.seed)
            print(f"| {d} | {k} | {m['closed form']:.3f} | {m['exact']:.3f} | "
                  f"{m['sinkhorn']:.3f} | {m['unbiased']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
