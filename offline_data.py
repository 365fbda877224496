"""Offline datasets read from disk, their normalisation statistics, and seeded sampling.

Two sources, both read without pickle (hdf5 through h5py, Minari's JSON metadata):

* a Minari dataset id (`mujoco/halfcheetah/medium-v0`), read from the local Minari folder
  ($MINARI_DATASETS_PATH, else ~/.minari/datasets) and never downloaded; the environment
  to evaluate on and the reference scores come from the dataset's metadata;
* a D4RL-format hdf5 file (`hopper_medium-v2.hdf5`) with flat arrays `observations`,
  `actions`, `rewards`, `terminals` and optionally `timeouts`, `next_observations`; the
  environment is the one named by the caller, the reference scores D4RL's.

Every transition is (s, a, r, s', terminal). A terminal means the MDP ended (no bootstrap);
a timeout or truncation only ends the episode, so it is not a terminal.

`OfflineSampler` moves the transitions to the training device, normalises states
(s ← (s − μ) / (σ + 1e-3), with the dataset's μ, σ) and optionally scales rewards
(CORL's r ← r · 1000 / (max episode return − min episode return)), and draws uniform
minibatches with its own seeded generator, as `replay_memory.ReplayMemory` does online.
Bad input raises `DatasetError` with a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from replay_memory import Batch

STD_EPS = 1e-3  # CORL's state-normalisation epsilon: σ + 1e-3 keeps constant features finite
REWARD_SCALE_STEPS = 1000.0  # CORL's locomotion rule scales returns to a 1000-step range
HDF5_SUFFIXES = (".hdf5", ".h5")
HDF5_REQUIRED = ("observations", "actions", "rewards", "terminals")

# D4RL's reference returns (random policy, expert policy) for the locomotion tasks, as in
# d4rl/infos.py; the normalised score is 100·(R − min)/(max − min).
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
}

_warned_v2_on_new_env = False  # the D4RL-vs-new-environment warning is shown once per process


class DatasetError(Exception):
    """A dataset that cannot be used; the message is one line naming the problem and the fix."""


@dataclass
class OfflineDataset:
    """Transitions (s, a, r, s', terminal) as numpy arrays, plus what evaluation needs.

    `episode_returns` holds Σ_t r_t of every complete episode in the source (D4RL: one that
    ends at a terminal or a timeout; Minari: every stored episode), summed over all its
    rewards, including those of transitions dropped for lack of a next state; reward
    normalisation uses it.
    `env_id` (and `env_kwargs`) name the gymnasium environment to evaluate on.
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

    def __post_init__(self) -> None:
        self.obs = _float_array(self.obs, 2, "obs", self.source)
        self.action = _float_array(self.action, 2, "action", self.source)
        self.reward = _float_array(self.reward, 1, "reward", self.source)
        self.next_obs = _float_array(self.next_obs, 2, "next_obs", self.source)
        self.terminal = np.asarray(self.terminal).astype(bool).reshape(-1)
        self.episode_returns = np.asarray(self.episode_returns, dtype=np.float64).reshape(-1)
        n = len(self.obs)
        lengths = {name: len(getattr(self, name))
                   for name in ("obs", "action", "reward", "next_obs", "terminal")}
        if len(set(lengths.values())) != 1:
            raise DatasetError(f"{self.source}: arrays of different lengths {lengths}; "
                               f"every array needs one row per transition")
        if n == 0:
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


def _float_array(values: Any, ndim: int, name: str, source: str) -> np.ndarray:
    """`values` as float32 of `ndim` dimensions ((N, 1) accepted for a vector), all finite."""
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise DatasetError(f"{source}: {name} has non-numeric type {array.dtype}; "
                           f"the file is malformed")
    array = array.astype(np.float32, copy=False)
    if ndim == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]  # some writers store per-step scalars as (N, 1)
    if array.ndim != ndim:
        expected = "(N,)" if ndim == 1 else "(N, dim)"
        raise DatasetError(f"{source}: {name} has shape {array.shape}, expected {expected}; "
                           f"the file is malformed")
    if not np.isfinite(array).all():  # after the cast: float64 beyond float32 becomes inf
        bad = int((~np.isfinite(array)).any(axis=tuple(range(1, ndim))).sum())
        raise DatasetError(f"{source}: {name} has non-finite values (NaN or inf) in {bad} "
                           f"rows; clean the dataset or use another one")
    return array


