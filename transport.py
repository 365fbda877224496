"""Every squared 2-Wasserstein distance between actors, in one place.

One cost convention throughout: c(x, y) = ‖x − y‖², summed over action dimensions (no ½),
so a weight on any of these distances means the same thing whichever function computes it.

- `gaussian_w2_squared`: closed form between diagonal Gaussians (POSAC's actors), and
  `gaussian_w2_squared_log_std`, the same value with its gradient in closed form.
- `exact_w2_squared`: exact W2² between two uniform K-point measures (sample sets).
- `sinkhorn_w2_squared`: the debiased Sinkhorn divergence (geomloss), rescaled to the
  convention above; approaches W2² as the blur goes to 0 if its annealing converges.
- `unbiased_w2_squared`: exact W2² with independent copies of both sample sets,
  W2²(a, b) − ½·W2²(a, a′) − ½·W2²(b, b′), whose expectation is zero when the two
  distributions agree (the plain K-sample W2² is not: it favours a shrunken actor).
- `sample_w2_squared`: dispatcher between the sample estimators, exact against a Dirac.
- `energy_score`: E‖x − a‖^β − ½·E‖x − x′‖^β of samples x against one observed point a, a
  strictly proper scoring rule for β < 2 (POGO's spread-keeping actor-0 data terms), and
  `anchored_energy_score`, its β = 1 and β = 2 members summed (a mean pull that grows with
  the distance, as the seed's point-wise term, plus the spread-keeping score).

Imports nothing from the project; geomloss is imported on first use of sinkhorn only.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import torch

# K! permutations are enumerated: at K = 8 that is 40,320 plans, a [K², K!] one-hot
# matrix of 2.6M entries and a [states, K!] cost table (10M floats for 256 states). Beyond
# that the enumeration is the wrong algorithm. Measured for 256 states, 6 action dimensions,
# forward + backward, one CPU thread: faster than geomloss's Sinkhorn up to K = 7 (K = 4:
# ~1 ms against ~14 ms), about 4x slower at K = 8 (~0.26 s).
MAX_EXACT_SAMPLES = 8
NORM_EPS = 1e-12  # inside sqrt(‖v‖² + eps): a finite gradient where two points coincide

METHODS = ("exact", "sinkhorn", "unbiased")


def gaussian_w2_squared(mean: torch.Tensor, std: torch.Tensor,
                        ref_mean: torch.Tensor, ref_std: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between diagonal Gaussians, averaged over states.

    W2²(N(μ, diag σ²), N(μ', diag σ'²)) = ‖μ − μ'‖² + ‖σ − σ'‖²   (sum over action dims),
    then E_s[·] as the mean over the batch (all leading dimensions but the last).
    """
    per_state = (mean - ref_mean).pow(2).sum(-1) + (std - ref_std).pow(2).sum(-1)
    return per_state.mean()


class GaussianW2LogStd(torch.autograd.Function):
    """gaussian_w2_squared(μ, exp(log σ), μ', σ') against a reference (μ', σ') that gets no
    gradient, differentiated in closed form rather than by autograd (B states):

        ∂W2²/∂μ = 2·(μ − μ')/B,    ∂W2²/∂log σ = 2·(σ − σ')·σ/B.

    Why: this is the rounding POSAC's published numbers were made with (autograd associates
    w·(2·(σ − σ')/B)·σ differently, and one last bit changes a whole run), at a few kernels
    less per actor. tests/test_transport.py checks it against autograd."""

    @staticmethod
    def forward(ctx: Any, mean: torch.Tensor, log_std: torch.Tensor, ref_mean: torch.Tensor,
                ref_std: torch.Tensor) -> torch.Tensor:
        std = log_std.exp()
        ctx.save_for_backward(mean, std, ref_mean, ref_std)
        return gaussian_w2_squared(mean, std, ref_mean, ref_std)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        mean, std, ref_mean, ref_std = ctx.saved_tensors
        states = mean.numel() // mean.shape[-1]
        return (grad * (2.0 / states * (mean - ref_mean)),
                grad * (2.0 / states * (std - ref_std) * std), None, None)


