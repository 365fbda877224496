"""The policy's distribution and the W2 closed form, against independent computations."""

import math

import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from model import LOG_STD_MAX, LOG_STD_MIN, GaussianPolicy, QNetwork
from transport import gaussian_w2_squared


def make_policy(obs_dim=5, action_dim=3, low=(-2.0, -1.0, 0.0), high=(2.0, 1.0, 0.5), seed=0):
    return GaussianPolicy(obs_dim, action_dim, 32, torch.tensor(low), torch.tensor(high),
                          torch.Generator().manual_seed(seed))


def exact_w2_squared_by_quantiles(mean_a, std_a, mean_b, std_b, grid=200_000):
    """W2² of product measures is the sum over coordinates of the 1-D W2², and in 1-D
    W2² = ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du (monotone coupling), integrated numerically."""
    u = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    total = torch.zeros((), dtype=torch.float64)
    for ma, sa, mb, sb in zip(mean_a.tolist(), std_a.tolist(), mean_b.tolist(), std_b.tolist()):
        qa = Normal(torch.tensor(ma, dtype=torch.float64), sa).icdf(u)
        qb = Normal(torch.tensor(mb, dtype=torch.float64), sb).icdf(u)
        total += ((qa - qb) ** 2).mean()
    return total.item()


def test_w2_closed_form_matches_quantile_integral():
    gen = torch.Generator().manual_seed(1)
    mean_a, mean_b = torch.randn(4, generator=gen), torch.randn(4, generator=gen)
    std_a = torch.rand(4, generator=gen) + 0.2
    std_b = torch.rand(4, generator=gen) + 0.2
    closed = gaussian_w2_squared(mean_a[None], std_a[None], mean_b[None], std_b[None]).item()
    assert closed == pytest.approx(exact_w2_squared_by_quantiles(mean_a, std_a, mean_b, std_b),
                                   rel=2e-3)


def test_w2_closed_form_matches_sorted_samples():
    """Empirical W2² between large samples (sorted per dimension = optimal 1-D coupling)."""
    gen = torch.Generator().manual_seed(2)
    mean_a, mean_b = torch.tensor([0.5, -1.0]), torch.tensor([-0.3, 0.4])
    std_a, std_b = torch.tensor([0.7, 1.5]), torch.tensor([1.2, 0.3])
    n = 400_000
    xa = mean_a + std_a * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    xb = mean_b + std_b * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    empirical = ((xa.sort(0).values - xb.sort(0).values) ** 2).mean(0).sum().item()
    closed = gaussian_w2_squared(mean_a[None], std_a[None], mean_b[None], std_b[None]).item()
    assert closed == pytest.approx(empirical, rel=2e-2)


def test_w2_averages_over_states_and_sums_over_dimensions():
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    std = torch.tensor([[1.0, 1.0], [1.0, 3.0]])
    ref_mean, ref_std = torch.zeros(2, 2), torch.ones(2, 2)
    # state 0: 1² + 0 = 1; state 1: 0 + (3 − 1)² = 4; mean over states = 2.5
    assert gaussian_w2_squared(mean, std, ref_mean, ref_std).item() == pytest.approx(2.5)


def test_log_prob_matches_transformed_distribution():
    policy = make_policy()
    obs = torch.randn(64, 5, generator=torch.Generator().manual_seed(3))
    mean, log_std = policy(obs)
    noise = torch.randn(mean.shape, generator=torch.Generator().manual_seed(4))
    action, log_prob = policy.sample(mean, log_std, noise)
    dist = TransformedDistribution(
        Normal(mean.double(), log_std.double().exp()),
        [TanhTransform(),
         AffineTransform(policy.action_bias.double(), policy.action_scale.double())])
    pre_tanh = (mean + log_std.exp() * noise).double()
    expected_action = torch.tanh(pre_tanh) * policy.action_scale + policy.action_bias
    assert torch.allclose(action.double(), expected_action, atol=1e-6)
    # the reference evaluates log π at a via atanh; keep away from the saturated edges
    interior = pre_tanh.abs().max(-1).values < 3.0
    assert interior.sum() > 32
    expected = dist.log_prob(expected_action).sum(-1)
    assert torch.allclose(log_prob.double()[interior], expected[interior], atol=1e-4)


