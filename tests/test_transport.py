"""transport.py's W2² functions against independent computations: brute force over
itertools.permutations, 1-D sorted matching, translation invariance, Monte-Carlo sorted
samples, geomloss called directly, finite differences, SciPy's assignment solver for the
estimators' bias, Gaussian closed forms for the energy score, and trained actors."""

import itertools
import math

import copy

import numpy as np
import pytest
import torch
from geomloss import SamplesLoss
from scipy.optimize import linear_sum_assignment

from model import NoiseInputActor
from transport import (MAX_EXACT_SAMPLES, anchored_energy_score, energy_score, exact_w2_squared,
                       gaussian_w2_squared, gaussian_w2_squared_log_std, sample_w2_squared,
                       sinkhorn_w2_squared, unbiased_w2_squared)


def brute_force_w2_squared(x, y):
    """min over permutations σ of (1/K) Σ_i ‖x_i − y_σ(i)‖², one state at a time, in plain
    Python loops (differentiable: the min picks the optimal plan's cost tensor)."""
    k = x.shape[-2]
    values = []
    for xs, ys in zip(x.reshape(-1, k, x.shape[-1]), y.reshape(-1, k, y.shape[-1])):
        costs = [sum(((xs[i] - ys[p[i]]) ** 2).sum() for i in range(k)) / k
                 for p in itertools.permutations(range(k))]
        values.append(min(costs, key=lambda c: c.item()))
    return torch.stack(values).reshape(x.shape[:-2])


def random_sets(shape, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=dtype),
            torch.randn(shape, generator=gen, dtype=dtype) + 0.5)


# ------------------------------------------------------------------------- exact
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_exact_matches_brute_force(k):
    x, y = random_sets((3, 2, k, 4), seed=k)
    torch.testing.assert_close(exact_w2_squared(x, y), brute_force_w2_squared(x, y))


@pytest.mark.parametrize("k", [2, 4, 7, 8])
def test_exact_in_one_dimension_is_sorted_matching(k):
    """In 1-D the monotone (sorted) coupling is optimal: W2² = mean_i (x_(i) − y_(i))²."""
    x, y = random_sets((16, k, 1), seed=10 + k, dtype=torch.float64)
    sorted_matching = (x.sort(-2).values - y.sort(-2).values).pow(2).mean((-2, -1))
    torch.testing.assert_close(exact_w2_squared(x, y), sorted_matching)


def test_exact_is_a_distance_on_identical_and_permuted_sets():
    """Zero on a set and on its permutations (a set is a measure, not a sequence),
    symmetric, and positive between different sets (against the brute force's value)."""
    x, y = random_sets((5, 4, 3), seed=1)
    shuffled = x[:, torch.tensor([2, 0, 3, 1])]
    assert exact_w2_squared(x, x).abs().max() < 1e-6
    assert exact_w2_squared(x, shuffled).abs().max() < 1e-6
    torch.testing.assert_close(exact_w2_squared(x, y), exact_w2_squared(y, x))
    assert (exact_w2_squared(x, y) > 0).all()
    torch.testing.assert_close(exact_w2_squared(x, y), brute_force_w2_squared(y, x))


def test_squared_distances_keep_nearby_points_apart_in_float32():
    """Points 1e3 from the origin and 1e-3 apart: the differences' form gives ‖Δ‖² to float32
    precision, where ‖x‖² + ‖y‖² − 2⟨x, y⟩ (‖x‖² ≈ 6·10⁶) would cancel to rounding noise of
    order 6·10⁶·2⁻²⁴ ≈ 0.4, 10⁵ times the distance (about 6·10⁻⁶)."""
    gen = torch.Generator().manual_seed(30)
    x = 1e3 + torch.randn(8, 4, 6, generator=gen)
    delta = 1e-3 * torch.randn(8, 4, 6, generator=gen)
    expected = (delta.double().pow(2).sum(-1)).mean(-1)  # the identity plan is optimal here
    y = x + delta
    torch.testing.assert_close(exact_w2_squared(x, y).double(),
                               ((y.double() - x.double()).pow(2).sum(-1)).mean(-1),
                               rtol=1e-3, atol=0.0)
    torch.testing.assert_close(exact_w2_squared(x, y).double(), expected, rtol=0.05, atol=0.0)


