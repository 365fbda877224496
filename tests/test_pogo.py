"""POGO's update against a from-the-equations reference written independently here.

The reference evaluates actors as tanh(net([s, z]))·max_action from their raw MLPs, the
exact W2² by brute force over itertools.permutations, the Sinkhorn term by calling geomloss
directly (×2), the unbiased form from brute-force W2² of the two halves of each sample set,
the distance to the data action as (1/K) Σ_k ‖x_k − a‖² and the energy score by pairwise
loops over torch.linalg.vector_norm, and steps fresh
torch.optim.Adam (non-fused) on copies of the networks. It replays the documented draw
order from copies of the agent's generators. Gradients are compared, not only parameters
after a step (one Adam step is blind to constant factors in a loss)."""

import argparse
import copy
import io
import itertools

import pytest
import torch
import torch.nn.functional as F
from geomloss import SamplesLoss

from pogo import POGO, POGOConfig
from replay_memory import Batch
from train_pogo import summed_weights

OBS_DIM, ACTION_DIM, BATCH, MAX_ACTION = 5, 3, 32, 2.0


def make_agent(num_actors=3, seed=0, **overrides):
    settings = dict(num_actors=num_actors, w2_weights=(0.7,) + (0.4,) * (num_actors - 1),
                    hidden_size=32, lr=1e-2)
    return POGO(OBS_DIM, ACTION_DIM, MAX_ACTION, POGOConfig(**{**settings, **overrides}),
                seed=seed)


def make_batch(seed=0, size=BATCH):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(size)
    mask[::4] = 0.0
    return Batch(obs=torch.randn(size, OBS_DIM, generator=gen),
                 action=(torch.rand(size, ACTION_DIM, generator=gen) * 2 - 1) * MAX_ACTION,
                 reward=torch.randn(size, generator=gen),
                 next_obs=torch.randn(size, OBS_DIM, generator=gen), mask=mask)


def generator_copy(agent, name):
    gen = torch.Generator()
    gen.set_state(agent.generators[name].get_state())
    return gen


def actor_output(actor, obs, z):
    """tanh(net([s, z]))·max_action from the raw MLP; obs [B, D], z [B, K, A] or None."""
    if z is None:
        return (torch.tanh(actor.net(obs)) * MAX_ACTION).unsqueeze(1)
    s = obs.unsqueeze(1).expand(-1, z.shape[1], -1)
    return torch.tanh(actor.net(torch.cat([s, z], -1))) * MAX_ACTION


def brute_force_w2(x, y):
    """Per state: min over permutations p of (1/K) Σ_k ‖x_k − y_p(k)‖²."""
    k = x.shape[1]
    plans = [(x - y[:, list(p)]).pow(2).sum(-1).mean(-1)
             for p in itertools.permutations(range(k))]
    return torch.stack(plans).min(0).values


def energy_score_loops(x, action):
    """Per state: (1/K) Σ_k ‖x_k − a‖ − 1/(2K(K−1)) Σ_{k≠l} ‖x_k − x_l‖."""
    k = x.shape[1]
    norm = torch.linalg.vector_norm
    to_data = sum(norm(x[:, i] - action, dim=-1) for i in range(k)) / k
    between = sum(norm(x[:, i] - x[:, j], dim=-1)
                  for i in range(k) for j in range(k) if i != j)
    return to_data - between / (2 * k * (k - 1))


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def assert_all_close(actual, expected, **tolerance):
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, **tolerance)


def reference_critic_grads(snapshot, batch, config):
    """∇ of E[(Q1 − y)²] + E[(Q2 − y)²], y = r + γ·m·min Q'(s', a'),
    a' = clip(π0'(s', z) + clip(σ·ε, −c, c)·max_action, ±max_action)."""
    gen = snapshot["td"]
    with torch.no_grad():
        z = (torch.randn(BATCH, 1, ACTION_DIM, generator=gen)
             if not config.deterministic_actors else None)
        eps = torch.randn(BATCH, ACTION_DIM, generator=gen)
        policy = actor_output(snapshot["actor_targets"][0], batch.next_obs, z)[:, 0]
        noise = (config.policy_noise * eps).clamp(-config.noise_clip, config.noise_clip)
        next_action = (policy + noise * MAX_ACTION).clamp(-MAX_ACTION, MAX_ACTION)
        x = torch.cat([batch.next_obs, next_action], -1)
        target_critic = snapshot["critic_target"]
        next_q = torch.min(target_critic.q1(x), target_critic.q2(x)).squeeze(-1)
        y = batch.reward + config.gamma * batch.mask * next_q
    critic = snapshot["critic"]
    x = torch.cat([batch.obs, batch.action], -1)
    loss = (((critic.q1(x).squeeze(-1) - y) ** 2).mean()
            + ((critic.q2(x).squeeze(-1) - y) ** 2).mean())
    return torch.autograd.grad(loss, list(critic.parameters()))


