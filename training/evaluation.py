"""Environments and the batched, fixed-seed evaluation of N actors, for every training script.

An evaluation policy is a function (observations [B, obs_dim], noise ε [B, A]) → actions
[B, A], all float64 torch tensors on one device; ε is zero in the deterministic mode. The
training scripts build one per actor (how an actor turns ε into an action is theirs to say).
Torch and Gymnasium are imported only when used, so scripts' `--help` stays instant.
"""

from __future__ import annotations

import copy
import difflib
import sys
from typing import Any, Callable

import numpy as np

from utils import UsageError, stream_seed

MODES = ("deterministic", "stochastic")

Policy = Callable[[Any, Any], Any]  # (obs, ε) → action, float64 torch tensors
SPREAD_STATES, SPREAD_DRAWS = 512, 64  # a policy's spread: at this many states, draws each
SPREAD_DEFINITION = (f"standard deviation of the actions over {SPREAD_DRAWS} noise draws at "
                     f"each of {SPREAD_STATES} dataset states, mean over states and action "
                     f"dimensions")


def suggest_env(name: str) -> str:
    import gymnasium as gym

    close = difflib.get_close_matches(name, list(gym.envs.registry), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.envs.registry"
    return f"unknown environment id {name!r}{hint}"


GYMNASIUM_XML_DEPRECATION = "compiler attribute 'settotalmass' is deprecated"


def forward_mujoco_warning(message: str) -> None:
    """MuJoCo's warning handler, minus one message: Gymnasium 1.4's HalfCheetah model uses
    `settotalmass`, which MuJoCo 4 reports at every model compile (one line per environment
    built: 41 per run with 2 actors and 10 evaluation episodes), and no user setting fixes."""
    if GYMNASIUM_XML_DEPRECATION not in message:
        print(f"WARNING: {message}", file=sys.stderr, flush=True)


def make_env(name: str, **kwargs: Any) -> Any:
    """The environment (built with `kwargs`), or UsageError if the id is unknown or its
    actions are not a Box."""
    import gymnasium as gym

    try:
        import mujoco
        mujoco.set_mju_user_warning(forward_mujoco_warning)
    except ImportError:
        pass  # environments without MuJoCo still work
    if name not in gym.envs.registry:
        raise UsageError(suggest_env(name))
    try:
        env = gym.make(name, **kwargs)
    except (ImportError, gym.error.Error) as error:  # e.g. mujoco-py v2/v3 ids, missing Box2D
        raise UsageError(f"{name} is registered but cannot be built here ({error}); "
                         f"use a Gymnasium v5 MuJoCo id such as HalfCheetah-v5") from None
    if not isinstance(env.action_space, gym.spaces.Box):
        raise UsageError(f"{name} has a {type(env.action_space).__name__} action space; "
                         f"the Gaussian and noise-input actors need a continuous Box action "
                         f"space")
    return env


def evaluation_table(returns: np.ndarray, modes: tuple[str, ...], step: int,
                     actor_ids: list[int] | None = None,
                     scores: Callable[[float], float] | None = None
                     ) -> tuple[dict[str, float], list[str]]:
    """One evaluation as columns and printed lines: per actor and mode the mean return, its
    standard deviation over the episodes and, with `scores` (mean return → normalised
    score), the score. `returns` is [actor, mode, episode], its actors `actor_ids`."""
    columns: dict[str, float] = {}
    lines = [f"Evaluation over {returns.shape[-1]} episodes at step {step}:"]
    for position, i in enumerate(actor_ids or range(len(returns))):
        for mode_index, mode in enumerate(modes):
            mean_return = float(returns[position, mode_index].mean())
            columns[f"actor_{i}_{mode}"] = mean_return
            columns[f"actor_{i}_{mode}_std"] = float(returns[position, mode_index].std())
            line = f"  Actor {i} - {mode.capitalize()}: {mean_return:.2f}"
            if scores is not None:
                columns[f"actor_{i}_{mode}_score"] = score = scores(mean_return)
                line += f" (score {score:.1f})"
            lines.append(line)
    return columns, lines


def gaussian_policies(actors: list[Any]) -> list[Policy]:
    """tanh(μ + σ·ε)·scale + bias for every tanh-Gaussian actor (POSAC's), in float64; ε = 0
    gives the deterministic action tanh(μ)·scale + bias."""
    def policy(actor: Any) -> Policy:
        return lambda obs, noise: actor.sample(*actor(obs), noise)[0]
    return [policy(float64_copy(actor)) for actor in actors]


def noise_input_policies(actors: list[Any], obs_mean: Any, obs_std: Any) -> list[Policy]:
    """tanh(MLP([(s − μ)/σ, z]))·max_action for every noise-input actor (POGO's), in
    float64, with z = ε: ε = 0 gives the deterministic action (a deterministic actor has no
    z). μ, σ are the observation statistics the actors were trained with."""
    mean, std = obs_mean.double(), obs_std.double()

    def policy(actor: Any) -> Policy:
        return lambda obs, noise: actor((obs - mean) / std, noise)
    return [policy(float64_copy(actor)) for actor in actors]


def spread_rows(num_states: int, seed: int) -> np.ndarray:
    """The rows of a dataset's states (in order) at which a spread is measured: SPREAD_STATES
    of them (all, if fewer) drawn without replacement from the run's `spread` stream, so
    the behaviour policy's spread and the actors' are measured alike."""
    rng = np.random.default_rng(stream_seed(seed, "spread"))
    return np.sort(rng.choice(num_states, min(SPREAD_STATES, num_states), replace=False))


def action_spread(policy: Policy, obs: Any, action_dim: int, draws: int, generator: Any
                  ) -> float:
    """The policy's spread at the states obs [S, obs_dim]: the standard deviation of its
    actions over `draws` noise draws ε ~ N(0, I) at each state, averaged over the states and
    the action dimensions, mean_{s,d} std_k π(s, ε_k)_d (float64; 0 for a deterministic
    actor). A collapse of a stochastic actor to its mean shows as a spread near 0, which a
    spread of the actions over states (the data's, say) would hide."""
    import torch

    obs = obs.double().unsqueeze(1).expand(-1, draws, -1)
    noise = torch.randn(*obs.shape[:2], action_dim, generator=generator, dtype=torch.float64,
                        device=obs.device)
    with torch.no_grad():
        return policy(obs, noise).std(1).mean().item()


def float64_copy(module: Any) -> Any:
    """A float64 copy of a network for evaluation. float32 matrix products can differ in the
    last bit with the number of rows, and MuJoCo amplifies such a difference into a different
    episode; in float64 the float32 action no longer depends on how many episodes share the
    forward pass."""
    return copy.deepcopy(module).double()


class Evaluator:
    """Runs every actor on fixed-seed episodes in each mode (deterministic, and optionally
    stochastic), all episodes stepping together with one batched forward per actor per step.

    Episode k (of every actor and mode) resets with stream_seed(seed, "evaluation", k), and
    stochastic episode k of actor i draws its noise from stream_seed(seed, "evaluation_noise",
    i, k) (utils.STREAMS: no two runs' seeds share them), so every
    evaluation sees the same start states and the same ε, and the result does not depend on
    how many episodes run at once.

    With `make_recorded_env` (a function returning a rendering copy of the environment, e.g.
    video.RunVideos.make_env), the first deterministic episode of every actor plays in such a
    copy, and `run(..., recorder=...)` hands the recorder its frames (see `run`)."""

    def __init__(self, env_name: str, num_actors: int, episodes: int, seed: int,
                 modes: tuple[str, ...] = MODES, env_kwargs: dict[str, Any] | None = None,
                 make_recorded_env: Callable[[], Any] | None = None,
                 actor_ids: list[int] | None = None):
        import gymnasium as gym

        self.num_actors, self.episodes, self.modes = num_actors, episodes, modes
        # each actor's stochastic noise follows its index in the chain, so a subset of the
        # actors (evaluate.py --actors) sees the noise it saw in training
        self.actor_ids = actor_ids or list(range(num_actors))
        self.seed = seed
        self.reset_seeds = [stream_seed(seed, "evaluation", k) for k in range(episodes)]
        # flat index of (actor i, deterministic, episode 0), the episodes a recorder sees
        per_actor = len(modes) * episodes
        self.recorded = ([i * per_actor + modes.index("deterministic") * episodes
                          for i in range(num_actors)] if make_recorded_env is not None else [])
        self.envs = [make_recorded_env() if j in self.recorded
                     else gym.make(env_name, **(env_kwargs or {}))
                     for j in range(num_actors * per_actor)]
        self.max_steps = self.envs[0].spec.max_episode_steps or 1000
        self.noise = self.evaluation_noise(self.envs[0].action_space.shape[0])

    def evaluation_noise(self, action_dim: int) -> Any:
        """ε for [actor, mode, episode, step]: zero in the deterministic mode, so that
        tanh(μ + σ·0) is exactly the deterministic action tanh(μ)."""
        import torch

        noise = torch.zeros(self.num_actors, len(self.modes), self.episodes, self.max_steps,
                            action_dim, dtype=torch.float64)
        if "stochastic" not in self.modes:
            return noise
        stochastic = self.modes.index("stochastic")
        for actor, actor_id in enumerate(self.actor_ids):
            for episode in range(self.episodes):
                stream = torch.Generator().manual_seed(
                    stream_seed(self.seed, "evaluation_noise", actor_id, episode))
                noise[actor, stochastic, episode] = torch.randn(
                    self.max_steps, action_dim, generator=stream, dtype=torch.float64)
        return noise

    @staticmethod
    def act(policy: Policy, obs: np.ndarray, noise: Any) -> np.ndarray:
        """The policy's float32 actions for a batch of observations, computed in float64."""
        import torch

        with torch.no_grad():
            obs_tensor = torch.as_tensor(obs, dtype=torch.float64, device=noise.device)
            return policy(obs_tensor, noise).float().cpu().numpy()

    def run(self, policies: list[Policy], device: Any = "cpu",
            check_stop: Callable[[], None] | None = None, recorder: Any = None) -> np.ndarray:
        """Undiscounted returns, shape [num_actors, len(modes), episodes]. `check_stop` is
        called between steps (it raises to end the evaluation early).

        `recorder` (Evaluator built with make_recorded_env; e.g. video.EvaluationVideos)
        gets `add(i, frame)` for every state in which actor i's first deterministic episode
        acts (after the reset, and after each step but the last): as many frames as the
        episode has steps. If the evaluation ends early, `recorder.discard()` is called."""
        shape = (self.num_actors, len(self.modes), self.episodes)
        obs = np.stack([env.reset(seed=self.reset_seeds[k])[0]
                        for env, (_, _, k) in zip(self.envs, np.ndindex(*shape))])
        noise = self.noise.to(device)
        returns = np.zeros(len(self.envs))
        running = np.ones(len(self.envs), dtype=bool)
        per_actor = len(self.modes) * self.episodes
        try:
            self.capture(recorder, running)
            for t in range(self.max_steps):
                if check_stop is not None:
                    check_stop()
                actions = np.concatenate([
                    self.act(policy, obs[i * per_actor:(i + 1) * per_actor],
                             noise[i, :, :, t].flatten(0, 1))
                    for i, policy in enumerate(policies)])
                for j in np.flatnonzero(running):
                    obs[j], reward, terminated, truncated, _ = self.envs[j].step(actions[j])
                    returns[j] += reward
                    running[j] = not (terminated or truncated)
                if not running.any():
                    break
                if t + 1 < self.max_steps:  # (no frame of a state no action follows)
                    self.capture(recorder, running)
        except BaseException:
            if recorder is not None:
                recorder.discard()
            raise
        return returns.reshape(shape)

    def capture(self, recorder: Any, running: np.ndarray) -> None:
        """Hand the recorder a frame of every recorded episode still running."""
        if recorder is None:
            return
        if not self.recorded:
            raise ValueError("Evaluator.run(recorder=...) needs an Evaluator built with "
                             "make_recorded_env")
        for actor, j in enumerate(self.recorded):
            if running[j]:
                recorder.add(actor, self.envs[j].render())
