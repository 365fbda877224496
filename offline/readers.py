"""Offline datasets' files read into arrays, without pickle, each check a one-line
DatasetError naming the problem and the fix (offline/data.py makes them an OfflineDataset).

* A Minari dataset id (`mujoco/halfcheetah/medium-v0`), from the local Minari folder
  ($MINARI_DATASETS_PATH, else ~/.minari/datasets), never downloaded; its metadata name the
  environment to evaluate on and the reference scores.
* A D4RL-format hdf5 file (`hopper_medium-v2.hdf5`) of flat `observations`, `actions`,
  `rewards`, `terminals` and optionally `timeouts`, `next_observations`; evaluated on the
  caller's environment, with D4RL's reference scores.

Each reader returns OfflineDataset's fields as a dict. A terminal means the MDP ended (no
bootstrap); a timeout or truncation only ends the episode, so it is not a terminal.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

HDF5_SUFFIXES = (".hdf5", ".h5")
HDF5_REQUIRED = ("observations", "actions", "rewards", "terminals")

# D4RL's reference returns (random policy, expert policy) for the locomotion tasks, as in
# d4rl/infos.py; the normalised score is 100·(R − min)/(max − min). They were measured on
# D4RL's mujoco-py (-v2) environments: on the -v5 environments of datasets made here a score
# against them is "D4RL-referenced", comparable to published D4RL scores only approximately.
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}

class DatasetError(Exception):
    """A dataset that cannot be used; the message is one line naming the problem and the fix."""


def check_lengths(arrays: dict[str, Any], source: str) -> None:
    """DatasetError unless every array has one row per step (a scalar counts as 0 rows)."""
    lengths = {name: len(values) if np.ndim(values) else 0 for name, values in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DatasetError(f"{source}: arrays of different lengths {lengths}; the data are "
                           f"malformed (every array needs one row per step)")


def float_array(values: Any, ndim: int, name: str, source: str) -> np.ndarray:
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


def read_dataset(spec: str, env_name: str | None = None) -> dict[str, Any]:
    """A D4RL hdf5 file (path ending in .hdf5/.h5, evaluated on `env_name`) or a locally
    stored Minari dataset id (evaluated on its recorded environment; `env_name`, if given,
    must be that environment)."""
    if spec.lower().endswith(HDF5_SUFFIXES):
        return read_d4rl_hdf5(Path(spec), env_name)
    if os.path.isfile(spec):
        raise DatasetError(f"{spec} is neither a D4RL .hdf5/.h5 file nor a Minari dataset id; "
                           f"give one of those (e.g. mujoco/halfcheetah/medium-v0)")
    return read_minari(spec, env_name)


# --------------------------------------------------------------------------- D4RL hdf5

def read_d4rl_hdf5(path: Path, env_name: str | None) -> dict[str, Any]:
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
    check_lengths(arrays, source)
    n = len(arrays["observations"])
    terminal = _flags(arrays["terminals"], "terminals", source)
    timeout = (_flags(arrays["timeouts"], "timeouts", source) if "timeouts" in arrays
               else np.zeros(n, dtype=bool))
    obs = float_array(arrays["observations"], 2, "observations", source)
    rewards = float_array(arrays["rewards"], 1, "rewards", source)
    if "next_observations" in arrays:
        next_obs, keep = arrays["next_observations"], np.ones(n, dtype=bool)
    else:
        next_obs, keep = _derive_next_obs(obs, terminal, timeout)
    ref_min, ref_max = _d4rl_reference_scores(path.name)
    return dict(
        obs=obs[keep], action=np.asarray(arrays["actions"])[keep], reward=rewards[keep],
        next_obs=np.asarray(next_obs)[keep], terminal=terminal[keep],
        episode_returns=_complete_episode_returns(rewards, terminal | timeout),
        env_id=env_name, ref_min_score=ref_min, ref_max_score=ref_max, source=source,
        caveat=v2_caveat(path.name, env_name))


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
    flags = float_array(values, 1, name, source)
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


def d4rl_reference_scores(env_id: str) -> list[float] | None:
    """D4RL's [random, expert] returns for an environment of its locomotion tasks
    (HalfCheetah-v5 → halfcheetah's), else None."""
    low, high = _d4rl_reference_scores(env_id)
    return None if low is None else [low, high]


def _d4rl_reference_scores(file_name: str) -> tuple[float | None, float | None]:
    """D4RL's (random, expert) returns for the task the file name names, else (None, None)."""
    name = file_name.lower()
    for task, (low, high) in D4RL_REF_SCORES.items():
        # the task as a whole word: "ant" names Ant-v5 and ant-medium, not antmaze or "plant"
        if re.search(rf"(?<![a-z]){task}(?![a-z])", name):
            return low, high
    return None, None


def v2_caveat(file_name: str, env_name: str) -> str | None:
    """The caveat of D4RL data on the newer MuJoCo-binding environments (-v4, -v5), None on
    others: D4RL's data come from mujoco-py environments, so returns (and normalised scores)
    there compare with published D4RL numbers only approximately."""
    version = re.search(r"-v(\d+)$", env_name)
    if version is None or int(version.group(1)) < 4:
        return None
    return (f"{file_name}: D4RL -v2 data (collected with mujoco-py) are evaluated on "
            f"{env_name}, whose simulation differs slightly; scores are comparable to "
            f"published D4RL numbers only approximately")


# --------------------------------------------------------------------------- Minari

def minari_root() -> Path:
    """The local Minari folder, by Minari's own rule (minari.storage.get_dataset_path),
    written out here because that function also creates the folder."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root) if root is not None else Path.home() / ".minari" / "datasets"


def local_metadata(dataset_id: str) -> dict[str, Any]:
    """A local Minari dataset's metadata.json, read as JSON without opening the dataset
    (fast, for reports); {} when the dataset is not here or its metadata is unreadable."""
    try:
        metadata = json.loads((minari_root() / dataset_id / "data" / "metadata.json")
                              .read_bytes())
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def metadata_summary(dataset_id: str, key: str) -> float | None:
    """A number of make_dataset.py's summary in a local Minari dataset's metadata (the
    behaviour policy's normalized_score, or behaviour_spread), if there is one."""
    try:
        return float(local_metadata(dataset_id)["make_dataset"]["summary"][key])
    except (ValueError, KeyError, TypeError):  # not local, not make_dataset's, none
        return None


def metadata_env_id(metadata: dict[str, Any]) -> str | None:
    """The environment a dataset's runs are evaluated on, as read_minari chooses it: its
    eval_env_spec's id, else its env_spec's (None without either)."""
    for key in ("eval_env_spec", "env_spec"):
        try:
            return str(json.loads(metadata[key])["id"])
        except (KeyError, TypeError, ValueError):
            continue
    return None


def read_minari(dataset_id: str, env_name: str | None) -> dict[str, Any]:
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
        arrays, returns = _minari_transitions(dataset, source)
    except (KeyError, OSError, ValueError) as error:  # h5py: a missing or corrupt episode
        raise _unreadable_minari(dataset_id, error) from None
    if _final_episode_cut(metadata):
        returns = returns[:-1]  # stored as truncated, yet cut short: not a complete episode
    scores = {k: None if metadata.get(k) is None else float(metadata[k])
              for k in ("ref_min_score", "ref_max_score")}
    return dict(**arrays, episode_returns=returns, env_id=env_id, env_kwargs=env_kwargs,
                source=source, **scores)


def _final_episode_cut(metadata: dict[str, Any]) -> bool:
    """Whether make_dataset.py recorded that its step budget cut the final episode."""
    record = metadata.get("make_dataset")
    summary = record.get("summary") if isinstance(record, dict) else None
    return isinstance(summary, dict) and summary.get("final_episode_cut") is True


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
    """The error for a stored dataset that does not read, with the way to make it again: the
    command in make_dataset.py's record where its metadata has one (a local dataset, which no
    download restores), else a download or make_dataset.py. The folder is named, as `minari
    delete` skips a dataset whose metadata it cannot read."""
    message = " ".join(str(error).split()) or type(error).__name__
    record = local_metadata(dataset_id).get("make_dataset")
    command = record.get("command") if isinstance(record, dict) else None
    again = (f"make it again with: {command}" if isinstance(command, str) else
             f"download it again (minari download {dataset_id}) or, if make_dataset.py made "
             f"it, make it again")
    return DatasetError(f"Minari dataset {dataset_id} cannot be read ({message}); delete "
                        f"{minari_root() / dataset_id} and {again}")


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


def _minari_transitions(dataset: Any, source: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The transition arrays (obs, action, reward, next_obs, terminal) over all episodes,
    and each episode's return."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("obs", "action", "reward", "next_obs", "terminal")}
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
        for name, values in (("obs", observations[:-1]), ("next_obs", observations[1:]),
                             ("action", episode.actions), ("reward", episode.rewards),
                             ("terminal", np.asarray(episode.terminations, dtype=bool))):
            parts[name].append(np.asarray(values))
    if not parts["reward"]:
        raise DatasetError(f"{source} has no episodes; give a non-empty dataset")
    returns = np.array([np.sum(rewards, dtype=np.float64) for rewards in parts["reward"]])
    return {k: np.concatenate(v) for k, v in parts.items()}, returns