def test_exact_gradient_against_finite_differences_and_brute_force():
    x, y = random_sets((3, 4, 2), seed=2, dtype=torch.float64)
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(exact_w2_squared, (x, y))
    grad_x, grad_y = torch.autograd.grad(exact_w2_squared(x, y).sum(), (x, y))
    ref_x, ref_y = torch.autograd.grad(brute_force_w2_squared(x, y).sum(), (x, y))
    torch.testing.assert_close(grad_x, ref_x)
    torch.testing.assert_close(grad_y, ref_y)


def test_exact_refuses_too_many_samples_and_mismatched_sizes():
    x = torch.zeros(2, MAX_EXACT_SAMPLES + 1, 3)
    with pytest.raises(ValueError, match=rf"K ≤ {MAX_EXACT_SAMPLES}.*sinkhorn"):
        exact_w2_squared(x, x)
    with pytest.raises(ValueError, match="same number of samples"):
        exact_w2_squared(torch.zeros(2, 3, 1), torch.zeros(2, 4, 1))


# ---------------------------------------------------------------------- sinkhorn
def test_converged_sinkhorn_with_small_blur_approaches_exact():
    """With a slow enough ε-annealing (scaling 0.9) to converge; geomloss's default 0.5 stops
    early (the docstring's caveat; benchmarks/bench_pogo.py measures that error)."""
    x, y = random_sets((64, 4, 6), seed=3)
    exact = exact_w2_squared(x, y)
    for blur in (0.05, 0.005):
        sinkhorn = sinkhorn_w2_squared(x, y, blur=blur, scaling=0.9)
        assert ((sinkhorn - exact).abs() / exact).max() < 1e-4, blur
    # a coarse blur smooths away the optimal plan's structure: visibly different
    coarse = sinkhorn_w2_squared(x, y, blur=1.0, scaling=0.9)
    assert ((coarse - exact).abs() / exact).max() > 1e-2


def test_sinkhorn_uses_the_summed_squared_distance_convention():
    """W2²(μ, μ shifted by Δ) = ‖Δ‖² exactly, and so is the debiased Sinkhorn divergence at
    any blur (entropic OT is translation-covariant): a factor ½ would show as ‖Δ‖²/2."""
    x, _ = random_sets((8, 4, 6), seed=4)
    shift = torch.tensor([3.0, -2.0, 1.0, 0.0, 0.5, 4.0])
    sinkhorn = sinkhorn_w2_squared(x, x + shift, blur=0.05)
    torch.testing.assert_close(sinkhorn, torch.full((8,), shift.pow(2).sum().item()),
                               rtol=1e-3, atol=0.0)


def test_sinkhorn_is_twice_geomloss_per_state():
    """Converged (scaling 0.9): at the default scaling a state's value depends on the batch
    through geomloss's shared annealing schedule, so one-state calls would differ."""
    x, y = random_sets((2, 3, 4, 3), seed=5)
    loss = SamplesLoss("sinkhorn", p=2, blur=0.05, scaling=0.9)
    per_state = torch.stack([loss(xs, ys) for xs, ys in zip(x.flatten(0, 1), y.flatten(0, 1))])
    torch.testing.assert_close(sinkhorn_w2_squared(x, y, scaling=0.9),
                               2 * per_state.reshape(2, 3), rtol=1e-5, atol=1e-6)


def test_sinkhorn_gradient_matches_exact_at_small_blur():
    x, y = random_sets((16, 4, 3), seed=6)
    x.requires_grad_(True)
    (exact_grad,) = torch.autograd.grad(exact_w2_squared(x, y).sum(), x)
    sinkhorn = sinkhorn_w2_squared(x, y, blur=0.005, scaling=0.9)
    (sinkhorn_grad,) = torch.autograd.grad(sinkhorn.sum(), x)
    torch.testing.assert_close(sinkhorn_grad, exact_grad, rtol=0.0, atol=1e-3)


