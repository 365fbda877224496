"""The POGO offline agent: TD3's twin-Q critic and a JKO chain of N actors.

One update (`POGO.update`) on a minibatch (s, a, r, s', m), m = 1 − terminal:
  1. critic, every call, with a' from actor 0's target network and TD3's smoothing noise:
         a' = clip(π0'(s', z) + clip(σ·ε, −c, c)·max_action, −max_action, max_action),
         y  = r + γ·m·min(Q1', Q2')(s', a'),
         L_Q = E[(Q1(s, a) − y)²] + E[(Q2(s, a) − y)²];
  2. actors, every `policy_freq`-th call, in order 0, 1, …, N−1, with the critic frozen:
         L_0 = −λ_0·E_s[Q1(s, π0(s))] + w_0·E_s[W2²(π0(·|s), δ_a)],
         L_i = −λ_i·E_s[Q1(s, πi(s))] + w_i·E_s[W2²(πi(·|s), sg[πi−1(·|s)])],   i ≥ 1,
     where πi−1 is the previous actor after its own update in this step, and
     W2²(π0(·|s), δ_a) = E_z‖π0(s, z) − a‖² is the squared distance to the data action
     (the seed's point-wise data term; `data_term='energy'` replaces it with the energy
     score ES_1 = E‖π0(s, z) − a‖ − ½·E‖π0(s, z) − π0(s, z′)‖, and `data_term='anchored'`
     with ‖E_z π0(s, z) − a‖² + ES_1, see below);
     λ_i = 1, or λ_i = q_normalize / E_s|Q1(s, πi(s))| (detached) as in TD3+BC;
  3. after the actors, Polyak-average the critic target and every actor target (τ).

All distances use the cost ‖x − y‖² summed over action dimensions (`transport.py`).

Estimators. A stochastic chain actor i ≥ 1 draws K samples per state, πi(s, z_k) with
z_k ~ N(0, I): all K enter its distance (against K fresh samples of the updated πi−1), the
first one its Q term (one critic row per state, as the seed's single sample). With
`distance='unbiased'` it draws 2K, two independent sets, against 2K of πi−1
(transport.unbiased_w2_squared): the plain K-sample W2² (exact or Sinkhorn) is smallest, in
expectation, for an actor narrower than its reference (0.31× its spread in 6-D at K = 4),
so a chain of them shrinks link by link; the unbiased form's expectation is zero at the
reference. Actor 0's point-wise reference is a Dirac, against which one sample per state
already gives an unbiased E_z‖π0(s, z) − a‖² (as in the seed), so it draws one; that term
is minimised by a Dirac at the data's conditional mean, so actor 0 loses the behaviour
policy's spread. `data_term='energy'` draws K and scores them with the energy score
(transport.energy_score), a strictly proper scoring rule: in expectation over the data it is
minimised only by the data's conditional distribution, spread included, from one data action
per state. Its pull is bounded (a unit vector towards a per sample), so where the Q term
grows with the critic's scale it drags the mean off the data and the score's best spread
widens with the offset (halfcheetah medium, w = 10). `data_term='anchored'` adds the
squared error of the mean, ‖E_z π0(s, z) − a‖² (transport.anchored_energy_score): the seed's
pull on the mean, growing with the distance, without its collapsing tr Cov term; still
strictly proper.
A deterministic actor has K = 1: its distances are ‖πi(s) − πi−1(s)‖² and
‖π0(s) − a‖².

Randomness: the agent owns one torch.Generator per stream, each seeded by
utils.stream_seed (init, then td: 'agent', actor, chain, act), so no two share a stream:
  - init: network initialisation (critic, then actors 0 … N−1; on the CPU);
  - td: the TD target, per critic update z [B, A] (stochastic actor only), then ε [B, A];
  - actor: actor 0's samples [B, 1, A] per actor update ([B, K, A] with the energy or
    anchored data term; stochastic actors only);
  - chain: per actor update (stochastic actors only), actors 1 … N−1's samples [B, K, A]
    ([B, 2K, A] with the unbiased distance) in order, then the references: the updated
    actor i−1's samples, as many, for i = 1 … N−1 in order;
  - act: stochastic actions from `act` (evaluation never moves the training streams).
The critic and actor 0 see neither the chain's parameters nor its randomness, so they
train exactly as in a 1-actor run with the same seed, whatever N is.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from model import NoiseInputActor, QNetwork
from replay_memory import Batch
from transport import (MAX_EXACT_SAMPLES, METHODS, anchored_energy_score, energy_score,
                       sample_w2_squared)
from utils import (adam, check_agent_settings, descend_, frozen, renamed_metric, soft_update_,
                   stream_seed)

GENERATORS = {"td": "agent", "actor": "actor", "chain": "chain", "act": "act"}  # → stream
DATA_TERMS = ("pointwise", "energy", "anchored")
# actor 0's scores of K samples against the data action, beside the point-wise W2² to a Dirac
DATA_SCORES = {"energy": energy_score, "anchored": anchored_energy_score}


@dataclass(frozen=True)
class POGOConfig:
    """Agent hyper-parameters, named as train_pogo.py's flags (train_pogo.py builds it from
    them by field name). `w2_weights` holds w_0 (actor 0's data term) … w_{N−1}, in the
    summed ‖x − y‖² convention (train_pogo.py converts `--weight-units seed`);
    `num_samples` (K) is ignored by deterministic actors (K = 1); `distance` is the chain's
    (exact, sinkhorn or unbiased), `data_term` actor 0's (pointwise, energy or anchored);
    `q_normalize` is TD3+BC's α (None: λ_i = 1). Validated on creation.

    `distance` defaults to 'exact': at K = 4 it is ~13x faster than geomloss's Sinkhorn
    (forward + backward, 256 states) and exact, where the seed's Sinkhorn (blur 0.05)
    differs from it by a median 1.4% (up to 11%) per state and by ~20% in gradient on
    samples of neighbouring chain actors (benchmarks/bench_pogo.py)."""
    num_actors: int = 1
    w2_weights: tuple[float, ...] = (1.0,)
    distance: str = "exact"
    data_term: str = "pointwise"
    num_samples: int = 4
    deterministic_actors: bool = False
    hidden_size: int = 256
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2
    noise_clip: float = 0.5
    policy_freq: int = 2
    q_normalize: float | None = None
    sinkhorn_blur: float = 0.05

    def __post_init__(self) -> None:
        check_agent_settings(self)
        if self.distance not in METHODS:
            raise ValueError(f"distance must be one of {METHODS}, got {self.distance!r}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {self.num_samples}")
        if self.data_term not in DATA_TERMS:
            raise ValueError(f"data_term must be one of {DATA_TERMS}, got {self.data_term!r}")
        if self.data_term != "pointwise" and (self.deterministic_actors
                                              or self.num_samples < 2):
            raise ValueError(f"data_term {self.data_term!r} scores a distribution: it needs "
                             "stochastic actors and num_samples ≥ 2")
        if (self.distance == "unbiased" and not self.deterministic_actors
                and self.num_samples < 2):
            raise ValueError("distance 'unbiased' with num_samples 1 compares only the means; "
                             "use num_samples ≥ 2")
        if (not self.deterministic_actors and self.distance in ("exact", "unbiased")
                and self.num_samples > MAX_EXACT_SAMPLES):
            raise ValueError(f"the {self.distance} distance is limited to num_samples ≤ "
                             f"{MAX_EXACT_SAMPLES} (got {self.num_samples}); use 'sinkhorn'")
        if self.policy_freq < 1:
            raise ValueError(f"policy_freq must be at least 1, got {self.policy_freq}")
        if self.q_normalize is not None and not 0.0 < self.q_normalize < math.inf:
            raise ValueError(f"q_normalize must be positive or None, got {self.q_normalize}")
        for name in ("policy_noise", "noise_clip"):
            if not 0.0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if not 0.0 < self.sinkhorn_blur < math.inf:
            raise ValueError(f"sinkhorn_blur must be positive, got {self.sinkhorn_blur}")

    def cost_warning(self) -> str | None:
        """A line for a valid setting that is far slower than its neighbours, else None: the
        exact and unbiased distances at K = MAX_EXACT_SAMPLES (8) enumerate 8! = 40,320
        plans per W2², about 55× the time of K = 6 (exact; unbiased: six W2² per state,
        about 1.9 s per chain actor's update of 256 states on one CPU thread)."""
        if (self.deterministic_actors or self.distance == "sinkhorn" or self.num_actors < 2
                or self.num_samples < MAX_EXACT_SAMPLES):
            return None
        per_state = "six W2² per state, each" if self.distance == "unbiased" else "each W2²"
        return (f"num_samples {self.num_samples} with the {self.distance} distance enumerates "
                f"{math.factorial(self.num_samples):,} plans for {per_state} (about 55× the "
                f"time of num_samples 6); use num_samples ≤ 7, or the 'sinkhorn' distance")

    @classmethod
    def td3_bc(cls, action_dim: int, bc_weight: float = 1.0, **fields: Any) -> POGOConfig:
        """TD3+BC (Fujimoto & Gu, 2021) as a configuration: one deterministic actor,
        L = −(2.5/E|Q|)·E[Q1(s, π(s))] + bc_weight·E[mean_d (π(s) − a)_d²]; the mean over
        action dimensions is w_0 = bc_weight/dim(A) in the summed convention (TD3+BC's
        bc_weight is 1). `fields` set the other settings."""
        return cls(**{**fields, "num_actors": 1, "w2_weights": (bc_weight / action_dim,),
                      "deterministic_actors": True, "q_normalize": 2.5})


class POGO:
    def __init__(self, obs_dim: int, action_dim: int, max_action: float, config: POGOConfig,
                 seed: int, device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self.action_dim = action_dim
        self.max_action = float(max_action)
        # K samples per state for a stochastic actor; a deterministic one has one action
        self.stochastic = not config.deterministic_actors
        self.num_samples = config.num_samples if self.stochastic else 1
        # samples per state: actor 0 against the data, the chain against its reference
        self.data_samples = self.num_samples if config.data_term != "pointwise" else 1
        self.chain_samples = self.num_samples * (2 if config.distance == "unbiased" else 1)
        init_generator = torch.Generator().manual_seed(stream_seed(seed, "init"))
        self.generators = {name: torch.Generator(self.device).manual_seed(
                               stream_seed(seed, stream))
                           for name, stream in GENERATORS.items()}
        # the critic and actor 0 first: their initialisation does not depend on N
        self.critic = QNetwork(obs_dim, action_dim, config.hidden_size,
                               init_generator).to(self.device)
        self.actors = [NoiseInputActor(obs_dim, action_dim, config.hidden_size, max_action,
                                       self.stochastic, init_generator).to(self.device)
                       for _ in range(config.num_actors)]
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_targets = [copy.deepcopy(actor).requires_grad_(False)
                              for actor in self.actors]
        self.critic_optimizer = adam(self.critic.parameters(), config.lr)
        self.actor_optimizers = [adam(actor.parameters(), config.lr) for actor in self.actors]
        self.w2_weights = torch.tensor(config.w2_weights, device=self.device)  # for the metrics
        self.num_updates = 0  # critic updates so far; actors update at every policy_freq-th
        self.actor_metrics: dict[str, torch.Tensor] | None = None  # from the latest actor update

    @property
    def num_actors(self) -> int:
        return len(self.actors)

    def noise(self, shape: tuple[int, ...], stream: str) -> torch.Tensor:
        """Standard normal draws from the agent's generator for `stream`."""
        return torch.randn(shape, generator=self.generators[stream], device=self.device)

    def sample_actions(self, actor: NoiseInputActor, obs: torch.Tensor, stream: str,
                       num_samples: int | None = None) -> torch.Tensor:
        """πi(s, z_k) for k = 1 … K, z_k ~ N(0, I) from `stream`: [B, K, A], K = num_samples or
        the configured K (K = 1 and no draw for a deterministic actor)."""
        noise = (self.noise((len(obs), num_samples or self.num_samples, self.action_dim), stream)
                 if self.stochastic else None)
        return actor(obs.unsqueeze(-2), noise)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, actor_index: int, deterministic: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """Actions of actor `actor_index` for obs [..., obs_dim]: tanh(MLP([s, 0]))·max_action
        when deterministic (or for a deterministic actor), else z ~ N(0, I) from `generator`
        or, by default, the agent's own `act` stream."""
        actor = self.actors[actor_index]
        noise = None
        if not deterministic and self.stochastic:
            noise = torch.randn(*obs.shape[:-1], self.action_dim, device=self.device,
                                generator=generator or self.generators["act"])
        return actor(obs, noise)

    # ----------------------------------------------------------------------- critic
    @torch.no_grad()
    def target_action(self, next_obs: torch.Tensor) -> torch.Tensor:
        """a' = clip(π0'(s', z) + clip(σ·ε, −c, c)·max_action, −max_action, max_action):
        actor 0's target network (z ~ N(0, I) for a stochastic actor) plus TD3's target
        smoothing, whose noise is clipped at ±c·max_action (σ·max_action its scale)."""
        shape = (len(next_obs), self.action_dim)
        z = self.noise(shape, "td") if self.stochastic else None
        action = self.actor_targets[0](next_obs, z)
        smoothing = ((self.config.policy_noise * self.noise(shape, "td"))
                     .clamp(-self.config.noise_clip, self.config.noise_clip) * self.max_action)
        return (action + smoothing).clamp(-self.max_action, self.max_action)

    @torch.no_grad()
    def td_target(self, batch: Batch) -> torch.Tensor:
        """y = r + γ·m·min(Q1', Q2')(s', a'), a' from `target_action`; m = 0 only where the
        episode terminated."""
        if batch.reward.shape != batch.mask.shape or batch.reward.shape != batch.obs.shape[:1]:
            # a [B, 1] reward would broadcast against [B] Q values into a [B, B] loss
            raise ValueError(f"reward and mask must have shape [B] = {tuple(batch.obs.shape[:1])},"
                             f" got {tuple(batch.reward.shape)} and {tuple(batch.mask.shape)}")
        next_q = self.critic_target.min_q(batch.next_obs, self.target_action(batch.next_obs))
        return batch.reward + self.config.gamma * batch.mask * next_q

    def update_critic(self, batch: Batch) -> dict[str, torch.Tensor]:
        """L_Q = E[(Q1(s, a) − y)²] + E[(Q2(s, a) − y)²], y = td_target(batch)."""
        target = self.td_target(batch)
        q1, q2 = self.critic(batch.obs, batch.action)
        loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        descend_(self.critic_optimizer, loss)
        return {"critic_loss": loss.detach(), "q_data": q1.detach().mean(),
                "q_target": target.mean()}

    # ----------------------------------------------------------------------- actors
    def q_scales(self, q: torch.Tensor) -> torch.Tensor:
        """λ_i = q_normalize / E_s|Q1(s, πi(s))| per actor (detached; TD3+BC's λ), or 1."""
        if self.config.q_normalize is None:
            return torch.ones(len(q), device=self.device)
        return self.config.q_normalize / q.detach().abs().mean(-1).clamp_min(1e-8)

    def update_actors(self, obs: torch.Tensor, data_action: torch.Tensor
                      ) -> dict[str, torch.Tensor]:
        """One JKO step for every actor, in order 0, 1, …, N−1:

            L_0 = −λ_0·E_s[Q1(s, π0(s))] + w_0·E_s[data_term(π0(·|s), a)],
            L_i = −λ_i·E_s[Q1(s, πi(s))] + w_i·E_s[W2²(πi(·|s), sg[πi−1(·|s)])],   i ≥ 1,

        with πi−1 after its update in this step; data_term is W2²(π0, δ_a) = E‖π0 − a‖²
        (point-wise), the energy score or the anchored energy score, W2² the configured
        sample distance.

        The Q terms depend only on each actor's own parameters and the frozen critic, and an
        actor's parameters do not change before its own turn, so every actor's Q-term
        gradient at its actions comes from one critic call on the stacked [N·B] batch and
        one backward pass. Then, in order, each actor adds its distance term (the surrogate
        ⟨actions, ∂(−λ_i·E Q1)/∂actions⟩ has the Q term's gradient), backpropagates through
        its own network, steps, and is sampled again as the next actor's reference."""
        cfg = self.config
        actions = [self.sample_actions(self.actors[0], obs, "actor", self.data_samples)]
        actions += [self.sample_actions(actor, obs, "chain", self.chain_samples)
                    for actor in self.actors[1:]]
        with frozen(self.critic):
            first = torch.stack([action[:, 0] for action in actions])  # [N, B, A]
            q = self.critic.q1(torch.cat([obs.expand(len(first), *obs.shape), first], -1))
            q = q.squeeze(-1)  # [N, B]
            scales = self.q_scales(q)
            q_terms = q.mean(-1)
            (q_grad,) = torch.autograd.grad(-(scales * q_terms).sum(), first)
        w2 = []
        reference = data_action.unsqueeze(-2)  # actor 0's: the Dirac at the data action
        for i, (actor, optimizer) in enumerate(zip(self.actors, self.actor_optimizers)):
            distance = self.transport_term(i, actions[i], reference).mean()
            surrogate = (actions[i][:, 0] * q_grad[i]).sum() + cfg.w2_weights[i] * distance
            descend_(optimizer, surrogate)
            w2.append(distance.detach())
            if i + 1 < self.num_actors:
                with torch.no_grad():
                    reference = self.sample_actions(actor, obs, "chain", self.chain_samples)
        w2 = torch.stack(w2)
        q_terms = q_terms.detach()
        return {"actor_loss": -scales * q_terms + self.w2_weights * w2, "actor_q": q_terms,
                "w2": w2, "q_scale": scales}

    def transport_term(self, i: int, actions: torch.Tensor, reference: torch.Tensor
                       ) -> torch.Tensor:
        """Actor i's term per state: actor 0's data term against the data action
        (reference [B, 1, A]), or the chain distance to actor i−1's samples."""
        if i == 0 and self.config.data_term != "pointwise":
            return DATA_SCORES[self.config.data_term](actions, reference)
        return sample_w2_squared(actions, reference, self.config.distance,
                                 self.config.sinkhorn_blur)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One POGO update; returns detached metrics (read them on the host only to log).
        The actor metrics ([N] tensors: actor_loss, actor_q, w2, q_scale) are those
        of the latest actor update, absent before the first."""
        metrics = self.update_critic(batch)
        self.num_updates += 1
        if self.num_updates % self.config.policy_freq == 0:
            self.actor_metrics = self.update_actors(batch.obs, batch.action)
            soft_update_(self.critic_target, self.critic, self.config.tau)
            for target, actor in zip(self.actor_targets, self.actors):
                soft_update_(target, actor, self.config.tau)
        if self.actor_metrics is not None:
            metrics.update(self.actor_metrics)
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only: loads with torch.load(..., weights_only=True)."""
        state = {
            "actors": [actor.state_dict() for actor in self.actors],
            "actor_targets": [target.state_dict() for target in self.actor_targets],
            "actor_optimizers": [opt.state_dict() for opt in self.actor_optimizers],
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "generators": {name: gen.get_state() for name, gen in self.generators.items()},
            "num_updates": self.num_updates,
        }
        if self.actor_metrics is not None:
            state["actor_metrics"] = dict(self.actor_metrics)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for modules, key in ((self.actors, "actors"), (self.actor_targets, "actor_targets"),
                             (self.actor_optimizers, "actor_optimizers")):
            for module, module_state in zip(modules, state[key], strict=True):
                module.load_state_dict(module_state)
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        for name, gen in self.generators.items():
            gen.set_state(state["generators"][name])
        self.num_updates = state["num_updates"]
        self.actor_metrics = (None if "actor_metrics" not in state else
                              {renamed_metric(k): v.to(self.device)
                               for k, v in state["actor_metrics"].items()})
