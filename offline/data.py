"""Offline datasets for training: the transitions of a Minari dataset or a D4RL hdf5 file
(read by offline/readers.py), their normalisation statistics, and seeded sampling.

`OfflineSampler` moves the transitions to the training device, normalises states
(s ← (s − μ) / (σ + 1e-3), with the dataset's μ, σ) and optionally scales rewards
(CORL's r ← r · 1000 / (max episode return − min episode return)), and draws uniform
minibatches with its own seeded generator, as `replay_memory.ReplayMemory` does online.
Bad input raises `DatasetError` with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offline.readers import DatasetError, check_lengths, float_array, read_dataset
from replay_memory import Batch

STD_EPS = 1e-3  # CORL's state-normalisation epsilon: σ + 1e-3 keeps constant features finite
REWARD_SCALE_STEPS = 1000.0  # CORL's locomotion rule scales returns to a 1000-step range
# How far past a bound of the action box a dataset's action may lie, relative to the bound's
# magnitude: float32 round-off. An action squashed or clipped to the box in one precision and
# stored in another lands at most a few units in float32's last place (2^-23 ≈ 1.2e-7
# relative) outside it; 1e-5 leaves two orders of magnitude of margin for that, while data
# of another environment or in other units lie whole percents or more outside, and moving an
# action 1e-5 of the bound onto the box changes neither TD3+BC's squared error nor log π
# measurably.
ACTION_ROUND_OFF = 1e-5


@dataclass
class OfflineDataset:
    """Transitions (s, a, r, s', terminal) as numpy arrays, plus what evaluation needs.

    `episode_returns` holds Σ_t r_t of every complete episode in the source (D4RL: one that
    ends at a terminal or a timeout; Minari: every stored episode but a final one that
    make_dataset.py records as cut by its step budget), summed over all its rewards,
    including those of transitions dropped for lack of a next state; reward normalisation
    uses it. `env_id` (and `env_kwargs`) name the gymnasium environment to evaluate on.
    """
    obs: np.ndarray  # (N, obs_dim) float32
    action: np.ndarray  # (N, action_dim) float32
    reward: np.ndarray  # (N,) float32
    next_obs: np.ndarray  # (N, obs_dim) float32
    terminal: np.ndarray  # (N,) bool
    episode_returns: np.ndarray  # (E,) float64
    env_id: str
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    source: str = "offline dataset"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    caveat: str | None = None  # a warning for whoever trains on the data (OfflineSampler's)

    def __post_init__(self) -> None:
        self.obs = float_array(self.obs, 2, "obs", self.source)
        self.action = float_array(self.action, 2, "action", self.source)
        self.reward = float_array(self.reward, 1, "reward", self.source)
        self.next_obs = float_array(self.next_obs, 2, "next_obs", self.source)
        self.terminal = np.asarray(self.terminal).astype(bool).reshape(-1)
        self.episode_returns = np.asarray(self.episode_returns, dtype=np.float64).reshape(-1)
        check_lengths({name: getattr(self, name) for name in
                       ("obs", "action", "reward", "next_obs", "terminal")}, self.source)
        if len(self.obs) == 0:
            raise DatasetError(f"{self.source}: no transitions; give a non-empty dataset")
        if self.next_obs.shape[1] != self.obs.shape[1]:
            raise DatasetError(f"{self.source}: next observations have dimension "
                               f"{self.next_obs.shape[1]} but observations "
                               f"{self.obs.shape[1]}; the file is malformed")

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[1]

    @property
    def action_dim(self) -> int:
        return self.action.shape[1]

    @property
    def has_reference_scores(self) -> bool:
        return self.ref_min_score is not None and self.ref_max_score is not None

    def normalized_score(self, returns: float | np.ndarray) -> float | np.ndarray | None:
        """D4RL's normalised score 100 · (R − ref_min) / (ref_max − ref_min), elementwise;
        None when the dataset has no reference scores."""
        if not self.has_reference_scores:
            return None
        scores = 100.0 * (np.asarray(returns, dtype=np.float64) - self.ref_min_score) / (
            self.ref_max_score - self.ref_min_score)
        return float(scores) if scores.ndim == 0 else scores

    def state_mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean μ and std σ + 1e-3 of the dataset's observations (float32).

        σ is the population std (ddof = 0) over the N observations s_i, as in CORL; the
        next states are not counted separately (nearly all of them are also some s_i)."""
        obs = self.obs.astype(np.float64)
        return (obs.mean(0).astype(np.float32),
                (obs.std(0) + STD_EPS).astype(np.float32))

    def reward_scale(self) -> float:
        """CORL's locomotion reward scale 1000 / (max_e G_e − min_e G_e) over the complete
        episodes' returns G_e; rewards are multiplied by it."""
        returns = self.episode_returns
        spread = float(returns.max() - returns.min()) if len(returns) else 0.0
        if not (spread > 0 and math.isfinite(spread)):
            raise DatasetError(f"{self.source}: reward normalisation needs complete episodes "
                               f"with different returns (found {len(returns)} episodes, "
                               f"return range {spread:g}); run without reward normalisation")
        return REWARD_SCALE_STEPS / spread


def check_matches_env(dataset: OfflineDataset, obs_dim: int, action_dim: int) -> None:
    """Raise DatasetError unless the dataset's transitions fit the environment's spaces."""
    if (dataset.obs_dim, dataset.action_dim) != (obs_dim, action_dim):
        raise DatasetError(
            f"{dataset.source} has {dataset.obs_dim}-dim observations and "
            f"{dataset.action_dim}-dim actions but {dataset.env_id} has {obs_dim} and "
            f"{action_dim}; give the environment the data were collected on")


def check_actions_in_box(dataset: OfflineDataset, low: np.ndarray, high: np.ndarray) -> None:
    """Raise DatasetError unless every action lies in the environment's box [low, high], up
    to float32 round-off (ACTION_ROUND_OFF of each bound's magnitude): a tanh actor cannot
    reach an action outside it, and SAC's log-density of one is undefined (model.py would
    clamp it onto the bound, a different action, without a word)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    outside = np.maximum(low - dataset.action, dataset.action - high)  # > 0: beyond a bound
    slack = ACTION_ROUND_OFF * np.maximum(np.abs(low), np.abs(high))  # inf: unbounded
    if not (outside > slack).any():
        return
    row, dim = np.unravel_index(np.argmax(outside), outside.shape)
    uniform = (low == low[0]).all() and (high == high[0]).all()
    bounds = f"[{low[dim]:g}, {high[dim]:g}]" + (" (every dimension's)" if uniform else "")
    raise DatasetError(
        f"{dataset.source} has actions outside {dataset.env_id}'s action box: the farthest, "
        f"{dataset.action[row, dim]:g} in dimension {dim}, lies {outside[row, dim]:.3g} beyond "
        f"its bounds {bounds}; tanh actors cannot reach such actions and SAC's log-density of "
        f"one is undefined; give the environment the data were collected on, or data whose "
        f"actions lie in its box")


def load_dataset(spec: str, env_name: str | None = None) -> OfflineDataset:
    """A D4RL hdf5 file or a locally stored Minari dataset id (offline.readers.read_dataset)."""
    return OfflineDataset(**read_dataset(spec, env_name))


def open_dataset(spec: str, env_name: str | None = None) -> tuple[OfflineDataset, Any]:
    """The dataset and one built copy of the environment it is evaluated on, checked against
    each other; DatasetError (one line) if either fails."""
    from training.evaluation import make_env

    data = load_dataset(spec, env_name)
    env = make_env(data.env_id, **data.env_kwargs)
    check_matches_env(data, env.observation_space.shape[0], env.action_space.shape[0])
    check_actions_in_box(data, env.action_space.low, env.action_space.high)
    return data, env


# --------------------------------------------------------------------------- sampling

_shown_caveats: set[str] = set()  # a caveat is one warning per process, however many samplers


def show_caveat(caveat: str | None) -> None:
    """A dataset's caveat (e.g. D4RL data on a -v5 environment) as one warning line named
    after the running script, as its own warnings are, the first time it comes up. A
    sampler is built once every start-up check has passed, so the warning never comes
    before a refusal's one error line, nor in a sweep's checks of its runs."""
    if caveat is None or caveat in _shown_caveats:
        return
    _shown_caveats.add(caveat)
    print(f"{Path(sys.argv[0]).name}: warning: {caveat}", file=sys.stderr, flush=True)


class OfflineSampler:
    """The dataset's transitions as tensors on `device`, drawn uniformly by a seeded generator.

    States are normalised s ← (s − μ) / σ with (μ, σ) = `dataset.state_mean_std()` when
    `normalize_states` (else μ = 0, σ = 1, so `normalize_obs` is always the right map for
    evaluation observations); rewards are multiplied by `dataset.reward_scale()` when
    `normalize_rewards`. `mask` = 0.0 at terminals, 1.0 otherwise, as in ReplayMemory. The
    dataset's caveat, if any, is printed (show_caveat).
    """

    def __init__(self, dataset: OfflineDataset, seed: int, device: torch.device | str = "cpu",
                 normalize_states: bool = True, normalize_rewards: bool = False):
        show_caveat(dataset.caveat)
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.size = len(dataset)
        if normalize_states:
            mean, std = dataset.state_mean_std()
        else:
            mean = np.zeros(dataset.obs_dim, np.float32)
            std = np.ones(dataset.obs_dim, np.float32)
        self.obs_mean = torch.as_tensor(mean, device=self.device)
        self.obs_std = torch.as_tensor(std, device=self.device)
        self.reward_scale = dataset.reward_scale() if normalize_rewards else 1.0
        self.obs = self.normalize_obs(dataset.obs)
        self.next_obs = self.normalize_obs(dataset.next_obs)
        self.action = self._to_device(dataset.action)
        self.reward = self._to_device(dataset.reward) * self.reward_scale
        self.mask = self._to_device(~dataset.terminal)

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)

    def __len__(self) -> int:
        return self.size

    def normalize_obs(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(s − μ) / σ on the sampler's device, for dataset and evaluation observations."""
        return (self._to_device(obs) - self.obs_mean) / self.obs_std

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` transitions drawn uniformly with replacement; all on the device,
        so drawing never waits for it."""
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive (got {batch_size})")
        index = torch.randint(self.size, (batch_size,), generator=self.generator,
                              device=self.device)
        return Batch(self.obs[index], self.action[index], self.reward[index],
                     self.next_obs[index], self.mask[index])

    def state_dict(self) -> dict[str, Any]:
        """The generator state (a CPU uint8 tensor) and the dataset size (to catch a resume
        on another dataset); the data themselves are read from disk again on resume."""
        return {"generator": self.generator.get_state(), "size": self.size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["size"] != self.size:
            raise ValueError(f"the saved sampler drew from {state['size']} transitions but "
                             f"this dataset has {self.size}; resume with the same dataset")
        self.generator.set_state(state["generator"])
