"""transport.py's W2² functions against independent computations: brute force over
itertools.permutations, 1-D sorted matching, translation invariance, Monte-Carlo sorted
samples, geomloss called directly, and finite differences."""

import itertools
import math

import pytest
import torch
from geomloss import SamplesLoss

from transport import (MAX_EXACT_SAMPLES, exact_w2_squared, gaussian_w2_squared,
                       gaussian_w2_squared_log_std, sample_w2_squared, sinkhorn_w2_squared)


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
    x, _ = random_sets((5, 4, 3), seed=1)
    shuffled = x[:, torch.tensor([2, 0, 3, 1])]
    assert exact_w2_squared(x, shuffled).abs().max() < 1e-6


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
@pytest.mark.parametrize("method", ["exact", "sinkhorn"])
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