def check_matches_env(dataset: OfflineDataset, obs_dim: int, action_dim: int) -> None:
    """Raise DatasetError unless the dataset's transitions fit the environment's spaces."""
    if (dataset.obs_dim, dataset.action_dim) != (obs_dim, action_dim):
        raise DatasetError(
            f"{dataset.source} has {dataset.obs_dim}-dim observations and "
            f"{dataset.action_dim}-dim actions but {dataset.env_id} has {obs_dim} and "
            f"{action_dim}; give the environment the data were collected on")


def load_dataset(spec: str, env_name: str | None = None) -> OfflineDataset:
    """A D4RL hdf5 file (path ending in .hdf5/.h5, evaluated on `env_name`) or a locally
    stored Minari dataset id (evaluated on its recorded environment; `env_name`, if given,
    must be that environment)."""
    if spec.lower().endswith(HDF5_SUFFIXES):
        return load_d4rl_hdf5(Path(spec), env_name)
    if os.path.isfile(spec):
        raise DatasetError(f"{spec} is neither a D4RL .hdf5/.h5 file nor a Minari dataset id; "
                           f"give one of those (e.g. mujoco/halfcheetah/medium-v0)")
    return load_minari(spec, env_name)


# --------------------------------------------------------------------------- D4RL hdf5

def load_d4rl_hdf5(path: Path, env_name: str | None) -> OfflineDataset:
    """Read a D4RL-format hdf5 file.

    Episodes end at terminals or timeouts. With `next_observations` in the file every
    transition is kept. Without it, s'_i = s_{i+1} within an episode, and (as D4RL's
    `qlearning_dataset` does) the last transition of an episode that ended by a timeout, or
    that the file cuts off, is dropped, since its next state is not recorded. Terminal
    transitions are kept (their terminal signal matters), with s' = s as a placeholder that
    the mask 0 multiplies away; D4RL would take the next episode's first state there.
    """
    if env_name is None:
        raise DatasetError(f"{path} is a D4RL hdf5 file, which names no environment; pass "
                           f"--env-name with the environment to evaluate on (e.g. Hopper-v5)")
    arrays = _read_hdf5_arrays(path)
    source = f"D4RL file {path.name}"
    lengths = {k: len(v) if np.ndim(v) else 0 for k, v in arrays.items()}
    n = lengths["observations"]
    if any(length != n for length in lengths.values()):
        raise DatasetError(f"{source}: datasets of different lengths {lengths}; "
                           f"the file is malformed (every dataset needs one row per step)")
    terminal = _flags(arrays["terminals"], "terminals", source)
    timeout = (_flags(arrays["timeouts"], "timeouts", source) if "timeouts" in arrays
               else np.zeros(n, dtype=bool))
    obs = _float_array(arrays["observations"], 2, "observations", source)
    rewards = _float_array(arrays["rewards"], 1, "rewards", source)
    if "next_observations" in arrays:
        next_obs, keep = arrays["next_observations"], np.ones(n, dtype=bool)
    else:
        next_obs, keep = _derive_next_obs(obs, terminal, timeout)
    ref_min, ref_max = _d4rl_reference_scores(path.name)
    _warn_v2_data_on_new_env(path.name, env_name)
    return OfflineDataset(
        obs=obs[keep], action=np.asarray(arrays["actions"])[keep], reward=rewards[keep],
        next_obs=np.asarray(next_obs)[keep], terminal=terminal[keep],
        episode_returns=_complete_episode_returns(rewards, terminal | timeout),
        env_id=env_name, ref_min_score=ref_min, ref_max_score=ref_max, source=source)


def _read_hdf5_arrays(path: Path) -> dict[str, np.ndarray]:
    """The D4RL datasets of the file as numpy arrays (the required ones and those present of
    `timeouts`, `next_observations`); DatasetError when unreadable or incomplete."""
    import h5py

    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist; check the --dataset path")
    wanted = HDF5_REQUIRED + ("timeouts", "next_observations")
    try:
        with h5py.File(path, "r") as file:
            missing = [k for k in HDF5_REQUIRED if not isinstance(file.get(k), h5py.Dataset)]
            if missing:
                raise DatasetError(
                    f"D4RL file {path.name} lacks the dataset(s) {', '.join(missing)} (it has "
                    f"{', '.join(sorted(file.keys())) or 'none'}); give a D4RL-format file")
            # [()] reads plain numeric data; h5py never unpickles
            return {k: file[k][()] for k in wanted if isinstance(file.get(k), h5py.Dataset)}
    except OSError as error:
        reason = " ".join(str(error).split())
        raise DatasetError(f"{path} is not a readable HDF5 file ({reason}); "
                           f"give a D4RL-format .hdf5 file") from None