# -------------------------------------------------------------------- dispatcher
@pytest.mark.parametrize("method", ["exact", "sinkhorn", "unbiased"])
def test_distance_to_a_single_point_is_exact_for_every_method(method):
    """Against a Dirac every coupling is the product: W2² = (1/K) Σ_i ‖x_i − a‖², which is
    also the exact W2² against K copies of a."""
    x, y = random_sets((6, 4, 3), seed=7)
    point = y[:, :1]
    expected = brute_force_w2_squared(x, point.expand_as(x))
    torch.testing.assert_close(sample_w2_squared(x, point, method), expected)
    torch.testing.assert_close(sample_w2_squared(point, x, method), expected)
    torch.testing.assert_close(sample_w2_squared(point, y[:, 1:2], method),
                               (point - y[:, 1:2]).pow(2).sum((-2, -1)))


def test_dispatcher_routes_and_rejects_unknown_methods():
    x, y = random_sets((6, 4, 3), seed=8)
    torch.testing.assert_close(sample_w2_squared(x, y, "exact"), exact_w2_squared(x, y))
    torch.testing.assert_close(sample_w2_squared(x, y, "sinkhorn", blur=0.1),
                               sinkhorn_w2_squared(x, y, blur=0.1))
    with pytest.raises(ValueError, match="unknown W2 method"):
        sample_w2_squared(x, y, "emd")


# ----------------------------------------------------------------------- Gaussian
def test_gaussian_closed_form_matches_sorted_samples():
    """Diagonal Gaussians couple coordinate-wise: W2² = Σ_d W2²(1-D marginals), and in 1-D
    sorting large samples gives the monotone coupling."""
    gen = torch.Generator().manual_seed(9)
    mean, ref_mean = torch.randn(3, generator=gen), torch.randn(3, generator=gen)
    std, ref_std = torch.rand(3, generator=gen) + 0.2, torch.rand(3, generator=gen) + 0.2
    n = 200_000
    a = (mean + std * torch.randn(n, 3, generator=gen, dtype=torch.float64)).sort(0).values
    b = (ref_mean + ref_std * torch.randn(n, 3, generator=gen, dtype=torch.float64)).sort(0).values
    monte_carlo = (a - b).pow(2).mean(0).sum().item()
    closed = gaussian_w2_squared(mean[None], std[None], ref_mean[None], ref_std[None]).item()
    assert closed == pytest.approx(monte_carlo, rel=1e-2)
    assert math.isclose(gaussian_w2_squared(mean, std, mean, std).item(), 0.0)


def test_gaussian_closed_form_gradient_equals_autograd():
    """The hand gradient in log σ (GaussianW2LogStd) against autograd through an
    independent spelling of the formula; no gradient reaches the reference."""
    gen = torch.Generator().manual_seed(3)
    mean, log_std, ref_mean, ref_log_std = torch.randn(4, 5, 3, generator=gen).unbind()
    ref_std = ref_log_std.exp().requires_grad_()
    leaves = [mean.clone().requires_grad_(), log_std.clone().requires_grad_()]
    independent = sum(((leaves[0][s] - ref_mean[s]) ** 2 + (leaves[1][s].exp()
                       - ref_log_std[s].exp()) ** 2).sum() for s in range(5)) / 5
    expected = torch.autograd.grad(0.3 * independent, leaves)
    mean_leaf, log_std_leaf = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
    w2 = gaussian_w2_squared_log_std(mean_leaf, log_std_leaf, ref_mean, ref_std)
    (0.3 * w2).backward()
    assert w2.item() == pytest.approx(independent.item(), rel=1e-6)
    torch.testing.assert_close(mean_leaf.grad, expected[0])
    torch.testing.assert_close(log_std_leaf.grad, expected[1])
    assert ref_std.grad is None


