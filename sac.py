"""The POSAC agent: SAC with a JKO chain of tanh-Gaussian actors sharing one twin-Q critic.

One update (`POSAC.update`) on a minibatch:
  1. critic:  y = r + γ·m·(min(Q1', Q2')(s', a') − α·log π0(a'|s')),  a' ~ π0(·|s'),
              L_Q = (Q1(s, a) − y)² + (Q2(s, a) − y)²  (batch means);
  2. actors, in order 0, 1, …, N−1, each with the critic frozen:
              L_0 = E[α·log π0(a|s) − min Q(s, a)],
              L_i = λ_i·E[α·log πi(a|s) − min Q(s, a)] + w_i·W2²(πi, sg[πi−1]),
              where πi−1 is the previous actor after its own update in this step;
  3. temperature (optional): L_α = −E[log α·(log π0(a|s) + H_target)], H_target = −dim(A);
  4. every `target_update_interval` updates, Polyak-average the target critic (and the
     target copy of actor 0 when the TD target uses it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from model import GaussianPolicy, QNetwork
from replay_memory import Batch
from utils import frozen, gaussian_w2_squared, soft_update_

CRITIC_TARGET_POLICIES = ("online", "target")


@dataclass(frozen=True)
class SACConfig:
    """Agent hyper-parameters; the defaults are train_sac.py's defaults."""
    num_actors: int = 1
    w2_weights: tuple[float, ...] = (0.0,)
    hidden_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    alpha: float = 0.2
    automatic_entropy_tuning: bool = False
    target_update_interval: int = 1
    critic_target_policy: str = "online"
    q_normalize: bool = True