def gaussian_w2_squared_log_std(mean: torch.Tensor, log_std: torch.Tensor,
                                ref_mean: torch.Tensor, ref_std: torch.Tensor) -> torch.Tensor:
    """W2²(N(μ, diag σ²), N(μ', diag σ'²)) averaged over states, σ = exp(log σ), with the
    closed-form gradient of GaussianW2LogStd (to μ and log σ; none to the reference)."""
    return GaussianW2LogStd.apply(mean, log_std, ref_mean, ref_std)


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C[..., i, j] = ‖x_i − y_j‖² summed over the last dimension; x [..., K, A], y [..., M, A].

    Formed from the differences, not from ‖x‖² + ‖y‖² − 2⟨x, y⟩: that expansion cancels
    catastrophically for nearby points, and nearby points are the regime of interest."""
    return (x.unsqueeze(-2) - y.unsqueeze(-3)).pow(2).sum(-1)


@functools.lru_cache(maxsize=None)
def permutation_plans(k: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The K! permutation plans as a one-hot [K·K, K!] matrix: column p has a 1 at entry
    i·K + σ_p(i) for each i, so C.flatten(-2) @ plans = [Σ_i C[i, σ_p(i)]]_p. Built once per
    (K, device, dtype)."""
    perms = torch.tensor(list(itertools.permutations(range(k))), dtype=torch.long)  # [K!, K]
    flat = torch.arange(k) * k + perms  # [K!, K] entries of the flattened K×K cost matrix
    plans = torch.zeros(k * k, math.factorial(k), dtype=dtype)
    plans[flat, torch.arange(len(perms)).unsqueeze(1)] = 1.0
    return plans.to(device)