def snapshot_of(agent):
    state = {name: copy.deepcopy(getattr(agent, name))
             for name in ("actors", "actor_targets", "critic", "critic_target")}
    state.update({name: generator_copy(agent, name) for name in agent.generators})
    return state


def reference_actor_steps(agent, snapshot, batch, critic, seed_weights=None):
    """The sequential chain from the equations: per actor its loss, its gradient at its
    pre-step parameters, its parameters after one Adam step, and (for the sensitivity check)
    its gradient had its reference been the predecessor from before this step. With
    `seed_weights`, the design seed's losses instead (its point-wise and Sinkhorn terms only):
    w_0·((π0 − a)²).mean() over states and action dimensions, and w_i times geomloss's
    Sinkhorn divergence as it is (cost ½‖x − y‖²)."""
    cfg = agent.config
    k = cfg.num_samples if not cfg.deterministic_actors else 1
    def draw(gen, samples=k):
        return (torch.randn(BATCH, samples, ACTION_DIM, generator=gen)
                if not cfg.deterministic_actors else None)

    # actor 0 against the data action: one sample per state (K for the energy scores);
    # the chain: K (2K, two independent sets, for the unbiased distance)
    data_k = k if cfg.data_term != "pointwise" else 1
    chain_k = 2 * k if cfg.distance == "unbiased" else k
    noise = [draw(snapshot["actor"], data_k)]
    noise += [draw(snapshot["chain"], chain_k) for _ in agent.actors[1:]]
    actors = snapshot["actors"]
    stale_actors = copy.deepcopy(actors)
    reference = stale_reference = None
    results = []
    for i, actor in enumerate(actors):
        x = actor_output(actor, batch.obs, noise[i])
        q = critic.q1(torch.cat([batch.obs, x[:, 0]], -1)).squeeze(-1)
        scale = 1.0 if cfg.q_normalize is None else cfg.q_normalize / q.detach().abs().mean()

        def distance(ref):
            if i == 0 and cfg.data_term == "energy":
                return energy_score_loops(x, batch.action).mean()
            if i == 0 and cfg.data_term == "anchored":  # ‖x̄ − a‖² − tr Ŝ/K, Ŝ unbiased
                mean_error = ((x.mean(1) - batch.action).pow(2).sum(-1)
                              - x.var(1, unbiased=True).sum(-1) / k)
                return (mean_error + energy_score_loops(x, batch.action)).mean()
            if i == 0 and seed_weights is not None:
                return (x - batch.action.unsqueeze(1)).pow(2).mean()
            if i == 0:
                return (x - batch.action.unsqueeze(1)).pow(2).sum(-1).mean()
            if cfg.distance == "exact":
                return brute_force_w2(x, ref).mean()
            if cfg.distance == "unbiased":
                a, a_copy, b, b_copy = x[:, :k], x[:, k:], ref[:, :k], ref[:, k:]
                cross = sum(brute_force_w2(u, v) for u in (a, a_copy) for v in (b, b_copy))
                return (cross / 4 - brute_force_w2(a, a_copy) / 2
                        - brute_force_w2(b, b_copy) / 2).mean()
            sinkhorn = SamplesLoss("sinkhorn", p=2, blur=cfg.sinkhorn_blur)
            return sinkhorn(x, ref).mean() * (1 if seed_weights is not None else 2)

        weight = (seed_weights or cfg.w2_weights)[i]
        loss = -scale * q.mean() + weight * distance(reference)
        grads = torch.autograd.grad(loss, list(actor.parameters()), retain_graph=True)
        stale_grads = (None if i == 0 else torch.autograd.grad(
            -scale * q.mean() + weight * distance(stale_reference),
            list(actor.parameters())))
        for p, g in zip(actor.parameters(), grads):
            p.grad = g
        torch.optim.Adam(actor.parameters(), lr=cfg.lr, foreach=False).step()
        results.append({"loss": loss.detach(), "q": q.detach().mean(), "grads": grads,
                        "stale_grads": stale_grads, "params": params(actor)})
        if i + 1 < len(actors):
            with torch.no_grad():
                z = draw(snapshot["chain"], chain_k)
                reference = actor_output(actor, batch.obs, z)
                stale_reference = actor_output(stale_actors[i], batch.obs, z)
    return results