def _flags(values: np.ndarray, name: str, source: str) -> np.ndarray:
    """A 0/1 per-step flag array as bool; anything but 0 or 1 makes the file malformed."""
    flags = _float_array(values, 1, name, source)
    if not np.isin(flags, (0.0, 1.0)).all():
        raise DatasetError(f"{source}: {name} holds values other than 0 and 1; "
                           f"the file is malformed")
    return flags.astype(bool)


def _derive_next_obs(obs: np.ndarray, terminal: np.ndarray,
                     timeout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s'_i = s_{i+1} where step i continues its episode; s' = s at terminals (placeholder).
    Returns (next_obs, keep): steps ending by a timeout, or the file's last step if not a
    terminal, have no recorded next state and are not kept."""
    next_obs = np.empty_like(obs)
    next_obs[:-1] = obs[1:]
    next_obs[terminal] = obs[terminal]
    last = np.zeros(len(obs), dtype=bool)
    last[-1] = True
    keep = terminal | ~(timeout | last)
    return next_obs, keep


def _complete_episode_returns(rewards: np.ndarray, episode_end: np.ndarray) -> np.ndarray:
    """Σ r over each episode that ends at a step flagged in `episode_end`; the steps after
    the last flag (an episode the file cuts off) form no complete episode."""
    ends = np.flatnonzero(episode_end)
    if len(ends) == 0:
        return np.zeros(0)
    sums = np.cumsum(rewards.astype(np.float64))[ends]
    return np.diff(sums, prepend=0.0)


def _d4rl_reference_scores(file_name: str) -> tuple[float | None, float | None]:
    """D4RL's (random, expert) returns for the task the file name names, else (None, None)."""
    name = file_name.lower()
    for task, (low, high) in D4RL_REF_SCORES.items():
        if task in name:
            return low, high
    return None, None


def _warn_v2_data_on_new_env(file_name: str, env_name: str) -> None:
    """Once per process: D4RL's data come from mujoco-py environments, so returns (and
    normalised scores) on the newer MuJoCo-binding environments (-v4, -v5) compare with
    published D4RL numbers only approximately."""
    global _warned_v2_on_new_env
    version = re.search(r"-v(\d+)$", env_name)
    if _warned_v2_on_new_env or version is None or int(version.group(1)) < 4:
        return
    _warned_v2_on_new_env = True
    warnings.warn(f"{file_name}: D4RL -v2 data (collected with mujoco-py) are evaluated on "
                  f"{env_name}, whose simulation differs slightly; scores are comparable to "
                  f"published D4RL numbers only approximately", stacklevel=2)


# --------------------------------------------------------------------------- Minari

def minari_root() -> Path:
    """The local Minari folder, by Minari's own rule (minari.storage.get_dataset_path),
    written out here because that function also creates the folder."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root is not None else Path.home() / ".minari" / "datasets"


def load_minari(dataset_id: str, env_name: str | None) -> OfflineDataset:
    """Read a Minari dataset stored locally (never downloads).

    Each episode stores T + 1 observations for T steps, so s'_t = o_{t+1} for every step:
    no transition is dropped. `terminal` is Minari's `terminations`; `truncations` only end
    the episode. The environment is the dataset's eval_env_spec, else its env_spec."""
    if not re.fullmatch(r"[-\w/]+-v\d+", dataset_id):
        raise DatasetError(f"{dataset_id!r} is neither a D4RL .hdf5/.h5 file nor a Minari "
                           f"dataset id such as mujoco/halfcheetah/medium-v0")
    root = minari_root()
    if not (root / dataset_id / "data" / "metadata.json").is_file():
        raise DatasetError(f"Minari dataset {dataset_id} not found in {root} (the folder "
                           f"MINARI_DATASETS_PATH or ~/.minari/datasets names); with internet "
                           f"access run: minari download {dataset_id}")
    dataset = _open_minari(dataset_id)
    source = f"Minari dataset {dataset_id}"
    _check_flat_box_spaces(dataset, source)
    env_id, env_kwargs = _minari_env(dataset, env_name, source)
    metadata = dataset.storage.metadata
    try:
        obs, action, reward, next_obs, terminal, returns = _minari_transitions(dataset, source)
    except (KeyError, OSError, ValueError) as error:  # h5py: a missing or corrupt episode
        raise _unreadable_minari(dataset_id, error) from None
    return OfflineDataset(
        obs=obs, action=action, reward=reward, next_obs=next_obs, terminal=terminal,
        episode_returns=returns, env_id=env_id, env_kwargs=env_kwargs,
        ref_min_score=_optional_float(metadata.get("ref_min_score")),
        ref_max_score=_optional_float(metadata.get("ref_max_score")), source=source)


def _open_minari(dataset_id: str) -> Any:
    """minari.load_dataset(id) (download=False), its failures as DatasetError."""
    import minari

    try:
        return minari.load_dataset(dataset_id, download=False)
    except ImportError as error:  # e.g. an arrow-format dataset without pyarrow installed
        raise DatasetError(f"Minari dataset {dataset_id} needs a missing package "
                           f"({error}); install it or use an hdf5-format dataset") from None
    except (ValueError, KeyError, OSError, AssertionError) as error:
        raise _unreadable_minari(dataset_id, error) from None


def _unreadable_minari(dataset_id: str, error: Exception) -> DatasetError:
    message = " ".join(str(error).split()) or type(error).__name__
    return DatasetError(f"Minari dataset {dataset_id} cannot be read ({message}); "
                        f"delete it and run: minari download {dataset_id}")


def _check_flat_box_spaces(dataset: Any, source: str) -> None:
    from gymnasium import spaces

    for name, space in (("observation", dataset.observation_space),
                        ("action", dataset.action_space)):
        if not (isinstance(space, spaces.Box) and len(space.shape) == 1):
            raise DatasetError(f"{source} has a {space} {name} space; only flat Box "
                               f"observations and actions are supported")


def _minari_env(dataset: Any, env_name: str | None, source: str) -> tuple[str, dict]:
    """(env id, env kwargs) from the dataset's eval_env_spec, else env_spec; `env_name`
    stands in when the dataset records none and must agree with it otherwise."""
    # minari 0.5.4 parses eval_env_spec (with its gymnasium-1.0 fixes) only into this
    # private attribute; recover_environment(eval_env=True) would build the environment
    spec = getattr(dataset, "_eval_env_spec", None) or dataset.env_spec
    if spec is None:
        if env_name is None:
            raise DatasetError(f"{source} records no environment; pass --env-name with the "
                               f"environment to evaluate on")
        return env_name, {}
    if env_name is not None and env_name != spec.id:
        raise DatasetError(f"{source} was collected on {spec.id} but --env-name is "
                           f"{env_name}; leave --env-name out or pass {spec.id}")
    return spec.id, dict(spec.kwargs or {})


def _minari_transitions(dataset: Any, source: str) -> tuple[np.ndarray, ...]:
    """(obs, action, reward, next_obs, terminal, episode returns) over all episodes."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("obs", "action", "reward", "next_obs", "terminal")}
    returns = []
    for episode in dataset.iterate_episodes():
        steps = len(episode.rewards)
        observations = np.asarray(episode.observations)
        sizes = (len(observations), len(episode.actions), len(episode.terminations),
                 len(episode.truncations))
        if sizes != (steps + 1, steps, steps, steps):
            raise DatasetError(f"{source}: episode {episode.id} has {steps} rewards but "
                               f"(observations, actions, terminations, truncations) of "
                               f"lengths {sizes}, expected ({steps + 1}, {steps}, {steps}, "
                               f"{steps}); the dataset is malformed")
        parts["obs"].append(observations[:-1])
        parts["next_obs"].append(observations[1:])
        parts["action"].append(np.asarray(episode.actions))
        parts["reward"].append(np.asarray(episode.rewards))
        parts["terminal"].append(np.asarray(episode.terminations, dtype=bool))
        returns.append(float(np.sum(episode.rewards, dtype=np.float64)))
    if not returns:
        raise DatasetError(f"{source} has no episodes; give a non-empty dataset")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return (arrays["obs"], arrays["action"], arrays["reward"], arrays["next_obs"],
            arrays["terminal"], np.asarray(returns))


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


# --------------------------------------------------------------------------- sampling

class OfflineSampler:
    """The dataset's transitions as tensors on `device`, drawn uniformly by a seeded generator.

    States are normalised s ← (s − μ) / σ with (μ, σ) = `dataset.state_mean_std()` when
    `normalize_states` (else μ = 0, σ = 1, so `normalize_obs` is always the right map for
    evaluation observations); rewards are multiplied by `dataset.reward_scale()` when
    `normalize_rewards`. `mask` = 0.0 at terminals, 1.0 otherwise, as in ReplayMemory.
    """

    def __init__(self, dataset: OfflineDataset, seed: int, device: torch.device | str = "cpu",
                 normalize_states: bool = True, normalize_rewards: bool = False):
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