# ------------------------------------------------- bias of the sample estimators
# Candidate s·X against reference Y, X and Y independent K-sample sets of N(0, I_d). For each
# draw W2²(s·x, y) = s²·mean‖x_i‖² + mean‖y_j‖² − 2s·max_σ (1/K) Σ⟨x_i, y_σ(i)⟩, so in
# expectation d·s² + d − 2s·M with M the expected best matching's inner product, which SciPy's
# assignment solver gives here independently of transport.py.
BIASED_MINIMISERS = {1: 0.575, 6: 0.311}  # M/d at K = 4 (the Monte Carlo values)


def unit_gaussian_sets(d, k, draws, seed):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(draws, k, d, generator=gen, dtype=torch.float64),
            torch.randn(draws, k, d, generator=gen, dtype=torch.float64))


def expected_matching(x, y):
    """M = E[max_σ (1/K) Σ_i ⟨x_i, y_σ(i)⟩] over the draws, by linear_sum_assignment."""
    values = []
    for a, b in zip(x.numpy(), y.numpy()):
        inner = a @ b.T
        rows, cols = linear_sum_assignment(inner, maximize=True)
        values.append(inner[rows, cols].mean())
    return float(np.mean(values))


def minimiser(spreads, values):
    """The minimiser of the parabola fitted to (spread, mean distance)."""
    c2, c1, _ = np.polyfit(np.asarray(spreads), np.asarray(values), 2)
    return -c1 / (2 * c2)


SPREADS = torch.linspace(0.1, 1.5, 15, dtype=torch.float64)


@pytest.mark.parametrize("d", [1, 6])
def test_k_sample_exact_distance_is_biased_towards_a_narrower_actor(d):
    x, y = unit_gaussian_sets(d, 4, 6000, seed=d)
    m = expected_matching(x, y)
    assert m / d == pytest.approx(BIASED_MINIMISERS[d], abs=0.01)
    means = torch.stack([exact_w2_squared(s * x, y).mean() for s in SPREADS])
    closed = d * SPREADS**2 + d - 2 * SPREADS * m
    torch.testing.assert_close(means, closed, rtol=0.02, atol=0.02)
    assert minimiser(SPREADS, means) == pytest.approx(BIASED_MINIMISERS[d], abs=0.02)


@pytest.mark.parametrize("d", [1, 6])
def test_unbiased_distance_is_minimised_at_the_reference_spread(d):
    """E[D] = M·(s − 1)²: zero and minimal at s = 1, with M from the assignment solver."""
    x, y = unit_gaussian_sets(d, 8, 6000, seed=10 + d)  # two independent 4-sample sets each
    m = expected_matching(x[:, :4], y[:, :4])
    means = torch.stack([unbiased_w2_squared(s * x, y).mean() for s in SPREADS])
    torch.testing.assert_close(means, m * (SPREADS - 1) ** 2, rtol=0.0, atol=0.03 * d)
    assert minimiser(SPREADS, means) == pytest.approx(1.0, abs=0.03)


def test_unbiased_distance_is_exact_in_the_mean():
    """A shift μ adds ‖μ‖² in expectation, as in the closed-form W2² (the same draws with
    and without the shift, so only the shift's own noise 2⟨μ, x̄ − ȳ⟩ remains); and off the
    reference's spread the whole surface is ‖μ‖² + M·(s − 1)², M from the assignment solver
    (the biased K-sample W2² would give ‖μ‖² + d·s² + d − 2·s·M: 6.2 against 1.0 at s = ½)."""
    x, y = unit_gaussian_sets(6, 8, 6000, seed=20)
    shift = torch.tensor([0.3, -0.2, 0.0, 0.5, 0.1, -0.4], dtype=torch.float64)
    added = unbiased_w2_squared(x + shift, y) - unbiased_w2_squared(x, y)
    assert added.mean().item() == pytest.approx(shift.pow(2).sum().item(), abs=0.01)
    m = expected_matching(x[:, :4], y[:, :4])
    for spread in (0.5, 1.5):
        value = unbiased_w2_squared(spread * x + shift, y).mean().item()
        expected = shift.pow(2).sum().item() + m * (spread - 1) ** 2
        assert value == pytest.approx(expected, abs=0.05)