def test_log_prob_of_a_given_action_matches_transformed_distribution():
    """log π(a|s) of data actions (the offline log score) against torch.distributions, and
    its gradient in (μ, log σ) against the Gaussian's closed form at u = atanh(a)."""
    policy = make_policy()
    gen = torch.Generator().manual_seed(5)
    mean = torch.randn(64, 3, generator=gen, dtype=torch.float64).requires_grad_()
    log_std = (0.5 * torch.randn(64, 3, generator=gen, dtype=torch.float64)).requires_grad_()
    unit = torch.rand(64, 3, generator=gen, dtype=torch.float64) * 1.9 - 0.95
    action = unit * policy.action_scale + policy.action_bias
    dist = TransformedDistribution(
        Normal(mean, log_std.exp()),
        [TanhTransform(),
         AffineTransform(policy.action_bias.double(), policy.action_scale.double())])
    expected = dist.log_prob(action).sum(-1)
    policy.double()
    actual = policy.log_prob(mean, log_std, action)
    torch.testing.assert_close(actual, expected)
    grad_mean, grad_log_std = torch.autograd.grad(actual.sum(), (mean, log_std))
    z = (torch.atanh(unit) - mean.detach()) / log_std.detach().exp()
    torch.testing.assert_close(grad_mean, z / log_std.detach().exp())
    torch.testing.assert_close(grad_log_std, z.pow(2) - 1)


def test_log_prob_of_an_action_on_the_bounds_is_finite():
    policy = make_policy()
    action = torch.stack([policy.action_bias - policy.action_scale,
                          policy.action_bias + policy.action_scale])
    mean, log_std = torch.zeros(2, 3, requires_grad=True), torch.zeros(2, 3)
    log_prob = policy.log_prob(mean, log_std, action)
    log_prob.sum().backward()
    assert torch.isfinite(log_prob).all() and torch.isfinite(mean.grad).all()
    assert mean.grad.abs().max().item() == pytest.approx(math.atanh(1 - 1e-6), rel=1e-3)


def test_log_prob_stable_where_tanh_saturates():
    policy = make_policy()
    mean, log_std = torch.full((1, 3), 30.0), torch.zeros(1, 3)
    _, log_prob = policy.sample(mean, log_std, torch.zeros(1, 3))
    # log(1 − tanh²u) ≈ log 4 − 2u for large u: exact, finite value instead of log(0)
    expected = 3 * (-0.5 * math.log(2 * math.pi) - (math.log(4.0) - 60.0))
    expected -= policy.action_scale.log().sum().item()
    assert log_prob.item() == pytest.approx(expected, rel=1e-5)


def test_actions_respect_bounds_and_deterministic_action_is_tanh_mean():
    policy = make_policy()
    obs = torch.randn(256, 5, generator=torch.Generator().manual_seed(5)) * 10
    mean, log_std = policy(obs)
    action, _ = policy.sample(mean, log_std, torch.randn(mean.shape) * 5)
    low, high = torch.tensor([-2.0, -1.0, 0.0]), torch.tensor([2.0, 1.0, 0.5])
    assert (action >= low).all() and (action <= high).all()
    expected = torch.tanh(mean) * (high - low) / 2 + (high + low) / 2
    deterministic, _ = policy.sample(mean, log_std, torch.zeros_like(mean))  # as evaluation does
    assert torch.allclose(deterministic, expected)


def test_log_std_is_clamped():
    policy = make_policy()
    with torch.no_grad():
        last = policy.net[-1]
        last.weight.zero_()
        last.bias[3:].fill_(50.0)  # log σ outputs
    _, log_std = policy(torch.zeros(2, 5))
    assert torch.all(log_std == LOG_STD_MAX)
    with torch.no_grad():
        policy.net[-1].bias[3:].fill_(-50.0)
    _, log_std = policy(torch.zeros(2, 5))
    assert torch.all(log_std == LOG_STD_MIN)


def test_networks_have_two_hidden_relu_layers_and_seeded_init():
    policy = make_policy()
    linears = [m for m in policy.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 32), (32, 32), (32, 6)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in policy.net) == 2
    same = make_policy(seed=0)
    other = make_policy(seed=1)
    assert all(torch.equal(a, b) for a, b in zip(policy.parameters(), same.parameters()))
    assert not torch.equal(policy.net[0].weight, other.net[0].weight)
    critic = QNetwork(5, 3, 32, torch.Generator().manual_seed(0))
    q1, q2 = critic(torch.zeros(7, 5), torch.zeros(7, 3))
    assert q1.shape == q2.shape == (7,)
    assert torch.equal(critic.min_q(torch.ones(7, 5), torch.ones(7, 3)),
                       torch.minimum(*critic(torch.ones(7, 5), torch.ones(7, 3))))