CHAIN_CASES = {
    "stochastic-exact": dict(),
    "stochastic-sinkhorn-qnorm": dict(distance="sinkhorn", q_normalize=2.5),
    "deterministic-qnorm": dict(deterministic_actors=True, q_normalize=1.5),
    "stochastic-unbiased-energy": dict(distance="unbiased", data_term="energy"),
    "stochastic-unbiased-anchored": dict(distance="unbiased", data_term="anchored"),
}


@pytest.mark.parametrize("case", CHAIN_CASES)
def test_update_matches_the_equations(case):
    agent = make_agent(**CHAIN_CASES[case])
    cfg = agent.config
    batches = [make_batch(1), make_batch(2)]

    # call 1 of policy_freq = 2: the critic only, and no target moves
    before = snapshot_of(agent)
    metrics = agent.update(batches[0])
    assert "actor_loss" not in metrics
    assert_all_close(reference_critic_grads(before, batches[0], cfg),
                     [p.grad for p in agent.critic.parameters()], rtol=1e-4, atol=1e-6)
    for name in ("actors", "actor_targets"):
        for module, old in zip(getattr(agent, name), before[name]):
            assert_all_close(params(module), params(old), rtol=0, atol=0)
    assert_all_close(params(agent.critic_target), params(before["critic_target"]), rtol=0, atol=0)

    # call 2: critic, then the actors in order, then every target
    before = snapshot_of(agent)
    metrics = agent.update(batches[1])
    assert_all_close(reference_critic_grads(before, batches[1], cfg),
                     [p.grad for p in agent.critic.parameters()], rtol=1e-4, atol=1e-6)
    expected = reference_actor_steps(agent, before, batches[1], agent.critic)
    for i, (actor, ref) in enumerate(zip(agent.actors, expected)):
        grads = [p.grad for p in actor.parameters()]
        assert_all_close(grads, ref["grads"], rtol=1e-4, atol=1e-6)
        assert_all_close(params(actor), ref["params"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(metrics["actor_loss"][i], ref["loss"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(metrics["actor_q"][i], ref["q"], rtol=1e-5, atol=1e-6)
        if i > 0:  # the test can tell the updated predecessor from the stale one
            gap = max((g - s).abs().max().item() for g, s in zip(grads, ref["stale_grads"]))
            assert gap > 1e-3, i
    assert all(not value.requires_grad for value in metrics.values())
    for name, source in (("actor_targets", agent.actors), ("critic_target", [agent.critic])):
        old_targets = before[name] if name == "actor_targets" else [before[name]]
        new_targets = agent.actor_targets if name == "actor_targets" else [agent.critic_target]
        for new, old, online in zip(new_targets, old_targets, source):
            soft = [t + cfg.tau * (o - t) for t, o in zip(params(old), params(online))]
            assert_all_close(params(new), soft, rtol=1e-6, atol=1e-7)


def test_seed_units_give_the_seeds_losses():
    """--weight-units seed: the seed's [10, 10, 10], converted by train_pogo.py, gives the
    gradients of the seed's own losses (actor 0's squared error averaged over action
    dimensions, the chain's geomloss Sinkhorn as it is), not of this code's summed units."""
    args = argparse.Namespace(weight_units="seed", w2_weights=[10.0, 10.0, 10.0])
    agent = make_agent(w2_weights=summed_weights(args, ACTION_DIM), distance="sinkhorn")
    agent.update(make_batch(1))  # the critic only (policy_freq 2)
    before = snapshot_of(agent)
    agent.update(make_batch(2))
    expected = reference_actor_steps(agent, before, make_batch(2), agent.critic,
                                     seed_weights=(10.0, 10.0, 10.0))
    for actor, ref in zip(agent.actors, expected):
        assert_all_close([p.grad for p in actor.parameters()], ref["grads"], rtol=1e-4,
                         atol=1e-6)


def test_actors_update_every_policy_freq_calls():
    agent = make_agent(policy_freq=3)
    batch = make_batch()
    changed = []
    for _ in range(7):
        before = params(agent.actors[2]) + params(agent.actor_targets[0])
        agent.update(batch)
        after = params(agent.actors[2]) + params(agent.actor_targets[0])
        changed.append(any(not torch.equal(a, b) for a, b in zip(after, before)))
    assert changed == [False, False, True, False, False, True, False]


@pytest.mark.parametrize("bc_weight", [1.0, 2.5])
def test_td3_bc_configuration_is_td3_bc(bc_weight):
    """TD3+BC (Fujimoto & Gu 2021, author's code): λ = α/mean|Q(s, π(s))| detached,
    L_π = −λ·mean Q + bc_weight·mean((π(s) − a)²) (the paper's bc_weight is 1); target
    noise randn·(σ·max) clamped at ±c·max."""
    config = POGOConfig.td3_bc(ACTION_DIM, bc_weight, hidden_size=32, lr=1e-2)
    agent = POGO(OBS_DIM, ACTION_DIM, MAX_ACTION, config, seed=3)
    agent.update(make_batch(4))
    batch = make_batch(5)
    actor, actor_target = copy.deepcopy(agent.actors[0]), copy.deepcopy(agent.actor_targets[0])
    critic, critic_target = copy.deepcopy(agent.critic), copy.deepcopy(agent.critic_target)
    td_gen = generator_copy(agent, "td")
    metrics = agent.update(batch)

    with torch.no_grad():
        noise = (torch.randn(BATCH, ACTION_DIM, generator=td_gen) * 0.2 * MAX_ACTION).clamp(
            -0.5 * MAX_ACTION, 0.5 * MAX_ACTION)
        next_action = (torch.tanh(actor_target.net(batch.next_obs)) * MAX_ACTION + noise).clamp(
            -MAX_ACTION, MAX_ACTION)
        target_q1, target_q2 = critic_target(batch.next_obs, next_action)
        target_q = batch.reward + batch.mask * 0.99 * torch.min(target_q1, target_q2)
    current_q1, current_q2 = critic(batch.obs, batch.action)
    critic_loss = F.mse_loss(current_q1, target_q) + F.mse_loss(current_q2, target_q)
    torch.testing.assert_close(metrics["critic_loss"], critic_loss.detach())

    pi = torch.tanh(actor.net(batch.obs)) * MAX_ACTION
    q = agent.critic.q1(torch.cat([batch.obs, pi], -1))
    lmbda = 2.5 / q.abs().mean().detach()
    actor_loss = -lmbda * q.mean() + bc_weight * F.mse_loss(pi, batch.action)
    grads = torch.autograd.grad(actor_loss, list(actor.parameters()))
    torch.testing.assert_close(metrics["actor_loss"][0], actor_loss.detach())
    assert_all_close([p.grad for p in agent.actors[0].parameters()], grads, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------ TD target noise
def td_agent(stochastic, **overrides):
    agent = make_agent(num_actors=1, deterministic_actors=not stochastic, **overrides)
    return agent, torch.randn(20_000, OBS_DIM, generator=torch.Generator().manual_seed(7))


def set_output_layer(actor, bias):
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.fill_(bias)


@pytest.mark.parametrize("stochastic", [True, False])
def test_target_action_equals_its_formula(stochastic):
    agent, next_obs = td_agent(stochastic)
    gen = generator_copy(agent, "td")
    action = agent.target_action(next_obs)
    z = torch.randn(len(next_obs), 1, ACTION_DIM, generator=gen) if stochastic else None
    eps = torch.randn(len(next_obs), ACTION_DIM, generator=gen)
    policy = actor_output(agent.actor_targets[0], next_obs, z)[:, 0]
    expected = (policy + (0.2 * eps).clamp(-0.5, 0.5) * MAX_ACTION).clamp(-MAX_ACTION, MAX_ACTION)
    torch.testing.assert_close(action, expected)


def test_target_noise_scale_and_clip():
    """With π0' ≡ 0 the target action is the smoothing noise itself: std σ·max_action when
    the clip is out of reach, clipped at exactly ±c·max_action (not ±σ·c, not ±c·max²)."""
    agent, next_obs = td_agent(False, noise_clip=100.0)
    set_output_layer(agent.actor_targets[0], 0.0)
    noise = agent.target_action(next_obs)
    assert noise.mean().item() == pytest.approx(0.0, abs=0.01)
    assert noise.std().item() == pytest.approx(0.2 * MAX_ACTION, rel=0.02)

    agent, next_obs = td_agent(False)
    set_output_layer(agent.actor_targets[0], 0.0)
    noise = agent.target_action(next_obs)
    clip = 0.5 * MAX_ACTION
    assert noise.abs().max().item() == pytest.approx(clip)
    at_clip = (noise.abs() == clip).float().mean().item()
    assert at_clip == pytest.approx(0.0124, abs=0.003)  # P(|ε| > c/σ = 2.5)


def test_target_action_is_clipped_to_the_action_bounds():
    agent, next_obs = td_agent(False)
    set_output_layer(agent.actor_targets[0], 10.0)  # tanh(10)·max ≈ max_action
    action = agent.target_action(next_obs)
    assert action.max().item() == MAX_ACTION
    assert (action == MAX_ACTION).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert action.min().item() >= MAX_ACTION - 0.5 * MAX_ACTION - 1e-5


# ------------------------------------------------------- determinism and checkpoints
def run(agent, batches):
    return [agent.update(batch) for batch in batches]


def all_tensors(agent):
    state = agent.state_dict()
    modules = state["actors"] + state["actor_targets"] + [state["critic"], state["critic_target"]]
    return [t for module in modules for t in module.values()]


def test_same_seed_same_run_other_seed_other_run():
    batches = [make_batch(i) for i in range(5)]
    a, b, c = make_agent(seed=1), make_agent(seed=1), make_agent(seed=2)
    for x, y in zip(run(a, batches), run(b, batches)):
        assert all(torch.equal(x[k], y[k]) for k in x)
    run(c, batches)
    assert all(torch.equal(x, y) for x, y in zip(all_tensors(a), all_tensors(b)))
    assert not torch.equal(all_tensors(a)[0], all_tensors(c)[0])


def test_state_dict_round_trip_continues_identically():
    batches = [make_batch(i) for i in range(8)]
    agent = make_agent(seed=1)
    run(agent, batches[:3])  # odd: the resumed run starts with a critic-only call
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    resumed = make_agent(seed=99)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for x, y in zip(run(agent, batches[3:]), run(resumed, batches[3:])):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert all(torch.equal(x, y) for x, y in zip(all_tensors(agent), all_tensors(resumed)))
    for name in agent.generators:
        assert torch.equal(agent.generators[name].get_state(),
                           resumed.generators[name].get_state())
    for x, y in zip(agent.actor_optimizers + [agent.critic_optimizer],
                    resumed.actor_optimizers + [resumed.critic_optimizer]):
        for sx, sy in zip(x.state.values(), y.state.values()):
            assert all(torch.equal(sx[k], sy[k]) for k in sx)


def test_critic_and_actor_0_do_not_depend_on_the_chain():
    batches = [make_batch(i) for i in range(6)]
    alone, chained = make_agent(num_actors=1), make_agent(num_actors=3)
    run(alone, batches)
    run(chained, batches)
    for module in ("critic", "critic_target"):
        assert all(torch.equal(x, y) for x, y in zip(params(getattr(alone, module)),
                                                     params(getattr(chained, module))))
    assert all(torch.equal(x, y) for x, y in zip(params(alone.actors[0]),
                                                 params(chained.actors[0])))


# ---------------------------------------------------------------- acting and config
def test_act_deterministic_is_zero_noise_and_stochastic_leaves_training_streams():
    agent = make_agent()
    obs = make_batch().obs
    zeros = torch.zeros(BATCH, 1, ACTION_DIM)
    torch.testing.assert_close(agent.act(obs, 1), actor_output(agent.actors[1], obs, zeros)[:, 0])
    training = {n: agent.generators[n].get_state() for n in ("td", "actor", "chain")}
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(BATCH, 1, ACTION_DIM, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(agent.act(obs, 2, deterministic=False, generator=gen),
                               actor_output(agent.actors[2], obs, z)[:, 0])
    assert not torch.equal(agent.act(obs, 2, False), agent.act(obs, 2, False))
    assert all(torch.equal(agent.generators[n].get_state(), s) for n, s in training.items())


@pytest.mark.parametrize("overrides, message", [
    (dict(num_actors=2, w2_weights=(1.0,)), "one value per actor"),
    (dict(w2_weights=(-1.0,)), "non-negative"),
    (dict(distance="emd"), "distance must be one of"),
    (dict(num_samples=9), "num_samples ≤ 8"),
    (dict(distance="unbiased", num_samples=9), "num_samples ≤ 8"),
    (dict(distance="unbiased", num_samples=1), "only the means"),
    (dict(data_term="quantile"), "data_term must be one of"),
    (dict(data_term="energy", num_samples=1), "num_samples ≥ 2"),
    (dict(data_term="energy", deterministic_actors=True), "stochastic actors"),
    (dict(data_term="anchored", num_samples=1), "num_samples ≥ 2"),
    (dict(policy_freq=0), "policy_freq"),
    (dict(q_normalize=0.0), "q_normalize"),
])
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        POGOConfig(**overrides)


def test_batch_with_column_rewards_is_rejected():
    agent = make_agent()
    batch = make_batch()._replace(reward=make_batch().reward[:, None])
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        agent.update(batch)