@pytest.mark.parametrize("d, low, high", [(1, 0.2, 1.0), (6, 0.1, 0.7)])
def test_sinkhorn_distance_has_the_exact_distances_bias(d, low, high):
    """The seed's Sinkhorn (blur 0.05, geomloss's debiasing on the same samples) is
    minimised near the exact distance's M/d at K = 4 (0.573 in 1-D, 0.311 in 6-D; docs/
    offline.md's table: 0.592 and 0.313, so the blur adds up to 3%)."""
    x, y = unit_gaussian_sets(d, 4, 3000, seed=21 + d)
    spreads = torch.linspace(low, high, 13)
    means = [sinkhorn_w2_squared(s * x.float(), y.float()).mean().item() for s in spreads]
    m = expected_matching(x, y)  # the exact distance's minimiser M/d, from SciPy
    assert minimiser(spreads, means) == pytest.approx(m / d, rel=0.04)


def test_unbiased_distance_with_one_sample_per_set_compares_only_the_means():
    """K = 1 (x, y of [.., 2, A]): every W2² is a squared distance between two points, and
    E[D] = ‖μ‖² whatever the spread s: ¼·4·(‖μ‖² + d·s² + d) − ½·2d·s² − ½·2d."""
    x, y = unit_gaussian_sets(6, 2, 100_000, seed=23)
    shift = torch.tensor([0.3, -0.2, 0.0, 0.5, 0.1, -0.4], dtype=torch.float64)
    for spread in (0.3, 2.0):
        value = unbiased_w2_squared(spread * x + shift, y).mean().item()
        assert value == pytest.approx(shift.pow(2).sum().item(), abs=0.05), spread


def test_unbiased_distance_refuses_odd_or_unequal_sample_sets():
    with pytest.raises(ValueError, match="even, equal number"):
        unbiased_w2_squared(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1))
    with pytest.raises(ValueError, match="even, equal number"):
        unbiased_w2_squared(torch.zeros(2, 4, 1), torch.zeros(2, 6, 1))


def test_unbiased_distance_gradient_matches_finite_differences():
    """Autograd's gradient of the unbiased distance, in both sample sets, against central
    differences (float64; generic points, where every optimal matching is unique)."""
    x, y = (v.requires_grad_() for v in random_sets((3, 8, 2), seed=24, dtype=torch.float64))
    assert torch.autograd.gradcheck(lambda a, b: unbiased_w2_squared(a, b), (x, y))


def test_dispatcher_routes_unbiased():
    x, y = random_sets((6, 8, 3), seed=22)
    torch.testing.assert_close(sample_w2_squared(x, y, "unbiased"), unbiased_w2_squared(x, y))


# ------------------------------------------- a bimodal reference and a trained actor
def mixture(shape, gen):
    """½·N(−0.5, 0.1²) + ½·N(0.5, 0.1²) per sample."""
    sign = torch.randint(0, 2, (*shape[:-1], 1), generator=gen) * 2.0 - 1.0
    return 0.5 * sign + 0.1 * torch.randn(shape, generator=gen)


def mixture_quantile(z):
    """The mixture's quantile at Φ(z): z's sign picks the mode, its quantile within the half
    the place in the mode (so z ~ N(0, 1) maps to a draw of the mixture)."""
    u = torch.special.ndtr(z)
    within = torch.where(u < 0.5, 2 * u, 2 * u - 1).clamp(1e-6, 1 - 1e-6)
    return torch.where(u < 0.5, -0.5, 0.5) + 0.1 * torch.special.ndtri(within)