def exact_w2_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact W2² between the uniform measures on x [..., K, A] and y [..., K, A], per leading
    index ([...]):

        W2²(1/K Σ_i δ_{x_i}, 1/K Σ_j δ_{y_j}) = min_σ (1/K) Σ_i ‖x_i − y_σ(i)‖²,

    the minimum over the K! permutations σ. The optimal plan between two uniform measures of
    equal size is a permutation (Birkhoff–von Neumann: the linear cost is minimised at a
    vertex of the polytope of doubly stochastic matrices), so enumerating them is exact.
    The gradient is that of the cost of the optimal permutation (envelope theorem), to x and
    to y alike; callers pass y detached. K ≤ MAX_EXACT_SAMPLES (8)."""
    k = x.shape[-2]
    if y.shape[-2] != k:
        raise ValueError(f"exact_w2_squared needs the same number of samples on both sides, "
                         f"got {k} and {y.shape[-2]}")
    if k > MAX_EXACT_SAMPLES:
        raise ValueError(f"exact_w2_squared enumerates all K! permutations and is limited to "
                         f"K ≤ {MAX_EXACT_SAMPLES} samples (got K = {k}); use the 'sinkhorn' "
                         f"distance for more samples")
    cost = squared_distances(x, y).flatten(-2)  # [..., K·K]
    plan_costs = cost @ permutation_plans(k, cost.device, cost.dtype)  # [..., K!]
    return plan_costs.min(-1).values / k


@functools.lru_cache(maxsize=None)
def _sinkhorn_loss(blur: float, scaling: float):
    from geomloss import SamplesLoss  # imported on first use: `import transport` stays light

    # The seed's settings; "tensorized" works on the batch of states [B, K, A] at once.
    return SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, backend="tensorized")


def sinkhorn_w2_squared(x: torch.Tensor, y: torch.Tensor, blur: float = 0.05,
                        scaling: float = 0.5) -> torch.Tensor:
    """Debiased Sinkhorn divergence between the uniform measures on x [..., K, A] and
    y [..., M, A], per leading index, in the ‖x − y‖² convention:

        S(x, y) = 2·[OT_ε(x, y) − ½·OT_ε(x, x) − ½·OT_ε(y, y)],   ε = blur²,

    where OT_ε is geomloss's entropic OT with cost ‖x − y‖²/2 (hence the factor 2). Gradients
    flow to x and y (geomloss differentiates through the dual potentials).

    Accuracy: geomloss runs one Sinkhorn iteration per ε of an annealing schedule from the
    batch's diameter down to blur, each ε `scaling` times the last, and does not iterate to
    convergence. With the default scaling 0.5 (geomloss's and the seed's) that leaves an
    error of up to ~10% on single states that does not shrink with the blur, and a state's
    value depends on the other states through the shared diameter. scaling 0.9 converges
    (S → W2² as blur → 0) at several times the cost."""
    batch_shape = x.shape[:-2]
    flat_x = x.reshape(-1, *x.shape[-2:])
    flat_y = y.reshape(-1, *y.shape[-2:])
    loss = _sinkhorn_loss(float(blur), float(scaling))
    return 2.0 * loss(flat_x, flat_y).reshape(batch_shape)


def dirac_w2_squared(x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """W2² between the uniform measure on x [..., K, A] and the Dirac at point [..., 1, A]:

        W2²(1/K Σ_i δ_{x_i}, δ_a) = (1/K) Σ_i ‖x_i − a‖²,

    exactly: the product coupling is the only coupling with a Dirac."""
    return (x - point).pow(2).sum(-1).mean(-1)


def unbiased_w2_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exact W2² between sample sets with independent copies, per leading index; x and y
    are [..., 2K, A], each split into two independent K-sample sets (a, a′) and (b, b′):

        D = ¼·Σ_{u ∈ {a, a′}, v ∈ {b, b′}} W2²(u, v) − ½·W2²(a, a′) − ½·W2²(b, b′).

    Why: for K samples, E[W2²(a, b)] adds to the distance between the distributions a
    term that grows with their spreads, so minimising it shrinks the moving side. Against
    a reference N(0, I) and candidate N(μ, s²I), with M = E[max_σ (1/K) Σ_i ⟨x_i, y_σ(i)⟩]
    for independent unit-Gaussian sets, E[W2²(a, b)] = ‖μ‖² + d·s² + d − 2·s·M (minimised
    at s = M/d, 0.31 for d = 6, K = 4), while E[D] = ‖μ‖² + M·(s − 1)²: zero at the
    reference, exact in the mean, and its spread term M·(s − 1)² is W2²'s d·(s − 1)²
    scaled by M/d (weaker for small K; none at K = 1, where only the means are compared).
    The cross term averages the four pairings (lower variance, same expectation). All
    six distances are exact (`exact_w2_squared`); gradients flow to x and y, and the
    reference's self term, constant for the moving side, keeps the value's expectation at
    zero when the two agree. K ≤ MAX_EXACT_SAMPLES.

    Limit: D compares what K-sample sets can see. In one dimension E[D] is the mean squared
    gap between the two sides' expected order statistics of K samples, so a candidate that
    matches those (not the whole distribution) also scores about zero: outside location-scale
    families its pull on the spread is a pull on K order statistics, finer as K grows."""
    if x.shape[-2] % 2 or y.shape[-2] != x.shape[-2]:
        raise ValueError(f"unbiased_w2_squared needs an even, equal number of samples on both "
                         f"sides (two independent sets each), got {x.shape[-2]} and "
                         f"{y.shape[-2]}")
    a, a_copy = x.chunk(2, dim=-2)
    b, b_copy = y.chunk(2, dim=-2)
    pairs = exact_w2_squared(torch.stack([a, a, a_copy, a_copy, a, b]),
                             torch.stack([b, b_copy, b, b_copy, a_copy, b_copy]))
    return pairs[:4].mean(0) - 0.5 * pairs[4] - 0.5 * pairs[5]