class POSAC:
    def __init__(self, obs_dim: int, action_low: torch.Tensor, action_high: torch.Tensor,
                 config: SACConfig, seed: int, device: torch.device | str = "cpu"):
        if len(config.w2_weights) != config.num_actors:
            raise ValueError("w2_weights needs one weight per actor")
        self.config = config
        self.device = torch.device(device)
        init_generator = torch.Generator().manual_seed(seed)
        self.generator = torch.Generator(self.device).manual_seed(seed + 1)  # action noise ε
        action_dim = action_low.numel()
        self.actors = [GaussianPolicy(obs_dim, action_dim, config.hidden_size, action_low,
                                      action_high, init_generator).to(self.device)
                       for _ in range(config.num_actors)]
        self.actor_optimizers = [torch.optim.Adam(actor.parameters(), lr=config.lr)
                                 for actor in self.actors]
        self.critic = QNetwork(obs_dim, action_dim, config.hidden_size,
                               init_generator).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.lr)
        self.actor0_target = (copy.deepcopy(self.actors[0]).requires_grad_(False)
                              if config.critic_target_policy == "target" else None)
        self.log_alpha = torch.tensor(float(config.alpha), device=self.device).log()
        self.target_entropy = -float(action_dim)
        if config.automatic_entropy_tuning:
            self.log_alpha.requires_grad_(True)
            self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.lr)
        self.num_updates = 0

    @property
    def num_actors(self) -> int:
        return len(self.actors)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def noise(self, shape: torch.Size) -> torch.Tensor:
        """Standard normal ε from the agent's own generator."""
        return torch.randn(shape, generator=self.generator, device=self.device)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, actor_index: int, deterministic: bool = False,
            noise: torch.Tensor | None = None) -> torch.Tensor:
        """Actions of actor `actor_index`: tanh(μ)·scale + bias when deterministic, else
        tanh(μ + σ·ε)·scale + bias with ε given or drawn from the agent's generator."""
        actor = self.actors[actor_index]
        mean, log_std = actor(obs)
        if deterministic:
            return actor.squash(mean)
        epsilon = self.noise(mean.shape) if noise is None else noise
        return actor.sample(mean, log_std, epsilon)[0]

    # ----------------------------------------------------------------------- critic
    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """y = r + γ·m·(min(Q1', Q2')(s', a') − α·log π0(a'|s')), a' ~ π0(·|s').

        π0 is the online actor 0, or its Polyak copy with critic_target_policy='target';
        m is 0 only where the episode terminated (a time-limit truncation bootstraps)."""
        policy = self.actor0_target if self.actor0_target is not None else self.actors[0]
        mean, log_std = policy(batch.next_obs)
        next_action, next_log_prob = policy.sample(mean, log_std, self.noise(mean.shape))
        next_q = self.critic_target.min_q(batch.next_obs, next_action)
        return batch.reward + self.config.gamma * batch.mask * (next_q - self.alpha * next_log_prob)

    def update_critic(self, batch: Batch) -> dict[str, torch.Tensor]:
        target = self.td_target(batch)
        q1, q2 = self.critic(batch.obs, batch.action)
        loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        return {"critic_loss": loss.detach(), "q_data": q1.detach().mean()}

    # ----------------------------------------------------------------------- actors
    def actor_loss(self, index: int, obs: torch.Tensor,
                   reference: tuple[torch.Tensor, torch.Tensor] | None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Actor `index`'s JKO-step loss on states `obs` (call with the critic frozen).

        L_0 = E[α·log π0 − min Q];  L_i = λ_i·E[α·log πi − min Q] + w_i·W2²(πi, πi−1),
        λ_i = 1/|E[α·log πi − min Q]| (detached) or 1 with q_normalize off, and
        `reference` = (μ_{i−1}, σ_{i−1}), detached, the previous actor's pre-squash Gaussian."""
        actor = self.actors[index]
        mean, log_std = actor(obs)
        action, log_prob = actor.sample(mean, log_std, self.noise(mean.shape))
        q = self.critic.min_q(obs, action)
        sac_term = (self.alpha * log_prob - q).mean()
        stats = {"log_prob": log_prob.detach(), "q": q.detach().mean()}
        if reference is None:
            return sac_term, stats
        scale = 1.0 / sac_term.detach().abs().clamp_min(1e-8) if self.config.q_normalize else 1.0
        ref_mean, ref_std = (t.detach() for t in reference)
        w2 = gaussian_w2_squared(mean, log_std.exp(), ref_mean, ref_std)
        stats["w2"] = w2.detach()
        return scale * sac_term + self.config.w2_weights[index] * w2, stats

    def update_actors(self, obs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Update actors 0 … N−1 in order; actor i's reference is actor i−1 after its update."""
        losses, qs, w2s, entropies = [], [], [], []
        reference = None
        log_prob_0 = None
        with frozen(self.critic):
            for index, (actor, optimizer) in enumerate(zip(self.actors, self.actor_optimizers)):
                loss, stats = self.actor_loss(index, obs, reference)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if index + 1 < self.num_actors:
                    with torch.no_grad():
                        mean, log_std = actor(obs)
                    reference = (mean, log_std.exp())
                log_prob_0 = stats["log_prob"] if index == 0 else log_prob_0
                losses.append(loss.detach())
                qs.append(stats["q"])
                w2s.append(stats.get("w2", torch.zeros((), device=self.device)))
                entropies.append(-stats["log_prob"].mean())
        metrics = {"actor_loss": torch.stack(losses), "actor_q": torch.stack(qs),
                   "w2": torch.stack(w2s), "entropy": torch.stack(entropies)}
        return metrics, log_prob_0

    # ------------------------------------------------------------------ temperature
    def update_alpha(self, log_prob_0: torch.Tensor) -> torch.Tensor:
        """L_α = −E[log α·(log π0(a|s) + H_target)]; α is shared by every actor."""
        loss = -(self.log_alpha * (log_prob_0 + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.alpha_optimizer.step()
        return loss.detach()

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One POSAC update; returns detached metrics (read them on the host only to log)."""
        metrics = self.update_critic(batch)
        actor_metrics, log_prob_0 = self.update_actors(batch.obs)
        metrics.update(actor_metrics)
        if self.config.automatic_entropy_tuning:
            metrics["alpha_loss"] = self.update_alpha(log_prob_0)
        metrics["alpha"] = self.alpha
        self.num_updates += 1
        if self.num_updates % self.config.target_update_interval == 0:
            soft_update_(self.critic_target, self.critic, self.config.tau)
            if self.actor0_target is not None:
                soft_update_(self.actor0_target, self.actors[0], self.config.tau)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = {
            "actors": [actor.state_dict() for actor in self.actors],
            "actor_optimizers": [opt.state_dict() for opt in self.actor_optimizers],
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "generator": self.generator.get_state(),
            "num_updates": self.num_updates,
        }
        if self.actor0_target is not None:
            state["actor0_target"] = self.actor0_target.state_dict()
        if self.config.automatic_entropy_tuning:
            state["alpha_optimizer"] = self.alpha_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for actor, actor_state in zip(self.actors, state["actors"], strict=True):
            actor.load_state_dict(actor_state)
        for opt, opt_state in zip(self.actor_optimizers, state["actor_optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.generator.set_state(state["generator"])
        self.num_updates = state["num_updates"]
        if self.actor0_target is not None:
            self.actor0_target.load_state_dict(state["actor0_target"])
        if self.config.automatic_entropy_tuning:
            self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