def near_a_mode(actions):
    return (((actions - 0.5).abs() < 0.2) | ((actions + 0.5).abs() < 0.2)).float().mean().item()


def actor_samples(actor, gen, states=32, draws=256):
    with torch.no_grad():
        obs = torch.randn(states, 1, 2, generator=gen).expand(states, draws, 2)
        return actor(obs, torch.randn(states, draws, 1, generator=gen))


def test_a_trained_noise_input_actor_keeps_both_modes_under_the_unbiased_distance():
    """An actor fitted to the mixture (by regression on its quantile map), its output then
    shifted off it, then trained as a chain link against fresh mixture samples: the unbiased
    distance brings back the two modes and their spread (so its gradient does the work); the
    K-sample exact distance pulls them together."""
    gen = torch.Generator().manual_seed(0)
    fitted = NoiseInputActor(2, 1, 64, 1.0, True, torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(fitted.parameters(), lr=5e-3)
    for _ in range(600):
        obs, z = torch.randn(16, 8, 2, generator=gen), torch.randn(16, 8, 1, generator=gen)
        loss = (fitted(obs, z) - mixture_quantile(z)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    reference = mixture((32, 256, 1), gen)
    assert near_a_mode(actor_samples(fitted, gen)) > 0.9 * near_a_mode(reference)
    with torch.no_grad():
        fitted.net[-1].bias.add_(0.3)  # both modes move by about 0.2, off the reference
    assert near_a_mode(actor_samples(fitted, gen)) < 0.5 * near_a_mode(reference)
    kept = {}
    for method, samples in (("unbiased", 8), ("exact", 4)):
        actor = copy.deepcopy(fitted)
        optimizer = torch.optim.Adam(actor.parameters(), lr=1e-3)
        for _ in range(300):
            obs = torch.randn(32, 1, 2, generator=gen).expand(32, samples, 2)
            x = actor(obs, torch.randn(32, samples, 1, generator=gen))
            loss = sample_w2_squared(x, mixture((32, samples, 1), gen), method).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        kept[method] = actor_samples(actor, gen)
    unbiased, exact = kept["unbiased"], kept["exact"]
    assert near_a_mode(unbiased) > 0.85 * near_a_mode(reference)
    assert 0.4 < (unbiased > 0).float().mean().item() < 0.6
    assert unbiased.std().item() == pytest.approx(reference.std().item(), rel=0.1)
    assert near_a_mode(exact) < 0.6 and exact.std().item() < 0.7 * reference.std().item()


# -------------------------------------------------------------------- energy score
def test_energy_score_matches_the_gaussian_closed_form():
    """For X ~ N(μ, σ²) in 1-D: E|X − a| = σ·(2φ(z) + z·(2Φ(z) − 1)), z = (a − μ)/σ, and
    E|X − X′| = 2σ/√π; the K-sample estimate is unbiased for E|X − a| − ½E|X − X′|."""
    gen = torch.Generator().manual_seed(30)
    mu, sigma, a = 0.3, 0.7, 1.1
    x = mu + sigma * torch.randn(200_000, 4, 1, generator=gen, dtype=torch.float64)
    z = (a - mu) / sigma
    normal = torch.distributions.Normal(0.0, 1.0)
    pdf, cdf = normal.log_prob(torch.tensor(z)).exp().item(), normal.cdf(torch.tensor(z)).item()
    closed = sigma * (2 * pdf + z * (2 * cdf - 1)) - sigma / math.sqrt(math.pi)
    point = torch.full((200_000, 1, 1), a, dtype=torch.float64)
    assert energy_score(x, point).mean().item() == pytest.approx(closed, abs=2e-3)


def test_energy_score_is_minimised_by_the_data_spread_and_the_squared_distance_by_none():
    """Data a ~ N(0, 1), candidate N(0, s²): E ES = √(2/π)·√(1 + s²) − s/√π, minimal at
    s = 1; E‖X − a‖² = 1 + s², minimal at s = 0 (a Dirac at the mean)."""
    gen = torch.Generator().manual_seed(31)
    x = torch.randn(40_000, 4, 1, generator=gen, dtype=torch.float64)
    a = torch.randn(40_000, 1, 1, generator=gen, dtype=torch.float64)
    spreads = torch.linspace(0.7, 1.3, 13, dtype=torch.float64)
    scores = torch.stack([energy_score(s * x, a).mean() for s in spreads])
    closed = math.sqrt(2 / math.pi) * (1 + spreads**2).sqrt() - spreads / math.sqrt(math.pi)
    torch.testing.assert_close(scores, closed, rtol=0.0, atol=0.01)
    assert minimiser(spreads, scores) == pytest.approx(1.0, abs=0.05)
    squared = torch.stack([sample_w2_squared(s * x, a).mean() for s in spreads])
    torch.testing.assert_close(squared, 1 + spreads**2, rtol=0.03, atol=0.0)


def test_the_beta_2_energy_score_is_the_squared_error_of_the_mean_without_the_spread():
    """Per sample set, ES_2 = ‖x̄ − a‖² − tr Ŝ/K (Ŝ the unbiased sample covariance), so its
    expectation is ‖μ − a‖² whatever the spread: no collapsing force."""
    gen = torch.Generator().manual_seed(32)
    x = torch.randn(5, 4, 3, generator=gen, dtype=torch.float64)
    a = torch.randn(5, 1, 3, generator=gen, dtype=torch.float64)
    by_moments = ((x.mean(1) - a[:, 0]).pow(2).sum(-1)
                  - x.var(1, unbiased=True).sum(-1) / x.shape[1])
    torch.testing.assert_close(energy_score(x, a, beta=2.0), by_moments)
    mu, point = torch.tensor([0.3, -0.2, 0.5]), torch.tensor([[0.1, 0.4, -0.3]])
    z = torch.randn(100_000, 4, 3, generator=torch.Generator().manual_seed(33))
    for spread in (0.1, 1.0, 2.0):
        value = energy_score(mu + spread * z, point.expand(100_000, 1, 3), beta=2.0).mean()
        assert value.item() == pytest.approx((mu - point).pow(2).sum().item(), abs=0.03)


def test_the_anchored_score_is_the_squared_mean_error_plus_the_energy_score():
    """Gaussian closed form (1-D, as above) plus (μ − a)²; minimised at the data spread."""
    gen = torch.Generator().manual_seed(34)
    mu, sigma, a = 0.3, 0.7, 1.1
    x = mu + sigma * torch.randn(200_000, 4, 1, generator=gen, dtype=torch.float64)
    z = (a - mu) / sigma
    normal = torch.distributions.Normal(0.0, 1.0)
    pdf, cdf = normal.log_prob(torch.tensor(z)).exp().item(), normal.cdf(torch.tensor(z)).item()
    closed = (mu - a) ** 2 + sigma * (2 * pdf + z * (2 * cdf - 1)) - sigma / math.sqrt(math.pi)
    point = torch.full((200_000, 1, 1), a, dtype=torch.float64)
    assert anchored_energy_score(x, point).mean().item() == pytest.approx(closed, abs=3e-3)
    x = torch.randn(40_000, 4, 1, generator=gen, dtype=torch.float64)
    data = torch.randn(40_000, 1, 1, generator=gen, dtype=torch.float64)
    spreads = torch.linspace(0.7, 1.3, 13, dtype=torch.float64)
    scores = torch.stack([anchored_energy_score(s * x, data).mean() for s in spreads])
    assert minimiser(spreads, scores) == pytest.approx(1.0, abs=0.05)


def test_an_actor_fitted_with_the_energy_scores_keeps_the_datas_conditional_spread():
    """One data action per state, a = 0.5·s + 0.2·ε: the energy score and the anchored one
    recover the spread 0.2 at each state; the squared distance to the data action collapses
    it."""
    spreads = {}
    terms = {"energy": energy_score, "anchored": anchored_energy_score,
             "pointwise": sample_w2_squared}
    for term, score in terms.items():
        gen = torch.Generator().manual_seed(0)
        actor = NoiseInputActor(1, 2, 32, 1.0, True, torch.Generator().manual_seed(0))
        optimizer = torch.optim.Adam(actor.parameters(), lr=3e-3)
        for _ in range(500):
            s = torch.rand(64, 1, generator=gen) * 2 - 1
            a = (0.5 * s + 0.2 * torch.randn(64, 2, generator=gen)).unsqueeze(1)
            x = actor(s.unsqueeze(1).expand(64, 4, 1), torch.randn(64, 4, 2, generator=gen))
            loss = score(x, a).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            s = torch.linspace(-0.9, 0.9, 16).reshape(16, 1, 1).expand(16, 512, 1)
            spreads[term] = actor(s, torch.randn(16, 512, 2, generator=gen)).std(1).mean().item()
    assert spreads["energy"] == pytest.approx(0.2, rel=0.15)
    assert spreads["anchored"] == pytest.approx(0.2, rel=0.15)
    assert spreads["pointwise"] < 0.05


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 1.5])
def test_energy_score_is_the_u_statistic_of_its_definition(beta):
    """Against a loop over the samples: the mean β-distance to the point minus half the mean
    over the K(K−1) ordered pairs k ≠ l (no self-pair), at small β too."""
    gen = torch.Generator().manual_seed(40)
    x = torch.randn(5, 4, 3, generator=gen, dtype=torch.float64)
    point = torch.randn(5, 1, 3, generator=gen, dtype=torch.float64)
    expected = []
    for xs, a in zip(x, point[:, 0]):
        to_point = sum(float(torch.linalg.vector_norm(v - a)) ** beta for v in xs) / 4
        pairs = [float(torch.linalg.vector_norm(xs[k] - xs[m])) ** beta
                 for k in range(4) for m in range(4) if k != m]
        expected.append(to_point - 0.5 * sum(pairs) / len(pairs))
    torch.testing.assert_close(energy_score(x, point, beta=beta),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-6)