def energy_score(x: torch.Tensor, point: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """The energy score with exponent β ∈ (0, 2] of the K ≥ 2 samples x [..., K, A] for the
    observed point [..., 1, A], per leading index, as its unbiased estimate (Gneiting &
    Raftery, 2007):

        ES_β(P, a) = E‖X − a‖^β − ½·E‖X − X′‖^β
                   ≈ (1/K) Σ_k ‖x_k − a‖^β − ½·(2/(K(K−1))) Σ_{k<l} ‖x_k − x_l‖^β,

    with X, X′ ~ P independent and ‖·‖ the Euclidean norm. For β < 2 it is strictly proper:
    E_{a~Q}[ES_β(P, a)] is minimised only by P = Q. So fitting π0(·|s) to one data action per
    state recovers the behaviour policy's whole conditional distribution, where the squared
    distance E‖X − a‖² = ‖E X − a‖² + tr Cov X is minimised by a Dirac at the conditional
    mean. At β = 1, averaged over states, it is (up to a constant in π0) half the energy
    distance between π0(·|s) and the data's conditional distribution; its gradient is
    bounded, K·∂ES_1/∂x_k = u(x_k − a) − mean_{l≠k} u(x_k − x_l) with u(v) = v/‖v‖ (a unit
    pull towards a, at most a unit push from the other samples), so its pull does not grow
    with the distance. At β = 2 it is ‖E X − a‖² exactly (proper, not strictly: only the
    mean is scored), a pull on the mean that grows with the distance and no force on the
    spread. Units: distance^β. A small constant inside each norm (β < 2) keeps its gradient
    finite where two points coincide; the pair term runs over the K(K−1)/2 distinct pairs
    only, so no zero self-distance enters it as (0 + ε)^{β/2} (a bias that grows as β
    falls: 8% at β = 0.1)."""
    if not 0.0 < beta <= 2.0:
        raise ValueError(f"energy_score needs 0 < beta ≤ 2, got {beta}")
    k = x.shape[-2]
    if k < 2:
        raise ValueError(f"energy_score needs K ≥ 2 samples per state, got {k}")

    def power(difference: torch.Tensor) -> torch.Tensor:  # ‖v‖^β, smooth at v = 0
        squared = difference.pow(2).sum(-1)
        return squared if beta == 2.0 else (squared + NORM_EPS).pow(beta / 2)

    first, second = torch.triu_indices(k, k, offset=1, device=x.device)
    to_point = power(x - point).mean(-1)
    between = power(x[..., first, :] - x[..., second, :]).mean(-1)  # E‖X − X′‖^β
    return to_point - 0.5 * between


def anchored_energy_score(x: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    """The energy score anchored by the squared error of the mean, per leading index
    (x [..., K ≥ 2, A], point [..., 1, A]):

        AES(P, a) = ES_2(P, a) + ES_1(P, a) = ‖E X − a‖² + E‖X − a‖ − ½·E‖X − X′‖.

    Why: ES_1 alone keeps the behaviour policy's spread but pulls with a bounded force, so a
    Q term that grows with the critic's scale can drag the mean away, and the ES_1-optimal
    spread then widens to cover the data (measured: halfcheetah medium). The ES_2 part pulls
    the mean as the seed's point-wise term does (gradient 2·(E X − a), growing with the
    distance) without that term's collapsing tr Cov X. A sum of proper scores with one
    strictly proper is strictly proper, so the minimiser is still the data's conditional
    distribution. Units: the two parts add a squared distance to a distance, in the
    environment's action units (the MuJoCo tasks here act in [−1, 1]^A, where both are of
    order one); one weight scales both."""
    return energy_score(x, point, beta=2.0) + energy_score(x, point, beta=1.0)


def sample_w2_squared(x: torch.Tensor, y: torch.Tensor, method: str = "exact",
                      blur: float = 0.05) -> torch.Tensor:
    """W2² per leading index between the sample sets x [..., K, A] and y [..., M, A], in the
    ‖x − y‖² convention, by `method`: 'exact' (K = M ≤ 8), 'sinkhorn' (blur) or 'unbiased'
    (K = M even, two independent sets of K/2 ≤ 8 each: `unbiased_w2_squared`).

    When either side is a single point (M = 1 or K = 1: a data action, a deterministic
    actor) the distance is computed exactly whatever the method, since the coupling with a
    Dirac is unique: (1/K) Σ_i ‖x_i − y‖², which is ‖x − y‖² for K = M = 1."""
    if method not in METHODS:
        raise ValueError(f"unknown W2 method {method!r}; choose one of {METHODS}")
    if y.shape[-2] == 1:
        return dirac_w2_squared(x, y)
    if x.shape[-2] == 1:
        return dirac_w2_squared(y, x)
    if method == "exact":
        return exact_w2_squared(x, y)
    if method == "unbiased":
        return unbiased_w2_squared(x, y)
    return sinkhorn_w2_squared(x, y, blur)
