"""Networks: the tanh-squashed diagonal Gaussian actor (POSAC), the noise-input actor
(POGO) and the twin-Q critic."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
ACTION_BOUND_EPS = 1e-6  # a data action's distance from the box's bounds, for log π(a|s)


def init_weights_(network: nn.Module, generator: torch.Generator | None) -> None:
    """Xavier-uniform weights and zero biases for every linear layer, drawn from
    `generator` so that building a network never touches the global RNG."""
    for module in network.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, gain=1.0, generator=generator)
            nn.init.zeros_(module.bias)


def mlp(in_dim: int, out_dim: int, hidden_size: int) -> nn.Sequential:
    """Two hidden ReLU layers of `hidden_size` units. The ReLUs work in place: a Linear's
    backward needs its input, not its output, and skipping two allocations per call counts
    at batch 256 on a CPU."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_size), nn.ReLU(inplace=True),
        nn.Linear(hidden_size, hidden_size), nn.ReLU(inplace=True),
        nn.Linear(hidden_size, out_dim),
    )


class QNetwork(nn.Module):
    """Twin critics Q1(s, a), Q2(s, a), each an MLP on the concatenation [s, a]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.q1 = mlp(obs_dim + action_dim, 1, hidden_size)
        self.q2 = mlp(obs_dim + action_dim, 1, hidden_size)
        init_weights_(self, generator)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min_q(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """min(Q1, Q2)(s, a): the clipped double-Q estimate."""
        return torch.minimum(*self(obs, action))


class GaussianPolicy(nn.Module):
    """π(a|s): a = tanh(u)·scale + bias with u ~ N(μ(s), diag σ(s)²).

    The MLP outputs the pre-squash mean μ(s) and log σ(s), clamped to [−20, 2]; scale and
    bias map tanh's (−1, 1) onto the action-space bounds [low, high]. With ε = 0, `sample`
    gives the deterministic (evaluation) action tanh(μ(s))·scale + bias."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int,
                 action_low: torch.Tensor, action_high: torch.Tensor,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.net = mlp(obs_dim, 2 * action_dim, hidden_size)
        init_weights_(self, generator)
        self.register_buffer("action_scale", (action_high - action_low) / 2.0)
        self.register_buffer("action_bias", (action_high + action_low) / 2.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-squash Gaussian parameters (μ(s), log σ(s))."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def squash(self, pre_tanh: torch.Tensor) -> torch.Tensor:
        return torch.tanh(pre_tanh) * self.action_scale + self.action_bias

    def sample(self, mean: torch.Tensor, log_std: torch.Tensor,
               noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action and its log-density, given ε ~ N(0, I).

        u = μ + σ·ε,  a = tanh(u)·scale + bias,
        log π(a|s) = Σ_d [log N(u_d; μ_d, σ_d) − log(scale_d·(1 − tanh²(u_d)))],
        with log(1 − tanh²u) = 2·(log 2 − u − softplus(−2u)) for numerical stability."""
        pre_tanh = mean + log_std.exp() * noise
        gaussian_log_prob = -0.5 * noise.pow(2) - log_std - 0.5 * math.log(2.0 * math.pi)
        log_det_tanh = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
        log_prob = (gaussian_log_prob - log_det_tanh - self.action_scale.log()).sum(-1)
        return self.squash(pre_tanh), log_prob

    def log_prob(self, mean: torch.Tensor, log_std: torch.Tensor,
                 action: torch.Tensor) -> torch.Tensor:
        """log π(a|s) of a given action (a data action), by `sample` at the ε that yields it:
        u = atanh((a − bias)/scale), ε = (u − μ)/σ. Actions on the bounds (a float32 tanh
        saturates) are moved inside by ACTION_BOUND_EPS, so u stays finite (|u| ≤ 7.3)."""
        unit = ((action - self.action_bias) / self.action_scale).clamp(
            -1.0 + ACTION_BOUND_EPS, 1.0 - ACTION_BOUND_EPS)
        noise = (torch.atanh(unit) - mean) / log_std.exp()
        return self.sample(mean, log_std, noise)[1]


class NoiseInputActor(nn.Module):
    """POGO's actor: a = tanh(MLP([s, z]))·max_action, z ~ N(0, I) of the action's size.

    A stochastic actor is an implicit policy: its action distribution at s is the push-forward
    of N(0, I) through z ↦ tanh(MLP([s, z]))·max_action, with no density, so it is compared
    with other actors through samples. z = 0 (also when `noise` is None) gives its
    deterministic (evaluation) action. A deterministic actor (stochastic=False) is the TD3
    actor tanh(MLP(s))·max_action: its MLP sees the state only and `noise` is ignored, apart
    from the shape it gives the output."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_size: int, max_action: float,
                 stochastic: bool = True, generator: torch.Generator | None = None):
        super().__init__()
        self.action_dim = action_dim
        self.max_action = float(max_action)
        self.stochastic = stochastic
        self.net = mlp(obs_dim + (action_dim if stochastic else 0), action_dim, hidden_size)
        init_weights_(self, generator)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Actions for obs [..., obs_dim] and noise [..., action_dim]; the leading dimensions
        broadcast, so obs [B, 1, obs_dim] with noise [B, K, action_dim] gives K actions per
        state, [B, K, action_dim]."""
        if noise is not None:
            batch_shape = torch.broadcast_shapes(obs.shape[:-1], noise.shape[:-1])
            obs = obs.expand(*batch_shape, obs.shape[-1])
        if self.stochastic:
            if noise is None:
                noise = obs.new_zeros(*obs.shape[:-1], self.action_dim)
            obs = torch.cat([obs, noise.expand(*obs.shape[:-1], self.action_dim)], dim=-1)
        return torch.tanh(self.net(obs)) * self.max_action