def test_energy_score_gradient_is_a_unit_pull_to_the_point_and_a_bounded_push():
    """K·∂ES_1/∂x_k = u(x_k − a) − mean_{l≠k} u(x_k − x_l), u(v) = v/‖v‖, written out here:
    a point 10³ away pulls no harder than one nearby."""
    gen = torch.Generator().manual_seed(41)
    x = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    for distance in (1.0, 1e3):
        point = torch.full((2, 1, 3), distance, dtype=torch.float64)
        moving = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy_score(moving, point).sum(), moving)

        def unit(v):
            return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)

        pairs = x.unsqueeze(-2) - x.unsqueeze(-3)  # [.., k, l, A]: x_k − x_l
        off_diagonal = ~torch.eye(5, dtype=torch.bool).unsqueeze(-1)
        # (the diagonal, masked out, is moved off zero first)
        push = torch.where(off_diagonal, unit(pairs + torch.eye(5).unsqueeze(-1)), 0).sum(-2) / 4
        torch.testing.assert_close(5 * grad, unit(x - point) - push, rtol=1e-6, atol=1e-9)
        assert (torch.linalg.vector_norm(5 * grad, dim=-1) <= 2 + 1e-9).all()


def test_energy_score_needs_two_samples_and_has_finite_gradients_at_ties():
    with pytest.raises(ValueError, match="K ≥ 2"):
        energy_score(torch.zeros(3, 1, 2), torch.zeros(3, 1, 2))
    with pytest.raises(ValueError, match="0 < beta ≤ 2"):
        energy_score(torch.zeros(3, 4, 2), torch.zeros(3, 1, 2), beta=2.5)
    x = torch.zeros(3, 4, 2, requires_grad=True)
    energy_score(x, torch.zeros(3, 1, 2)).sum().backward()
    assert torch.isfinite(x.grad).all()
