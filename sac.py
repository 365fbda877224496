"""The POSAC agent: SAC with a JKO chain of tanh-Gaussian actors sharing one twin-Q critic.

One update (`POSAC.update`) on a minibatch:
  1. critic:  y = r + γ·m·(min(Q1', Q2')(s', a') − α·log π0(a'|s')),  a' ~ π0(·|s'),
              L_Q = (Q1(s, a) − y)² + (Q2(s, a) − y)²  (batch means);
  2. actors, in order 0, 1, …, N−1, each with the critic frozen:
              L_0 = E[α·log π0(a|s) − min Q(s, a)],
              L_i = λ_i·E[α·log πi(a|s) − min Q(s, a)] + w_i·W2²(πi, sg[πi−1]),
              where πi−1 is the previous actor after its own update in this step;
     offline (data_weight w_D > 0, on a dataset's (s, a_D)), actor 0 is pulled to the data
     by the log score:
              L_0 = λ_0·E[α·log π0(a|s) − min Q(s, a)] + w_D·E[−log π0(a_D|s)],
     a strictly proper scoring rule, so it keeps the behaviour policy's spread (a W2² to
     the data action, a Dirac, would collapse it), with λ_0 as the λ_i;
  3. temperature (optional): L_α = −E[log α·(log π0(a|s) + H_target)], H_target = −dim(A);
  4. every `target_update_interval` updates, Polyak-average the target critic (and the
     target copy of actor 0 when the TD target uses it).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from model import GaussianPolicy, QNetwork
from replay_memory import Batch
from transport import gaussian_w2_squared_log_std
from utils import (adam, check_agent_settings, descend_, frozen, load_moments, soft_update_,
                   stream_seed, with_finite)

CRITIC_TARGET_POLICIES = ("online", "target")
Q_NORMALIZE_FORMS = ("abs-mean", "mean-abs")
CHAIN_UPDATES = ("sequential", "parallel")


@dataclass(frozen=True)
class SACConfig:
    """Agent hyper-parameters, named as train_sac.py's flags (train_sac.py builds it from
    them by field name; a test keeps the defaults in step). Validated on creation."""
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
    q_normalize_form: str = "abs-mean"
    chain_update: str = "sequential"
    data_weight: float = 0.0

    def __post_init__(self) -> None:
        check_agent_settings(self)
        if self.w2_weights[0] != 0.0:
            raise ValueError(f"w2_weights[0] must be 0.0: actor 0 learns with the plain SAC "
                             f"loss (got {self.w2_weights})")
        if not 0.0 <= self.data_weight < math.inf:
            raise ValueError(f"data_weight must be non-negative, got {self.data_weight}")
        if not (0.0 < self.alpha < math.inf):
            raise ValueError(f"alpha must be positive, got {self.alpha}")
        if self.target_update_interval < 1:
            raise ValueError(f"target_update_interval must be at least 1, "
                             f"got {self.target_update_interval}")
        for name, choices in (("critic_target_policy", CRITIC_TARGET_POLICIES),
                              ("q_normalize_form", Q_NORMALIZE_FORMS),
                              ("chain_update", CHAIN_UPDATES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")


class POSAC:
    def __init__(self, obs_dim: int, action_low: torch.Tensor, action_high: torch.Tensor,
                 config: SACConfig, seed: int, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        # Randomness that the critic and actor 0 see (their initialisation, then ε for
        # acting, the TD target and actor 0's loss) comes first and apart from the chain's,
        # so they train exactly as in a 1-actor run with the same seed, whatever N is.
        init_generator = torch.Generator().manual_seed(stream_seed(seed, "init"))
        self.generator = torch.Generator(self.device).manual_seed(stream_seed(seed, "agent"))
        self.chain_generator = torch.Generator(self.device).manual_seed(
            stream_seed(seed, "chain"))
        action_dim = action_low.numel()
        self.critic = QNetwork(obs_dim, action_dim, config.hidden_size,
                               init_generator).to(self.device)
        self.actors = [GaussianPolicy(obs_dim, action_dim, config.hidden_size, action_low,
                                      action_high, init_generator).to(self.device)
                       for _ in range(config.num_actors)]
        self.actor_optimizers = [adam(actor.parameters(), config.lr)
                                 for actor in self.actors]
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_optimizer = adam(self.critic.parameters(), config.lr)
        self.actor0_target = (copy.deepcopy(self.actors[0]).requires_grad_(False)
                              if config.critic_target_policy == "target" else None)
        self.log_alpha = torch.tensor(float(config.alpha), device=self.device).log()
        self.target_entropy = -float(action_dim)
        if config.automatic_entropy_tuning:
            self.log_alpha.requires_grad_(True)
            self.alpha_optimizer = adam([self.log_alpha], config.lr)
        # for the metrics: each actor's weight on its term in "w2" (actor 0's: the data's)
        self.w2_weights = torch.tensor((config.data_weight, *config.w2_weights[1:]),
                                       device=self.device)
        self.num_updates = 0

    @property
    def num_actors(self) -> int:
        return len(self.actors)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    def noise(self, shape: torch.Size, generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal ε from the agent's own generator (actor 0's unless given)."""
        return torch.randn(shape, generator=generator or self.generator, device=self.device)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, actor_index: int) -> torch.Tensor:
        """Exploration actions of actor `actor_index`: tanh(μ + σ·ε)·scale + bias, with ε
        from the agent's generator (evaluation uses its own fixed noise, in train_sac.py)."""
        actor = self.actors[actor_index]
        mean, log_std = actor(obs)
        return actor.sample(mean, log_std, self.noise(mean.shape))[0]

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
        """L_Q = E[(Q1(s, a) − y)²] + E[(Q2(s, a) − y)²], y = td_target(batch)."""
        target = self.td_target(batch)
        q1, q2 = self.critic(batch.obs, batch.action)
        loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        descend_(self.critic_optimizer, loss)
        return {"critic_loss": loss.detach(), "q_data": q1.detach().mean()}

    # ----------------------------------------------------------------------- actors
    def sac_terms(self, obs: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """E_s[α·log πi(a|s) − min(Q1,Q2)(s,a)], a ~ πi reparameterised, for every actor i.

        `mean`, `log_std` are the actors' stacked pre-squash outputs [N, B, A]; the critic
        (frozen by the caller) sees all N·B state-action pairs in one call. Returns the N
        terms and, per actor and state, α·log π − min Q (detached), log π and min Q."""
        noise = torch.cat([self.noise(mean[:1].shape),
                           self.noise(mean[1:].shape, self.chain_generator)])
        action, log_prob = self.actors[0].sample(mean, log_std, noise)
        q = self.critic.min_q(obs.expand(len(mean), *obs.shape), action)
        per_state = self.alpha * log_prob - q
        return per_state.mean(-1), per_state.detach(), log_prob.detach(), q.detach()

    def q_scales(self, sac_terms: torch.Tensor, per_state: torch.Tensor) -> torch.Tensor:
        """λ_0 = 1 and, for i ≥ 1, λ_i = 1/|E[α·log πi − min Q]| (q_normalize_form 'abs-mean',
        the design's) or 1/E|α·log πi − min Q| ('mean-abs', guarded: it cannot blow up when
        the batch mean crosses zero, as TD3+BC's 1/E|Q|), detached; all 1 when q_normalize
        is off. Actor i ≥ 1's SAC term is then scale-free against its W2 term, and offline
        (data_weight > 0) actor 0's against its data term, as TD3+BC's Q term.
        `per_state` holds α·log πi − min Q per actor and state [N, B]."""
        scales = torch.ones_like(sac_terms)
        if self.config.q_normalize:
            first = 0 if self.config.data_weight > 0 else 1
            size = (sac_terms.abs() if self.config.q_normalize_form == "abs-mean"
                    else per_state.abs().mean(-1))
            scales[first:] = 1.0 / size[first:].detach().clamp_min(1e-8)
        return scales

    def next_reference(self, actor: GaussianPolicy, obs: torch.Tensor, mean: torch.Tensor,
                       log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The next actor's W2 reference (μ, σ): `actor` after its update in this step, or,
        with chain_update='parallel', its outputs from before the step (`mean`, `log_std`)."""
        if self.config.chain_update == "parallel":
            return mean.detach(), log_std.detach().exp()
        with torch.no_grad():
            mean, log_std = actor(obs)
        return mean, log_std.exp()

    def update_actors(self, obs: torch.Tensor, data_action: torch.Tensor
                      ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One JKO step for every actor, in order 0, 1, …, N−1:

            L_0 = λ_0·E[α·log π0 − min Q] + w_D·E[−log π0(a_D|s)]   (w_D = 0 online: λ_0 = 1),
            L_i = λ_i·E[α·log πi − min Q] + w_i·W2²(πi, sg[πi−1]),

        where πi−1 is the previous actor after its own update in this step (with
        chain_update='parallel': before this step, which saves one forward pass per actor).

        The SAC terms depend only on each actor's own parameters and the frozen critic, so
        all N are evaluated in one critic call and differentiated in one backward pass down
        to the actors' outputs: g_i = ∂(λ_i·E[α·log πi − min Q])/∂(μ_i, log σ_i). Each actor
        then descends the surrogate

            L̃_i = ⟨(μ_i, log σ_i), sg[g_i]⟩ + w_i·W2²(πi, sg[πi−1]),

        whose gradient in actor i's parameters is L_i's (the chain rule through its outputs),
        and is evaluated again as the next actor's reference."""
        with frozen(self.critic):
            outputs = [actor(obs) for actor in self.actors]
            mean = torch.stack([actor_mean for actor_mean, _ in outputs])
            log_std = torch.stack([actor_log_std for _, actor_log_std in outputs])
            sac_terms, per_state, log_prob, q = self.sac_terms(obs, mean, log_std)
            q_scales = self.q_scales(sac_terms, per_state)
            grad_mean, grad_log_std = torch.autograd.grad((q_scales * sac_terms).sum(),
                                                          (mean, log_std))
        w2 = torch.zeros_like(sac_terms)
        reference = None
        for i, (actor, optimizer) in enumerate(zip(self.actors, self.actor_optimizers)):
            actor_mean, actor_log_std = outputs[i]
            loss = (actor_mean * grad_mean[i]).sum() + (actor_log_std * grad_log_std[i]).sum()
            if i == 0 and self.config.data_weight > 0:
                log_score = -actor.log_prob(actor_mean, actor_log_std, data_action).mean()
                loss = loss + self.config.data_weight * log_score
                w2[0] = log_score.detach()
            if reference is not None:
                distance = gaussian_w2_squared_log_std(actor_mean, actor_log_std, *reference)
                loss = loss + self.config.w2_weights[i] * distance
                w2[i] = distance.detach()
            descend_(optimizer, loss)
            if i + 1 < self.num_actors:
                reference = self.next_reference(actor, obs, actor_mean, actor_log_std)
        metrics = {"actor_loss": q_scales * sac_terms.detach() + self.w2_weights * w2,
                   "actor_q": q.mean(-1), "w2": w2, "entropy": -log_prob.mean(-1),
                   "q_scale": q_scales}
        return metrics, log_prob[0]

    # ------------------------------------------------------------------ temperature
    def update_alpha(self, log_prob_0: torch.Tensor) -> torch.Tensor:
        """L_α = −E[log α·(log π0(a|s) + H_target)]; α is shared by every actor."""
        loss = -(self.log_alpha * (log_prob_0 + self.target_entropy)).mean()
        descend_(self.alpha_optimizer, loss)
        return loss.detach()

    # ---------------------------------------------------------------------- update
    def learn(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Steps 1-3 of an update (critic, actors, temperature): device work only, the same
        on every call, so train_sac.py can record it as a CUDA graph. Returns detached
        metrics (read them on the host only to log)."""
        metrics = self.update_critic(batch)
        actor_metrics, log_prob_0 = self.update_actors(batch.obs, batch.action)
        metrics.update(actor_metrics)
        if self.config.automatic_entropy_tuning:
            metrics["alpha_loss"] = self.update_alpha(log_prob_0)
        metrics["alpha"] = self.alpha
        return metrics

    def count_update(self) -> bool:
        """Count one update; whether the target networks are due (step 4)."""
        self.num_updates += 1
        return self.num_updates % self.config.target_update_interval == 0

    def update_targets(self) -> None:
        """Step 4: θ' ← τ·θ + (1 − τ)·θ' for the critic (and actor 0's copy, if used)."""
        soft_update_(self.critic_target, self.critic, self.config.tau)
        if self.actor0_target is not None:
            soft_update_(self.actor0_target, self.actors[0], self.config.tau)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One POSAC update, steps 1-4."""
        metrics = self.learn(batch)
        if self.count_update():
            self.update_targets()
        return metrics

    def graphed_update(self, sample: Callable[[], Batch], sample_generator: torch.Generator
                       ) -> Callable[[], tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """`update(sample())` and its all-finite check as a call without arguments whose
        device work replays CUDA graphs (cuda_graphs.py): steps 1-3 with the sampling as
        one graph, step 4 as another, launched when due. `sample` draws from
        `sample_generator` only; the results are update()'s."""
        from cuda_graphs import Graphed

        learn = Graphed(lambda: with_finite(self.learn(sample())),
                        [self.generator, self.chain_generator, sample_generator])
        update_targets = Graphed(self.update_targets)

        def update() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            metrics_and_finite = learn()
            if self.count_update():
                update_targets()
            return metrics_and_finite
        update.graphs = (learn, update_targets)  # type: ignore[attr-defined]  (for the tests)
        return update

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
            "chain_generator": self.chain_generator.get_state(),
            "num_updates": self.num_updates,
        }
        if self.actor0_target is not None:
            state["actor0_target"] = self.actor0_target.state_dict()
        if self.config.automatic_entropy_tuning:
            state["alpha_optimizer"] = self.alpha_optimizer.state_dict()
        return state

    def load_trained(self, state: dict[str, Any], fresh_actor0_optimizer: bool = False) -> None:
        """Continue a trained agent (e.g. an offline run's final checkpoint): its actors,
        critic and target critic, their optimisers' moments (under this config's lr) and α
        (with its optimiser's when both tune it), not its random streams or update count.
        Actor 0's target copy, where this config uses one, is the trained one's if it kept
        one, else actor 0 itself.

        With `fresh_actor0_optimizer` actor 0's optimiser starts anew: its moments belong to
        another loss (offline, λ_0·SAC + the data term, with λ_0 near 1/|Q|). Under the
        online loss its gradients are about 1/λ_0 times larger, and Adam's squared-gradient
        average, with bias correction spent, catches up over thousands of steps, so actor 0's
        first hundreds of steps would be up to several times a fresh Adam's
        (benchmarks/adam_switch.py)."""
        for actor, actor_state in zip(self.actors, state["actors"], strict=True):
            actor.load_state_dict(actor_state)
        for i, (opt, opt_state) in enumerate(zip(self.actor_optimizers,
                                                 state["actor_optimizers"], strict=True)):
            if i > 0 or not fresh_actor0_optimizer:
                load_moments(opt, opt_state)
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        load_moments(self.critic_optimizer, state["critic_optimizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        if self.actor0_target is not None:
            self.actor0_target.load_state_dict(state.get("actor0_target", state["actors"][0]))
        if self.config.automatic_entropy_tuning and "alpha_optimizer" in state:
            load_moments(self.alpha_optimizer, state["alpha_optimizer"])

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Exactly the agent that state_dict() saved (resume): load_trained, then the random
        streams and the update count."""
        self.load_trained(state)
        self.generator.set_state(state["generator"])
        self.chain_generator.set_state(state["chain_generator"])
        self.num_updates = state["num_updates"]
